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
the API agree on "now". A token is refused from the very second its `exp`
states: an answer that announced `expires_at` must not be contradicted by a
link that still plays after it. A token may not live longer than
`CALLVAULT_API_TOKEN_MAX_LIFETIME` (24 h by default), issued or presented.
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
from callvault.rules.sites import SITE_PATTERN
from callvault.storage.layout import parse_archive_key

ISSUER = "callvault"
API_AUDIENCE = "callvault-api"
AUDIO_AUDIENCE = "callvault-audio"
ALGORITHM = "HS256"
NBF_SKEW = timedelta(seconds=30)  # an issuer's clock a little ahead: inside the stated time, never after

_TENANT = re.compile(TENANT_PATTERN)
_SITE = re.compile(SITE_PATTERN)


class TokenRejected(Exception):
    """The token cannot be used; the message says why, for the person holding it."""


def issue_token(
    secret: str,
    subject: str,
    role: Role,
    tenants: list[str],
    now: datetime,
    lifetime: timedelta,
    max_lifetime: timedelta | None = None,
    site: str | None = None,
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
    if max_lifetime is not None and lifetime > max_lifetime:
        raise ValueError(
            f"a token may be valid for {_hours(max_lifetime)} at most (CALLVAULT_API_TOKEN_MAX_LIFETIME); "
            f"{_hours(lifetime)} was asked"
        )
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
    if site is not None:
        if _SITE.fullmatch(site) is None:
            raise ValueError(f"site {site!r} must be 1 to 64 characters of a-z, 0-9 and '-'")
        claims["site"] = site
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:g} h"


def _decode(
    secret: str,
    token: str,
    audience: str,
    now: datetime,
    required: list[str],
    max_lifetime: timedelta | None = None,
) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            options={
                "require": ["exp", "iss", "aud"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
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
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise TokenRejected("the token's 'exp' claim is not a time")
    if expires <= now.timestamp():
        raise TokenRejected("the token has expired; ask for a new one")
    not_before = claims.get("nbf")
    if not_before is not None:
        if not isinstance(not_before, int | float) or isinstance(not_before, bool):
            raise TokenRejected("the token's 'nbf' claim is not a time")
        if not_before > (now + NBF_SKEW).timestamp():
            start = datetime.fromtimestamp(not_before, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise TokenRejected(
                f"the token is not valid before {start}; wait, or check the clock of whoever issued it"
            )
    issued = claims.get("iat")
    if max_lifetime is not None and isinstance(issued, int | float) and not isinstance(issued, bool):
        if expires - issued > max_lifetime.total_seconds():
            raise TokenRejected(
                f"the token was issued for longer than the {_hours(max_lifetime)} callvault allows; "
                "ask for a new one"
            )
    return claims


def read_token(secret: str, token: str, now: datetime, max_lifetime: timedelta | None = None) -> Grant:
    claims = _decode(secret, token, API_AUDIENCE, now, ["sub", "role", "tenants", "jti", "iat"], max_lifetime)
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise TokenRejected(
            f"the token's role {claims['role']!r} is not one of qa, auditor, dpo, admin"
        ) from exc
    tenants = claims["tenants"]
    if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) for t in tenants):
        raise TokenRejected("the token's tenants claim must be a non-empty list of tenant names")
    site = claims.get("site")
    if site is not None and (not isinstance(site, str) or _SITE.fullmatch(site) is None):
        raise TokenRejected("the token's site claim is not a site name")
    return Grant(
        subject=str(claims["sub"]),
        role=role,
        tenants=frozenset(tenants),
        token_id=str(claims["jti"]),
        site=site,
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
    # Additive (issue 33): who asked, from where: played, the link is judged again by the tenant's site
    # rule as it stands then, so a `deny-site` reaches links already handed out.
    role: str | None = None
    site: str | None = None
    token_id: str = ""


def link_opens_its_recording(link: AudioLink, recordings_bucket: str) -> bool:
    """An audio link opens one thing: the recording of the tenant and call it was made for."""
    if link.bucket != recordings_bucket:
        return False
    parts = parse_archive_key(link.key)
    return parts is not None and parts.tenant == link.tenant and parts.call_id == link.call_id


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
        "role": link.role,
        "site": link.site,
        "tid": link.token_id,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_audio_link(secret: str, token: str, now: datetime) -> AudioLink:
    claims = _decode(secret, token, AUDIO_AUDIENCE, now, ["sub", "tenant", "call_id", "key", "access"])
    rexp = claims.get("rexp")
    try:
        return _audio_link(claims, rexp)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise TokenRejected("the audio link cannot be read; ask for a new one") from exc


def _audio_link(claims: dict[str, Any], rexp: Any) -> AudioLink:
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
        role=claims.get("role"),
        site=claims.get("site"),
        token_id=str(claims.get("tid") or ""),
    )
