"""callvault's Prometheus metrics, and how a lifecycle event is counted.

One registry per process (prometheus_client's default), so the worker and the
API each expose what they did. Labels are bounded by design: topic names, event
types, contract reasons, S3 error codes, route templates. Never a call id, a
tenant, a key or free text: a label is kept forever by the scraper, and a
legal-hold reason or an object key could name someone.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from botocore.exceptions import ClientError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from callvault.contract.base import ContractModel

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

EVENTS_IN = Counter(
    "callvault_events_in_total", "Messages read from an input topic (before decoding)", ["topic"]
)
OUTCOMES = Counter(
    "callvault_outcomes_total",
    "Lifecycle events emitted, by type and, where the contract gives one, reason",
    ["type", "reason"],
)
STATE_WRITES = Counter(
    "callvault_call_state_writes_total",
    "Call states written to the call-state table, one changelog record each: once a call's batch",
)
DEAD_LETTERS = Counter("callvault_dead_letters_total", "Inputs sent to the dead-letter topic", ["topic"])
S3_ERRORS = Counter(
    "callvault_s3_errors_total", "S3 calls that failed (each is retried or reported)", ["code"]
)
S3_REQUESTS = Counter(
    "callvault_s3_requests_total",
    "S3 requests sent, by operation (each retry counts): what a call costs the store",
    ["operation"],
)
KMS_REQUESTS = Counter(
    "callvault_kms_requests_total",
    "KMS requests sent, by operation (each retry counts): data keys made, unwrapped, re-wrapped",
    ["operation"],
)
DELETION_LATENESS = Histogram(
    "callvault_deletion_lateness_seconds",
    "Time from an object's due date to its proven deletion",
    ["type"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 900, 3600, 6 * 3600, 86400),
)
PURGE_PASSES = Counter(
    "callvault_purge_passes_total",
    "Purge passes this worker finished (result done) or gave up on until the next (failed); "
    "alert when the leader's stop growing",
    ["result"],
)
DELETIONS_REFUSED = Counter(
    "callvault_deletions_refused_total",
    "Due objects the store refused to delete (one per object and streak of refused passes); alert on any",
)
CONSUMER_LAG = Gauge(
    "callvault_consumer_lag",
    "Messages on an assigned partition not yet committed by this worker (high water - committed)",
    ["topic", "partition"],
)
CALLS_WAITING = Gauge("callvault_calls_waiting", "Calls this worker holds state for, waiting for a deadline")
SUBJECT_COMMANDS_WAITING = Gauge(
    "callvault_subject_commands_waiting", "Subject commands in this worker's subject lane, queued or in hand"
)
POLICY_VERSIONS = Gauge(
    "callvault_policy_versions_known", "Client-policy versions (all tenants) this worker applies"
)
POLICY_VERSIONS_REFUSED = Gauge(
    "callvault_policy_versions_refused",
    "Files under the client policies' prefix this worker does not apply (not a version, name and body "
    "disagree, terms out of bounds); alert when above 0",
)
S3_REFUSED = Gauge(
    "callvault_s3_refused",
    "Kinds of permanent refusal (AccessDenied, NoSuchBucket) of callvault's own buckets that work waits on; "
    "alert when above 0",
)
WORKER_READY = Gauge("callvault_worker_ready", "1 when the worker has its partitions and its state")
API_REQUESTS = Counter("callvault_api_requests_total", "API requests answered", ["method", "route", "status"])
API_SECONDS = Histogram(
    "callvault_api_request_seconds",
    "API request duration, to the last byte sent",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# Where an event's reason is a closed set of the contract; elsewhere it is free text.
_CLOSED_REASONS: dict[str, str] = {
    "recording.rejected": "reason",
    "recording.deleted": "reason",
    "metadata.deleted": "reason",
    "disclosure.missing": "detail",
}


def outcome_labels(event: ContractModel) -> tuple[str, str]:
    """The (type, reason) an emitted event is counted under; reason is "" where it is free text."""
    kind = str(getattr(event, "type", type(event).__name__))
    field = _CLOSED_REASONS.get(kind)
    return kind, str(getattr(event, field, "")) if field else ""


def count_emitted(events: Iterable[ContractModel]) -> None:
    for event in events:
        kind, reason = outcome_labels(event)
        OUTCOMES.labels(kind, reason).inc()
        lateness = getattr(event, "lateness_s", None)
        if isinstance(lateness, int | float):
            DELETION_LATENESS.labels(kind).observe(max(0.0, float(lateness)))


def s3_error_code(exc: BaseException) -> str:
    """The S3 error code (`SlowDown`, `AccessDenied`), or the kind of failure when there is none.

    An answer to HEAD has no body, so botocore's code is the bare status ("503"):
    it is named the way S3 names it in a body ("ServiceUnavailable"), so one
    failure counts under one label whatever the request.
    """
    if not isinstance(exc, ClientError):
        return type(exc).__name__
    code = str(exc.response.get("Error", {}).get("Code") or "unknown")
    if code.isdigit():
        try:
            return HTTPStatus(int(code)).phrase.replace(" ", "")
        except ValueError:
            return code
    return code


def exposition() -> bytes:
    """This process's metrics in the Prometheus text format."""
    return generate_latest()
