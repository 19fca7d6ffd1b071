"""`callvault api`: the QA retrieval API and the coaches' web page.

Thin on purpose: each route checks the token, asks `rules.access.decide`, does
the read the verdict allows, and logs the access on `lifecycle` before any
byte of the call leaves. Calls are addressed by tenant, UTC day and call id
(the archive's own key), so the API needs no index of its own.
"""

from __future__ import annotations

import asyncio
import gc
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
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, Field

from callvault.api import policy_routes, search, subject_routes, views
from callvault.api.access_events import AccessLog, AccessNotLogged
from callvault.api.body_guard import BodyGuard
from callvault.api.deps import ErrorBody, GrantDep, Refused, Services, SvcDep, bearer_problem
from callvault.api.http_log import AccessLogMiddleware
from callvault.api.ranges import ByteRange, RangeNotSatisfiable, parse_range
from callvault.api.sites import check_site, site_refusal_for
from callvault.api.store import ArchiveReader, AudioMissing, AudioStream, Listed
from callvault.api.tokens import (
    AudioLink,
    TokenRejected,
    issue_audio_link,
    link_opens_its_recording,
    read_audio_link,
)
from callvault.clock import Clock, SystemClock
from callvault.contract.explain import describe_errors
from callvault.contract.fields import CALL_ID_PATTERN, EARLIEST_YEAR, LATEST_YEAR, TENANT_PATTERN
from callvault.observability.metrics import CONTENT_TYPE_LATEST, exposition
from callvault.rules.access import Answer, Grant, Role, Verdict, Want, decide
from callvault.rules.call_ref import call_ref
from callvault.rules.call_state import Outcome
from callvault.rules.client_policy import terms_ever
from callvault.rules.durations import add_duration
from callvault.rules.evidence import recording_accessed
from callvault.rules.retention import RetentionClass
from callvault.settings import Settings
from callvault.storage.client import make_s3_client
from callvault.storage.layout import metadata_key_of_day
from callvault.storage.sealing import KeyRefused, SealedRefused
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
    partial: bool = Field(
        False, description="the search's budget ran out before the page was full; next_cursor goes on"
    )
    unreadable: list[str] = Field(
        default_factory=list,
        description="`tenant/day/call_id` of calls in the range whose stored metadata does not open under "
        "their client's key (altered or moved in the store, or the key destroyed): left out of `calls` and "
        "logged, so one such document does not fail the search; tell the operators (additive, 2026-12-06)",
    )


SEARCH_READS_AT_ONCE = 16  # documents read concurrently within one search


class LinkRequest(BaseModel):
    purpose: str = Field(min_length=3, max_length=200, description="why the recording is opened")


class AudioLinkOut(BaseModel):
    url: str
    expires_at: datetime
    mode: str = Field(description="stream (through the API) or presigned (straight from S3)")
    access_event_id: str


def _refuse(verdict: Verdict) -> Refused:
    return Refused(STATUS[verdict.answer], verdict.reason)


def create_app(settings: Settings, clock: Clock | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """The API. `freeze_heap` (the `callvault api` process, not a test's): once its clients are made,
    every object alive is moved out of the garbage collector's sight (`gc.freeze`). A full collection
    otherwise walks the 170,000 objects of the imports and the clients, and stops every request in
    flight: up to 117 ms under `bench/api.py`'s load, 7 ms with them frozen."""
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
        if freeze_heap:
            gc.freeze()
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
        # The spec and its pages are served by the ops listener (`create_ops_app`), not to the public.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses={
            401: {"model": ErrorBody},
            404: {"model": ErrorBody},
            422: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
    )
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.api_max_body_bytes,
        check_token=lambda header: bearer_problem(settings, clock, header),
    )
    app.add_middleware(AccessLogMiddleware, trusted_proxies=settings.trusted_proxies)
    _install_error_handlers(app)
    _install_routes(app)
    subject_routes.install(app)
    policy_routes.install(app)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    return app


