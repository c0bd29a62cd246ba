"""Error responses: a page in the base layout (menu, language, logout) or a JSON body,
in the user's language, built without the request's database session (closed by then)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fengchao.auth.service import Forbidden, NotFound, Refusal
from fengchao.settings import get_settings
from fengchao.web.deps import LANG_COOKIE, CsrfFailed, LoginRequired, identify, render
from fengchao.web.i18n import _, current_language, pick_language
from fengchao.web.security import security_headers

log = logging.getLogger("fengchao.web")


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _status_message(status: int) -> str:
    messages = {
        400: _("请求有误"),
        401: _("请先登录"),
        403: _("您的角色没有这项权限"),
        404: _("页面不存在"),
        405: _("此地址不接受这种请求方式"),
        413: _("提交的内容太大"),
        422: _("请求参数有误"),
        429: _("操作太频繁，请稍后再试"),
    }
    return messages.get(status, _("请求未能完成"))


def error_response(
    request: Request,
    status: int,
    message: str,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The one way an error reaches the user: JSON under /api/, otherwise the error page."""
    if wants_json(request):
        body: dict[str, Any] = {"detail": message}
        if errors is not None:
            body["errors"] = errors
        return JSONResponse(body, status_code=status, headers=headers)
    try:
        identify(request)
    except Exception:  # an error page must render even when the database is down
        log.exception("could not identify the user for an error page")
        request.state.login = None
    response = render(
        request,
        "error.html",
        {"status": status, "message": message, "errors": errors or []},
        status_code=status,
    )
    if headers:
        response.headers.update(headers)
    return response


# Pydantic's error types, said in the user's language with the field's limits.
def _validation_message(error: dict[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    kind = error.get("type", "")
    messages = {
        "missing": _("必填"),
        "int_parsing": _("应为整数"),
        "int_type": _("应为整数"),
        "float_parsing": _("应为数字"),
        "bool_parsing": _("应为是或否"),
        "string_too_long": _("太长（最多 {n} 个字符）"),
        "string_too_short": _("太短（至少 {n} 个字符）"),
        "greater_than_equal": _("不能小于 {n}"),
        "less_than_equal": _("不能大于 {n}"),
        "greater_than": _("应大于 {n}"),
        "less_than": _("应小于 {n}"),
        "literal_error": _("取值不在允许范围内"),
        "enum": _("取值不在允许范围内"),
        "string_pattern_mismatch": _("格式不对"),
        "json_invalid": _("不是有效的 JSON"),
        "date_parsing": _("应为日期（如 2026-01-31）"),
        "date_from_datetime_parsing": _("应为日期（如 2026-01-31）"),
        # A value of the wrong JSON type (a number or a list where text is expected).
        "string_type": _("应为文字"),
        "int_from_float": _("应为整数"),
        "bool_type": _("应为是或否"),
        "list_type": _("应为列表"),
        "dict_type": _("格式不对"),
        "model_attributes_type": _("格式不对"),
        "datetime_type": _("应为时间（如 2026-01-31T08:00:00+08:00）"),
        "datetime_parsing": _("应为时间（如 2026-01-31T08:00:00+08:00）"),
        "datetime_from_date_parsing": _("应为时间（如 2026-01-31T08:00:00+08:00）"),
        "extra_forbidden": _("不认识这个字段"),
    }
    limit = next(
        (ctx[k] for k in ("max_length", "min_length", "ge", "le", "gt", "lt") if k in ctx), ""
    )
    template = messages.get(kind)
    # Never pydantic's own English on a Chinese page: a type not listed is "not valid".
    return template.format(n=limit) if template else _("取值无效")


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
            "message": _validation_message(e),
        }
        for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if wants_json(request):
            return JSONResponse({"detail": _("请先登录")}, status_code=401)
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        message = _("表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
        return error_response(request, 403, message)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, _exc: NotFound) -> Response:
        return error_response(request, 404, _("找不到该记录，或不在您的管辖范围内"))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, _exc: Forbidden) -> Response:
        return error_response(request, 403, _("您的角色没有这项权限"))

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
        return error_response(request, exc.status, exc.message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Texts of our own HTTPExceptions are already in the user's language; Starlette's
        # own ("Not Found", "Method Not Allowed") are replaced by ours.
        own = isinstance(exc.detail, str) and exc.detail != _default_phrase(exc.status_code)
        message = exc.detail if own else _status_message(exc.status_code)
        return error_response(request, exc.status_code, str(message), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if any(e["loc"] and e["loc"][0] == "path" for e in exc.errors()):
            # /people/99999999999999999999 names nothing that exists: not found, not a 500.
            return error_response(request, 404, _status_message(404))
        return error_response(request, 422, _("请求参数有误"), validation_errors(exc))

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        # Runs outside the middleware that picks the language: pick it again.
        default = get_settings().default_language
        current_language.set(pick_language(request.cookies.get(LANG_COOKIE), default))
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        response = error_response(request, 500, _("系统出错了，已记录下来；请稍后重试"))
        # Outside the middleware that adds them to every other answer.
        security_headers(response, request.url.path, https=get_settings().security.cookie_secure)
        return response


def _default_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
