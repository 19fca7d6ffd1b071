"""The registry of data classes: what callvault keeps, where, for how long, and what goes with it.

Each kind of archived object is declared here once. The purger, the store
walk of `audit verify-store`, the deletion evidence, erasure, the lifecycle
backstop, client policies and the replay read this registry instead of
branching on "recording or metadata", so a new class (transcripts, say) is one
entry here and a bucket setting, not an edit in a dozen modules, and no module
can quietly give it another class's term.

Pure: no I/O. Settings are read through the field names declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callvault.rules.retention import RetentionClass

# What depends on a class's objects and must go in the same journaled step as each of them.
SUBJECT_INDEX = "subject-index"


@dataclass(frozen=True, slots=True)
class DataClass:
    name: RetentionClass
    bucket_setting: str  # the Settings field naming its bucket
    default_term_setting: str  # the Settings field with the controller's own term (ISO 8601)
    counts_from: str  # the instant its term counts from
    archived_event: str
    deleted_event: str
    key_layout: str
    dependents: tuple[str, ...] = ()  # data that goes with each object of the class, whoever deletes it

    def bucket(self, settings: Any) -> str:
        return str(getattr(settings, self.bucket_setting))

    def default_term(self, settings: Any) -> str:
        return str(getattr(settings, self.default_term_setting))


RECORDING = DataClass(
    name=RetentionClass.RECORDING,
    bucket_setting="recordings_bucket",
    default_term_setting="recording_retention",
    counts_from="the recording's start (recording_started_at)",
    archived_event="recording.archived",
    deleted_event="recording.deleted",
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.{ext}, dated by the recording's start in UTC",
)
METADATA = DataClass(
    name=RetentionClass.METADATA,
    bucket_setting="metadata_bucket",
    default_term_setting="metadata_retention",
    counts_from="the call's start (call.started's occurred_at)",
    archived_event="metadata.archived",
    deleted_event="metadata.deleted",
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.json, dated by the call's start in UTC",
    # `_callvault/subject-index/{tenant}/{pseudonym}/{call_id}.json`: one per participant the document names.
    dependents=(SUBJECT_INDEX,),
)

DATA_CLASSES: tuple[DataClass, ...] = (RECORDING, METADATA)
_BY_NAME = {c.name: c for c in DATA_CLASSES}
ARCHIVED_EVENTS = {c.archived_event: c for c in DATA_CLASSES}
DELETED_EVENTS = {c.deleted_event: c for c in DATA_CLASSES}


def data_class(name: str) -> DataClass:
    """The class of this name; a ValueError naming the known ones otherwise."""
    try:
        return _BY_NAME[RetentionClass(name)]
    except ValueError:
        known = ", ".join(c.name.value for c in DATA_CLASSES)
        raise ValueError(f"{name!r} is not a data class callvault keeps (known: {known})") from None


def class_of_bucket(settings: Any, bucket: str) -> DataClass | None:
    """The class whose objects live in `bucket`; None for a bucket of no class."""
    return next((c for c in DATA_CLASSES if c.bucket(settings) == bucket), None)
