"""Telling S3 answers apart: absent objects, transient faults, and what to tell a person."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND_CODES


def error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code"))
    return None


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
