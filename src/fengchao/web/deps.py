"""Request plumbing every slice uses: the database session, the logged-in actor, CSRF,
and rendering a page."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from fengchao.auth import service as auth_service
from fengchao.auth.models import ROLE_LABELS
from fengchao.auth.service import Actor, Login, Permission
from fengchao.db import finish, get_sessionmaker, session_scope
from fengchao.settings import get_settings
from fengchao.web.i18n import LANGUAGES, current_language, gettext, ngettext
from fengchao.web.icons import icon

SESSION_COOKIE = "fc_session"
CSRF_COOKIE = "fc_csrf"
LANG_COOKIE = "fc_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# Ids in paths and queries are bounded like the database's integers: a longer number names
# nothing (404 in a path, a clear 422 in a query), never a database overflow.
MAX_ROW_ID = 2**31 - 1
RowId = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]
OptionalRowId = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]


class LoginRequired(Exception):
    """No valid login session: pages redirect to the login form, the API answers 401."""


class CsrfFailed(Exception):
    """An unsafe request without the right CSRF token."""


def _template_dirs() -> list[Path]:
    root = Path(__file__).resolve().parent.parent
    return [root / "web" / "templates", *sorted(root.glob("*/templates"))]


templates = Jinja2Templates(directory=[str(p) for p in _template_dirs()])
# Templates change only with a new release: no file check on every render.
templates.env.auto_reload = False
templates.env.globals.update(_=gettext, ngettext=ngettext, LANGUAGES=LANGUAGES)
templates.env.globals["Permission"] = Permission
templates.env.globals["role_labels"] = ROLE_LABELS
templates.env.globals["icon"] = icon


def localtime(value: dt.datetime | None) -> str:
    """UTC from the database, shown in the community's time zone."""
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M:%S")


templates.env.filters["localtime"] = localtime


def sessions_of(request: Request) -> sessionmaker[Session]:
    """The app's session factory (``create_app(engine=...)`` binds its own database)."""
    maker: sessionmaker[Session] | None = getattr(request.app.state, "sessionmaker", None)
    return maker or get_sessionmaker()


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed (audit rows included) before the response is
    sent; closed before any error page is rendered, so error pages never touch it."""
    with session_scope(sessions=sessions_of(request)) as session:
        yield session


# scope="function": the code after ``yield`` (the commit) runs before the response is sent.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def done_writing(session: Session) -> None:
    """Commit the request's unit of work now, in the route's own thread, where its writing
    is over and only the response is left to make. Otherwise :func:`get_session` commits it
    on its way out, which FastAPI runs in the thread pool after a hop through the event
    loop: on SQLite the write lock (the process's and the database's) stayed held across
    that hop, and under load a hop takes milliseconds that every other writer waited."""
    finish(session)


def request_session(request: Request) -> AbstractContextManager[Session]:
    """The request's unit of work as :func:`get_session` gives it, for a route that does
    all its database work in one pool thread (a sync generator dependency costs a hop to
    the pool at its start and another at its end). An override of ``get_session`` (the
    tests' shared session) is honoured."""
    override = request.app.dependency_overrides.get(get_session)
    if override is not None:
        return contextmanager(override)()
    return session_scope(sessions=sessions_of(request))


def current_login(request: Request, session: DbSession) -> Login | None:
    if hasattr(request.state, "login"):
        cached: Login | None = request.state.login
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    login = auth_service.login_for_token(session=session, token=token) if token else None
    request.state.login = login
    return login


async def current_actor(login: Annotated[Login | None, Depends(current_login)]) -> Actor:
    # async: it only looks at the login, and a sync dependency costs a hop to the pool.
    if login is None:
        raise LoginRequired()
    return login.actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def identify(request: Request) -> Login | None:
    """The login of a request whose route never asked for it (an unknown path, a refused
    method), looked up in a short session of its own; error pages use it to show the menu."""
    if not hasattr(request.state, "login"):
        token = request.cookies.get(SESSION_COOKIE)
        login = None
        if token:
            with sessions_of(request)() as session:
                login = auth_service.login_for_token(session=session, token=token)
        request.state.login = login
    found: Login | None = request.state.login
    return found


def csrf_cookie_value(request: Request) -> str:
    """The anonymous CSRF token (double-submit cookie), made on first use."""
    value = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not value:
        value = secrets.token_urlsafe(24)
        request.state.new_csrf = value
    return value


def csrf_token_for(request: Request, login: Login | None) -> str:
    return login.csrf_token if login is not None else csrf_cookie_value(request)


async def require_csrf(
    request: Request, login: Annotated[Login | None, Depends(current_login)]
) -> None:
    """Unsafe methods must echo the token in a form field or the X-CSRF-Token header."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected = login.csrf_token if login is not None else request.cookies.get(CSRF_COOKIE)
    if not sent or not expected or not secrets.compare_digest(sent, expected):
        raise CsrfFailed()


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    login: Login | None = getattr(request.state, "login", None)
    full = {
        "request": request,
        "actor": login.actor if login else None,
        "lang": current_language.get(),
        "csrf_token": csrf_token_for(request, login),
        **(context or {}),
    }
    return templates.TemplateResponse(request, name, full, status_code=status_code)
