"""Accounts, password hashing, login sessions, permissions and the audit log."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, bindparam, case, delete, func, or_, select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth import throttle
from fengchao.auth.models import AuditEvent, LoginSession, Role, ScopeLevel, User
from fengchao.auth.passwords import password_problem
from fengchao.db import add_at_commit, begin_write, utcnow
from fengchao.settings import get_settings
from fengchao.web.i18n import _

_hasher = PasswordHasher()
# Verifying against this keeps a wrong username as slow as a wrong password.
_DUMMY_HASH = _hasher.hash("fengchao-dummy-password")


class Permission(enum.StrEnum):
    registry_read = "registry.read"
    registry_write = "registry.write"
    registry_propose = "registry.propose"  # changes that a community worker confirms
    registry_lookup = "registry.lookup"  # who lives in a flat: no phones, no ID numbers
    id_number_unmasked = "id_number.unmasked"
    audit_read = "audit.read"
    users_manage = "users.manage"
    notify_manage = "notify.manage"
    sampling_manage = "sampling.manage"  # rounds, sites, lab results, retests
    sampling_register = "sampling.register"  # swabs into tubes at the site
    sampling_coverage = "sampling.coverage"  # who has been sampled, who has not
    codes_issue = "codes.issue"  # print and rotate residents' gate codes
    duty_manage = "duty.manage"  # the volunteer register, posts, rosters, check-in at a post
    duty_self = "duty.self"  # a volunteer's own sign-up, availability and shifts
    gridwork_manage = "gridwork.manage"  # sweeps, every request and report in scope
    gridwork_lead = "gridwork.lead"  # visits, requests and reports of the lead's building
    gridwork_property = "gridwork.property"  # reports routed to the property
    gridwork_submit = "gridwork.submit"  # ask for help on a resident's behalf
    access_read = "access.read"  # the access record, in scope (a building lead: their building)
    access_manage = "access.manage"  # gates, devices, pass rules, console PINs
    gate_operate = "gate.operate"  # decisions at a gate's console
    alert_switch = "alert.switch"  # the alert level (one action, audited)
    faces_manage = "faces.manage"  # enrol faces, record consent, see thumbnails
    tracing_manage = "tracing.manage"  # cases, their contacts, isolation of contacts
    visitors_manage = "visitors.manage"  # posters, visitor passes, couriers, who is inside
    visitors_approve = "visitors.approve"  # approve visitors to the households in scope
    visitors_issue = "visitors.issue"  # a pass issued at the gate (a visitor without a phone)
    report_daily = "report.daily"  # the daily report of a community (XLSX, PDF)
    dashboard_read = "dashboard.read"  # the community at a glance, in scope


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.community_worker: frozenset(
        {
            Permission.registry_read,
            Permission.registry_write,
            Permission.registry_lookup,
            Permission.id_number_unmasked,
            Permission.notify_manage,
            Permission.sampling_manage,
            Permission.sampling_register,
            Permission.sampling_coverage,
            Permission.codes_issue,
            Permission.access_read,
            Permission.access_manage,
            Permission.gate_operate,
            Permission.alert_switch,
            Permission.faces_manage,
            Permission.tracing_manage,
            Permission.duty_manage,
            Permission.gridwork_manage,
            Permission.gridwork_submit,
            Permission.visitors_manage,
            Permission.visitors_issue,
            Permission.report_daily,
            Permission.dashboard_read,
        }
    ),
    Role.building_lead: frozenset(
        {
            Permission.dashboard_read,
            Permission.registry_read,
            Permission.registry_propose,
            Permission.registry_lookup,
            Permission.access_read,
            Permission.sampling_coverage,
            Permission.duty_self,
            Permission.gridwork_lead,
            Permission.gridwork_submit,
            Permission.visitors_approve,
        }
    ),
    Role.property_staff: frozenset(
        {
            Permission.registry_read,
            Permission.registry_lookup,
            Permission.codes_issue,
            Permission.access_read,
            Permission.access_manage,
            Permission.gate_operate,
            Permission.faces_manage,
            Permission.gridwork_property,
            Permission.visitors_manage,
            Permission.visitors_issue,
        }
    ),
    Role.guard: frozenset(
        {
            Permission.registry_lookup,
            Permission.access_read,
            Permission.gate_operate,
            Permission.visitors_issue,
        }
    ),
    Role.sampler: frozenset({Permission.sampling_register}),
    Role.volunteer: frozenset({Permission.duty_self, Permission.gridwork_submit}),
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
    # The community the scope lies in (None for a street): audit rows of acts that name no
    # community (a search, a room check) are filed under it, so that an administrator of
    # one community sees them and those of other communities stay apart.
    community_id: int | None = None

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


def actor_for(user: User, session: Session | None = None) -> Actor:
    """The user as services see them; with a ``session``, also the community their scope
    lies in."""
    scope = GridScope(user.scope_level, user.scope_id)
    community = _community_of(session, scope) if session is not None else None
    return Actor(user.id, user.username, user.display_name, user.role, scope, community)


def _community_of(session: Session, scope: GridScope) -> int | None:
    if scope.level == ScopeLevel.street:
        return None
    if scope.level == ScopeLevel.community:
        return scope.node_id
    from fengchao.registry.scope import node_lineage  # the registry imports this module

    lineage = node_lineage(session=session, level=scope.level, node_id=scope.node_id)
    return next((node for level, node in lineage if level == ScopeLevel.community), None)


def normalise_username(username: str) -> str:
    """The stored form of a username: NFKC (a Chinese keyboard's full-width ｗｏｒｋｅｒ is
    worker), trimmed, lower-case (a phone keyboard's Worker is worker)."""
    return unicodedata.normalize("NFKC", username).strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password_policy(password: str, *, username: str) -> None:
    """Raise :class:`AuthError` naming the problem when ``password`` may not be set."""
    problem = password_problem(password, username=username)
    if problem:
        raise AuthError(problem)


def _missing_node(scope: GridScope) -> str:
    match scope.level:
        case ScopeLevel.street:
            message = _("所属范围不存在：没有编号为 {id} 的街道")
        case ScopeLevel.community:
            message = _("所属范围不存在：没有编号为 {id} 的社区")
        case ScopeLevel.compound:
            message = _("所属范围不存在：没有编号为 {id} 的小区")
        case ScopeLevel.building:
            message = _("所属范围不存在：没有编号为 {id} 的楼栋")
    return message.format(id=scope.node_id)


def create_user(
    *,
    session: Session,
    username: str,
    password: str,
    role: Role,
    scope: GridScope,
    display_name: str | None = None,
) -> User:
    """A new account. Refused (:class:`AuthError`, naming the problem): an empty, too long
    or taken name (ignoring case), a password the policy refuses, a scope whose grid node
    does not exist."""
    # Imported here: the registry's scope module imports this one.
    from fengchao.registry.scope import grid_node_exists

    username = normalise_username(username)
    if not username:
        raise AuthError(_("用户名不能为空"))
    if len(username) > 64:
        raise AuthError(_("用户名太长：最多 64 个字符"))
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AuthError(_("用户名 {name} 已存在").format(name=username))
    check_password_policy(password, username=username)
    if not grid_node_exists(session=session, level=scope.level, node_id=scope.node_id):
        raise AuthError(_missing_node(scope))
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


def _user_named(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == normalise_username(username)))
    if user is None:
        raise AuthError(_("没有用户 {name}").format(name=username))
    return user


