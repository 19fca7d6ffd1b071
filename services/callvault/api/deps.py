"""What every route depends on: the services, the caller's grant, and the one way to refuse."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import BaseModel, Field

from callvault.api.access_events import AccessLog
from callvault.api.store import ArchiveReader
from callvault.api.tokens import TokenRejected, read_token
from callvault.clock import Clock
from callvault.rules.access import Grant
from callvault.settings import Settings


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class ErrorBody(BaseModel):
    error: str = Field(description="what went wrong, in a sentence")
    status: int


@dataclass
class Services:
    settings: Settings
    clock: Clock
    reader: ArchiveReader
    access: AccessLog


# The dependencies below are `async def` though none awaits: FastAPI runs a plain `def` dependency in
# a worker thread, and four thread hand-offs a request were a tenth of the API's time under load.


async def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


class NoBearer(TokenRejected):
    """No `Authorization: Bearer <token>` at all."""


def read_bearer(settings: Settings, clock: Clock, authorization: str | None) -> Grant:
    """The grant an Authorization header carries; `TokenRejected` says why it carries none."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NoBearer("send Authorization: Bearer <token>")
    secret = settings.api_token_secret.get_secret_value()
    return read_token(secret, token.strip(), clock.now(), settings.token_max_lifetime)


def bearer_problem(settings: Settings, clock: Clock, authorization: str) -> str | None:
    """Why this Authorization header grants nothing, or None when its token is good."""
    try:
        read_bearer(settings, clock, authorization)
    except TokenRejected as exc:
        return str(exc)
    return None


async def grant_of(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> Grant:
    try:
        grant = read_bearer(svc.settings, svc.clock, authorization)
    except NoBearer as exc:
        raise Refused(401, str(exc), {"WWW-Authenticate": "Bearer"}) from exc
    except TokenRejected as exc:
        raise Refused(401, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    sites = svc.settings.site_countries
    if sites and grant.site not in sites:
        # Fail closed: with sites declared, where the reader sits decides what they may read.
        said = (
            "names no site" if grant.site is None else f"names the site {grant.site!r}, which is not declared"
        )
        raise Refused(
            401,
            f"the token {said} (CALLVAULT_SITES); ask for one with --site",
            {"WWW-Authenticate": "Bearer"},
        )
    request.state.grant = grant
    return grant


GrantDep = Annotated[Grant, Depends(grant_of)]
SvcDep = Annotated[Services, Depends(services)]
