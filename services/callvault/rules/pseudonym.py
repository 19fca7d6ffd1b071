"""Participants as pseudonyms: HMAC-SHA256 of the tenant and the E.164 number.

The tenant is part of the input so one person's pseudonyms in two client
tenants cannot be linked. Whoever holds the key can recompute a pseudonym from a
number (that is how a subject request finds its calls) but not the reverse.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonymize(key: bytes, tenant: str, e164: str) -> str:
    message = f"{tenant}\x00{e164}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
