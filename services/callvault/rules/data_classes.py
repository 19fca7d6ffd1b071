"""The registry of data classes: what callvault keeps, where, for how long, and what goes with it.

Each kind of archived object is declared here once, with everything the code
branches on: its bucket's setting, its default term and the archived event's
field that term counts from, its archived and deleted events (the deletion
proof's model), what an access of it is called, and whether erasure, objection,
exports and offboarding take it. The purger, the store walk of `audit
verify-store`, the deletion evidence, erasure, exports, offboarding, the
lifecycle backstop, client policies, settings and the replay read this registry
instead of branching on "recording or metadata". A new class (transcripts, say)
is one entry here plus its two settings; `tests/unit/test_data_class_registry.py`
adds one in memory and shows every reader handles it with no other edit.

The registry is read at run time (`data_classes()`), never copied at import, so
`registered()` can add a class for a test. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from callvault.contract.lifecycle import MetadataDeleted, ObjectDeleted, RecordingDeleted
from callvault.rules.retention import RetentionClass

# What depends on a class's objects and must go in the same journaled step as each of them.
SUBJECT_INDEX = "subject-index"


@dataclass(frozen=True, slots=True)
class DataClass:
    name: str  # a RetentionClass for the built-in classes
    bucket_setting: str  # the Settings field naming its bucket
    default_term_setting: str  # the Settings field with the controller's own term (ISO 8601)
    counts_from: str  # the field of its archived event (and the object's tag) its term counts from
    archived_event: str
    deleted_model: type[ObjectDeleted]  # the contract's proof of its deletion
    key_layout: str
    served_as: str  # what an access event's `what` calls a read of it
    dependents: tuple[str, ...] = ()  # data that goes with each object of the class, whoever deletes it
    archived_facts: tuple[str, ...] = ()  # further fields of its archived event the audit relies on
    needs_disclosure: bool = False  # archived only after a disclosure.verified the replay checks
    erased_on_objection: bool = False  # an objection erases it (erasure always does)
    in_export: bool = True  # a subject's access export carries it
    sealed: bool = False  # written sealed under the client's KMS key (CALLVAULT_ENCRYPTION, issue 29)
    # The record of processing (docs/dpo.md, written from here by `make docs`): what an object holds of
    # whom, and who may read it.
    holds: str = "not declared"
    subjects: str = "not declared"
    readers: str = "not declared"

    @property
    def deleted_event(self) -> str:
        return str(self.deleted_model.model_fields["type"].default)

    def bucket(self, settings: Any) -> str:
        return str(getattr(settings, self.bucket_setting))

    def default_term(self, settings: Any) -> str:
        return str(getattr(settings, self.default_term_setting))


RECORDING = DataClass(
    name=RetentionClass.RECORDING,
    bucket_setting="recordings_bucket",
    default_term_setting="recording_retention",
    counts_from="recording_started_at",
    archived_event="recording.archived",
    deleted_model=RecordingDeleted,
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.{ext}, dated by the recording's start in UTC",
    served_as="audio",
    archived_facts=("recording_event_id",),
    needs_disclosure=True,
    erased_on_objection=True,
    sealed=True,
    holds="the call's audio, as the platform recorded it after the disclosure",
    subjects="callers, callees and agents (their voices)",
    readers="QA coaches and auditors of the tenant through the API (each read logged), the DPO in exports",
)
METADATA = DataClass(
    name=RetentionClass.METADATA,
    bucket_setting="metadata_bucket",
    default_term_setting="metadata_retention",
    counts_from="call_started_at",
    archived_event="metadata.archived",
    deleted_model=MetadataDeleted,
    key_layout="{tenant}/{YYYY}/{MM}/{DD}/{call_id}.json, dated by the call's start in UTC",
    served_as="metadata",
    # `_callvault/subject-index/{tenant}/calls/{call_id}/{pseudonyms}.json`: one entry naming its subjects.
    dependents=(SUBJECT_INDEX,),
    sealed=True,
    holds="the call's metadata: times, queue, agent id, participants, the disclosure evidence, the outcome",
    subjects="callers and callees (by pseudonym), agents (by id)",
    readers="QA coaches and auditors of the tenant through the API (each read logged), the DPO in exports",
)

BUILT_IN: tuple[DataClass, ...] = (RECORDING, METADATA)
_registry: list[tuple[DataClass, ...]] = [BUILT_IN]
_changes = [0]  # how often the registry changed: two registrations in turn must not share derived tables


def data_classes() -> tuple[DataClass, ...]:
    """Every class callvault keeps, in the order they are handled (recordings before their metadata)."""
    return _registry[-1]


def generation() -> int:
    """Changes whenever the registry does, never to a value it had: a key for tables derived from it."""
    return _changes[0]


@contextmanager
def registered(*extra: DataClass) -> Iterator[None]:
    """The registry with `extra` classes added for the duration (a test's throwaway class)."""
    _registry.append((*_registry[-1], *extra))
    _changes[0] += 1
    try:
        yield
    finally:
        _registry.pop()
        _changes[0] += 1


def data_class(name: str) -> DataClass:
    """The class of this name; a ValueError naming the known ones otherwise."""
    found = next((c for c in data_classes() if c.name == name), None)
    if found is None:
        known = ", ".join(c.name for c in data_classes())
        raise ValueError(f"{name!r} is not a data class callvault keeps (known: {known})")
    return found


def class_of_bucket(settings: Any, bucket: str) -> DataClass | None:
    """The class whose objects live in `bucket`; None for a bucket of no class."""
    return next((c for c in data_classes() if c.bucket(settings) == bucket), None)


def archived_events() -> dict[str, DataClass]:
    return {c.archived_event: c for c in data_classes()}


def deleted_events() -> dict[str, DataClass]:
    return {c.deleted_event: c for c in data_classes()}
