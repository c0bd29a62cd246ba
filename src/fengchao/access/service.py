"""Gates and devices (keys shown once, stored hashed), pass rules, alert levels and the
console PIN: functions taking ``*, session, actor`` that check the role and the scope."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, bindparam, or_, select, true, update
from sqlalchemy.orm import Session

from fengchao.access import policy
from fengchao.access.models import AlertSetting, Device, Gate, GateKind, PassRule, PersonPin
from fengchao.auth import audit_log
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import (
    SYSTEM_ACTOR,
    Actor,
    NotFound,
    Permission,
    Refusal,
    audit,
    require,
)
from fengchao.db import begin_write, utcnow
from fengchao.registry import scope as grid
from fengchao.registry.models import Building, Community, Compound, Household, Person
from fengchao.settings import get_settings
from fengchao.web.i18n import _

KEY_PREFIX = "fcd_"

audit_log.describe(
    actions={
        "gate_create": "新建出入口",
        "gate_soft_temperature": "出入口体温模式",
        "device_create": "新建门禁设备",
        "device_revoke": "吊销门禁设备",
        "rule_create": "新增通行规则",
        "rule_delete": "删除通行规则",
        "alert_level": "切换防控等级",
        "pin_set": "设置通行 PIN",
        "access_search": "查询通行记录",
        "access_event_read": "查看通行记录",
        "access_export": "导出通行记录",
    },
    objects={
        "gate": "出入口",
        "device": "门禁设备",
        "access_rule": "通行规则",
        "alert_level": "防控等级",
        "access_event": "通行记录",
    },
    links={
        "gate": "/access#gate-{id}",
        "access_event": "/access/events/{id}",
        "access_rule": "/access/rules#rule-{id}",
    },
    details={
        "place": "范围",
        "old": "原等级",
        "new": "新等级",
        "effect": "效果",
        "soft": "软模式",
        "gate_id": "出入口",
        "person_id": "人员",
        "household_id": "户",
        "vehicle_id": "车辆",
        "plate": "车牌",
        "start": "从",
        "end": "到",
        "method": "方式",
        "decision": "结果",
        "name": "名称",
    },
)


class AccessRefusal(Refusal):
    """Input the access slice cannot use, naming the field."""

    status = 422


def is_system(actor: Actor) -> bool:
    """The command line's actor, which sees the whole database."""
    return actor == SYSTEM_ACTOR


def gate_in_scope(actor: Actor) -> ColumnElement[bool]:
    """Gates an account sees: those of the compounds in its scope (a building lead's scope
    holds no gate)."""
    if is_system(actor):
        return true()
    scope = actor.scope
    match scope.level:
        case ScopeLevel.street:
            return Gate.community_id.in_(
                select(Community.id).where(Community.street_id == scope.node_id).scalar_subquery()
            )
        case ScopeLevel.community:
            return Gate.community_id == scope.node_id
        case ScopeLevel.compound:
            return Gate.compound_id == scope.node_id
        case ScopeLevel.building:
            return Gate.id.is_(None)
    raise ValueError(scope.level)


# --- gates and devices -------------------------------------------------------------------


def list_gates(*, session: Session, actor: Actor, community_id: int | None = None) -> list[Gate]:
    query = select(Gate).where(gate_in_scope(actor))
    if community_id is not None:
        query = query.where(Gate.community_id == community_id)
    return list(session.scalars(query.order_by(Gate.compound_id, Gate.id)))


def get_gate(*, session: Session, actor: Actor, gate_id: int) -> Gate:
    gate = session.scalar(select(Gate).where(Gate.id == gate_id, gate_in_scope(actor)))
    if gate is None:
        raise NotFound(f"gate {gate_id}")
    return gate


