"""The record of processing (GDPR art. 30) as the code keeps it: every place callvault writes personal
data, what of whom, in what form, for how long, where, and who may read it. Pure.

The data classes' rows come from their registry (`rules.data_classes`), so a new class is in the record
the moment it exists; the other places are declared here, once. `make docs` writes the table into
`docs/dpo.md`, and `tests/unit/test_processing_record.py` fails when the code writes a bucket, a
registry under `_callvault/` or a topic that this record does not name.
"""

from __future__ import annotations

from dataclasses import dataclass

from callvault.rules.data_classes import DataClass, data_classes


@dataclass(frozen=True, slots=True)
class Place:
    where: str  # a bucket (by its setting), a registry in one, a topic (by its name after the prefix), a file
    holds: str
    subjects: str  # whose data: callers, callees, agents, coaches, the DPO
    form: str  # clear, pseudonymized (HMAC per tenant), redacted
    kept: str
    readers: str


# Where a place is: every store is the archive's (`CALLVAULT_STORAGE_COUNTRY`, or the bucket's AWS region,
# checked inside the EEA before any write), every topic the cluster's (`CALLVAULT_KAFKA_BOOTSTRAP`).
STORE = "the archive's store, in the EEA (checked by `storage init` and the worker)"
CLUSTER = "the Kafka cluster"

BUCKETS: tuple[Place, ...] = (
    Place(
        "`staging_bucket` (and `CALLVAULT_SOURCE_BUCKETS`)",
        "recordings as the platform uploaded them",
        "callers, callees, agents (voices)",
        "clear",
        "until the worker decides (then deleted); a lifecycle backstop after the longest recording term",
        "the worker",
    ),
    Place(
        "`audit_bucket`: `segments/`, `heads/`, `checkpoints/`",
        "the lifecycle log, hash-chained and signed",
        "callers and callees (pseudonyms), agents (ids), coaches and the DPO (names, in access and command "
        "events)",
        "pseudonymized; names of staff in clear",
        "`CALLVAULT_AUDIT_RETENTION` (P5Y), under compliance lock",
        "auditors (`audit replay`, `verify`), the worker",
    ),
    Place(
        "`exports_bucket`",
        "a subject's access export: their calls' metadata and recordings",
        "the subject (others replaced by their side of the call)",
        "pseudonymized; audio in clear",
        "`CALLVAULT_EXPORT_RETENTION` (P7D)",
        "the DPO, and whom they hand the link to (each hand-out logged)",
    ),
)

REGISTRIES: tuple[Place, ...] = (
    Place(
        "`_callvault/subject-index/` (metadata bucket)",
        "which calls each participant, and each agent, took part in",
        "callers, callees and agents",
        "pseudonymized",
        "as the call's metadata (deleted with it)",
        "the worker",
    ),
    Place(
        "`_callvault/subject-requests/` (metadata bucket)",
        "each data-subject request and its answer",
        "the subject; the DPO and who verified the identity (names)",
        "pseudonymized",
        "not deleted by callvault yet (see known edges)",
        "the DPO (`subject requests`), the worker",
    ),
    Place(
        "`_callvault/restricted-subjects/`, `_callvault/objecting-subjects/` (metadata bucket)",
        "who restricted processing or objected",
        "callers and callees",
        "pseudonymized",
        "until unrestricted; an objection stands",
        "the worker, the API",
    ),
    Place(
        "`_callvault/legal-holds/` (metadata bucket)",
        "held calls, why and by whom",
        "the DPO or legal (names)",
        "clear",
        "until released",
        "the worker, the DPO (`hold list`)",
    ),
    Place(
        "`_callvault/purge-journal/` (metadata bucket)",
        "deletions in flight: keys and pseudonyms",
        "callers and callees",
        "pseudonymized",
        "until the batch is proven (seconds)",
        "the worker",
    ),
    Place(
        "`_callvault/policies/` (metadata bucket)",
        "each client's policy versions",
        "the DPO (names)",
        "clear",
        "kept: they date every object",
        "the worker, the API, auditors",
    ),
    Place(
        "`_callvault/tenants/` (metadata bucket)",
        "clients whose contract ended",
        "none",
        "clear",
        "kept",
        "the worker",
    ),
    Place(
        "`_callvault/commands/` (metadata bucket)",
        "commands already carried out (replay protection)",
        "the DPO (key names)",
        "clear",
        "kept",
        "the worker",
    ),
    Place(
        "`_callvault/rewraps/` (metadata bucket)",
        "a client's key rotation under way (`tenant keys rotate --rewrap`): the key and when",
        "none",
        "clear",
        "kept",
        "the operator's command",
    ),
    Place(
        "`_callvault/store-profile.json`, `_callvault/store-probe/` (metadata bucket)",
        "what `storage init` measured of the store",
        "none",
        "-",
        "kept",
        "the worker",
    ),
)

