"""Visitors' posters, applications and passes: the logic behind the public form, the
staff pages, the command line and the gate.

A pass is issued at once or after approval depending on the alert level at the gate's
compound (:func:`approval_needed`); under 静默 (lockdown) no visitor pass is issued.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, delete, select, true, update
from sqlalchemy.orm import Session

from fengchao.access import policy
from fengchao.access import service as access
from fengchao.access.models import Gate, GateKind
from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import (
    Actor,
    Forbidden,
    NotFound,
    Permission,
    Refusal,
    audit,
    require,
)
from fengchao.db import begin_write, utcnow
from fengchao.registry.models import Building, Community, Compound, Household, Unit
from fengchao.registry.validation import (
    FieldError,
    parse_address,
    parse_id_number,
    parse_mobile,
)
from fengchao.settings import get_settings
from fengchao.visitors import tokens
from fengchao.visitors.models import (
    PassKind,
    PassStatus,
    VisitorPass,
    VisitorPoster,
    VisitorRate,
    VisitorWatch,
)
from fengchao.web.i18n import _

# Field limits of the form (the database columns are at least this long).
MAX_NAME = 40
MAX_PURPOSE = 100
MAX_TRAVEL = 100
MAX_STAY_HOURS = 24
MAX_PARTY = 10
HEALTH_CODES = ("green", "yellow", "red")
SYMPTOMS = ("fever", "cough", "sore_throat", "fatigue", "taste_smell")
SYMPTOM_LABELS = {
    "fever": "发热",
    "cough": "咳嗽",
    "sore_throat": "咽痛",
    "fatigue": "乏力",
    "taste_smell": "嗅觉或味觉减退",
}
HEALTH_CODE_LABELS = {"green": "绿码", "yellow": "黄码", "red": "红码"}
STATUS_LABELS = {
    PassStatus.pending: "待审批",
    PassStatus.active: "有效",
    PassStatus.refused: "未批准",
    PassStatus.revoked: "已撤销",
}
COURIER_DAYS = 30
COURIER_ENTRIES = 65535  # "unlimited" within the window


class VisitorRefusal(Refusal):
    """Input the visitors slice cannot use, naming the field."""

    status = 422


class TooManySubmissions(Refusal):
    """The form was sent too often from this address or for this phone."""

    status = 429


# --- posters ---------------------------------------------------------------------------


def _new_token() -> str:
    return secrets.token_urlsafe(12)


def poster_for_gate(*, session: Session, actor: Actor, gate_id: int) -> tuple[Gate, VisitorPoster]:
    """The gate's poster (made on first use) for staff who manage visitors."""
    require(actor, Permission.visitors_manage)
    gate = access.get_gate(session=session, actor=actor, gate_id=gate_id)
    poster = session.get(VisitorPoster, gate.id)
    if poster is None:
        begin_write(session)
        poster = session.get(VisitorPoster, gate.id)
        if poster is None:
            poster = VisitorPoster(
                gate_id=gate.id, community_id=gate.community_id, token=_new_token(), version=1
            )
            session.add(poster)
            session.flush()
    return gate, poster


def rotate_poster(*, session: Session, actor: Actor, gate_id: int) -> VisitorPoster:
    """A new token for the gate's poster: the printed posters stop working, and so do the
    passes applied for through them that have not been used yet."""
    begin_write(session)
    gate, poster = poster_for_gate(session=session, actor=actor, gate_id=gate_id)
    poster.token = _new_token()
    poster.version += 1
    poster.rotated_at = utcnow()
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="rotate",
        object_type="visitor_poster",
        object_id=gate.id,
        community_id=gate.community_id,
        version=poster.version,
    )
    return poster


def poster_url(token: str) -> str:
    """The address the poster's QR points to (absolute when a public address is set)."""
    base = get_settings().notify.public_url.rstrip("/")
    return f"{base}/v/{token}"


@dataclass(frozen=True)
class PublicGate:
    """What the public form may know of the gate it was opened at."""

    gate_id: int
    gate_name: str
    community_id: int
    compound_id: int
    compound_name: str
    poster_version: int
    token: str


def gate_for_token(*, session: Session, token: str) -> PublicGate:
    """The gate a poster token names; ``NotFound`` for an unknown or rotated token."""
    if not token or len(token) > 32:
        raise NotFound("poster")
    row = session.execute(
        select(VisitorPoster, Gate, Compound.name)
        .join(Gate, Gate.id == VisitorPoster.gate_id)
        .join(Compound, Compound.id == Gate.compound_id)
        .where(VisitorPoster.token == token, Gate.active.is_(True))
    ).first()
    if row is None:
        raise NotFound("poster")
    poster, gate, compound_name = row
    return PublicGate(
        gate.id, gate.name, gate.community_id, gate.compound_id, compound_name,
        poster.version, poster.token,
    )  # fmt: skip


