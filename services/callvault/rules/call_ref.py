"""A call's identity: its tenant and its id, together.

Call ids come from each client's own platform, so two clients may send the
same one; a call is therefore always found by (tenant, call_id), never by the
id alone. The text form `{tenant}/{call_id}` is what callvault keeps where it
needs one string (the call-state table's keys, the legal-hold registry's keys,
the held set): a tenant is `[a-z0-9-]` and a call id `[A-Za-z0-9._:-]`, so the
`/` can never be part of either and the text parses back unambiguously.
"""

from __future__ import annotations

from typing import NamedTuple

SEPARATOR = "/"


class CallRef(NamedTuple):
    tenant: str
    call_id: str

    @property
    def text(self) -> str:
        return f"{self.tenant}{SEPARATOR}{self.call_id}"

    def __str__(self) -> str:
        return self.text


def call_ref(tenant: str, call_id: str) -> str:
    """The text form of a call's identity: `{tenant}/{call_id}`."""
    return CallRef(tenant, call_id).text


def parse_call_ref(text: str) -> CallRef | None:
    """The parts of `{tenant}/{call_id}`; None for anything else (a key of an older version: the id alone)."""
    tenant, sep, call_id = text.partition(SEPARATOR)
    if not sep or not tenant or not call_id or SEPARATOR in call_id:
        return None
    return CallRef(tenant, call_id)
