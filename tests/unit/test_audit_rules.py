"""Every finding id the audit can report is declared once, and the report's keys are documented (issue 25).

An auditor's own tools filter `report.json` by rule id; an id that appears in
the code and nowhere in `rules/audit_rules.py` (and so in no guide) would be a
finding nobody can look up.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callvault.audit.report import report_document
from callvault.audit.sources import AuditLog
from callvault.rules.audit_replay import replay
from callvault.rules.audit_rules import CHAIN_BREAKS, REPLAY_RULES, STORE_RULES

SOURCE = Path(__file__).resolve().parents[2] / "services" / "callvault"


def _literals(pattern: str, *paths: str) -> set[str]:
    text = "\n".join((SOURCE / p).read_text() for p in paths)
    return set(re.findall(pattern, text))


def test_every_rule_the_replay_can_flag_is_declared() -> None:
    found = _literals(r'(?:flag|Violation)\(\s*"([a-z_]+)"', "rules/audit_replay.py")
    assert len(found) >= 13
    assert found <= set(REPLAY_RULES), f"undeclared: {sorted(found - set(REPLAY_RULES))}"


def test_every_chain_break_and_store_finding_is_declared() -> None:
    kinds = _literals(
        r'ChainBreak\(\s*"([a-z_]+)"', "rules/audit_chain.py", "audit/sources.py", "audit/period.py"
    )
    assert kinds and kinds <= set(CHAIN_BREAKS), f"undeclared: {sorted(kinds - set(CHAIN_BREAKS))}"
    rules = _literals(r'(?:_finding\(found, |StoreFinding\()"([a-z_]+)"', "rules/store_check.py")
    assert len(rules) == 6 and rules <= set(STORE_RULES), sorted(rules - set(STORE_RULES))


def test_every_key_of_the_report_is_named_in_the_auditors_guide() -> None:
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    doc = report_document(replay([], as_of, timedelta(minutes=10)), AuditLog(), as_of, {"tenant": None})
    guide = (SOURCE.parents[1] / "docs" / "auditors.md").read_text()
    missing = [key for key in doc if f"`{key}`" not in guide]
    assert missing == [], f"report.json keys the auditors' guide does not name: {missing}"
