"""Bearer tokens and audio links: HS256 JWTs signed with `CALLVAULT_API_TOKEN_SECRET`.

Why signed tokens rather than a table of opaque ones: the API then keeps no
state and any replica can check any token; an operator issues one with
`callvault api token` (or any JWT library holding the secret), and a token
carries everything an access decision needs: who (`sub`), `role`, `tenants`.
Revocation is by expiry (keep lifetimes short) or by rotating the secret.

An audio link is a second kind of token, for a browser's <audio> element, which
cannot send an Authorization header: it names one object, for a few minutes,
and is bound to the access event that was logged when it was handed out. The
two kinds have different audiences, so neither is accepted in place of the other.

Times are checked against the injected clock, not PyJWT's own, so tests and
the API agree on "now".
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from callvault.contract.fields import TENANT_PATTERN
from callvault.rules.access import ALL_TENANTS, Grant, Role

ISSUER = "callvault"
API_AUDIENCE = "callvault-api"
AUDIO_AUDIENCE = "callvault-audio"
ALGORITHM = "HS256"
LEEWAY = timedelta(seconds=30)

_TENANT = re.compile(TENANT_PATTERN)


class TokenRejected(Exception):
    """The token cannot be used; the message says why, for the person holding it."""


def issue_token(
    secret: str, subject: str, role: Role, tenants: list[str], now: datetime, lifetime: timedelta
) -> str:
    if not subject.strip():
        raise ValueError("a token names the person it is for (--subject)")
    if not tenants:
        raise ValueError("a token names at least one tenant (--tenant), or '*' for all")
    for tenant in tenants:
        if tenant != ALL_TENANTS and _TENANT.fullmatch(tenant) is None:
            raise ValueError(f"tenant {tenant!r} must be 1 to 64 characters of a-z, 0-9 and '-', or '*'")
    if lifetime <= timedelta(0):
        raise ValueError("a token's lifetime must be positive")
    claims = {
        "iss": ISSUER,
        "aud": API_AUDIENCE,
        "sub": subject,
        "role": role.value,
        "tenants": sorted(set(tenants)),
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _decode(secret: str, token: str, audience: str, now: datetime, required: list[str]) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError as exc:
        raise TokenRejected("this token is not meant for this use") from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenRejected(
            "the token's signature does not match; it was not issued by this callvault"
        ) from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(f"the token lacks the {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        raise TokenRejected("the token cannot be read; paste the whole token") from exc
    missing = [name for name in required if name not in claims]
    if missing:
        raise TokenRejected(f"the token lacks the {missing[0]!r} claim")
    expires = claims["exp"]
    if not isinstance(expires, int | float) or expires + LEEWAY.total_seconds() < now.timestamp():
        raise TokenRejected("the token has expired; ask for a new one")
    return claims


def read_token(secret: str, token: str, now: datetime) -> Grant:
    claims = _decode(secret, token, API_AUDIENCE, now, ["sub", "role", "tenants", "jti"])
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise TokenRejected(
            f"the token's role {claims['role']!r} is not one of qa, auditor, dpo, admin"
        ) from exc
    tenants = claims["tenants"]
    if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) for t in tenants):
        raise TokenRejected("the token's tenants claim must be a non-empty list of tenant names")
    return Grant(
        subject=str(claims["sub"]), role=role, tenants=frozenset(tenants), token_id=str(claims["jti"])
    )


@dataclass(frozen=True, slots=True)
class AudioLink:
    """One object, for one person, until `expires_at`; `access_id` is the logged access it belongs to."""

    tenant: str
    call_id: str
    bucket: str
    key: str
    content_type: str
    size_bytes: int
    sha256: str
    recording_expires_at: datetime | None
    expires_at: datetime
    access_id: str
    subject: str


def issue_audio_link(secret: str, link: AudioLink) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIO_AUDIENCE,
        "sub": link.subject,
        "exp": int(link.expires_at.timestamp()),
        "tenant": link.tenant,
        "call_id": link.call_id,
        "bucket": link.bucket,
        "key": link.key,
        "ct": link.content_type,
        "size": link.size_bytes,
        "sha": link.sha256,
        "rexp": int(link.recording_expires_at.timestamp()) if link.recording_expires_at else None,
        "access": link.access_id,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_audio_link(secret: str, token: str, now: datetime) -> AudioLink:
    claims = _decode(secret, token, AUDIO_AUDIENCE, now, ["sub", "tenant", "call_id", "key", "access"])
    rexp = claims.get("rexp")
    return AudioLink(
        tenant=claims["tenant"],
        call_id=claims["call_id"],
        bucket=claims["bucket"],
        key=claims["key"],
        content_type=claims["ct"],
        size_bytes=int(claims["size"]),
        sha256=str(claims.get("sha", "")),
        recording_expires_at=datetime.fromtimestamp(rexp, UTC) if rexp is not None else None,
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        access_id=claims["access"],
        subject=claims["sub"],
    )
