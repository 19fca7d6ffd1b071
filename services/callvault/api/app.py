"""`callvault api`: the QA retrieval API and the coaches' web page.

Thin on purpose: each route checks the token, asks `rules.access.decide`, does
the read the verdict allows, and logs the access on `lifecycle` before any
byte of the call leaves. Calls are addressed by tenant, UTC day and call id
(the archive's own key), so the API needs no index of its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from callvault.api import search, subject_routes, views
from callvault.api.access_events import AccessLog, AccessNotLogged
from callvault.api.deps import ErrorBody, GrantDep, Refused, Services, SvcDep
from callvault.api.http_log import AccessLogMiddleware
from callvault.api.ranges import ByteRange, RangeNotSatisfiable, parse_range
from callvault.api.store import ArchiveReader, AudioMissing, AudioStream
from callvault.api.tokens import AudioLink, TokenRejected, issue_audio_link, read_audio_link
from callvault.clock import Clock, SystemClock
from callvault.contract.explain import describe_errors
from callvault.contract.fields import CALL_ID_PATTERN, TENANT_PATTERN
from callvault.observability.metrics import CONTENT_TYPE_LATEST, exposition
from callvault.rules.access import Answer, Grant, Verdict, Want, decide
from callvault.rules.call_state import Outcome
from callvault.rules.evidence import recording_accessed
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.layout import metadata_key_of_day
from callvault.stream.offloop import S3Runner

WEB = Path(__file__).parent / "web"
log = logging.getLogger("callvault.api")

STATUS = {
    Answer.NOT_FOUND: 404,
    Answer.FORBIDDEN: 403,
    Answer.GONE: 410,
    Answer.RESTRICTED: 451,  # Unavailable For Legal Reasons: the subject's restriction
}
OUTCOMES = [o.value for o in Outcome] + [views.NO_RECORDING]


class Whoami(BaseModel):
    subject: str
    role: str
    tenants: list[str]


class SearchPage(BaseModel):
    calls: list[views.CallSummary]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")
    searched_days: int


class LinkRequest(BaseModel):
    purpose: str = Field(min_length=3, max_length=200, description="why the recording is opened")


class AudioLinkOut(BaseModel):
    url: str
    expires_at: datetime
    mode: str = Field(description="stream (through the API) or presigned (straight from S3)")
    access_event_id: str


def _refuse(verdict: Verdict) -> Refused:
    return Refused(STATUS[verdict.answer], verdict.reason)


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = S3Runner(
            make_s3_client(settings, attempts=2),
            max_workers=settings.s3_max_concurrency,
            endpoint=settings.s3_endpoint,
            give_up_after=3,  # a person is waiting: answer 503 rather than hang
        )
        access = AccessLog(settings)
        await access.start()
        app.state.services = Services(settings, clock, ArchiveReader(runner, settings), access)
        try:
            yield
        finally:
            await access.stop()
            runner.close()

    app = FastAPI(
        title="callvault QA API",
        version="1",
        summary="Find calls, read their metadata and disclosure evidence, listen to recordings.",
        description=(
            "Every request needs `Authorization: Bearer <token>` (issued by `callvault api token`). "
            "Opening a call or its audio needs a declared purpose and is logged as `recording.accessed`."
        ),
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody},
            404: {"model": ErrorBody},
            422: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
    )
    app.add_middleware(AccessLogMiddleware)
    _install_error_handlers(app)
    _install_routes(app)
    subject_routes.install(app)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": str(exc), "status": exc.status}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations start with where the value came from (query, path, body): name the parameter.
        message = describe_errors(exc.errors(), lambda field: field.partition(".")[2] or field)
        return JSONResponse({"error": message, "status": 422}, 422)

    @app.exception_handler(AccessNotLogged)
    async def unlogged(_: Request, exc: AccessNotLogged) -> JSONResponse:
        message = "the access could not be written to the audit log, so it was not allowed; try again"
        return JSONResponse({"error": message, "status": 503}, 503)


def purpose_of(
    purpose: Annotated[
        str | None, Query(max_length=200, description="why this call is opened; logged with the access")
    ] = None,
    x_callvault_purpose: Annotated[str | None, Header(max_length=200)] = None,
) -> str:
    declared = (purpose or x_callvault_purpose or "").strip()
    if len(declared) < 3:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "purpose"),
                    "msg": "declare why you open this call (query parameter purpose or header "
                    "X-Callvault-Purpose), such as 'coaching session with agent a-17'",
                    "type": "missing",
                }
            ]
        )
    return declared


TenantPath = Annotated[str, PathParam(pattern=TENANT_PATTERN, description="the client the call was for")]
DayPath = Annotated[date, PathParam(description="UTC date of the call's start, YYYY-MM-DD")]
CallPath = Annotated[str, PathParam(pattern=CALL_ID_PATTERN)]


@dataclass(frozen=True, slots=True)
class CallAddress:
    """A call as the archive keys it: tenant, UTC day of its start, call id."""

    tenant: str
    day: date
    call_id: str


def call_address(tenant: TenantPath, day: DayPath, call_id: CallPath) -> CallAddress:
    return CallAddress(tenant, day, call_id)


AddressDep = Annotated[CallAddress, Depends(call_address)]
PurposeDep = Annotated[str, Depends(purpose_of)]


def _day_erased(svc: Services, day: date, now: datetime) -> bool:
    """Whether even the day's last call is past its metadata retention."""
    latest_start = datetime.combine(day + timedelta(days=1), time(), UTC)
    return svc.settings.retention.expires_at(RetentionClass.METADATA, latest_start) <= now