# --- the form --------------------------------------------------------------------------


@dataclass
class Application:
    """A visitor's form, checked (``errors`` maps a field to its message)."""

    name: str = ""
    phone: str = ""
    id_number: str = ""
    id_mask: str = ""
    host_room: str = ""
    purpose: str = ""
    stay_hours: int = 2
    party_size: int = 1
    plate: str | None = None
    symptoms: list[str] = field(default_factory=list)
    travel: str = ""
    health_code: str = "green"
    errors: dict[str, str] = field(default_factory=dict)


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _bounded_int(text: str, low: int, high: int) -> int | None:
    try:
        number = int(text)
    except ValueError:
        return None
    return number if low <= number <= high else None


def check_form(form: dict[str, Any], *, today: dt.date | None = None) -> Application:
    """The form's fields checked as the registry checks them (pure: the room is looked up
    by :func:`find_host`). Every error names its field, in the user's language."""
    app = Application()
    errors = app.errors
    name = _text(form, "name")
    if not name:
        errors["name"] = _("请填写姓名")
    elif len(name) > MAX_NAME:
        errors["name"] = _("姓名最多 {n} 个字").format(n=MAX_NAME)
    app.name = name[:MAX_NAME]
    try:
        app.phone = parse_mobile(_text(form, "phone")[:20])
    except FieldError as exc:
        errors["phone"] = exc.message
    id_text = _text(form, "id_number")
    if len(id_text) > 24:
        errors["id_number"] = _("身份证号应为18位")
    else:
        try:
            parsed = parse_id_number(id_text, today=today)
            app.id_number, app.id_mask = parsed.number, parsed.masked
        except FieldError as exc:
            errors["id_number"] = exc.message
    room = _text(form, "host_room")
    app.host_room = room[:40]
    if not room:
        errors["host_room"] = _("请填写被访住户的房号，如 5-2-1302")
    else:
        try:
            parse_address(room[:80])
        except FieldError as exc:
            errors["host_room"] = exc.message
    purpose = _text(form, "purpose")
    if not purpose:
        errors["purpose"] = _("请填写来访事由")
    elif len(purpose) > MAX_PURPOSE:
        errors["purpose"] = _("来访事由最多 {n} 个字").format(n=MAX_PURPOSE)
    app.purpose = purpose[:MAX_PURPOSE]
    stay = _bounded_int(_text(form, "stay_hours"), 1, MAX_STAY_HOURS)
    if stay is None:
        errors["stay_hours"] = _("预计停留时间为 1–{n} 小时").format(n=MAX_STAY_HOURS)
    else:
        app.stay_hours = stay
    party = _bounded_int(_text(form, "party_size") or "1", 1, MAX_PARTY)
    if party is None:
        errors["party_size"] = _("来访人数为 1–{n} 人").format(n=MAX_PARTY)
    else:
        app.party_size = party
    plate_text = _text(form, "plate")
    if plate_text:
        from fengchao.vision.plate_rules import check_plate

        checked = check_plate(plate_text[:20])
        if not checked.valid:
            errors["plate"] = _("车牌号不对：{why}").format(why=checked.reason)
        else:
            app.plate = checked.text
    raw_symptoms = form.get("symptoms")
    symptoms = raw_symptoms if isinstance(raw_symptoms, list) else [raw_symptoms]
    app.symptoms = [s for s in SYMPTOMS if s in symptoms]
    travel = _text(form, "travel")
    if len(travel) > MAX_TRAVEL:
        errors["travel"] = _("近14天行程最多 {n} 个字").format(n=MAX_TRAVEL)
    app.travel = travel[:MAX_TRAVEL]
    code = _text(form, "health_code")
    if code not in HEALTH_CODES:
        errors["health_code"] = _("请选择健康码颜色")
    else:
        app.health_code = code
    return app


@dataclass(frozen=True)
class Host:
    household_id: int
    building_id: int
    place: str


