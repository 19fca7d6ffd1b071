"""Every finding the audit can report, by its id: what an auditor reads in `report.json`. Pure.

The ids are the contract with an auditor's own tools (they filter and count
by them), so they are declared here once with the sentence that explains
each; `docs/auditors.md`'s table is written from this registry by `make docs`,
and `tests/unit/test_audit_rules.py` fails when the replay, the chain check or
the store walk can report an id that is not declared here.
"""

from __future__ import annotations

# `report.json` → `violations[].rule`: what the replay of the log found.
REPLAY_RULES: dict[str, str] = {
    "archived_without_disclosure": "a recording was archived with no `disclosure.verified` for it",
    "disclosure_after_start": "the disclosure that justified an archive began after the recording did",
    "unknown_policy_version": "an object was dated by a client-policy version no `policy.changed` proves",
    "not_deleted": "an object's due date (plus the tolerance) has passed and no deletion is logged",
    "deleted_early": "an object was deleted before its due date, with no erasure, objection or contract end",
    "late_deletion": "an object was deleted later than its due date plus the tolerance",
    "deletion_refused": "the store refused to delete a due object (an object-lock hold set outside "
    "callvault, a bucket policy): the cause of a late deletion, with the store's answer",
    "deleted_during_hold": "an object was deleted while a legal hold on its call was in force",
    "payment_not_secured": "a recording was archived although its own `payment.secured` shows a payment "
    "window outside a pause with the margin, or a paused span at or above the silence threshold",
    "access_after_deletion": "a recording or its metadata was read after its deletion was proven",
    "access_outside_rights": "a read by a role or for a purpose the access rules do not allow",
    "access_from_site_not_allowed": "a read from a processing site the client's policy did not allow",
    "unverified_command_effect": "a legal hold, its release or a subject request that no `command.accepted` "
    "signed by a key the auditor holds proves",
    "conflicting_event": "two events under one `event_id` that differ in a fact the audit relies on",
    "subject_request_overdue": "a data-subject request still open past its deadline",
    "subject_request_late": "a data-subject request answered after its deadline (counted from the identity "
    "check where the request waited for one)",
    "identity_check_overdue": "a request filed with its identity pending still waits for the check past "
    "`CALLVAULT_IDENTITY_CHECK_MAX`",
    "rectification_without_request": "a call's metadata was rectified (`subject.rectified`) for a request "
    "the log never shows received",
    "forwarded_executed_without_instruction": "a request on a processor tenant's calls, forwarded to the "
    "client, was carried out with no instruction from the client named",
    "extension_not_notified": "a request's deadline was extended and no `subject.extension_notified` shows "
    "the subject told within the first month",
}

# `report.json` → `chain.breaks[].kind`, and `callvault audit verify`: what the log's own form shows.
CHAIN_BREAKS: dict[str, str] = {
    "edited": "a segment's bytes are not those its successor (or a checkpoint, or its head) names",
    "removed": "offsets are missing between two segments of a partition, or after the last one, or the "
    "partition's head names a segment the store has not got",
    "deleted": "a delete marker hides a locked segment or checkpoint: the log was cut by hand",
    "reordered": "a segment starts before the end of the one before it",
    "unreadable": "an object under `segments/` is not a segment (not gzip JSON Lines with a header)",
    "unsigned": "a checkpoint that the trusted key (or a rotation it signed) does not vouch for",
}

# `verify-store.json` → `findings[].rule`: the store compared with the log (`callvault audit verify-store`).
STORE_RULES: dict[str, str] = {
    "past_due_in_store": "a version past its due date (plus the tolerance) is still stored, unheld",
    "archived_without_event": "the store holds data no archive event accounts for",
    "deleted_but_present": "the log proves a deletion, yet a version of the object is still stored",
    "missing_from_store": "the log archived an object and proves no deletion, yet no version is stored",
    "version_not_archived": "a stored version holds bytes that no archive event of its key names",
    "plaintext_not_proven": "with `--decrypt`: the newest version does not open under its client's key (a "
    "segment altered, the key destroyed) or its plaintext is not the SHA-256 it was archived with",
    "policy_file_not_applied": "a file under the client policies' prefix that no process applies (not a "
    "policy version, its name and body disagree, or its terms are out of bounds): skipped, never the book",
}


def rule_rows() -> list[str]:
    """The three tables of `docs/auditors.md`'s "Every finding by its id"."""
    lines: list[str] = []
    for title, rules in (
        ("`report.json`: `violations[].rule`", REPLAY_RULES),
        ("`report.json`: `chain.breaks[].kind` (and `audit verify`)", CHAIN_BREAKS),
        ("`verify-store.json`: `findings[].rule`", STORE_RULES),
    ):
        lines += [f"| {title} | meaning |", "|---|---|"]
        lines += [f"| `{rule}` | {said} |" for rule, said in rules.items()]
        lines.append("")
    return lines[:-1]