def create_ops_app(public: FastAPI) -> FastAPI:
    """The operators' listener (`CALLVAULT_API_OPS_PORT`): metrics, and the public API's spec and docs.

    Kept off the public port: a scraper and a developer need them, a coach's
    browser and the internet do not.
    """
    ops = FastAPI(title="callvault API operations", docs_url=None, redoc_url=None, openapi_url=None)

    @ops.get("/metrics")
    async def metrics() -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    @ops.get("/openapi.json")
    async def spec() -> JSONResponse:
        return JSONResponse(public.openapi())

    @ops.get("/docs")
    async def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="callvault QA API")

    return ops


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

    # A stored object that does not open under its client's key: the sentence names no other tenant and no
    # key (what failed goes to the log, for the operators).
    @app.exception_handler(KeyRefused)
    async def shredded(request: Request, exc: KeyRefused) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path.split("/audio/")[0], exc)
        message = "the client's key for this data is destroyed or disabled: it can no longer be read"
        return JSONResponse({"error": message, "status": 410}, 410)

    @app.exception_handler(SealedRefused)
    async def altered(request: Request, exc: SealedRefused) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path.split("/audio/")[0], exc)
        message = (
            "the stored object does not open under its client's key (altered or moved); nothing is served"
        )
        return JSONResponse({"error": message, "status": 500}, 500)


