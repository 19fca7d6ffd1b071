"""ISO 8601 durations with calendar months, and their arithmetic in a time zone.

Retention is promised in months ("recordings are kept 1 month"), and a month is a
calendar month in the controller's zone, not 30 days. `timedelta` cannot say that,
so a duration here keeps its calendar part (years, months, days) apart from its
exact part (hours, minutes, seconds).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

_ISO_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class CalendarDuration:
    """A non-negative ISO 8601 duration: calendar part plus exact seconds."""

    years: int = 0
    months: int = 0
    days: int = 0
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> CalendarDuration:
        match = _ISO_DURATION.fullmatch(text.strip().upper()) if text else None
        if match is None:
            raise ValueError(f"'{text}' is not an ISO 8601 duration such as P1M, P6M, P30D or PT5M")
        part = {k: v or "0" for k, v in match.groupdict().items()}
        return cls(
            years=int(part["years"]),
            months=int(part["months"]),
            days=int(part["days"]) + 7 * int(part["weeks"]),
            seconds=int(part["hours"]) * 3600 + int(part["minutes"]) * 60 + float(part["seconds"]),
        )

    @property
    def is_exact(self) -> bool:
        """True when the duration has no calendar part, so it is a plain timedelta."""
        return self.years == 0 and self.months == 0 and self.days == 0

    def as_timedelta(self) -> timedelta:
        if not self.is_exact:
            raise ValueError(f"{self} has calendar units and no fixed length")
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        date = "".join(
            f"{n}{unit}" for n, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D")) if n
        )
        secs = self.seconds
        hours, rest = divmod(secs, 3600)
        minutes, secs = divmod(rest, 60)
        time = "".join(f"{n:g}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
        return "P" + date + ("T" + time if time else "") if (date or time) else "PT0S"


def add_months_clamped(year: int, month: int, day: int, months: int) -> tuple[int, int, int]:
    """Move a calendar date by whole months, clamping the day to the target month's end."""
    index = year * 12 + (month - 1) + months
    new_year, new_month = divmod(index, 12)
    new_month += 1
    last = calendar.monthrange(new_year, new_month)[1]
    return new_year, new_month, min(day, last)


def add_duration(moment: datetime, duration: CalendarDuration, zone: ZoneInfo) -> datetime:
    """`moment` + `duration`, calendar units counted on the wall clock of `zone`; result in UTC.

    The calendar part keeps the local time of day (a call at 14:00 on 31 January
    expires at 14:00 on 28/29 February, whatever DST did in between). A local time
    that does not exist on the target day (the spring-forward gap) is read with the
    offset before the change, so it lands just after the gap; an ambiguous one
    (autumn) takes its first occurrence. The exact part is then added as elapsed time.
    """
    if moment.tzinfo is None:
        raise ValueError("add_duration needs an aware datetime")
    local = moment.astimezone(zone)
    year, month, day = add_months_clamped(
        local.year, local.month, local.day, duration.years * 12 + duration.months
    )
    wall = local.replace(tzinfo=None, year=year, month=month, day=day, fold=0)
    wall += timedelta(days=duration.days)
    shifted = wall.replace(tzinfo=zone)
    return shifted.astimezone(UTC) + timedelta(seconds=duration.seconds)