def find_host(*, session: Session, compound_id: int, room: str) -> Host | None:
    """The household at ``room`` (building-unit-room, as the registry's search reads it) in
    the gate's compound; None when there is none (the form says only that)."""
    try:
        address = parse_address(room)
    except FieldError:
        return None
    row = session.execute(
        select(Household.id, Household.building_id, Building.name, Unit.name, Household.room)
        .join(Building, Building.id == Household.building_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(
            Household.compound_id == compound_id,
            Building.name == address.building,
            Unit.name == address.unit,
            Household.room == address.room,
        )
        .limit(1)
    ).first()
    if row is None:
        return None
    return Host(row[0], row[1], f"{row[2]}-{row[3]}-{row[4]}")


def _rate_key(kind: str, value: str) -> str:
    return kind + ":" + get_cipher().lookup_hash("visitor-rate:" + value)[:40]


def take_rate(*, session: Session, kind: str, value: str, limit: int, now: dt.datetime) -> bool:
    """Count one submission for ``value`` in the current hour; False when over ``limit``.
    One row per key, so a flood from one address touches one row and slows nobody else;
    an insert that ignores a conflict and conditional UPDATEs, so that two processes
    counting the same key at once (PostgreSQL) neither fail nor both get the last one."""
    begin_write(session)
    key = _rate_key(kind, value)
    window = now.replace(minute=0, second=0, microsecond=0)
    values = {"key": key, "window_start": window, "count": 0}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(VisitorRate).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(VisitorRate).values(**values).on_conflict_do_nothing())
    session.execute(
        update(VisitorRate)
        .where(VisitorRate.key == key, VisitorRate.window_start != window)
        .values(window_start=window, count=0)
        .execution_options(synchronize_session=False)
    )
    taken = session.execute(
        update(VisitorRate)
        .where(VisitorRate.key == key, VisitorRate.count < limit)
        .values(count=VisitorRate.count + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def approval_needed(level: policy.AlertLevel) -> bool | None:
    """Whether a visitor's pass waits for approval at this level; None: no passes
    (静默: visitors are not admitted)."""
    if level == policy.AlertLevel.lockdown:
        return None
    return level in (policy.AlertLevel.heightened, policy.AlertLevel.closed)


@dataclass
class Submitted:
    """The outcome of a form: the pass row and its private link (shown once)."""

    row: VisitorPass
    link: str
    duplicate: bool = False


def _link_hash(link: str) -> str:
    return hashlib.sha256(link.encode()).hexdigest()


def submit(
    *,
    session: Session,
    gate: PublicGate,
    application: Application,
    form_key: str,
    now: dt.datetime | None = None,
) -> Submitted:
    """Turn a checked application into a pass (active or pending, by the level); the same
    form sent twice (the same ``form_key``) gives the first pass back. Raises
    :class:`VisitorRefusal` naming the field for a room that does not exist."""
    now = now or utcnow()
    begin_write(session)
    key_hash = hashlib.sha256(form_key.encode()).hexdigest()
    existing = session.scalar(select(VisitorPass).where(VisitorPass.form_key == key_hash))
    if existing is not None:
        # The link is not kept in clear: a second send shows the first pass by a new link.
        link = secrets.token_urlsafe(18)
        existing.link_hash = _link_hash(link)
        session.flush()
        return Submitted(existing, link, duplicate=True)
    cipher = get_cipher()
    id_hash = cipher.lookup_hash(application.id_number)
    if watched(session, gate.community_id, id_hash, application.phone, now):
        # Never why: the guard and the property know, the visitor is asked to see them.
        raise VisitorRefusal(_("暂时无法办理，请联系物业"), field="form")
    host = find_host(session=session, compound_id=gate.compound_id, room=application.host_room)
    if host is None:
        raise VisitorRefusal(_("没有找到这个房号，请核对楼栋-单元-房号"), field="host_room")
    level = access.level_at(
        session=session, community_id=gate.community_id, compound_id=gate.compound_id
    )
    needs = approval_needed(level)
    if needs is None:
        raise VisitorRefusal(_("本小区正在静默管理，暂停访客登记"), field="host_room")
    link = secrets.token_urlsafe(18)
    row = VisitorPass(
        community_id=gate.community_id,
        compound_id=gate.compound_id,
        kind=PassKind.visitor,
        status=PassStatus.pending if needs else PassStatus.active,
        name=application.name,
        phone=application.phone,
        id_number_enc=cipher.encrypt(application.id_number),
        id_number_hash=id_hash,
        id_mask=application.id_mask,
        host_household_id=host.household_id,
        host_building_id=host.building_id,
        host_place=host.place,
        purpose=application.purpose,
        stay_hours=application.stay_hours,
        party_size=application.party_size,
        plate=application.plate,
        symptoms=application.symptoms,
        travel=application.travel,
        health_code=application.health_code,
        gate_ids=_pass_gates(session, gate.compound_id, gate.gate_id, application.plate),
        poster_gate_id=gate.gate_id,
        poster_version=gate.poster_version,
        valid_from=now,
        valid_until=now + dt.timedelta(hours=application.stay_hours),
        entries_allowed=1,
        link_hash=_link_hash(link),
        form_key=key_hash,
        created_at=now,
    )
    session.add(row)
    session.flush()
    if needs:
        _ask_approval(session, row)
    return Submitted(row, link)


def _pass_gates(session: Session, compound_id: int, gate_id: int, plate: str | None) -> list[int]:
    """The gate of the poster, and with a plate the compound's vehicle gates too."""
    gates = [gate_id]
    if plate:
        vehicle_gates = session.scalars(
            select(Gate.id).where(
                Gate.compound_id == compound_id,
                Gate.active.is_(True),
                Gate.kind.in_((GateKind.vehicle, GateKind.both)),
            )
        )
        gates += [g for g in vehicle_gates if g != gate_id]
    return gates[: tokens.MAX_GATES]


def _ask_approval(session: Session, row: VisitorPass) -> None:
    from fengchao.notify import service as notify

    to = [notify.Recipient.at(Role.property_staff, ScopeLevel.compound, row.compound_id)]
    if row.host_building_id is not None:
        to.append(
            notify.Recipient.at(Role.building_lead, ScopeLevel.building, row.host_building_id)
        )
    notify.send(
        session=session,
        community_id=row.community_id,
        kind="visitor",
        title=_("访客待审批：{place}").format(place=row.host_place),
        body=_("有访客申请来访 {place}，请审批。").format(place=row.host_place),
        detail=f"{row.name} · {row.purpose}",
        to=to,
        link=f"/visitors/passes/{row.id}",
        key=f"visitor-approval:{row.id}",
        source="visitors",
    )


def pass_by_link(*, session: Session, link: str) -> VisitorPass:
    """The pass behind a visitor's private link; ``NotFound`` otherwise."""
    if not link or len(link) > 64:
        raise NotFound("pass")
    row = session.scalar(select(VisitorPass).where(VisitorPass.link_hash == _link_hash(link)))
    if row is None:
        raise NotFound("pass")
    return row


def token_for(row: VisitorPass) -> str:
    """The signed token of an issued pass (what its QR carries)."""
    return tokens.seal(
        tokens.PassClaims(
            row.id,
            row.community_id,
            row.valid_from,
            row.valid_until,
            row.entries_allowed,
            tuple(row.gate_ids or ()),
        )
    )


def gate_names(session: Session, gate_ids: list[int]) -> list[str]:
    if not gate_ids:
        return []
    names = dict(session.execute(select(Gate.id, Gate.name).where(Gate.id.in_(gate_ids))).all())
    return [names[g] for g in gate_ids if g in names]


def holder_names(session: Session, pass_ids: set[int]) -> dict[int, str]:
    """The names on passes by id, for a gate's list of recent events, which names a
    visitor as the card did (a purged pass has no name any more)."""
    if not pass_ids:
        return {}
    rows = session.execute(
        select(VisitorPass.id, VisitorPass.name).where(VisitorPass.id.in_(pass_ids))
    )
    return {pass_id: name for pass_id, name in rows}


# --- staff -----------------------------------------------------------------------------


def pass_in_scope(actor: Actor) -> ColumnElement[bool]:
    """Passes an account sees: by the host's building for a building lead, else by the
    compound or community of its scope."""
    if access.is_system(actor):
        return true()
    scope = actor.scope
    match scope.level:
        case ScopeLevel.street:
            return VisitorPass.community_id.in_(
                select(Community.id).where(Community.street_id == scope.node_id).scalar_subquery()
            )
        case ScopeLevel.community:
            return VisitorPass.community_id == scope.node_id
        case ScopeLevel.compound:
            return VisitorPass.compound_id == scope.node_id
        case ScopeLevel.building:
            return VisitorPass.host_building_id == scope.node_id
    raise ValueError(scope.level)


def _can_see(actor: Actor) -> None:
    if not any(
        actor.can(p)
        for p in (
            Permission.visitors_manage,
            Permission.visitors_approve,
            Permission.visitors_issue,
        )
    ):
        raise Forbidden("visitors")


def get_pass(*, session: Session, actor: Actor, pass_id: int) -> VisitorPass:
    _can_see(actor)
    row = session.scalar(select(VisitorPass).where(VisitorPass.id == pass_id, pass_in_scope(actor)))
    if row is None:
        raise NotFound(f"visitor pass {pass_id}")
    return row


def list_passes(
    *,
    session: Session,
    actor: Actor,
    status: PassStatus | None = None,
    inside: bool | None = None,
    since: dt.datetime | None = None,
    limit: int = 200,
) -> list[VisitorPass]:
    """Passes in scope, newest first: today's (``since``), the pending ones, or those whose
    holders are inside now."""
    _can_see(actor)
    query = select(VisitorPass).where(pass_in_scope(actor))
    if status is not None:
        query = query.where(VisitorPass.status == status)
    if inside is not None:
        query = query.where(VisitorPass.inside.is_(inside))
    if since is not None:
        query = query.where(VisitorPass.created_at >= since)
    return list(session.scalars(query.order_by(VisitorPass.id.desc()).limit(limit)))


def decide_pass(
    *, session: Session, actor: Actor, pass_id: int, approve: bool, now: dt.datetime | None = None
) -> VisitorPass:
    """Approve or refuse a pending pass: the host's building lead or the property (scope
    decides which passes they see). Approval starts the validity window now."""
    if not (actor.can(Permission.visitors_approve) or actor.can(Permission.visitors_manage)):
        raise Forbidden("visitors.approve")
    begin_write(session)
    row = get_pass(session=session, actor=actor, pass_id=pass_id)
    if row.status != PassStatus.pending:
        raise VisitorRefusal(_("这张通行证已处理过"), field="status")
    now = now or utcnow()
    row.status = PassStatus.active if approve else PassStatus.refused
    row.decided_by_id = actor.user_id or None
    row.decided_at = now
    if approve:
        row.valid_from = now
        row.valid_until = now + dt.timedelta(hours=row.stay_hours)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="approve" if approve else "refuse",
        object_type="visitor_pass",
        object_id=row.id,
        community_id=row.community_id,
    )
    return row


def revoke(*, session: Session, actor: Actor, pass_id: int) -> VisitorPass:
    require(actor, Permission.visitors_manage)
    begin_write(session)
    row = get_pass(session=session, actor=actor, pass_id=pass_id)
    row.status = PassStatus.revoked
    row.decided_by_id = actor.user_id or None
    row.decided_at = utcnow()
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="revoke",
        object_type="visitor_pass",
        object_id=row.id,
        community_id=row.community_id,
    )
    return row


