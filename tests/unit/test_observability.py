"""Metric labels stay bounded and free of personal data; log lines are JSON objects."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import uuid
from datetime import UTC, datetime

from botocore.exceptions import ClientError, EndpointConnectionError
from prometheus_client import REGISTRY

from callvault.contract.lifecycle import LegalHoldPlaced, ObjectRef, RecordingDeleted, RecordingRejected
from callvault.observability.logs import JsonLineFormatter, logging_config
from callvault.observability.metrics import count_emitted, outcome_labels, s3_error_code

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE = {"call_id": "c-1", "tenant": "acme", "occurred_at": NOW}


def _rejected() -> RecordingRejected:
    return RecordingRejected(
        event_id=uuid.uuid4(),
        **BASE,
        recording_event_id=uuid.uuid4(),
        reason="checksum_mismatch",
        detail="the bytes do not match",
        source_uri="s3://staging/acme/c-1.wav",
        source_deleted=False,
    )


def _deleted(lateness: float) -> RecordingDeleted:
    obj = ObjectRef(bucket="rec", key="acme/c-1.wav", sha256="a" * 64, size_bytes=10)
    return RecordingDeleted(
        event_id=uuid.uuid4(),
        **BASE,
        object=obj,
        due_at=NOW,
        deleted_at=NOW,
        lateness_s=lateness,
        reason="retention_elapsed",
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_closed_reason_is_a_label_and_free_text_is_not() -> None:
    assert outcome_labels(_rejected()) == ("recording.rejected", "checksum_mismatch")
    assert outcome_labels(_deleted(3.0)) == ("recording.deleted", "retention_elapsed")
    hold = LegalHoldPlaced(
        event_id=uuid.uuid4(),
        **BASE,
        command_id=uuid.uuid4(),
        requested_by="legal@acme",
        reason="litigation against Jan Peeters",  # free text: may name someone
    )
    assert outcome_labels(hold) == ("legal_hold.placed", "")


def test_emitted_events_are_counted_and_deletion_lateness_observed() -> None:
    rejected = ("callvault_outcomes_total", {"type": "recording.rejected", "reason": "checksum_mismatch"})
    before = _sample(rejected[0], **rejected[1])
    late_before = _sample("callvault_deletion_lateness_seconds_count", type="recording.deleted")
    slow_before = _sample("callvault_deletion_lateness_seconds_bucket", type="recording.deleted", le="10.0")

    count_emitted([_rejected(), _rejected(), _deleted(7.5), _deleted(400.0)])

    assert _sample(rejected[0], **rejected[1]) == before + 2
    assert _sample("callvault_deletion_lateness_seconds_count", type="recording.deleted") == late_before + 2
    # 7.5 s falls in the 10 s bucket, 400 s does not.
    assert (
        _sample("callvault_deletion_lateness_seconds_bucket", type="recording.deleted", le="10.0")
        == slow_before + 1
    )


def test_s3_errors_are_labelled_by_code_or_kind() -> None:
    slow = ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "PutObject")
    assert s3_error_code(slow) == "SlowDown"
    assert s3_error_code(EndpointConnectionError(endpoint_url="http://s3")) == "EndpointConnectionError"


def test_a_log_line_is_one_json_object_with_the_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    log = logging.getLogger("callvault.test-json")
    log.addHandler(handler)
    log.propagate = False
    try:
        raise RuntimeError("store down")
    except RuntimeError:
        log.exception("purge pass failed after %d objects", 12)
    line = json.loads(stream.getvalue())
    assert line["level"] == "error" and line["logger"] == "callvault.test-json"
    assert line["msg"] == "purge pass failed after 12 objects"
    assert "RuntimeError: store down" in line["exc"]
    assert stream.getvalue().count("\n") == 1, "the traceback stays inside the one line"


def test_the_logging_config_builds_the_formatter_it_names() -> None:
    for fmt in ("text", "json"):
        config = logging_config(fmt, "info")  # type: ignore[arg-type]
        # On a logger of its own, not the root: pytest's capture stays as it is.
        del config["root"]
        config["loggers"] = {f"callvault.cfg-{fmt}": {"handlers": ["stdout"], "propagate": False}}
        logging.config.dictConfig(config)
        (handler,) = logging.getLogger(f"callvault.cfg-{fmt}").handlers
        assert isinstance(handler.formatter, JsonLineFormatter) == (fmt == "json")


def test_a_bodiless_status_counts_under_the_name_s3_gives_it() -> None:
    head_503 = ClientError({"Error": {"Code": "503", "Message": "Service Unavailable"}}, "HeadObject")
    assert s3_error_code(head_503) == "ServiceUnavailable"
    assert s3_error_code(ClientError({"Error": {"Code": "599"}}, "HeadObject")) == "599"
