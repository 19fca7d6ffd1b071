"""The audit report: `report.json` for machines, `report.html` for a person.

The page is self-contained (inline CSS and SVG charts, no script, no network),
so it opens from a file on an auditor's laptop and can be archived as is.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from callvault.audit.sources import AuditLog
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import LATENESS_BUCKETS_S, ReplayResult


def report_document(
    result: ReplayResult, log: AuditLog, as_of: datetime, filters: dict[str, str | None]
) -> dict[str, Any]:
    tenants = sorted(result.outcomes_by_tenant)
    return {
        "generated_at": format_rfc3339(as_of),
        "filters": filters,
        "sources": {
            "segments": log.segments,
            "archived_events": log.archived_events,
            "tail_events": log.tail_events,
            "duplicates_ignored": result.duplicates,
        },
        "chain": {
            "intact": not log.breaks,
            "breaks": [{"kind": b.kind, "segment": b.segment, "detail": b.detail} for b in log.breaks],
        },
        "tenants": {
            t: {
                "outcomes": dict(result.outcomes_by_tenant[t]),
                "compliance_rate": round(result.compliance_rate(t), 4),
            }
            for t in tenants
        },
        "outcomes_by_day": {d: dict(c) for d, c in sorted(result.outcomes_by_day.items())},
        "deletion_lateness": dict(result.lateness_histogram),
        "subject_requests": sorted(result.subject_requests, key=lambda r: str(r["due_at"])),
        "accesses_by_site": dict(sorted(result.accesses_by_site.items())),
        "contract_ends": result.contract_ends,
        "policy_history": {
            tenant: [
                {
                    "version": v.version,
                    "effective_at": format_rfc3339(v.effective_at),
                    "changed_at": format_rfc3339(v.changed_at),
                    "changed_by": v.changed_by,
                    "reason": v.reason,
                    "changes": v.change,
                }
                for v in versions
            ]
            for tenant, versions in result.policy_history.items()
        },
        "violations": [
            {
                "rule": v.rule,
                "call_id": v.call_id,
                "tenant": v.tenant,
                "detail": v.detail,
                "evidence": list(v.evidence),
            }  # fmt: skip
            for v in result.violations
        ],
    }


def _bars(title: str, values: list[tuple[str, int]]) -> str:
    """A horizontal bar chart in SVG."""
    if not values:
        return f"<h3>{escape(title)}</h3><p>nothing to show</p>"
    top = max(n for _, n in values) or 1
    row, width = 22, 420
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width + 220}" '
             f'height="{row * len(values) + 10}">']  # fmt: skip
    for i, (label, n) in enumerate(values):
        y = i * row + 5
        length = max(1, int(width * n / top)) if n else 0
        parts.append(
            f'<text x="0" y="{y + 14}">{escape(label)}</text>'
            f'<rect x="120" y="{y}" width="{length}" height="16" fill="#3b6ea5"></rect>'
            f'<text x="{125 + length}" y="{y + 14}">{n}</text>'
        )
    parts.append("</svg>")
    return f"<h3>{escape(title)}</h3>" + "".join(parts)


def _filters(filters: dict[str, str | None]) -> str:
    chosen = [f"{name} {value}" for name, value in filters.items() if value is not None]
    return ", ".join(chosen) if chosen else "none (every tenant, the whole log)"


def write_report(doc: dict[str, Any], out: Path) -> None:
    """`report.json` and `report.html` in `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.html").write_text(report_html(doc))


def report_html(doc: dict[str, Any]) -> str:
    violations = doc["violations"]
    chain = doc["chain"]
    tenant_rows = "".join(
        f"<tr><td>{escape(t)}</td><td>{v['outcomes'].get('calls', 0)}</td>"
        f"<td>{v['outcomes'].get('archived', 0)}</td><td>{100 * v['compliance_rate']:.1f} %</td></tr>"
        for t, v in doc["tenants"].items()
    )
    violation_rows = "".join(
        f"<tr><td>{escape(v['rule'])}</td><td>{escape(v['tenant'])}</td>"
        f"<td>{escape(v['call_id'] or '-')}</td>"
        f"<td>{escape(v['detail'])}</td><td><code>{escape(', '.join(v['evidence']))}</code></td></tr>"
        for v in violations
    )
    requests = doc.get("subject_requests", [])
    request_rows = "".join(
        f'<tr class="{"bad" if r["status"] in ("overdue", "late") else ""}">'
        f"<td>{escape(r['request_id'])}</td>"
        f"<td>{escape(r['tenant'])}</td><td>{escape(str(r['kind']))}</td><td>{escape(str(r['received_at']))}</td>"
        f"<td>{escape(r['due_at'])}</td><td>{escape(r['status'])}</td>"
        f"<td>{escape(str(r['answered_at'] or ''))}</td></tr>"
        for r in requests
    )
    policy_rows = "".join(
        f"<tr><td>{escape(tenant)}</td><td>{v['version']}</td><td>{escape(v['effective_at'])}</td>"
        f"<td>{escape(', '.join(f'{k} {w}' for k, w in v['changes'].items()))}</td>"
        f"<td>{escape(v['changed_by'])}</td><td>{escape(v['reason'])}</td></tr>"
        for tenant, versions in doc.get("policy_history", {}).items()
        for v in versions
    )
    ends = "".join(
        f"<tr><td>{escape(str(e.get('occurred_at')))}</td><td>{escape(str(e.get('tenant')))}</td>"
        f"<td>{escape(str(e.get('type')))} {escape(str(e.get('destination') or ''))}</td>"
        f"<td>{escape(', '.join(f'{k} {n}' for k, n in (e.get('counts') or {}).items()))}</td>"
        f"<td>{escape(', '.join(e.get('held_calls') or []))}</td></tr>"
        for e in doc.get("contract_ends", [])
    )
    order = [f"<= {b} s" for b in LATENESS_BUCKETS_S] + [f"> {LATENESS_BUCKETS_S[-1]} s"]
    lateness = [(label, doc["deletion_lateness"].get(label, 0)) for label in order]
    per_day = [(day, sum(c.values())) for day, c in doc["outcomes_by_day"].items()]
    status = "no violation" if not violations else f"{len(violations)} violation(s)"
    chain_text = "intact" if chain["intact"] else f"BROKEN in {len(chain['breaks'])} place(s)"
    breaks = "".join(f"<li>{escape(b['kind'])}: {escape(b['segment'])}: {escape(b['detail'])}</li>"
                     for b in chain["breaks"])  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callvault audit report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1d2733; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccd; padding: .3rem .6rem; }}
.chart text {{ font-size: 12px; }} .ok {{ color: #2a7a2a; }} .bad {{ color: #b02a2a; }}
</style></head><body>
<h1>callvault audit report</h1>
<p>Generated {escape(doc["generated_at"])}. Filters: {escape(_filters(doc["filters"]))}.</p>
<p class="{"ok" if not violations else "bad"}"><strong>{escape(status)}</strong>;
hash chain <strong>{escape(chain_text)}</strong>; {doc["sources"]["archived_events"]} events from
{doc["sources"]["segments"]} archived segments, {doc["sources"]["tail_events"]} from the topic's tail.</p>
<ul>{breaks}</ul>
<h2>Compliance by tenant</h2>
<table><tr><th>tenant</th><th>calls</th><th>archived</th><th>compliance rate</th></tr>{tenant_rows}</table>
<h2>Subject requests</h2>
<p>{len(requests)} request(s); {sum(r["status"] == "overdue" for r in requests)} overdue,
{sum(r["status"] == "late" for r in requests)} answered late.</p>
<table><tr><th>request</th><th>tenant</th><th>kind</th><th>received</th><th>due</th><th>status</th>
<th>answered</th></tr>{request_rows}</table>
<h2>Client policies</h2>
<p>Each tenant's policy versions; a tenant not listed keeps the controller's own terms.</p>
<table><tr><th>tenant</th><th>version</th><th>in force from</th><th>what changed</th><th>by</th>
<th>reason</th></tr>{policy_rows}</table>
<h2>Contract ends</h2>
<p>Clients whose data was returned or erased at the end of their contract.</p>
<table><tr><th>when</th><th>tenant</th><th>what</th><th>counts</th><th>kept by holds</th></tr>{ends}</table>
<h2>Charts</h2>
{_bars("Deletion lateness", lateness)}
{_bars("Outcomes per day", per_day)}
{_bars("Accesses by site", sorted(doc.get("accesses_by_site", {}).items()))}
<h2>Violations</h2>
<table><tr><th>rule</th><th>tenant</th><th>call</th><th>what</th><th>evidence (event ids)</th></tr>
{violation_rows}</table>
</body></html>
"""
