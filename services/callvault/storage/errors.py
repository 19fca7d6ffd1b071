"""Telling S3 answers apart: absent objects, transient faults, permanent refusals, and what to tell a person.

A transient fault (5xx, throttling, a dropped connection) is waited out: the
store will answer again, and an event must not be lost meanwhile. A permanent
refusal (403 access denied, no such bucket, an archived object that cannot be
read) gives the same answer however often it is asked: waiting on it would hold
a partition forever. Where the refusal is about a producer's source, the call
ends (`source_unreadable`); where it is about callvault's own buckets, it is a
misconfiguration an operator must fix, and the worker says so while it waits.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
# 4xx answers that say "not now" rather than "never": waited out like a 5xx.
TRANSIENT_CLIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "429",
        "ExpiredToken",
        "TokenRefreshRequired",
        "OperationAborted",
        "RequestTimeoutException",
    }
)


class StorageFault(RuntimeError):
    """An S3 operation reported a failure in its answer (a batch delete error, say)."""


class SourceFault(Exception):
    """A failure of an operation on a producer's source, not on callvault's own buckets.

    Storage functions wrap what the store answered about a source in this, so the
    runner can tell "this one upload cannot be read" from "callvault's archive is
    down".
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class NameTaken(Exception):
    """A write made only if the name is free (`If-None-Match: *`) found it taken: look at what is there."""


# 412: the name exists; 409 (AWS): another conditional write of the name is under way.
_NAME_TAKEN_STATUS = frozenset({409, 412})


def name_taken(exc: BaseException) -> bool:
    """Whether the store refused a conditional write because the name is (being) taken."""
    return isinstance(exc, ClientError) and _status(exc) in _NAME_TAKEN_STATUS


class SourceUnreadable(Exception):
    """The store refuses a source for good (or fails on it alone for too long): the call ends."""


def _status(exc: ClientError) -> int:
    meta = exc.response.get("ResponseMetadata", {})
    try:
        return int(meta.get("HTTPStatusCode") or exc.response.get("Error", {}).get("Code") or 0)
    except (TypeError, ValueError):
        return 0


def is_permanent(exc: BaseException) -> bool:
    """A refusal that asking again will not change: a 4xx that is neither "not found" nor "slow down"."""
    if not isinstance(exc, ClientError):
        return False  # connection errors, timeouts and StorageFault: the store may answer later
    code = error_code(exc) or ""
    if code in NOT_FOUND_CODES or code in TRANSIENT_CLIENT_CODES:
        return False
    return 400 <= _status(exc) < 500


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return None


def answer_of(exc: BaseException) -> str:
    """What the store answered, without where it is: for events, which outlive endpoints."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code')}: {err.get('Message') or 'no message'}"
    return type(exc).__name__


def describe(exc: BaseException, endpoint: str | None) -> str:
    """One sentence about an S3 failure, for logs and the command line."""
    where = endpoint or "AWS S3"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the S3 endpoint {where}; is it running, and is CALLVAULT_S3_ENDPOINT right?"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"S3 at {where} answered {err.get('Code')}: {err.get('Message') or 'no message'}"
    if isinstance(exc, BotoCoreError):
        return f"S3 at {where} failed: {exc}"
    return f"S3 call failed: {exc!r}"
