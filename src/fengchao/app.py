"""The FastAPI application factory: mounts every slice's routers, pages and static files."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from fengchao import __version__
from fengchao.access import api as access_api
from fengchao.access import console_views, device_api, face_views
from fengchao.access import gate_views as access_gate_views
from fengchao.access import views as access_views
from fengchao.auth import views as auth_views
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, Permission
from fengchao.dashboard import api as dashboard_api
from fengchao.dashboard import report_views as dashboard_report_views
from fengchao.dashboard import views as dashboard_views
from fengchao.duty import api as duty_api
from fengchao.duty import views as duty_views
from fengchao.gridwork import api as gridwork_api
from fengchao.gridwork import photos as gridwork_photos
from fengchao.gridwork import public as gridwork_public
from fengchao.gridwork import views as gridwork_views
from fengchao.lifespan import lifespan
from fengchao.notify import api as notify_api
from fengchao.notify import views as notify_views
from fengchao.registry import api as registry_api
from fengchao.registry import edit_views as registry_edit_views
from fengchao.registry import views as registry_views
from fengchao.sampling import api as sampling_api
from fengchao.sampling import views as sampling_views
from fengchao.settings import get_settings
from fengchao.tracing import views as tracing_views
from fengchao.visitors import views as visitors_views
from fengchao.web import STATIC_DIR
from fengchao.web.deps import CSRF_COOKIE, LANG_COOKIE, CurrentActor, render
from fengchao.web.errors import error_response, install_error_handlers
from fengchao.web.i18n import _, pick_language
from fengchao.web.security import BodySizeLimit, BodyTooLarge, LanguageAndHeaders

# Routes that take spreadsheet uploads may receive the import limit; everything else the
# small general limit.
UPLOAD_PATHS: tuple[str, ...] = ("/registry/import", "/api/registry/import/")
UPLOAD_PATHS += ("/faces/people/", "/api/faces/")  # face photos (access/face_views.py)
UPLOAD_PATHS += ("/sampling/rounds/",)  # lab result files (sampling/views.py)
UPLOAD_OVERHEAD = 256 * 1024  # multipart framing and the form's other fields


def first_page(actor: Actor) -> str | None:
    """Where a role starts its day: a worker on the community at a glance (a street office
    on its communities side by side), a building lead on the building's to-do list, a guard
    at the gates."""
    if actor.can(Permission.registry_write) and actor.can(Permission.dashboard_read):
        return "/dashboard/street" if actor.scope.level == ScopeLevel.street else "/dashboard"
    if actor.can(Permission.registry_write):
        return "/registry/overview"
    if actor.can(Permission.registry_propose):
        return "/registry/todo"
    if actor.can(Permission.registry_read):
        return "/registry"
    if actor.can(Permission.gate_operate):
        return "/gates"
    if actor.can(Permission.registry_lookup):
        return "/registry/rooms"
    if actor.can(Permission.duty_self):
        return "/duty/me"
    if actor.can(Permission.sampling_register):
        return "/sampling"
    return None


def create_app(*, engine: Engine | None = None) -> FastAPI:
    """The app; ``engine`` binds it to a database of its own (tests), otherwise the
    settings' database is used."""
    settings = get_settings()
    app = FastAPI(
        title="Fengchao 蜂巢",
        version=__version__,
        description="Community outbreak operations: grid registry, gates, sampling, duty.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    if engine is not None:
        app.state.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)

    def body_limit(path: str) -> int:
        if path.startswith(UPLOAD_PATHS):
            return settings.imports.max_bytes + UPLOAD_OVERHEAD
        if path.startswith("/help/") and path.endswith("/report"):  # a resident's photo
            return gridwork_photos.PHOTO_MAX_BYTES + UPLOAD_OVERHEAD
        return settings.security.max_body_bytes

    def too_large(request: Request, limit: int) -> Response:
        message = _("提交的内容太大（上限 {mb} MB）").format(mb=round(limit / 1048576, 1))
        return error_response(request, 413, message)

    app.add_middleware(BodySizeLimit, limit_for=body_limit, refuse=too_large)

    def language_of(cookie: str | None) -> str:
        return pick_language(cookie, settings.default_language)

    app.add_middleware(
        LanguageAndHeaders,
        language_of=language_of,
        language_cookie=LANG_COOKIE,
        csrf_cookie=CSRF_COOKIE,
        https=settings.security.cookie_secure,
    )

    app.add_middleware(
        device_api.DeviceDecisions,
        limit=settings.security.max_body_bytes,
        language_of=language_of,
        language_cookie=LANG_COOKIE,
        https=settings.security.cookie_secure,
    )

    install_error_handlers(app)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> Response:
        return too_large(request, exc.limit)

    # First: a gate device's decision is the busiest request, and routes are matched in
    # the order they were added (matching through every router before it cost more than a
    # tenth of the decision's CPU).
    app.include_router(device_api.device_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth_views.router)
    app.include_router(registry_views.router)
    app.include_router(registry_edit_views.router)
    app.include_router(registry_api.router)
    app.include_router(notify_views.router)
    app.include_router(notify_api.router)
    app.include_router(sampling_views.router)
    app.include_router(sampling_api.router)
    app.include_router(access_views.router)
    app.include_router(duty_views.router)
    app.include_router(duty_api.router)
    app.include_router(gridwork_views.router)
    app.include_router(gridwork_api.router)
    app.include_router(gridwork_public.router)
    app.include_router(access_api.router)
    app.include_router(console_views.router)
    app.include_router(console_views.api)
    app.include_router(face_views.router)
    app.include_router(visitors_views.router)
    app.include_router(access_gate_views.router)
    app.include_router(tracing_views.router)
    app.include_router(dashboard_report_views.router)
    app.include_router(dashboard_views.router)
    app.include_router(dashboard_api.router)

    @app.get("/", include_in_schema=False)
    def home(request: Request, actor: CurrentActor) -> Response:
        """Each role's first page; a role with no page yet is told so, not refused."""
        target = first_page(actor)
        if target is None:
            return render(request, "home.html")
        return RedirectResponse(target, status_code=303)

    # async: answered by the event loop itself, even while every pool thread is busy.
    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # The API's documentation is for signed-in staff, with its assets served from here
    # (a community's intranet may not reach a public CDN).
    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi_schema(_actor: CurrentActor) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request, _actor: CurrentActor) -> HTMLResponse:
        return render(request, "api_docs.html")

    return app