def reset_password(*, session: Session, username: str, password: str) -> User:
    user = _user_named(session, username)
    check_password_policy(password, username=user.username)
    user.password_hash = hash_password(password)
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return user


@dataclass(frozen=True)
class LoginAttempt:
    """What became of a login attempt.

    ``user`` is set when the password was right. Otherwise ``wait_seconds`` is how long
    before the next attempt is accepted (0: at once), ``locked`` says the wait is a lock
    of the account, ``address_limited`` that it is the client address that must wait, and
    ``checked`` is False when the attempt was refused without looking at the password.
    """

    user: User | None
    wait_seconds: int = 0
    locked: bool = False
    address_limited: bool = False
    checked: bool = True


# A mobile number has 11 digits, an ID number 15 or 18 (the last may be X); shorter runs
# are left alone, since usernames such as lead5 or guard-2024 are not personal data.
_PHONE_OR_ID = re.compile(r"\d{11,}[Xx]?")


def _typed_name_for_audit(typed: str) -> str:
    """A typed username as the audit log keeps it: people type their phone or ID number
    into the field, so such runs of digits keep only their first 3 and last 2."""
    name = typed.strip()[:64]
    return _PHONE_OR_ID.sub(lambda m: m[0][:3] + "*" * (len(m[0]) - 5) + m[0][-2:], name)


