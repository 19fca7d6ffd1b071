"""Participants as pseudonyms: HMAC-SHA256 of the tenant and the E.164 number.

The tenant is part of the input so one person's pseudonyms in two client
tenants cannot be linked. Whoever holds the key can recompute a pseudonym from a
number (that is how a subject request finds its calls) but not the reverse.
"""

from __future__ import annotations

import hashlib
import hmac

AGENT = "agent:"  # an agent's id is pseudonymized in a namespace of its own, apart from numbers


def agent_pseudonym(key: bytes, tenant: str, agent_id: str) -> str:
    """An agent as a data subject: their id, pseudonymized like a number (GDPR: agents are subjects too)."""
    return pseudonymize(key, tenant, f"{AGENT}{agent_id}")


def pseudonymize(key: bytes, tenant: str, e164: str) -> str:
    message = f"{tenant}\x00{e164}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
