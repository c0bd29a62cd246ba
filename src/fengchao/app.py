"""The FastAPI application factory: mounts every slice's routers, pages and static files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fengchao import __version__
from fengchao.auth import views as auth_views
from fengchao.auth.service import Forbidden, NotFound
from fengchao.lifespan import lifespan
from fengchao.registry import api as registry_api
from fengchao.registry import views as registry_views
from fengchao.settings import get_settings
from fengchao.web.deps import (
    CSRF_COOKIE,
    LANG_COOKIE,
    CsrfFailed,
    LoginRequired,
    render,
)
from fengchao.web.i18n import _, current_language, pick_language

STATIC_DIR = Path(__file__).parent / "web" / "static"


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Fengchao 蜂巢",
        version=__version__,
        description="Community outbreak operations: grid registry, gates, sampling, duty.",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def language_and_cookies(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        language = pick_language(request.cookies.get(LANG_COOKIE), settings.default_language)
        token = current_language.set(language)
        try:
            response = await call_next(request)
        finally:
            current_language.reset(token)
        new_csrf = getattr(request.state, "new_csrf", None)
        if new_csrf:
            response.set_cookie(
                CSRF_COOKIE,
                new_csrf,
                httponly=True,
                samesite="lax",
                secure=settings.security.cookie_secure,
            )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": _("请先登录")}, status_code=401)
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        message = _("表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=403)
        return render(request, "error.html", {"status": 403, "message": message}, status_code=403)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, _exc: NotFound) -> Response:
        message = _("找不到该记录，或不在您负责的范围内")
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=404)
        return render(request, "error.html", {"status": 404, "message": message}, status_code=404)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _exc: Forbidden) -> Response:
        message = _("您的角色没有这项权限")
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=403)
        return render(request, "error.html", {"status": 403, "message": message}, status_code=403)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        message = _("页面不存在") if exc.status_code == 404 else str(exc.detail)
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "message": message},
            status_code=exc.status_code,
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": _("请求参数有误"), "errors": errors}, status_code=422)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(auth_views.router)
    app.include_router(registry_views.router)
    app.include_router(registry_api.router)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/registry", status_code=303)

    # async: answered by the event loop itself, even while every pool thread is busy.
    @app.get("/healthz", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