def create_gate(
    *,
    session: Session,
    actor: Actor,
    compound_id: int,
    name: str,
    kind: GateKind | str,
    allows_in: bool = True,
    allows_out: bool = True,
    soft_temperature: bool = False,
) -> Gate:
    """A new gate of a compound in the actor's scope; audited as "gate_create"."""
    require(actor, Permission.access_manage)
    compound = session.get(Compound, compound_id)
    if compound is None or (
        not is_system(actor)
        and not grid.node_in_scope(
            session=session, scope=actor.scope, level=ScopeLevel.compound, node_id=compound_id
        )
    ):
        raise NotFound(f"compound {compound_id}")
    name = name.strip()
    if not name or len(name) > 64:
        raise AccessRefusal(_("出入口名称不能为空，最多 64 个字符"), field="name")
    try:
        kind = GateKind(kind)
    except ValueError:
        raise AccessRefusal(
            _("出入口类型只能是 pedestrian、vehicle 或 both"), field="kind"
        ) from None
    if not allows_in and not allows_out:
        raise AccessRefusal(_("出入口至少要有一个方向"), field="direction")
    begin_write(session)
    taken = session.scalar(
        select(Gate.id).where(Gate.compound_id == compound_id, Gate.name == name)
    )
    if taken is not None:
        raise AccessRefusal(_("本小区已有名为 {name} 的出入口").format(name=name), field="name")
    gate = Gate(
        community_id=compound.community_id,
        compound_id=compound_id,
        name=name,
        kind=kind,
        allows_in=allows_in,
        allows_out=allows_out,
        soft_temperature=soft_temperature,
    )
    session.add(gate)
    session.flush()
    audit(
        session=session, actor=actor, action="gate_create", object_type="gate",
        object_id=gate.id, community_id=gate.community_id, name=name, kind=str(kind),
    )  # fmt: skip
    return gate


def set_soft_temperature(*, session: Session, actor: Actor, gate_id: int, soft: bool) -> Gate:
    require(actor, Permission.access_manage)
    begin_write(session)
    gate = get_gate(session=session, actor=actor, gate_id=gate_id)
    gate.soft_temperature = soft
    session.flush()
    audit(
        session=session, actor=actor, action="gate_soft_temperature", object_type="gate",
        object_id=gate.id, community_id=gate.community_id, soft=soft,
    )  # fmt: skip
    return gate


def key_hash(key: str) -> str:
    # Keys are 32 random bytes: a fast hash is enough (nothing to guess), and a device is
    # found by the hash of its key in one indexed lookup.
    return hashlib.sha256(key.encode()).hexdigest()


