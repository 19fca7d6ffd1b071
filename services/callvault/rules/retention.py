"""When each archived object is due for erasure.

The privacy statement keeps recordings 1 month from when they began and call
metadata 6 months from the call's start; both counted in calendar months in the
controller's zone (`CALLVAULT_TIMEZONE`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from callvault.rules.durations import CalendarDuration, add_duration


class RetentionClass(StrEnum):
    """The names of the built-in data classes (`rules.data_classes` declares each; a test ties the two).

    Code that handles every class takes a class's name as a plain `str`, so a class
    added to the registry needs no member here."""

    RECORDING = "recording"
    METADATA = "metadata"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """The term of each data class (see `rules.data_classes`) for one tenant, queue and instant."""

    terms: Mapping[str, CalendarDuration]  # by data-class name
    zone: ZoneInfo

    def duration_for(self, retention_class: str) -> CalendarDuration:
        try:
            return self.terms[retention_class]
        except KeyError:
            raise ValueError(f"no term is set for {retention_class}") from None

    def expires_at(self, retention_class: str, started_at: datetime) -> datetime:
        """The instant (UTC) from which the object must no longer exist."""
        return add_duration(started_at, self.duration_for(retention_class), self.zone)

    def has_elapsed(self, retention_class: str, started_at: datetime, now: datetime) -> bool:
        return now >= self.expires_at(retention_class, started_at)


def backstop_days(duration: CalendarDuration, margin_days: int = 7) -> int:
    """Days after creation at which a lifecycle rule may expire an object of this class.

    S3 lifecycle rules count whole days from creation, so the longest the
    duration can be (31-day months, 366-day years) plus a margin: the backstop
    only ever acts after the purger should have, never before.
    """
    longest = duration.years * 366 + duration.months * 31 + duration.days
    longest += -(-int(duration.seconds) // 86400)
    return longest + margin_days