async def purpose_of(  # async: no worker thread (deps.py)
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


def _sane_day(day: date) -> date:
    """Days outside the contract's years name no call, and at `date`'s edges arithmetic overflows."""
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise ValueError(f"{day.isoformat()} lies outside the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return day


TenantPath = Annotated[str, PathParam(pattern=TENANT_PATTERN, description="the client the call was for")]
DayPath = Annotated[
    date, PathParam(description="UTC date of the call's start, YYYY-MM-DD"), AfterValidator(_sane_day)
]
CallPath = Annotated[str, PathParam(pattern=CALL_ID_PATTERN)]
SearchDay = Annotated[date | None, AfterValidator(lambda d: d if d is None else _sane_day(d))]


@dataclass(frozen=True, slots=True)
class CallAddress:
    """A call as the archive keys it: tenant, UTC day of its start, call id."""

    tenant: str
    day: date
    call_id: str


async def call_address(grant: GrantDep, tenant: TenantPath, day: DayPath, call_id: CallPath) -> CallAddress:
    """The call a route is about, once the token may see its tenant.

    Checked before anything else a route asks (a purpose, a body's fields), so a
    call of another tenant is a 404 whatever else is wrong with the request.
    """
    if not grant.sees(tenant):
        raise Refused(404, f"no call {call_id!r} in tenant {tenant!r}")
    return CallAddress(tenant, day, call_id)


AddressDep = Annotated[CallAddress, Depends(call_address)]
PurposeDep = Annotated[str, Depends(purpose_of)]


async def _day_erased(svc: Services, tenant: str, day: date, now: datetime) -> bool:
    """Whether even the day's last call is past the longest metadata term the tenant's policies give."""
    latest_start = datetime.combine(day + timedelta(days=1), time(), UTC)
    history = (await svc.reader.policies()).get(tenant, [])
    terms = terms_ever(RetentionClass.METADATA, history, svc.settings.policy_defaults)
    return all(add_duration(latest_start, term, svc.settings.zone) <= now for term in terms)


async def _open_call(
    svc: Services, request: Request, grant: Grant, want: Want, call: CallAddress
) -> dict[str, Any]:
    """The call's metadata if `grant` may have `want` of it; a refusal otherwise."""
    tenant, day, call_id = call.tenant, call.day, call.call_id
    now = svc.clock.now()
    if not (grant.sees(tenant) and grant.may(want)):
        raise _refuse(decide(grant, want, tenant, call_id, None, now))  # before touching the store
    await check_site(svc, request, grant, tenant, call_id, want.value)
    doc = await svc.reader.document(metadata_key_of_day(tenant, call_id, day))
    facts = None
    if doc is not None:
        facts = views.facts(doc, await svc.reader.restricted(tenant))
    verdict = decide(
        grant, want, tenant, call_id, facts, now, day_erased=await _day_erased(svc, tenant, day, now)
    )
    if not verdict.allowed:
        raise _refuse(verdict)
    assert doc is not None
    return doc


async def _log_access(
    svc: Services, request: Request, grant: Grant, call: CallAddress, what: Want, purpose: str
) -> str:
    event = recording_accessed(
        grant,
        call.tenant,
        call.call_id,
        what,
        purpose,
        request.state.request_id,
        svc.clock.now(),
        client_request_id=request.state.client_request_id,
        site_country=svc.settings.site_countries.get(grant.site or ""),
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
        # Kinds only, for whoever asks; the details (endpoints, buckets) go to the log.
        problems = {}
        try:
            await svc.reader.ready()
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            log.warning("readiness: S3 does not answer: %s: %s", type(exc).__name__, exc)
            problems["s3"] = "the object store does not answer"
        try:
            await svc.access.ready()
        except Exception as exc:  # noqa: BLE001
            log.warning("readiness: Kafka does not answer: %s: %s", type(exc).__name__, exc)
            problems["kafka"] = "the broker does not answer"
        status = 503 if problems else 200
        return JSONResponse({"status": "unready" if problems else "ready", "problems": problems}, status)

    @app.get("/api/v1/whoami", response_model=Whoami, tags=["calls"])
    async def whoami(grant: GrantDep) -> Whoami:
        return Whoami(subject=grant.subject, role=grant.role.value, tenants=sorted(grant.tenants))

    @app.get("/api/v1/calls", response_model=SearchPage, tags=["calls"], summary="Search calls")
    async def search_calls(
        request: Request,
        grant: GrantDep,
        svc: SvcDep,
        tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN, description="default: all yours")] = None,
        from_: Annotated[
            SearchDay, Query(alias="from", description="first UTC day; default 6 days before to")
        ] = None,
        to: Annotated[SearchDay, Query(description="last UTC day; default today")] = None,
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
        if tenant is not None:
            await check_site(svc, request, grant, tenant, None, "search")
            tenants = [tenant]
        else:  # every tenant of the token that the reader's site may read
            tenants = [
                t
                for t in await svc.reader.tenants()
                if grant.sees(t) and await site_refusal_for(svc, grant, t) is None
            ]
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
        call: AddressDep,
        purpose: PurposeDep,
    ) -> views.CallDetail:
        doc = await _open_call(svc, request, grant, Want.METADATA, call)
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
        call: AddressDep,
        purpose: PurposeDep,
        range_: Annotated[str | None, Header(alias="range")] = None,
    ) -> StreamingResponse:
        doc = await _open_call(svc, request, grant, Want.AUDIO, call)
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
        call: AddressDep,
        body: LinkRequest,
    ) -> AudioLinkOut:
        doc = await _open_call(svc, request, grant, Want.AUDIO, call)
        rec = doc["recording"]
        now = svc.clock.now()
        rec_expires = datetime.fromisoformat(rec["expires_at"]) if rec.get("expires_at") else None
        expires = now + timedelta(seconds=svc.settings.api_audio_link_s)
        if rec_expires is not None:
            expires = min(expires, rec_expires)  # never outlive the recording
        event_id = await _log_access(svc, request, grant, call, Want.AUDIO, body.purpose)
        bucket = svc.settings.recordings_bucket
        # A presigned URL serves the stored bytes: a recording sealed under its client's key is streamed.
        mode = svc.settings.api_audio_mode
        if mode == "presigned" and await svc.reader.stored_sealed(bucket, rec["key"]):
            mode = "stream"
        if mode == "presigned":
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
                role=grant.role.value,
                site=grant.site,
                token_id=grant.token_id,
            )
            token = issue_audio_link(svc.settings.api_token_secret.get_secret_value(), link)
            url = str(request.url_for("play", link=token).path)
        return AudioLinkOut(url=url, expires_at=expires, mode=mode, access_event_id=event_id)

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
        if not link_opens_its_recording(found, svc.settings.recordings_bucket):
            # Only a holder of the signing secret can get here: say little, open nothing.
            log.warning("an audio link names an object outside its call's recording; refused")
            raise Refused(403, "this audio link does not name its call's recording")
        request.state.link_access = found.access_id
        if found.role is not None:  # the site rule as it stands now: a deny-site reaches issued links
            tenants = frozenset({found.tenant})
            holder = Grant(found.subject, Role(found.role), tenants, found.token_id, found.site)
            await check_site(svc, request, holder, found.tenant, found.call_id, Want.AUDIO.value)
        byte_range = _range_or_416(range_, found.size_bytes)
        chunks = await _open_audio(svc, found.bucket, found.key, byte_range)
        return _audio_response(chunks, byte_range, found.size_bytes, found.content_type, found.sha256)