def _audit_login(
    session: Session,
    *,
    action: str,
    user_id: int | None,
    username: str,
    now: dt.datetime,
    **detail: Any,
) -> None:
    """Audit an event of the login itself; its subject (the account or the typed name)
    stands in the user columns, since nobody is logged in yet."""
    session.add(
        AuditEvent(
            at=now,
            user_id=user_id,
            username=username,
            action=action,
            object_type="user",
            object_id=None if user_id is None else str(user_id),
            detail=detail,
        )
    )


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def attempt_login(
    *,
    session: Session,
    username: str,
    password: str,
    address: str,
    now: dt.datetime | None = None,
) -> LoginAttempt:
    """Check a login, throttled per account name and per client address (see
    :mod:`fengchao.auth.throttle`), and audit it: "login", "login_failed", "lock".

    Commits once in the middle: the attempt is counted as a failure and committed before
    the password is checked, so that guesses sent in parallel see it and wait; the hash is
    checked outside any transaction. The outcome is left for the caller to commit.
    """
    now = now or utcnow()
    settings = get_settings().login
    name = normalise_username(username)
    key = throttle.address_key(address)
    begin_write(session)
    claim = throttle.claim_attempt(
        session=session, account=name, address=key, now=now, settings=settings
    )
    if claim.refused:
        # Not audited: nothing was checked, and a client hammering a locked account must
        # not be able to fill the audit log at the speed of a refusal.
        session.commit()
        return LoginAttempt(
            None, claim.wait_seconds, claim.locked, claim.address_limited, checked=False
        )
    row = session.execute(
        select(User.id, User.password_hash, User.active).where(User.username == name)
    ).first()
    session.commit()
    right = _verify(row.password_hash if row else _DUMMY_HASH, password)
    # The outcome is written in a transaction of its own, begun for writing: the slow
    # hash above ran with no lock held.
    begin_write(session)
    if right and row is not None and row.active:
        user = session.get(User, row.id)
        assert user is not None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        throttle.settle_success(session=session, claim=claim, now=now)
        _audit_login(
            session, action="login", user_id=user.id, username=user.username, now=now,
            address=address,
        )  # fmt: skip
        return LoginAttempt(user)
    typed = _typed_name_for_audit(username)
    user_id = row.id if row is not None else None
    _audit_login(
        session, action="login_failed", user_id=user_id, username=typed, now=now,
        address=address, failures=claim.account_failures,
    )  # fmt: skip
    if claim.locked and user_id is not None:
        until = now + dt.timedelta(seconds=claim.wait_seconds)
        _audit_login(
            session, action="lock", user_id=user_id, username=name, now=now, address=address,
            failures=claim.account_failures, until=until.isoformat(timespec="seconds"),
        )  # fmt: skip
    throttle.purge_forgotten(session=session, now=now, settings=settings)
    return LoginAttempt(None, claim.wait_seconds, claim.locked, claim.address_limited)


def unlock_account(
    *, session: Session, username: str, actor: Actor, now: dt.datetime | None = None
) -> bool:
    """Lift a lock (and forget the failures) before it runs out; audited as "unlock".
    Returns whether the account was locked or waiting."""
    user = _user_named(session, username)
    was_waiting = throttle.unlock(session=session, account=user.username, now=now or utcnow())
    audit(
        session=session,
        actor=actor,
        action="unlock",
        object_type="user",
        object_id=user.id,
        username=user.username,
        was_locked=was_waiting,
    )
    return was_waiting