TOPICS: tuple[Place, ...] = (
    Place(
        "`call-events`",
        "the platform's call events",
        "callers and callees (numbers), agents (ids)",
        "clear: the only place a number exists",
        "the topic's retention (7 days in `deploy/`)",
        "the worker's intake",
    ),
    Place(
        "`internal.calls`",
        "validated events and wake-ups",
        "callers and callees, agents",
        "numbers pseudonymized; the agent's id in clear beside its pseudonym (the metadata coaches read "
        "needs it)",
        "7 days",
        "the worker",
    ),
    Place(
        "`lifecycle`",
        "every outcome, deletion, access and request: the audit log",
        "participants (pseudonyms), agents, coaches and the DPO",
        "pseudonymized; staff names in clear",
        "30 days (then the audit bucket keeps it)",
        "the worker's archiver, auditors",
    ),
    Place(
        "`deadletter`",
        "events and commands callvault refused, with why",
        "as sent",
        "numbers redacted",
        "30 days",
        "operators",
    ),
    Place(
        "`commands`",
        "legal holds and subject requests, signed",
        "the subject (pseudonym), the DPO",
        "pseudonymized",
        "30 days",
        "the worker",
    ),
    Place(
        "`{app_id}-call-state-changelog` (faust)",
        "each open call's state",
        "participants, agents",
        "numbers pseudonymized; the agent's id in clear beside its pseudonym",
        "compacted; a call's entry goes `CALLVAULT_SETTLED_STATE_TTL` after it is decided",
        "the worker",
    ),
    Place("`{app_id}-__assignor-__leader` (faust)", "which worker leads", "none", "-", "-", "the worker"),
)

FILES: tuple[Place, ...] = (
    Place(
        "worker and API logs (stdout)",
        "what was done, requests' paths and who asked",
        "coaches and the DPO (token subjects); no number",
        "numbers redacted",
        "the platform's log retention",
        "operators",
    ),
    Place(
        "`audit replay`/`verify-store` scratch files (a temporary directory)",
        "calls' stories and event ids",
        "pseudonyms",
        "pseudonymized",
        "deleted when the run ends",
        "the auditor running it",
    ),
)


def class_place(kind: DataClass) -> Place:
    return Place(
        where=f"`{kind.bucket_setting}`: {kind.key_layout}",
        holds=kind.holds,
        subjects=kind.subjects,
        form="sealed under the client's own KMS key (AES-256-GCM; unsealed with CALLVAULT_ENCRYPTION=off)"
        if kind.sealed
        else "clear (at rest as the store keeps it)",
        kept=f"`CALLVAULT_{kind.default_term_setting.upper()}` from its `{kind.counts_from}`, or the "
        "client's policy term; then deleted and proven",
        readers=kind.readers,
    )


def record() -> list[Place]:
    """Every place, the data classes' first."""
    return [*(class_place(c) for c in data_classes()), *BUCKETS, *REGISTRIES, *TOPICS, *FILES]


def record_rows() -> list[str]:
    """The record as a Markdown table, for `docs/dpo.md`."""
    lines = [
        f"Every store is {STORE}; every topic is on {CLUSTER}.",
        "",
        "| where | what | whose | form | kept | who reads it |",
        "|---|---|---|---|---|---|",
    ]
    for p in record():
        lines.append(f"| {p.where} | {p.holds} | {p.subjects} | {p.form} | {p.kept} | {p.readers} |")
    return lines