def create_device(*, session: Session, actor: Actor, gate_id: int, name: str) -> tuple[Device, str]:
    """A device of a gate and its API key, returned this once (only its hash is kept)."""
    require(actor, Permission.access_manage)
    name = name.strip()
    if not name or len(name) > 64:
        raise AccessRefusal(_("设备名称不能为空，最多 64 个字符"), field="name")
    begin_write(session)
    gate = get_gate(session=session, actor=actor, gate_id=gate_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    device = Device(
        community_id=gate.community_id,
        gate=gate,
        name=name,
        key_hash=key_hash(key),
        key_prefix=key[:10],
    )
    session.add(device)
    session.flush()
    audit(
        session=session, actor=actor, action="device_create", object_type="device",
        object_id=device.id, community_id=gate.community_id, gate_id=gate.id, name=name,
    )  # fmt: skip
    return device, key


def revoke_device(*, session: Session, actor: Actor, device_id: int) -> Device:
    require(actor, Permission.access_manage)
    begin_write(session)
    device = session.scalar(
        select(Device)
        .join(Gate, Gate.id == Device.gate_id)
        .where(Device.id == device_id, gate_in_scope(actor))
    )
    if device is None:
        raise NotFound(f"device {device_id}")
    if device.revoked_at is None:
        device.revoked_at = utcnow()
        session.flush()
        audit(
            session=session, actor=actor, action="device_revoke", object_type="device",
            object_id=device.id, community_id=device.community_id,
        )  # fmt: skip
    return device


@dataclass(frozen=True)
class DeviceRef:
    """An authenticated device as the decision flow needs it (no ORM object)."""

    id: int
    gate_id: int
    community_id: int
    name: str
    last_seen_at: dt.datetime | None


_DEVICE = select(
    Device.id, Device.gate_id, Device.community_id, Device.name, Device.last_seen_at
).where(Device.key_hash == bindparam("key_hash"), Device.revoked_at.is_(None))


class DeviceKeyRefused(Refusal):
    """A missing, unknown or revoked device key."""

    status = 401


def device_for_key(*, session: Session, key: str) -> DeviceRef | None:
    """The active device holding ``key``, or None (unknown or revoked key)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    row = session.connection().execute(_DEVICE, {"key_hash": key_hash(key)}).first()
    if row is None:
        return None
    return DeviceRef(row.id, row.gate_id, row.community_id, row.name, row.last_seen_at)


# Devices this process has seen, by their key's hash. What is kept never changes (a device's
# id, gate, community; its name only labels it); whether the device is still active is not
# kept: each decision reads it in its own transaction (``flows``: with the gate and its alert
# level, in one statement), so a key revoked through any process is refused at its very next
# decision in every process. Unknown keys are not kept.
_known_devices: dict[str, DeviceRef] = {}
_KNOWN_DEVICES_MAX = 10_000


def known_device(*, session: Session, key: str) -> DeviceRef | None:
    """:func:`device_for_key`, remembered by this process; the caller must confirm that the
    device is still active in the transaction that acts on it (the decision flow does)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    digest = key_hash(key)
    device = _known_devices.get(digest)
    if device is not None:
        return device
    device = device_for_key(session=session, key=key)
    if device is not None:
        if len(_known_devices) >= _KNOWN_DEVICES_MAX:
            _known_devices.clear()
        _known_devices[digest] = device
    return device


def forget_device(device_id: int) -> None:
    """Drop a device from this process's memory (found revoked)."""
    for digest, device in list(_known_devices.items()):
        if device.id == device_id:
            _known_devices.pop(digest, None)


def device_seen(device_id: int, now: dt.datetime) -> None:
    """Remember that a device was just touched, so that the next minute's decisions do not
    touch it again."""
    for digest, device in list(_known_devices.items()):
        if device.id == device_id:
            _known_devices[digest] = replace(device, last_seen_at=now)


# --- pass rules --------------------------------------------------------------------------


def to_policy_rule(row: PassRule) -> policy.Rule:
    window = None
    if row.start_time and row.end_time:
        window = policy.TimeWindow(
            dt.time.fromisoformat(row.start_time), dt.time.fromisoformat(row.end_time)
        )
    return policy.Rule(
        id=row.id,
        effect=policy.Effect(row.effect),
        roles=frozenset(policy.PassRole(r) for r in row.roles),
        gate_id=row.gate_id,
        direction=policy.Direction(row.direction) if row.direction else None,
        weekdays=frozenset(row.weekdays),
        window=window,
        levels=frozenset(policy.AlertLevel(level) for level in row.levels),
        quota_exempt=row.quota_exempt,
        name=row.name,
    )


_RULES = select(
    PassRule.id, PassRule.effect, PassRule.roles, PassRule.gate_id, PassRule.direction,
    PassRule.weekdays, PassRule.start_time, PassRule.end_time, PassRule.levels,
    PassRule.quota_exempt, PassRule.name,
).where(PassRule.community_id == bindparam("community_id")).order_by(PassRule.id)  # fmt: skip


def community_policy(*, session: Session, community_id: int) -> policy.Policy:
    """The community's rules (read at every decision: a rule changed in one process holds
    in every other at its next decision) with the settings' health, quota and temperature
    rules."""
    rows = session.connection().execute(_RULES, {"community_id": community_id}).all()
    settings = get_settings().access
    return _policy(
        tuple(tuple(_hashable(v) for v in row) for row in rows),
        settings.fever_celsius,
        settings.quota_persons,
        settings.quota_days,
        tuple(sorted(settings.no_exit_health)),
    )


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@lru_cache(maxsize=64)
def _policy(
    rows: tuple[tuple[object, ...], ...],
    fever: float,
    persons: int,
    days: int,
    no_exit: tuple[str, ...],
) -> policy.Policy:
    rules = tuple(
        to_policy_rule(
            PassRule(
                id=r[0], effect=r[1], roles=list(r[2]), gate_id=r[3],  # type: ignore[call-overload]
                direction=r[4], weekdays=list(r[5]), start_time=r[6], end_time=r[7],  # type: ignore[call-overload]
                levels=list(r[8]), quota_exempt=r[9], name=r[10],  # type: ignore[call-overload]
            )
        )
        for r in rows
    )  # fmt: skip
    return policy.Policy(
        rules=rules,
        health=policy.HealthRules(no_exit=frozenset(no_exit)),
        quota=policy.QuotaRule(persons=persons, days=days),
        temperature=policy.TemperatureRule(threshold=fever),
    )


def list_rules(*, session: Session, actor: Actor, community_id: int) -> list[PassRule]:
    require(actor, Permission.access_read)
    _community_in_scope(session, actor, community_id)
    query = select(PassRule).where(PassRule.community_id == community_id)
    return list(session.scalars(query.order_by(PassRule.id)))


def _community_in_scope(session: Session, actor: Actor, community_id: int) -> None:
    if is_system(actor):
        return
    communities = grid.communities_in_scope(session=session, scope=actor.scope)
    if community_id not in {c.id for c in communities}:
        raise NotFound(f"community {community_id}")


def _hhmm(text: str | None, field: str) -> str | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = dt.time.fromisoformat(text.strip())
    except ValueError:
        raise AccessRefusal(_("时间要写成 08:00 这样"), field=field) from None
    return f"{value:%H:%M}"


def create_rule(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    effect: str,
    name: str = "",
    roles: Sequence[str] = (),
    gate_id: int | None = None,
    direction: str | None = None,
    weekdays: Sequence[int] = (),
    start_time: str | None = None,
    end_time: str | None = None,
    levels: Sequence[str] = (),
    quota_exempt: bool = False,
) -> PassRule:
    """A new pass rule, checked on its own (the contradictions it makes with the others are
    shown by the editor, not refused: deny wins where they meet)."""
    require(actor, Permission.access_manage)
    _community_in_scope(session, actor, community_id)
    try:
        effect_value = policy.Effect(effect)
        role_values = sorted({policy.PassRole(r).value for r in roles})
        level_values = sorted({policy.AlertLevel(v).value for v in levels})
        direction_value = policy.Direction(direction).value if direction else None
    except ValueError as exc:
        raise AccessRefusal(_("规则里有不认识的取值：{v}").format(v=exc), field="rule") from None
    start, end = _hhmm(start_time, "start_time"), _hhmm(end_time, "end_time")
    if (start is None) != (end is None):
        raise AccessRefusal(_("时段要同时写开始和结束时间"), field="end_time")
    if gate_id is not None:
        gate = get_gate(session=session, actor=actor, gate_id=gate_id)
        if gate.community_id != community_id:
            raise NotFound(f"gate {gate_id}")
    row = PassRule(
        community_id=community_id,
        name=name.strip()[:64],
        effect=effect_value.value,
        roles=role_values,
        gate_id=gate_id,
        direction=direction_value,
        weekdays=sorted(set(weekdays)),
        start_time=start,
        end_time=end,
        levels=level_values,
        quota_exempt=quota_exempt,
        created_by=actor.username,
    )
    problem = policy.check_rule(to_policy_rule(row))
    if problem == "empty_window":
        raise AccessRefusal(_("时段的开始和结束不能相同"), field="end_time")
    if problem == "bad_weekday":
        raise AccessRefusal(_("星期只能是 0（周一）到 6（周日）"), field="weekdays")
    begin_write(session)
    session.add(row)
    session.flush()
    audit(
        session=session, actor=actor, action="rule_create", object_type="access_rule",
        object_id=row.id, community_id=community_id, effect=row.effect,
    )  # fmt: skip
    return row


def delete_rule(*, session: Session, actor: Actor, rule_id: int) -> None:
    require(actor, Permission.access_manage)
    begin_write(session)
    row = session.get(PassRule, rule_id)
    if row is None:
        raise NotFound(f"rule {rule_id}")
    _community_in_scope(session, actor, row.community_id)
    audit(
        session=session, actor=actor, action="rule_delete", object_type="access_rule",
        object_id=row.id, community_id=row.community_id, effect=row.effect, name=row.name,
    )  # fmt: skip
    session.delete(row)
    session.flush()


# --- alert levels ------------------------------------------------------------------------

LEVEL_LABELS = {
    policy.AlertLevel.normal: "常态防控",
    policy.AlertLevel.heightened: "加强防控",
    policy.AlertLevel.closed: "封闭管理",
    policy.AlertLevel.lockdown: "静默管理",
}


def level_at(*, session: Session, community_id: int, compound_id: int) -> policy.AlertLevel:
    """The level in force at a compound: its own setting, else its community's, else normal."""
    rows = session.execute(
        select(AlertSetting.place, AlertSetting.level).where(
            AlertSetting.community_id == community_id,
            AlertSetting.place.in_(("community", f"compound:{compound_id}")),
        )
    ).all()
    levels = dict(rows)
    return policy.AlertLevel(
        levels.get(f"compound:{compound_id}") or levels.get("community") or "normal"
    )


def alert_settings(*, session: Session, community_id: int) -> list[AlertSetting]:
    query = select(AlertSetting).where(AlertSetting.community_id == community_id)
    return list(session.scalars(query.order_by(AlertSetting.id)))


def set_level(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    level: str,
    compound_id: int | None = None,
    note: str = "",
) -> AlertSetting:
    """Switch the alert level of a community or of one of its compounds: one action,
    audited ("alert_level"), in force at the next decision of every gate (each decision
    reads it), and broadcast to the community's workers, property staff and guards and
    to the place's group chats. ``compound_id`` with the level of its community clears
    the compound's own setting."""
    require(actor, Permission.alert_switch)
    from fengchao.notify import service as notify
    from fengchao.notify.models import Urgency

    try:
        new = policy.AlertLevel(level)
    except ValueError:
        raise AccessRefusal(
            _("防控等级只能是 normal、heightened、closed 或 lockdown"), field="level"
        ) from None
    _community_in_scope(session, actor, community_id)
    place_name = session.scalar(select(Community.name).where(Community.id == community_id)) or ""
    place = "community"
    if compound_id is not None:
        compound = session.get(Compound, compound_id)
        if compound is None or compound.community_id != community_id:
            raise NotFound(f"compound {compound_id}")
        place, place_name = f"compound:{compound_id}", compound.name
    begin_write(session)
    row = session.scalar(
        select(AlertSetting).where(
            AlertSetting.community_id == community_id, AlertSetting.place == place
        )
    )
    old = row.level if row is not None else None
    if row is None:
        row = AlertSetting(community_id=community_id, compound_id=compound_id, place=place)
        session.add(row)
    row.level, row.set_at, row.set_by, row.note = new.value, utcnow(), actor.username, note[:200]
    session.flush()
    audit(
        session=session, actor=actor, action="alert_level", object_type="alert_level",
        object_id=row.id, community_id=community_id, place=place, old=old, new=new.value,
    )  # fmt: skip
    level_text = _(LEVEL_LABELS[new])
    node = (
        (ScopeLevel.compound, compound_id) if compound_id else (ScopeLevel.community, community_id)
    )
    notify.send(
        session=session,
        community_id=community_id,
        kind="alert_level",
        title=_("{place} 防控等级调整为：{level}").format(place=place_name, level=level_text),
        body=note or _("各卡口从下一次通行起执行新的规则。"),
        to=[
            notify.Recipient.at(Role.community_worker, ScopeLevel.community, community_id),
            notify.Recipient.at(Role.property_staff, *node),
            notify.Recipient.at(Role.guard, *node),
            notify.Recipient.group(*node, below=True),
        ],
        urgency=Urgency.urgent,
        link="/access/alert",
        source="access",
    )
    return row


# --- the console PIN ---------------------------------------------------------------------

_pin_hasher = PasswordHasher()


def _person_in_scope(session: Session, actor: Actor, person_id: int) -> Person:
    from fengchao.registry.scope import household_in_scope

    person = session.scalar(
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .where(
            Person.id == person_id,
            true() if is_system(actor) else household_in_scope(actor.scope),
        )
    )
    if person is None:
        raise NotFound(f"person {person_id}")
    return person


def set_pin(*, session: Session, actor: Actor, person_id: int, pin: str) -> None:
    """Set a resident's console PIN (6 digits, not all the same, not a run), stored as an
    argon2 hash; audited as "pin_set" without the PIN."""
    require(actor, Permission.access_manage)
    if not (len(pin) == 6 and pin.isascii() and pin.isdigit()):
        raise AccessRefusal(_("PIN 必须是 6 位数字"), field="pin")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise AccessRefusal(_("PIN 太容易猜：不要用相同或连续的数字"), field="pin")
    person = _person_in_scope(session, actor, person_id)
    begin_write(session)
    row = session.get(PersonPin, person_id)
    if row is None:
        row = PersonPin(person_id=person_id, community_id=person.community_id, pin_hash="")
        session.add(row)
    row.pin_hash, row.failures, row.locked_until, row.set_at = (
        _pin_hasher.hash(pin),
        0,
        None,
        utcnow(),
    )
    session.flush()
    audit(
        session=session, actor=actor, action="pin_set", object_type="person",
        object_id=person_id, community_id=person.community_id,
    )  # fmt: skip


def verify_pin(*, session: Session, person_id: int, pin: str, now: dt.datetime) -> str:
    """ "ok", "wrong", "locked" or "unset"; reads only (the outcome is written by
    :func:`record_pin_outcome` in the decision's write transaction)."""
    row = session.execute(
        select(PersonPin.pin_hash, PersonPin.locked_until).where(PersonPin.person_id == person_id)
    ).first()
    if row is None:
        return "unset"
    if row.locked_until is not None and row.locked_until > now:
        return "locked"
    try:
        return "ok" if _pin_hasher.verify(row.pin_hash, pin) else "wrong"
    except (VerificationError, InvalidHashError):
        return "wrong"


def record_pin_outcome(*, session: Session, person_id: int, right: bool, now: dt.datetime) -> bool:
    """Count a wrong PIN or clear the count; returns whether this wrong PIN locked it
    (after the configured number in a row, for a while: a 6-digit PIN guessed at that
    pace takes years)."""
    settings = get_settings().access
    row = session.get(PersonPin, person_id)
    if row is None:
        return False
    locked = False
    if right:
        row.failures, row.locked_until = 0, None
    else:
        row.failures += 1
        if row.failures >= settings.pin_max_failures:
            row.failures, locked = 0, True
            row.locked_until = now + dt.timedelta(minutes=settings.pin_lock_minutes)
    session.flush()
    return locked


def touch_device(*, session: Session, device_id: int, now: dt.datetime) -> None:
    """Note that a device was seen (at most once a minute: a write per decision would be
    a write for nothing)."""
    session.execute(
        update(Device)
        .where(
            Device.id == device_id,
            or_(Device.last_seen_at.is_(None), Device.last_seen_at < now - dt.timedelta(minutes=1)),
        )
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def compound_of_building(*, session: Session, building_id: int) -> int | None:
    return session.scalar(select(Building.compound_id).where(Building.id == building_id))
