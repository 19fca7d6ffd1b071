"""The audit report as an auditor sees it: opened from a file in headless Chromium, offline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from callvault.audit.report import report_document, report_html
from callvault.audit.sources import AuditLog
from callvault.contract.fields import format_rfc3339
from callvault.rules.audit_replay import replay
from tests.browser import browser_page
from tests.conftest import ARTIFACTS

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _event(kind: str, at: datetime, call: str, tenant: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": str(uuid.uuid4()), "call_id": call, "tenant": tenant,
            "occurred_at": format_rfc3339(at), **fields}  # fmt: skip


def _month() -> list[dict[str, Any]]:
    """A month of calls over two tenants; a few deleted late, one archived without disclosure."""
    events = []
    for i in range(60):
        tenant = "acme" if i % 3 else "globex"
        start = T0 + timedelta(hours=11 * i)
        due = start + timedelta(days=31)
        rec, key, call = str(uuid.uuid4()), f"{tenant}/{start:%Y/%m/%d}/c{i}.wav", f"c{i}"
        if i != 7:
            events.append(_event("disclosure.verified", start, call, tenant, recording_event_id=rec,
                                 played_at=format_rfc3339(start - timedelta(seconds=3)),
                                 recording_started_at=format_rfc3339(start)))  # fmt: skip
        events.append(_event("recording.archived", start, call, tenant, recording_event_id=rec,
                             object={"key": key}, recording_started_at=format_rfc3339(start),
                             expires_at=format_rfc3339(due)))  # fmt: skip
        gone = due + timedelta(seconds=5 + (7200 if i % 20 == 0 else 40 * (i % 5)))
        events.append(_event("recording.deleted", gone, call, tenant, object={"key": key},
                             due_at=format_rfc3339(due), deleted_at=format_rfc3339(gone)))  # fmt: skip
    return events


def test_the_report_renders_offline_with_its_charts(tmp_path: Path) -> None:
    events = _month()
    as_of = T0 + timedelta(days=70)
    result = replay(events, as_of, timedelta(minutes=10))
    log = AuditLog(segments=3, archived_events=len(events))
    page_file = tmp_path / "report.html"
    page_file.write_text(report_html(report_document(result, log, as_of, {"tenant": None})))

    with browser_page(width=1200, height=900) as page:
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith("file:") else None)
        page.goto(page_file.as_uri())
        charts = page.locator("svg.chart")
        assert charts.count() >= 2
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            assert charts.nth(i).locator("rect").count() > 0
        text = page.inner_text("body")
        assert "archived_without_disclosure" in text and "late_deletion" in text
        assert "globex" in text and "acme" in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "audit-report.png"), full_page=True)
        assert outside == []  # nothing fetched beyond the file itself


def _six_months() -> list[dict[str, Any]]:
    """190 days of calls over three tenants: most deleted on time, a tail deleted late, accesses by role
    and purpose, a few archived without disclosure, subject requests answered on time, late and not."""
    events = []
    for i in range(190 * 3):
        tenant = ("acme", "globex", "initech")[i % 3]
        start = T0 + timedelta(hours=8 * i)
        due = start + timedelta(days=31)
        rec, key, call = str(uuid.uuid4()), f"{tenant}/{start:%Y/%m/%d}/s{i}.wav", f"s{i}"
        if i % 97:
            events.append(_event("disclosure.verified", start, call, tenant, recording_event_id=rec,
                                 played_at=format_rfc3339(start - timedelta(seconds=3)),
                                 recording_started_at=format_rfc3339(start)))  # fmt: skip
        events.append(_event("recording.archived", start, call, tenant, recording_event_id=rec,
                             object={"key": key}, recording_started_at=format_rfc3339(start),
                             expires_at=format_rfc3339(due)))  # fmt: skip
        if i % 4 == 0:
            role, purpose = ("qa", "weekly coaching") if i % 8 else ("auditor", "complaint 2026-31")
            events.append(_event("recording.accessed", start + timedelta(days=1), call, tenant, role=role,
                                 what="metadata", purpose=purpose, accessed_by="someone",
                                 granted_tenants=[tenant]))  # fmt: skip
        gone = due + timedelta(seconds=5 + (7200 if i % 23 == 0 else 40 * (i % 5)))
        if gone < T0 + timedelta(days=200):
            events.append(_event("recording.deleted", gone, call, tenant, object={"key": key},
                                 due_at=format_rfc3339(due), deleted_at=format_rfc3339(gone)))  # fmt: skip
    for n in range(6):
        received = T0 + timedelta(days=20 * n)
        rid = f"r{n}"
        events.append({"type": "subject.request_received", "event_id": str(uuid.uuid4()), "tenant": "acme",
                       "request_id": rid, "kind": "access", "occurred_at": format_rfc3339(received),
                       "received_at": format_rfc3339(received),
                       "due_at": format_rfc3339(received + timedelta(days=30))})  # fmt: skip
        if n != 5:
            answered = received + timedelta(days=40 if n == 2 else 3)
            events.append({"type": "subject.access_fulfilled", "event_id": str(uuid.uuid4()),
                           "tenant": "acme", "request_id": rid,
                           "occurred_at": format_rfc3339(answered)})  # fmt: skip
    return events


def test_six_months_read_key_figures_first_then_rules_then_weeks(tmp_path: Path) -> None:
    events = _six_months()
    as_of = T0 + timedelta(days=200)
    result = replay(events, as_of, timedelta(minutes=10))
    doc = report_document(result, AuditLog(segments=40, archived_events=len(events)), as_of, {"tenant": None})
    assert len(doc["outcomes_by_week"]) >= 26
    figures = doc["key_figures"]
    assert set(figures["accesses_by_role"]) == {"qa", "auditor"}
    assert figures["subject_requests_late"] == 1 and figures["subject_requests_overdue"] == 1
    assert doc["violations_by_rule"]["late_deletion"] > 5, "enough to show only the first few"
    page_file = tmp_path / "report.html"
    page_file.write_text(report_html(doc))

    with browser_page(width=1280, height=900) as page:
        page.goto(page_file.as_uri())
        headings = page.locator("h2").all_inner_texts()
        assert headings[:3] == ["Key figures", "Violations by rule", "Outcomes per week"], headings
        text = page.inner_text("body")
        assert "Deletions on time" in text and "p99 lateness" in text and "Disclosure compliance" in text
        assert "weekly coaching" in text and "answered on time" in text
        assert "more, every one in report.json" in text
        weekly = page.locator("svg.weekly")
        assert weekly.locator("rect").count() >= 26
        weeks = weekly.locator("text.week")
        dates = [box for i in range(weeks.count()) if (box := weeks.nth(i).bounding_box()) is not None]
        assert len(dates) >= 6
        for left, right in zip(dates, dates[1:], strict=False):
            assert left["x"] + left["width"] <= right["x"], "week labels overlap"
        box = weekly.bounding_box()
        assert box is not None and box["width"] <= 1280, "26 weeks fit on one screen"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "audit-report-six-months.png"), full_page=True)
