"""Pages: login, logout, language switch and the audit log (admins)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fengchao.auth import audit_log, service
from fengchao.auth.service import Actor, Permission, require
from fengchao.db import begin_write
from fengchao.settings import get_settings
from fengchao.web.deps import (
    LANG_COOKIE,
    SESSION_COOKIE,
    CurrentActor,
    DbSession,
    render,
    require_csrf,
)
from fengchao.web.i18n import LANGUAGES, _

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only local paths, so the login form cannot bounce a user to another site."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


def client_address(request: Request) -> str:
    """The address login throttling counts by: the peer, or behind a trusted reverse proxy
    the last X-Forwarded-For entry (the one the proxy added; earlier ones are the client's
    to choose)."""
    if get_settings().login.trust_forwarded_for:
        entries = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
        last = entries[-1].strip()
        if last:
            return last[:64]
    return request.client.host if request.client else "unknown"


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return _("{n} 秒").format(n=seconds)
    return _("{n} 分钟").format(n=-(-seconds // 60))


def login_error(attempt: service.LoginAttempt) -> str:
    """What the login form says after a refused attempt."""
    if not attempt.wait_seconds:
        return _("用户名或密码错误")
    wait = _wait_text(attempt.wait_seconds)
    if attempt.locked:
        reason = _("登录失败次数太多，账号已锁定。请 {wait}后再试，或请管理员解锁").format(
            wait=wait
        )
    elif attempt.address_limited:
        reason = _("这个网络地址登录失败次数太多。请 {wait}后再试").format(wait=wait)
    else:
        reason = _("登录失败次数太多。请 {wait}后再试").format(wait=wait)
    return _("用户名或密码错误。{reason}").format(reason=reason) if attempt.checked else reason


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    attempt = service.attempt_login(
        session=session, username=username, password=password, address=client_address(request)
    )
    if attempt.user is None:
        page = render(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": login_error(attempt),
                "username": username,
            },
            # 429 when the attempt was not even checked: the client must wait.
            status_code=401 if attempt.checked else 429,
        )
        if attempt.wait_seconds:
            page.headers["Retry-After"] = str(attempt.wait_seconds)
        return page
    # Still the writing transaction attempt_login left open; committed before the reply.
    token, _login = service.start_session(session=session, user=attempt.user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    settings = get_settings().security
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.session_hours * 3600,
    )
    return response


@router.post("/logout")
def logout(request: Request, session: DbSession) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        begin_write(session)
        service.end_session(session=session, token=token, address=client_address(request))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/lang/{code}")
def switch_language(code: str, request: Request) -> Response:
    referer = request.headers.get("referer")
    target = _safe_next(urlparse(referer).path if referer else None)
    response = RedirectResponse(target, status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax")
    return response


def _audit_filter(
    since: dt.date | None,
    until: dt.date | None,
    action: str | None,
    username: str | None,
    record: str | None,
) -> audit_log.AuditFilter:
    """``record`` is "person 2891" or "person:2891" (a record kind and its id), or a kind."""
    kind, _sep, number = (record or "").replace(":", " ").strip().partition(" ")
    return audit_log.AuditFilter(
        since, until, action or None, username or None, kind or None, number.strip() or None
    )


def _scope_communities(session: Session, actor: Actor) -> list[int]:
    from fengchao.registry.scope import communities_in_scope

    return [c.id for c in communities_in_scope(session=session, scope=actor.scope)]


AuditDate = Annotated[dt.date | None, Query()]
AuditText = Annotated[str | None, Query(max_length=64)]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    since: AuditDate = None,
    until: AuditDate = None,
    action: AuditText = None,
    username: AuditText = None,
    record: AuditText = None,
) -> Response:
    require(actor, Permission.audit_read)
    per_page = 100
    wanted = _audit_filter(since, until, action, username, record)
    events, total = audit_log.list_events(
        session=session,
        actor=actor,
        wanted=wanted,
        community_ids=_scope_communities(session, actor),
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return render(
        request,
        "audit.html",
        {
            "events": events,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // per_page)),
            "wanted": wanted,
            "record": record or "",
            "actions": audit_log.ACTION_LABELS,
            "objects": audit_log.OBJECT_LABELS,
            "details": audit_log.DETAIL_LABELS,
            "link": audit_log.record_link,
        },
    )


@router.get("/audit.xlsx")
def audit_export(
    session: DbSession,
    actor: CurrentActor,
    since: AuditDate = None,
    until: AuditDate = None,
    action: AuditText = None,
    username: AuditText = None,
    record: AuditText = None,
) -> Response:
    """The filtered log as a workbook; the export itself is audited."""
    require(actor, Permission.audit_read)
    wanted = _audit_filter(since, until, action, username, record)
    events = audit_log.all_events(
        session=session,
        actor=actor,
        wanted=wanted,
        community_ids=_scope_communities(session, actor),
    )
    service.audit(
        session=session, actor=actor, action="export", object_type="audit", rows=len(events)
    )
    content = audit_log.export_xlsx(events)
    return Response(
        content,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": "attachment; filename*=UTF-8''audit.xlsx"},
    )