async def _open_call(svc: Services, grant: Grant, want: Want, call: CallAddress) -> dict[str, Any]:
    """The call's metadata if `grant` may have `want` of it; a refusal otherwise."""
    tenant, day, call_id = call.tenant, call.day, call.call_id
    now = svc.clock.now()
    if not (grant.sees(tenant) and grant.may(want)):
        raise _refuse(decide(grant, want, tenant, call_id, None, now))  # before touching the store
    doc = await svc.reader.document(metadata_key_of_day(tenant, call_id, day))
    facts = None
    if doc is not None:
        facts = views.facts(doc, await svc.reader.restricted(tenant))
    verdict = decide(grant, want, tenant, call_id, facts, now, day_erased=_day_erased(svc, day, now))
    if not verdict.allowed:
        raise _refuse(verdict)
    assert doc is not None
    return doc


async def _log_access(
    svc: Services, request: Request, grant: Grant, call: CallAddress, what: Want, purpose: str
) -> str:
    event = recording_accessed(
        grant, call.tenant, call.call_id, what, purpose, request.state.request_id, svc.clock.now()
    )
    await svc.access.record(event)
    return str(event.event_id)


def _audio_response(
    chunks: AudioStream, byte_range: ByteRange | None, size: int, content_type: str, sha: str
) -> StreamingResponse:
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha}"',
        "Cache-Control": "private, no-store",
        "Content-Length": str(byte_range.length if byte_range else size),
    }
    if byte_range is not None:
        headers["Content-Range"] = byte_range.content_range(size)
    return StreamingResponse(
        chunks, status_code=206 if byte_range else 200, media_type=content_type, headers=headers
    )


def _range_or_416(header: str | None, size: int) -> ByteRange | None:
    try:
        return parse_range(header, size)
    except RangeNotSatisfiable as exc:
        raise Refused(
            416,
            f"the range {header!r} starts past the end ({size} bytes)",
            {"Content-Range": f"bytes */{size}"},
        ) from exc


