"""The audit report: `report.json` for machines, `report.html` for a person.

The page is self-contained (inline CSS and SVG charts, no script, no network),
so it opens from a file on an auditor's laptop and can be archived as is. It
reads at six months as at one: the key figures first, then the violations
grouped by rule (the first few of each shown, every one in `report.json`),
then outcomes per week in columns that stay legible at 26 weeks and more.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from callvault.audit.sources import AuditLog
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import LATENESS_BUCKETS_S, PAYMENT_OUTCOMES, ReplayResult

SHOWN_PER_RULE = 5  # violations listed on the page for each rule; all of them are in report.json
DISCLOSURE_RULES = ("archived_without_disclosure", "disclosure_after_start")


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _p99_at_most(log2: Counter[int]) -> int | None:
    """An upper bound of the 99th percentile of lateness, in seconds (the power of two it falls under)."""
    total = sum(log2.values())
    if total == 0:
        return None
    seen = 0
    for bucket in sorted(log2):
        seen += log2[bucket]
        if seen >= 0.99 * total:
            return int(2**bucket)
    return None


def key_figures(result: ReplayResult, by_rule: dict[str, int]) -> dict[str, Any]:
    """What an auditor reads first: deletions on time, p99 lateness, disclosure compliance,
    accesses by role and purpose, subject requests answered on time."""
    deletions = sum(result.lateness_histogram.values())
    archived = sum(c.get("archived", 0) for c in result.outcomes_by_tenant.values())
    without = sum(by_rule.get(rule, 0) for rule in DISCLOSURE_RULES)
    statuses = Counter(str(r["status"]) for r in result.subject_requests)
    answered = statuses["fulfilled"] + statuses["late"]
    return {
        "deletions": deletions,
        "deleted_on_time": result.deletions_on_time,
        "deleted_on_time_rate": _rate(result.deletions_on_time, deletions),
        "lateness_p99_at_most_s": _p99_at_most(result.lateness_log2),
        "recordings_archived": archived,
        "disclosure_compliance_rate": _rate(archived - without, archived),
        "accesses": sum(result.accesses_by_role.values()),
        "accesses_by_role": dict(result.accesses_by_role.most_common()),
        "accesses_by_purpose": dict(result.accesses_by_purpose.most_common(10)),
        "subject_requests": len(result.subject_requests),
        "subject_requests_answered": answered,
        "subject_requests_answered_on_time": statuses["fulfilled"],
        "subject_requests_answered_on_time_rate": _rate(statuses["fulfilled"], answered),
        "subject_requests_late": statuses["late"],
        "subject_requests_overdue": statuses["overdue"],
        "subject_requests_open": statuses["open"],
    }


def _week(day: str) -> str:
    """The Monday (ISO week) a day of `outcomes_by_day` falls in."""
    moment = date.fromisoformat(day)
    return (moment - timedelta(days=moment.weekday())).isoformat()


def outcomes_by_week(by_day: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    weeks: dict[str, Counter[str]] = {}
    for day, counts in by_day.items():
        try:
            weeks.setdefault(_week(day), Counter()).update(counts)
        except ValueError:
            continue  # a day a forged event made up: still in outcomes_by_day
    return {week: dict(counts) for week, counts in sorted(weeks.items())}


def report_document(
    result: ReplayResult, log: AuditLog, as_of: datetime, filters: dict[str, str | None]
) -> dict[str, Any]:
    tenants = sorted(result.outcomes_by_tenant)
    by_rule = dict(Counter(v.rule for v in result.violations).most_common())
    return {
        "generated_at": format_rfc3339(as_of),
        "key_figures": key_figures(result, by_rule),
        "violations_by_rule": by_rule,
        "outcomes_by_week": outcomes_by_week(result.outcomes_by_day),
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
                "payments": {name: result.payments_by_tenant[t][name] for name in PAYMENT_OUTCOMES.values()},
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


def _weekly_columns(title: str, weeks: dict[str, dict[str, int]]) -> str:
    """Columns per week, archived stacked on the rest: narrow enough for a year on one screen,
    labelled every few weeks so the labels never overlap."""
    if not weeks:
        return f"<h3>{escape(title)}</h3><p>nothing to show</p>"
    values = [(week, c.get("archived", 0), sum(n for k, n in c.items() if k != "archived"))
              for week, c in weeks.items()]  # fmt: skip
    top = max(a + r for _, a, r in values) or 1
    step = max(8, min(32, 900 // len(values)))
    every = max(1, -(-44 // step))  # a label needs about 44 px: one every so many columns
    height, base = 200, 170
    width = step * len(values) + 60
    parts = [f'<svg class="chart weekly" role="img" aria-label="{escape(title)}" width="{width}" '
             f'height="{height + 10}">']  # fmt: skip
    for i, (week, archived, rest) in enumerate(values):
        x = 40 + i * step
        high = int(150 * archived / top)
        low = int(150 * rest / top)
        parts.append(f'<rect x="{x}" y="{base - high}" width="{step - 2}" height="{high}" fill="#3b6ea5">'
                     f"<title>{escape(week)}: {archived} archived, {rest} not</title></rect>")  # fmt: skip
        if low:
            parts.append(f'<rect x="{x}" y="{base - high - low}" width="{step - 2}" height="{low}" '
                         f'fill="#c98a2e"></rect>')  # fmt: skip
        if i % every == 0:
            parts.append(f'<text class="week" x="{x}" y="{base + 16}">{escape(week[5:])}</text>')
    parts.append(f'<text x="0" y="12">{top}</text><text x="0" y="{base}">0</text></svg>')
    legend = (
        '<p class="legend"><span class="archived">■</span> archived '
        '<span class="rest">■</span> not archived</p>'
    )
    return f"<h3>{escape(title)}</h3>" + "".join(parts) + legend


def _key_figures_html(figures: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.2f} %"

    p99 = figures["lateness_p99_at_most_s"]
    rows = [
        ("Deletions on time", f"{pct(figures['deleted_on_time_rate'])} of {figures['deletions']:,}"),
        ("p99 lateness of a deletion", "n/a" if p99 is None else f"at most {p99:,} s"),
        ("Disclosure compliance", f"{pct(figures['disclosure_compliance_rate'])} of "
                                  f"{figures['recordings_archived']:,} recordings archived"),
        ("Accesses", f"{figures['accesses']:,}: " + ", ".join(
            f"{escape(role)} {n:,}" for role, n in figures["accesses_by_role"].items())),
        ("Top purposes", ", ".join(f"{escape(p)} {n:,}" for p, n in figures["accesses_by_purpose"].items())
         or "none"),
        ("Subject requests answered on time",
         f"{pct(figures['subject_requests_answered_on_time_rate'])} of the "
         f"{figures['subject_requests_answered']:,} answered ({figures['subject_requests_late']} late); "
         f"of {figures['subject_requests']:,} received, {figures['subject_requests_overdue']} overdue and "
         f"{figures['subject_requests_open']} open"),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<table class="figures">{cells}</table>'


def _violations_html(violations: list[dict[str, Any]], by_rule: dict[str, int]) -> str:
    if not by_rule:
        return "<p>None.</p>"
    summary = "".join(f'<tr><td><a href="#rule-{escape(rule)}">{escape(rule)}</a></td><td>{n:,}</td></tr>'
                      for rule, n in by_rule.items())  # fmt: skip
    sections = []
    for rule, count in by_rule.items():
        shown = [v for v in violations if v["rule"] == rule][:SHOWN_PER_RULE]
        rows = "".join(
            f"<tr><td>{escape(v['tenant'])}</td><td>{escape(v['call_id'] or '-')}</td>"
            f"<td>{escape(v['detail'])}</td><td><code>{escape(', '.join(v['evidence']))}</code></td></tr>"
            for v in shown
        )
        more = (
            f"<p>… and {count - len(shown):,} more, every one in report.json.</p>"
            if count > len(shown)
            else ""
        )
        head = "<tr><th>tenant</th><th>call</th><th>what</th><th>evidence (event ids)</th></tr>"
        sections.append(f'<h3 id="rule-{escape(rule)}">{escape(rule)}: {count:,}</h3>'
                        f"<table>{head}{rows}</table>{more}")  # fmt: skip
    return f"<table><tr><th>rule</th><th>violations</th></tr>{summary}</table>" + "".join(sections)


def _filters(filters: dict[str, str | None]) -> str:
    chosen = [f"{name} {value}" for name, value in filters.items() if value is not None]
    return ", ".join(chosen) if chosen else "none (every tenant, the whole log)"


def write_report(doc: dict[str, Any], out: Path) -> None:
    """`report.json` and `report.html` in `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "report.html").write_text(report_html(doc))


def _key_line(event: dict[str, Any]) -> str:
    """A client's key destroyed at its contract's end: which, and when the KMS deletes it."""
    if event.get("type") != "tenant.key_destroyed":
        return ""
    return f"{event.get('key_id')}, destroyed on {str(event.get('deletion_date'))[:10]}"


def report_html(doc: dict[str, Any]) -> str:
    violations = doc["violations"]
    chain = doc["chain"]
    tenant_rows = "".join(
        f"<tr><td>{escape(t)}</td><td>{v['outcomes'].get('calls', 0)}</td>"
        f"<td>{v['outcomes'].get('archived', 0)}</td><td>{100 * v['compliance_rate']:.1f} %</td></tr>"
        for t, v in doc["tenants"].items()
    )
    payment_rows = "".join(
        f"<tr><td>{escape(t)}</td>"
        + "".join(f"<td>{v['payments'].get(name, 0)}</td>" for name in PAYMENT_OUTCOMES.values())
        + "</tr>"
        for t, v in doc["tenants"].items()
        if any(v.get("payments", {}).values())
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
        f"<td>{escape(str(e.get('type')))} {escape(str(e.get('destination') or ''))}"
        f"{escape(_key_line(e))}</td>"
        f"<td>{escape(', '.join(f'{k} {n}' for k, n in (e.get('counts') or {}).items()))}</td>"
        f"<td>{escape(', '.join(e.get('held_calls') or []))}</td></tr>"
        for e in doc.get("contract_ends", [])
    )
    order = [f"<= {b} s" for b in LATENESS_BUCKETS_S] + [f"> {LATENESS_BUCKETS_S[-1]} s"]
    lateness = [(label, doc["deletion_lateness"].get(label, 0)) for label in order]
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
.figures th {{ text-align: left; background: #f2f4f8; }} .figures td {{ font-size: 1.1rem; }}
.legend .archived {{ color: #3b6ea5; }} .legend .rest {{ color: #c98a2e; }}
</style></head><body>
<h1>callvault audit report</h1>
<p>Generated {escape(doc["generated_at"])}. Filters: {escape(_filters(doc["filters"]))}.</p>
<p class="{"ok" if not violations else "bad"}"><strong>{escape(status)}</strong>;
hash chain <strong>{escape(chain_text)}</strong>; {doc["sources"]["archived_events"]} events from
{doc["sources"]["segments"]} archived segments, {doc["sources"]["tail_events"]} from the topic's tail.</p>
<ul>{breaks}</ul>
<h2>Key figures</h2>
{_key_figures_html(doc["key_figures"])}
<h2>Violations by rule</h2>
{_violations_html(violations, doc["violations_by_rule"])}
<h2>Outcomes per week</h2>
{_weekly_columns("Calls per week (week starting)", doc["outcomes_by_week"])}
<h2>Compliance by tenant</h2>
<table><tr><th>tenant</th><th>calls</th><th>archived</th><th>compliance rate</th></tr>{tenant_rows}</table>
<h2>Payments (card data)</h2>
<p>Calls with payment windows: archived with every window inside a pause and the paused audio silent
(<code>payment.secured</code>), rejected because a window lay outside a pause or a pause was not silent,
and archived recordings erased when a late payment event showed them exposed.</p>
<table><tr><th>tenant</th><th>secured</th><th>rejected: card data exposed</th>
<th>rejected: pause not silent</th><th>erased: card data exposed</th></tr>{payment_rows}</table>
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
{_bars("Accesses by site", sorted(doc.get("accesses_by_site", {}).items()))}
</body></html>
"""
