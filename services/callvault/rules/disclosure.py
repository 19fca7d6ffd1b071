"""The disclosure rule: was the caller told, at the start, that the call is recorded?

A recording is compliant when a completed disclosure began at or before the
moment the recording began. Anything else (no disclosure, an interrupted one, one
that began after recording had started) is not, however late it is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DisclosureDetail(StrEnum):
    COMPLIANT = "compliant"
    NONE = "no_disclosure"
    INCOMPLETE = "disclosure_incomplete"
    AFTER_START = "disclosure_after_recording_start"


@dataclass(frozen=True, slots=True)
class DisclosureFact:
    """What the rule needs of a `disclosure.played` event."""

    event_id: str
    played_at: datetime
    completed: bool
    prompt_id: str


@dataclass(frozen=True, slots=True)
class DisclosureVerdict:
    compliant: bool
    detail: DisclosureDetail
    evidence: DisclosureFact | None = None


def disclosure_verdict(
    disclosures: Iterable[DisclosureFact], recording_started_at: datetime
) -> DisclosureVerdict:
    """Judge the disclosures of one call against its recording's start.

    The evidence is the earliest compliant playback (ties broken by event id) so
    that the same facts always give the same verdict and the same evidence, in
    whatever order they arrived.
    """
    facts = sorted(disclosures, key=lambda d: (d.played_at, d.event_id))
    compliant = [d for d in facts if d.completed and d.played_at <= recording_started_at]
    if compliant:
        return DisclosureVerdict(True, DisclosureDetail.COMPLIANT, compliant[0])
    if not facts:
        return DisclosureVerdict(False, DisclosureDetail.NONE)
    if any(d.played_at <= recording_started_at for d in facts):
        return DisclosureVerdict(False, DisclosureDetail.INCOMPLETE)
    return DisclosureVerdict(False, DisclosureDetail.AFTER_START)
