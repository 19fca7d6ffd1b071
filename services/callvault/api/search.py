"""Searching calls without an index: the store's dated keys are the index.

Metadata keys are `{tenant}/{YYYY}/{MM}/{DD}/{call_id}.json`, so a tenant and a
date range name a handful of listings, and a call id filters on the key alone.
Agent and outcome filters need the documents, which are read newest day first
until a page is full. Order is (day descending, tenant, call id): known from keys
alone, so pages are stable and a cursor is just the last address looked at.

One search spends at most a budget of listings and document reads
(`CALLVAULT_API_SEARCH_BUDGET`): a filter that matches nothing over six months
must not read the whole archive for one answer. When the budget is spent the
page says so (`partial`) and its cursor goes on from where it stopped.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from callvault.api.views import outcome

DEFAULT_DAYS = 7
# A cursor's call id once a tenant's day is searched to its end: sorts after every call id.
TENANT_DONE = "~"


class SearchRefused(ValueError):
    """A search the API will not run; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Address:
    day: date
    tenant: str
    call_id: str

    def order(self) -> tuple[int, str, str]:
        return (-self.day.toordinal(), self.tenant, self.call_id)


@dataclass(frozen=True, slots=True)
class SearchQuery:
    tenants: tuple[str, ...]
    first_day: date
    last_day: date
    agent_id: str | None = None
    outcome: str | None = None
    call_id: str | None = None
    limit: int = 50
    after: Address | None = None

    def days(self) -> list[date]:
        """Newest first."""
        count = (self.last_day - self.first_day).days + 1
        return [self.last_day - timedelta(days=i) for i in range(count)]

    def wants_key(self, address: Address) -> bool:
        if self.call_id is not None and address.call_id != self.call_id:
            return False
        return self.after is None or address.order() > self.after.order()

    def days_left_to_search(self) -> list[date]:
        """Newest first, from the cursor's day on (the days before it were searched already)."""
        days = self.days()
        return days if self.after is None else [d for d in days if d <= self.after.day]

    def tenant_done(self, day: date, tenant: str) -> bool:
        """Whether the cursor is past this tenant's day: no need to list it again."""
        at = self.after
        if at is None or day != at.day:
            return False
        return tenant < at.tenant or (tenant == at.tenant and at.call_id == TENANT_DONE)

    @property
    def filters_on_content(self) -> bool:
        return self.agent_id is not None or self.outcome is not None

    def wants_document(self, doc: dict[str, Any], *, restricted: bool = False) -> bool:
        """Whether a call matches. A restricted call matches on its address and time only: its
        agent and outcome are what the restriction withholds, so a filter on them never finds it
        (otherwise `agent=a-17` would list it and `agent=a-99` would not)."""
        if restricted:
            return not self.filters_on_content
        if self.agent_id is not None and doc.get("agent_id") != self.agent_id:
            return False
        return self.outcome is None or outcome(doc) == self.outcome


def date_range(first: date | None, last: date | None, today: date, widest_days: int) -> tuple[date, date]:
    """The days a search covers: the last week unless told, never more than `widest_days`."""
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise SearchRefused(f"from ({first}) is after to ({last})")
    span = (last - first).days + 1
    if span > widest_days:
        raise SearchRefused(
            f"the range covers {span} days; at most {widest_days} at once (CALLVAULT_API_MAX_SEARCH_DAYS)"
        )
    return first, last


def encode_cursor(address: Address) -> str:
    raw = f"{address.day.isoformat()}/{address.tenant}/{address.call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Address:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, tenant, call_id = raw.split("/", 2)
        return Address(date.fromisoformat(day), tenant, call_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SearchRefused("cursor is not one this API handed out; start the search again") from exc