def _install_routes(app: FastAPI) -> None:  # noqa: C901 - one place lists every route
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: S3 and the broker answer")
    async def readyz(svc: SvcDep) -> JSONResponse:
        problems = {}
        try:
            await svc.reader.ready()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems["s3"] = f"{type(exc).__name__}: {exc}"
        try:
            await svc.access.ready()
        except Exception as exc:  # noqa: BLE001
            problems["kafka"] = f"{type(exc).__name__}: {exc}"
        status = 503 if problems else 200
        return JSONResponse({"status": "unready" if problems else "ready", "problems": problems}, status)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics of this API process")
    async def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/whoami", response_model=Whoami, tags=["calls"])
    async def whoami(grant: GrantDep) -> Whoami:
        return Whoami(subject=grant.subject, role=grant.role.value, tenants=sorted(grant.tenants))

    @app.get("/api/v1/calls", response_model=SearchPage, tags=["calls"], summary="Search calls")
    async def search_calls(
        grant: GrantDep,
        svc: SvcDep,
        tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN, description="default: all yours")] = None,
        from_: Annotated[
            date | None, Query(alias="from", description="first UTC day; default 6 days before to")
        ] = None,
        to: Annotated[date | None, Query(description="last UTC day; default today")] = None,
        agent: Annotated[str | None, Query(max_length=128)] = None,
        outcome: Annotated[str | None, Query(description=f"one of {', '.join(OUTCOMES)}")] = None,
        call_id: Annotated[str | None, Query(pattern=CALL_ID_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> SearchPage:
        now = svc.clock.now()
        if not grant.may(Want.SEARCH):
            raise _refuse(decide(grant, Want.SEARCH, tenant or "", "", None, now))
        if tenant is not None and not grant.sees(tenant):
            raise Refused(404, f"no tenant {tenant!r}")
        if outcome is not None and outcome not in OUTCOMES:
            raise Refused(422, f"outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
        try:
            first, last = search.date_range(from_, to, now.date(), svc.settings.api_max_search_days)
            after = search.decode_cursor(cursor) if cursor else None
        except search.SearchRefused as exc:
            raise Refused(422, str(exc)) from exc
        tenants = [tenant] if tenant else [t for t in await svc.reader.tenants() if grant.sees(t)]
        query = search.SearchQuery(tuple(tenants), first, last, agent, outcome, call_id, limit, after)
        return await _run_search(svc, query, now)

    @app.get(
        "/api/v1/calls/{tenant}/{day}/{call_id}",
        response_model=views.CallDetail,
        tags=["calls"],
        summary="One call's metadata and disclosure evidence (logged)",
        responses={410: {"model": ErrorBody}, 451: {"model": ErrorBody}},
    )
    async def call_detail(
        request: Request,
        grant: GrantDep,
        svc: SvcDep,
        purpose: PurposeDep,
        call: AddressDep,
    ) -> views.CallDetail:
        doc = await _open_call(svc, grant, Want.METADATA, call)
        await _log_access(svc, request, grant, call, Want.METADATA, purpose)
        return views.detail(doc, call.day, svc.clock.now())

    @app.get(
        "/api/v1/calls/{tenant}/{day}/{call_id}/audio",
        tags=["audio"],
        summary="The recording's bytes, with Range support (logged per request)",
        response_class=StreamingResponse,
        responses={
            206: {"description": "a byte range"},
            410: {"model": ErrorBody},
            416: {"model": ErrorBody},
        },
    )
    async def audio(
        request: Request,
        grant: GrantDep,
        svc: SvcDep,
        purpose: PurposeDep,
        call: AddressDep,
        range_: Annotated[str | None, Header(alias="range")] = None,
    ) -> StreamingResponse:
        doc = await _open_call(svc, grant, Want.AUDIO, call)
        rec = doc["recording"]
        size = int(rec["size_bytes"])
        byte_range = _range_or_416(range_, size)
        chunks = await _open_audio(svc, svc.settings.recordings_bucket, rec["key"], byte_range)
        try:  # opened first, so a deleted object is a 410 and not a logged access
            await _log_access(svc, request, grant, call, Want.AUDIO, purpose)
        except BaseException:
            await chunks.close()
            raise
        return _audio_response(chunks, byte_range, size, rec["content_type"], rec["sha256"])

    @app.post(
        "/api/v1/calls/{tenant}/{day}/{call_id}/audio-link",
        response_model=AudioLinkOut,
        tags=["audio"],
        summary="A short-lived link a player can fetch and seek (logged once)",
        responses={410: {"model": ErrorBody}},
    )
    async def audio_link(
        request: Request,
        grant: GrantDep,
        svc: SvcDep,
        body: LinkRequest,
        call: AddressDep,
    ) -> AudioLinkOut:
        doc = await _open_call(svc, grant, Want.AUDIO, call)
        rec = doc["recording"]
        now = svc.clock.now()
        rec_expires = datetime.fromisoformat(rec["expires_at"]) if rec.get("expires_at") else None
        expires = now + timedelta(seconds=svc.settings.api_audio_link_s)
        if rec_expires is not None:
            expires = min(expires, rec_expires)  # never outlive the recording
        event_id = await _log_access(svc, request, grant, call, Want.AUDIO, body.purpose)
        bucket = svc.settings.recordings_bucket
        if svc.settings.api_audio_mode == "presigned":
            seconds = max(1, int((expires - now).total_seconds()))
            url = svc.reader.presign(bucket, rec["key"], rec["content_type"], seconds)
        else:
            link = AudioLink(
                tenant=call.tenant,
                call_id=call.call_id,
                bucket=bucket,
                key=rec["key"],
                content_type=rec["content_type"],
                size_bytes=int(rec["size_bytes"]),
                sha256=rec["sha256"],
                recording_expires_at=rec_expires,
                expires_at=expires,
                access_id=event_id,
                subject=grant.subject,
            )
            token = issue_audio_link(svc.settings.api_token_secret.get_secret_value(), link)
            url = str(request.url_for("play", link=token).path)
        return AudioLinkOut(
            url=url, expires_at=expires, mode=svc.settings.api_audio_mode, access_event_id=event_id
        )

    @app.get(
        "/api/v1/audio/{link}",
        name="play",
        tags=["audio"],
        response_class=StreamingResponse,
        summary="Play an audio link (its access was logged when it was handed out)",
    )
    async def play(
        request: Request,
        svc: SvcDep,
        link: str,
        range_: Annotated[str | None, Header(alias="range")] = None,
    ) -> StreamingResponse:
        now = svc.clock.now()
        try:
            found = read_audio_link(svc.settings.api_token_secret.get_secret_value(), link, now)
        except TokenRejected as exc:
            raise Refused(401, f"audio link: {exc}") from exc
        if found.recording_expires_at is not None and found.recording_expires_at <= now:
            raise Refused(410, "the recording is past its retention and erased")
        request.state.link_access = found.access_id
        byte_range = _range_or_416(range_, found.size_bytes)
        chunks = await _open_audio(svc, found.bucket, found.key, byte_range)
        return _audio_response(chunks, byte_range, found.size_bytes, found.content_type, found.sha256)


async def _open_audio(svc: Services, bucket: str, key: str, byte_range: ByteRange | None) -> AudioStream:
    try:
        return await svc.reader.open_audio(bucket, key, byte_range)
    except AudioMissing as exc:
        raise Refused(410, "the recording has been deleted") from exc


async def _run_search(svc: Services, query: search.SearchQuery, now: datetime) -> SearchPage:
    """Newest day first; documents read only for keys that pass the key filters, until the page is full."""
    found: list[views.CallSummary] = []
    last: search.Address | None = None
    for day in query.days():
        listed = []
        for tenant in query.tenants:
            listed.extend(e for e in await svc.reader.list_day(tenant, day) if query.wants_key(e.address))
        listed.sort(key=lambda e: e.address.order())
        for entry in listed:
            doc = await svc.reader.cached_document(entry)
            if doc is None or not query.wants_document(doc):
                continue
            restricted = await svc.reader.restricted(entry.address.tenant)
            found.append(views.summary(doc, day, restricted, now))
            last = entry.address
            if len(found) == query.limit:
                return SearchPage(
                    calls=found, next_cursor=search.encode_cursor(last), searched_days=len(query.days())
                )
    return SearchPage(calls=found, next_cursor=None, searched_days=len(query.days()))