async def _open_audio(svc: Services, bucket: str, key: str, byte_range: ByteRange | None) -> AudioStream:
    try:
        return await svc.reader.open_audio(bucket, key, byte_range)
    except AudioMissing as exc:
        raise Refused(410, "the recording has been deleted") from exc


async def _run_search(svc: Services, query: search.SearchQuery, now: datetime) -> SearchPage:
    """Newest day first, within the budget; documents read a handful at a time, concurrently."""
    budget = Budget(svc.settings.api_search_budget)
    found: list[views.CallSummary] = []
    held = await svc.reader.held()
    cursor: search.Address | None = None

    unreadable: list[str] = []

    def page(partial: bool) -> SearchPage:
        more = partial or len(found) == query.limit
        next_cursor = search.encode_cursor(cursor) if more and cursor is not None else None
        return SearchPage(
            calls=found, next_cursor=next_cursor, searched_days=len(query.days()), partial=partial,
            unreadable=unreadable,
        )  # fmt: skip

    for day in query.days_left_to_search():
        for tenant in sorted(query.tenants):
            if query.tenant_done(day, tenant):
                continue
            if not budget.spend():
                return page(partial=True)
            listed = [e for e in await svc.reader.list_day(tenant, day) if query.wants_key(e.address)]
            listed.sort(key=lambda e: e.address.order())
            while listed:
                # At least one read after a listing, so even the smallest budget makes progress.
                room = min(SEARCH_READS_AT_ONCE, max(1, budget.left), query.limit - len(found))
                batch, listed = listed[:room], listed[room:]
                budget.spend(min(len(batch), budget.left))
                docs = await asyncio.gather(*(_opened(svc, e) for e in batch))
                for entry, doc in zip(batch, docs, strict=True):
                    cursor = entry.address
                    if isinstance(doc, Unopened):
                        unreadable.append(doc.address)
                        continue
                    shown = await _shown(svc, query, entry, doc, held, now)
                    if shown is not None:
                        found.append(shown)
                if len(found) == query.limit:
                    return page(partial=False)
                if listed and budget.left == 0:
                    return page(partial=True)
            cursor = search.Address(day, tenant, search.TENANT_DONE)
    return SearchPage(
        calls=found, next_cursor=None, searched_days=len(query.days()), partial=False, unreadable=unreadable
    )


@dataclass(frozen=True, slots=True)
class Unopened:
    """A listed document that does not open under its client's key: `tenant/day/call_id`."""

    address: str


async def _opened(svc: Services, entry: Listed) -> dict[str, Any] | None | Unopened:
    """A listed call's metadata for a search; `Unopened` where it does not open, said in the log."""
    try:
        return await svc.reader.cached_document(entry)
    except (SealedRefused, KeyRefused) as exc:
        a = entry.address
        log.error("a search left out s3://%s/%s: %s", svc.settings.metadata_bucket, entry.key, exc)
        return Unopened(f"{a.tenant}/{a.day.isoformat()}/{a.call_id}")


async def _shown(
    svc: Services,
    query: search.SearchQuery,
    entry: Listed,
    doc: dict[str, Any] | None,
    held: frozenset[str],
    now: datetime,
) -> views.CallSummary | None:
    """What the search shows of one call, or None when it is left out."""
    if doc is None:
        return None
    address = entry.address
    expires = views.metadata_expires_at(doc)
    if expires is not None and expires <= now:
        # Past its metadata retention: gone for everyone, unless a legal hold keeps it.
        if call_ref(address.tenant, address.call_id) in held and not query.filters_on_content:
            return views.held_summary(address.tenant, address.day, address.call_id)
        return None
    restricted = await svc.reader.restricted(address.tenant)
    if not query.wants_document(doc, restricted=views.is_restricted(doc, restricted)):
        return None
    return views.summary(doc, address.day, restricted, now)


class Budget:
    """Listings and reads one search may still make."""

    def __init__(self, total: int) -> None:
        self.left = total

    def spend(self, count: int = 1) -> bool:
        if self.left < count:
            return False
        self.left -= count
        return True