def issue(
    *,
    session: Session,
    actor: Actor,
    gate_id: int,
    name: str,
    phone: str,
    host_room: str,
    hours: int = 2,
    entries: int = 1,
    kind: PassKind = PassKind.visitor,
    plate: str | None = None,
    compound: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[VisitorPass, str]:
    """A pass issued by staff at once (a visitor without a phone, a courier registered at
    the office): returns the row and its private link. The host room is checked in the
    gate's compound; a courier's pass has no host and lasts ``COURIER_DAYS``. A guard may
    issue a visitor's pass at the gate; couriers are registered by the property."""
    require(actor, Permission.visitors_issue)
    if kind == PassKind.courier:
        require(actor, Permission.visitors_manage)
    begin_write(session)
    gate = access.get_gate(session=session, actor=actor, gate_id=gate_id)
    now = now or utcnow()
    errors: dict[str, str] = {}
    clean_name = name.strip()
    if not clean_name or len(clean_name) > MAX_NAME:
        errors["name"] = _("请填写姓名（最多 {n} 个字）").format(n=MAX_NAME)
    try:
        clean_phone = parse_mobile(phone)
    except FieldError as exc:
        errors["phone"] = exc.message
        clean_phone = ""
    host: Host | None = None
    host_compound = gate.compound_id
    if compound:
        # The host may live in another compound of the gate's community (named by its start).
        found = session.scalar(
            select(Compound.id)
            .where(
                Compound.community_id == gate.community_id,
                Compound.name.startswith(compound.strip(), autoescape=True),
            )
            .order_by(Compound.id)
        )
        if found is None:
            raise VisitorRefusal(
                _("本社区没有这个小区：{name}").format(name=compound), field="compound"
            )
        host_compound = found
    if kind == PassKind.visitor:
        host = find_host(session=session, compound_id=host_compound, room=host_room)
        if host is None:
            errors["host_room"] = _("没有找到这个房号，请核对楼栋-单元-房号")
    if not 1 <= hours <= 24 * COURIER_DAYS:
        errors["hours"] = _("有效时长为 1–{n} 小时").format(n=24 * COURIER_DAYS)
    if not 1 <= entries <= COURIER_ENTRIES:
        errors["entries"] = _("可进入次数至少 1 次")
    clean_plate = None
    if plate:
        from fengchao.vision.plate_rules import check_plate

        checked = check_plate(plate)
        if not checked.valid:
            errors["plate"] = _("车牌号不对：{why}").format(why=checked.reason)
        clean_plate = checked.text
    if errors:
        field_name, message = next(iter(errors.items()))
        raise VisitorRefusal(message, field=field_name)
    link = secrets.token_urlsafe(18)
    row = VisitorPass(
        community_id=gate.community_id,
        compound_id=gate.compound_id,
        kind=kind,
        status=PassStatus.active,
        name=clean_name,
        phone=clean_phone,
        host_household_id=host.household_id if host else None,
        host_building_id=host.building_id if host else None,
        host_place=host.place if host else "",
        purpose=_("快递外卖") if kind == PassKind.courier else _("工作人员登记"),
        stay_hours=min(hours, 24),
        party_size=1,
        plate=clean_plate,
        symptoms=[],
        health_code="green",
        gate_ids=[gate.id] if kind == PassKind.courier
        else _pass_gates(session, gate.compound_id, gate.id, clean_plate),
        valid_from=now,
        valid_until=now + dt.timedelta(hours=hours),
        entries_allowed=entries,
        link_hash=_link_hash(link),
        created_at=now,
        created_by_id=actor.user_id or None,
        decided_by_id=actor.user_id or None,
        decided_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="issue",
        object_type="visitor_pass",
        object_id=row.id,
        community_id=row.community_id,
        kind=str(kind),
    )
    return row, link


def purge_passes(*, session: Session, now: dt.datetime | None = None, dry_run: bool = False) -> int:
    """Delete passes whose window ended more than ``visitors.keep_days`` ago (with the
    visitor's personal data), and stale rate counters."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=get_settings().visitors.keep_days)
    old = select(VisitorPass.id).where(VisitorPass.valid_until < cutoff)
    if dry_run:
        return len(session.scalars(old).all())
    begin_write(session)
    deleted = session.execute(delete(VisitorPass).where(VisitorPass.valid_until < cutoff)).rowcount  # type: ignore[attr-defined]
    session.execute(
        delete(VisitorRate).where(VisitorRate.window_start < now - dt.timedelta(days=1))
    )
    return int(deleted or 0)


def record_passage(
    session: Session, pass_id: int, direction: str, at: dt.datetime, entries_allowed: int
) -> bool:
    """In the gate's write transaction: an entry takes one of the pass's entries with one
    conditional UPDATE (of two gates at once only one gets the last), an exit marks the
    holder out. False: no entry left."""
    if direction == "in":
        taken = session.execute(
            update(VisitorPass)
            .where(
                VisitorPass.id == pass_id,
                VisitorPass.entries_used < entries_allowed,
                VisitorPass.entries_used < VisitorPass.entries_allowed,
            )
            .values(entries_used=VisitorPass.entries_used + 1, inside=True, last_in_at=at)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]
    session.execute(
        update(VisitorPass).where(VisitorPass.id == pass_id).values(inside=False, last_out_at=at)
    )
    return True


# --- the form's own token (against scripts, without an outside captcha) ----------------

FORM_TOKEN_HOURS = 2


def _form_key() -> bytes:
    from fengchao.auth.crypto import derive_key

    return derive_key(get_settings().security.data_key_bytes(), b"fengchao/visitor-form")


def form_token(now: dt.datetime | None = None) -> str:
    """A signed token for one showing of the form: when it was shown and a nonce (the
    nonce also makes a second send of the same form give the same pass)."""
    import hmac

    moment = int((now or utcnow()).timestamp())
    nonce = secrets.token_urlsafe(12)
    body = f"{moment}.{nonce}"
    tag = hmac.new(_form_key(), body.encode(), hashlib.sha256).hexdigest()[:24]
    return f"{body}.{tag}"


def check_form_token(text: str, now: dt.datetime | None = None) -> str:
    """The nonce of a form token that is genuine, not older than two hours and was shown
    at least ``visitors.min_fill_seconds`` ago; :class:`VisitorRefusal` otherwise."""
    import hmac

    now = now or utcnow()
    parts = (text or "")[:80].split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        raise VisitorRefusal(_("表单已失效，请重新扫码填写"), field="form")
    body = f"{parts[0]}.{parts[1]}"
    expected = hmac.new(_form_key(), body.encode(), hashlib.sha256).hexdigest()[:24]
    if not hmac.compare_digest(parts[2], expected):
        raise VisitorRefusal(_("表单已失效，请重新扫码填写"), field="form")
    age = now.timestamp() - int(parts[0])
    if age > FORM_TOKEN_HOURS * 3600 or age < -60:
        raise VisitorRefusal(_("表单已失效，请重新扫码填写"), field="form")
    if age < get_settings().visitors.min_fill_seconds:
        raise VisitorRefusal(_("提交太快了，请核对后再提交"), field="form")
    return parts[1]


def _catalogue() -> tuple[str, ...]:
    """The labels above, written out so that the translation script collects them."""
    return (
        _("发热"), _("咳嗽"), _("咽痛"), _("乏力"), _("嗅觉或味觉减退"),
        _("绿码"), _("黄码"), _("红码"),
        _("待审批"), _("有效"), _("未批准"), _("已撤销"),
    )  # fmt: skip


# --- the watchlist (访客限制名单) ----------------------------------------------------------


def watched(
    session: Session, community_id: int, id_hash: str | None, phone: str | None, now: dt.datetime
) -> bool:
    """Whether a person (by ID hash or phone) is on the community's watchlist now."""
    keys = []
    if id_hash:
        keys.append(VisitorWatch.id_number_hash == id_hash)
    if phone:
        keys.append(VisitorWatch.phone == phone)
    if not keys:
        return False
    from sqlalchemy import or_

    found = session.scalar(
        select(VisitorWatch.id)
        .where(VisitorWatch.community_id == community_id, VisitorWatch.expires_at > now, or_(*keys))
        .limit(1)
    )
    return found is not None


def add_watch(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    reason: str,
    days: int,
    id_number: str = "",
    phone: str = "",
    now: dt.datetime | None = None,
) -> VisitorWatch:
    """Put a person on the watchlist by ID number and/or phone, with a reason and an expiry
    (the ID number is kept only as its keyed hash and mask)."""
    require(actor, Permission.visitors_manage)
    own = actor_community(session, actor)
    if own is not None and own != community_id:
        raise NotFound(f"community {community_id}")
    begin_write(session)
    now = now or utcnow()
    id_hash = id_mask = None
    clean_phone = None
    if id_number.strip():
        try:
            parsed = parse_id_number(id_number)
        except FieldError as exc:
            raise VisitorRefusal(exc.message, field="id_number") from None
        id_hash, id_mask = get_cipher().lookup_hash(parsed.number), parsed.masked
    if phone.strip():
        try:
            clean_phone = parse_mobile(phone)
        except FieldError as exc:
            raise VisitorRefusal(exc.message, field="phone") from None
    if id_hash is None and clean_phone is None:
        raise VisitorRefusal(_("请填写身份证号或手机号"), field="id_number")
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise VisitorRefusal(_("请写明原因（最多 200 字）"), field="reason")
    if not 1 <= days <= 365:
        raise VisitorRefusal(_("期限为 1–365 天"), field="days")
    row = VisitorWatch(
        community_id=community_id, id_number_hash=id_hash, id_mask=id_mask, phone=clean_phone,
        reason=reason, expires_at=now + dt.timedelta(days=days),
        created_by_id=actor.user_id or None, created_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit(session=session, actor=actor, action="watch", object_type="visitor_watch",
          object_id=row.id, community_id=community_id)  # fmt: skip
    return row


def list_watch(*, session: Session, actor: Actor, now: dt.datetime | None = None) -> list[Any]:
    require(actor, Permission.visitors_manage)
    now = now or utcnow()
    query = select(VisitorWatch).where(VisitorWatch.expires_at > now)
    own = actor_community(session, actor)
    if own is not None:
        query = query.where(VisitorWatch.community_id == own)
    return list(session.scalars(query.order_by(VisitorWatch.id.desc()).limit(500)))


def remove_watch(*, session: Session, actor: Actor, watch_id: int) -> None:
    require(actor, Permission.visitors_manage)
    begin_write(session)
    row = session.get(VisitorWatch, watch_id)
    own = actor_community(session, actor)
    if row is None or (own is not None and row.community_id != own):
        raise NotFound(f"watch {watch_id}")
    session.delete(row)
    audit(session=session, actor=actor, action="unwatch", object_type="visitor_watch",
          object_id=watch_id, community_id=row.community_id)  # fmt: skip


def actor_community(session: Session, actor: Actor) -> int | None:
    """The community of an account's scope; None for the system and a street's accounts
    (who act on the communities of their street)."""
    if access.is_system(actor) or actor.scope.level == ScopeLevel.street:
        return None
    if actor.scope.level == ScopeLevel.community:
        return actor.scope.node_id
    table = Compound if actor.scope.level == ScopeLevel.compound else Building
    return session.scalar(select(table.community_id).where(table.id == actor.scope.node_id))


# --- read by contact tracing (never written from there) -----------------------------------


@dataclass(frozen=True)
class VisitRecord:
    """A visitor's pass as contact tracing reads it: who came to which household and when.
    ``start``/``end`` are the time the visitor was inside as far as the gate saw it (the
    first entry to the last exit), or the pass's window when the gate recorded no entry."""

    pass_id: int
    name: str
    host_household_id: int
    host_place: str
    start: dt.datetime
    end: dt.datetime
    entered_at: dt.datetime | None
    left_at: dt.datetime | None
    gate_ids: tuple[int, ...]


_VISIT_COLUMNS = (
    VisitorPass.id,
    VisitorPass.name,
    VisitorPass.host_household_id,
    VisitorPass.host_place,
    VisitorPass.valid_from,
    VisitorPass.valid_until,
    VisitorPass.last_in_at,
    VisitorPass.last_out_at,
    VisitorPass.gate_ids,
)


def _visit_rows(session: Session, *conditions: ColumnElement[bool]) -> list[VisitRecord]:
    """Visitor (not courier) passes that were used at a gate or are approved, whose window
    overlaps the given conditions; a pass never approved was never a visit."""
    query = select(*_VISIT_COLUMNS).where(
        VisitorPass.kind == PassKind.visitor,
        VisitorPass.host_household_id.is_not(None),
        (VisitorPass.entries_used > 0) | (VisitorPass.status == PassStatus.active),
        *conditions,
    )
    found = []
    for pid, name, household, place, valid_from, valid_until, came, left, gates in session.execute(
        query.order_by(VisitorPass.valid_from, VisitorPass.id)
    ):
        if household is None:
            continue
        start = came or valid_from
        end = left if left is not None and came is not None and left >= came else valid_until
        found.append(
            VisitRecord(pid, name, household, place, start, end, came, left, tuple(gates or ()))
        )
    return found


def visits_to_households(
    *, session: Session, household_ids: list[int], start: dt.datetime, end: dt.datetime
) -> list[VisitRecord]:
    """Visits received by these households whose pass window overlaps ``start``–``end``
    (over the host household index)."""
    if not household_ids:
        return []
    return _visit_rows(
        session,
        VisitorPass.host_household_id.in_(household_ids),
        VisitorPass.valid_from <= end,
        VisitorPass.valid_until >= start,
    )


def visits_by_visitor(
    *, session: Session, pass_id: int, start: dt.datetime, end: dt.datetime
) -> list[VisitRecord]:
    """Every visit made by the holder of ``pass_id`` within ``start``–``end``: the passes
    with the same ID number (by its keyed hash) or, when none was given, the same phone."""
    row = session.get(VisitorPass, pass_id)
    if row is None:
        return []
    same = (
        VisitorPass.id_number_hash == row.id_number_hash
        if row.id_number_hash
        else VisitorPass.phone == row.phone
    )
    return _visit_rows(
        session,
        VisitorPass.community_id == row.community_id,
        (VisitorPass.id == pass_id) | same,
        VisitorPass.valid_from <= end,
        VisitorPass.valid_until >= start,
    )


@dataclass(frozen=True)
class VisitorCard:
    """What a tracer sees of a visitor: the name, the phone, the ID number masked, whom
    they visited."""

    pass_id: int
    community_id: int
    name: str
    phone: str
    id_mask: str | None
    host_household_id: int | None
    host_place: str


def visitor_cards(*, session: Session, actor: Actor, pass_ids: list[int]) -> dict[int, VisitorCard]:
    """Cards of the given passes within the actor's scope (others are left out): for the
    visitors' staff and for contact tracers."""
    if not actor.can(Permission.tracing_manage):
        _can_see(actor)
    cards: dict[int, VisitorCard] = {}
    for at in range(0, len(pass_ids), 500):
        chunk = pass_ids[at : at + 500]
        query = select(VisitorPass).where(VisitorPass.id.in_(chunk), pass_in_scope(actor))
        for row in session.scalars(query):
            cards[row.id] = VisitorCard(
                row.id,
                row.community_id,
                row.name,
                row.phone,
                row.id_mask,
                row.host_household_id,
                row.host_place,
            )
    return cards


def pass_community(*, session: Session, pass_id: int) -> int | None:
    """The community of a visitor pass (None when there is no such pass, or it was purged)."""
    return session.scalar(select(VisitorPass.community_id).where(VisitorPass.id == pass_id))
