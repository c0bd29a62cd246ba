"""Accounts, password hashing, login sessions, permissions and the audit log."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.models import AuditEvent, LoginSession, Role, ScopeLevel, User
from fengchao.db import add_at_commit, utcnow
from fengchao.settings import get_settings

_hasher = PasswordHasher()
# Verifying against this keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("fengchao-dummy-password")

MIN_PASSWORD_LENGTH = 8


class Permission(enum.StrEnum):
    registry_read = "registry.read"
    registry_write = "registry.write"
    id_number_unmasked = "id_number.unmasked"
    audit_read = "audit.read"
    users_manage = "users.manage"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.community_worker: frozenset(
        {
            Permission.registry_read,
            Permission.registry_write,
            Permission.id_number_unmasked,
        }
    ),
    Role.building_lead: frozenset({Permission.registry_read}),
    Role.property_staff: frozenset({Permission.registry_read}),
    Role.guard: frozenset(),
    Role.sampler: frozenset(),
    Role.volunteer: frozenset(),
}


@dataclass(frozen=True)
class GridScope:
    """The node of the grid an account may see; the registry turns it into filters."""

    level: ScopeLevel
    node_id: int


@dataclass(frozen=True)
class Actor:
    """Who is acting: the logged-in user as the services need it (no ORM object)."""

    user_id: int
    username: str
    display_name: str
    role: Role
    scope: GridScope

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


SYSTEM_ACTOR = Actor(0, "system", "system", Role.admin, GridScope(ScopeLevel.street, 0))


class NotFound(LookupError):
    """The object does not exist or lies outside the user's scope (shown as 404 either way,
    so that a scope check does not reveal what exists elsewhere)."""


class Forbidden(PermissionError):
    """The user's role may not do this."""


class Refusal(Exception):
    """A refusal whose message is written for the user (in their language); pages and the
    API answer it with ``status``, naming ``field`` when one field is at fault."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def require(actor: Actor, permission: Permission) -> None:
    if not actor.can(permission):
        raise Forbidden(permission.value)


class AuthError(Exception):
    """A refused login or account change, with a message fit for the user."""


def actor_for(user: User) -> Actor:
    return Actor(
        user.id,
        user.username,
        user.display_name,
        user.role,
        GridScope(user.scope_level, user.scope_id),
    )


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"密码至少 {MIN_PASSWORD_LENGTH} 位")
    return _hasher.hash(password)


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: Role,
    scope: GridScope,
    display_name: str | None = None,
) -> User:
    username = username.strip()
    if not username:
        raise AuthError("用户名不能为空")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AuthError(f"用户名 {username} 已存在")
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        scope_level=scope.level,
        scope_id=scope.node_id,
    )
    session.add(user)
    session.flush()
    return user


def reset_password(*, session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AuthError(f"没有用户 {username}")
    user.password_hash = hash_password(password)
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return user


def authenticate(*, session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip()))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(*, session: Session, user: User) -> tuple[str, LoginSession]:
    """Open a login session; returns the cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    hours = get_settings().security.session_hours
    login = LoginSession(
        token_hash=_token_hash(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + dt.timedelta(hours=hours),
    )
    session.add(login)
    session.flush()
    return token, login


@dataclass(frozen=True)
class Login:
    """A valid login session as the web layer keeps it for one request: plain values, so
    that an error page rendered after the database session has closed can still use them."""

    actor: Actor
    csrf_token: str


def login_for_token(*, session: Session, token: str) -> Login | None:
    """The login behind a session cookie, or None when it is unknown, expired or the
    account is disabled."""
    login = session.scalar(
        select(LoginSession)
        .options(joinedload(LoginSession.user))
        .where(LoginSession.token_hash == _token_hash(token))
    )
    if login is None or login.expires_at <= utcnow() or not login.user.active:
        return None
    return Login(actor_for(login.user), login.csrf_token)


def end_session(*, session: Session, token: str) -> None:
    session.execute(delete(LoginSession).where(LoginSession.token_hash == _token_hash(token)))


def audit(
    *,
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object = None,
    community_id: int | None = None,
    **detail: Any,
) -> None:
    """Append one audit event; it is written when the caller's unit of work commits (before
    the response is sent), and only then: a read that fails leaves no trace of success."""
    add_at_commit(
        session,
        AuditEvent(
            user_id=actor.user_id or None,
            username=actor.username,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            community_id=community_id,
            detail=detail,
        ),
    )


def list_audit_events(
    *, session: Session, limit: int = 100, offset: int = 0, username: str | None = None
) -> tuple[list[AuditEvent], int]:
    query = select(AuditEvent)
    if username:
        query = query.where(AuditEvent.username == username)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


def recent_acts(
    *, session: Session, actor: Actor, actions: tuple[str, ...], since: dt.datetime
) -> int:
    """How many of ``actions`` the actor has done since ``since`` (from the audit log),
    for limits that must hold across every web process."""
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.user_id == actor.user_id,
                AuditEvent.action.in_(actions),
                AuditEvent.at >= since,
            )
        )
        or 0
    )