def account_locks(*, session: Session, now: dt.datetime | None = None) -> dict[str, dt.datetime]:
    """Usernames that are locked now, with the end of their lock."""
    names = list(session.scalars(select(User.username)))
    return throttle.locks(session=session, accounts=names, now=now or utcnow())


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


# Every request looks its login up: one statement, built once, reads plain columns
# (loading the session and its user as ORM objects cost a third of a swab registration)
# and the community of the user's scope beside them (a query of its own otherwise).
@functools.cache
def _login_statement() -> Any:
    return (
        select(
            LoginSession.expires_at,
            LoginSession.csrf_token,
            User.id,
            User.username,
            User.display_name,
            User.role,
            User.scope_level,
            User.scope_id,
            User.active,
            _scope_community().label("community"),
        )
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == bindparam("token_hash"))
    )


def login_for_token(*, session: Session, token: str) -> Login | None:
    """The login behind a session cookie, or None when it is unknown, expired or the
    account is disabled."""
    row = session.execute(_login_statement(), {"token_hash": _token_hash(token)}).first()
    if row is None or row.expires_at <= utcnow() or not row.active:
        return None
    scope = GridScope(row.scope_level, row.scope_id)
    actor = Actor(row.id, row.username, row.display_name, row.role, scope, row.community)
    return Login(actor, row.csrf_token)


def _scope_community() -> Any:
    """The community a user's scope lies in, as a column beside the user's row: what
    :func:`_community_of` finds with a query of its own (None for a street, or a node that
    is gone)."""
    from fengchao.registry.models import Building, Compound  # the registry imports this module

    return case(
        (User.scope_level == ScopeLevel.community, User.scope_id),
        (
            User.scope_level == ScopeLevel.compound,
            select(Compound.community_id).where(Compound.id == User.scope_id).scalar_subquery(),
        ),
        (
            User.scope_level == ScopeLevel.building,
            select(Building.community_id).where(Building.id == User.scope_id).scalar_subquery(),
        ),
        else_=None,
    )


def end_session(*, session: Session, token: str, address: str | None = None) -> None:
    """Log out: delete the login session of ``token`` and audit it as "logout"."""
    login = session.scalar(
        select(LoginSession)
        .options(joinedload(LoginSession.user))
        .where(LoginSession.token_hash == _token_hash(token))
    )
    if login is None:
        return
    audit(
        session=session,
        actor=actor_for(login.user),
        action="logout",
        object_type="user",
        object_id=login.user_id,
        address=address,
    )
    session.delete(login)
    session.flush()


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
            community_id=community_id if community_id is not None else actor.community_id,
            detail=detail,
        ),
    )


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


def accounts_with_role(
    *, session: Session, role: Role, nodes: Iterable[tuple[ScopeLevel, int]]
) -> list[int]:
    """Ids of the active accounts of ``role`` whose scope is one of ``nodes`` (for the
    notification inbox: who holds a role at a place)."""
    by_level: dict[ScopeLevel, set[int]] = {}
    for level, node_id in nodes:
        by_level.setdefault(level, set()).add(node_id)
    if not by_level:
        return []
    where = or_(
        *(
            and_(User.scope_level == level, User.scope_id.in_(sorted(ids)))
            for level, ids in by_level.items()
        )
    )
    query = select(User.id).where(User.role == role, User.active.is_(True), where)
    return list(session.scalars(query.order_by(User.id)))


def account_scope(*, session: Session, user_id: int) -> GridScope | None:
    """The grid scope of an active account, or None when there is no such active account."""
    row = session.execute(
        select(User.scope_level, User.scope_id).where(User.id == user_id, User.active.is_(True))
    ).first()
    return None if row is None else GridScope(row.scope_level, row.scope_id)
