"""A passage at a gate (通行), one flow used by the device API, the console and the command
line: the frame, plate, code, PIN or picked person → the person or vehicle → the policy at
this gate, now, at this alert level → the decision → one append-only access event (+ the
household quota's counter, + an outbox row when a fever must be told), in one short write
transaction, idempotent by the sender's key.

Everything slow (recognition, reading rules, the PIN's hash) happens before the write
transaction; the transaction itself re-checks the idempotency key, takes the quota pass
with one conditional UPDATE and inserts the event.

Face recognition is a method handler found by dotted path (:data:`METHOD_HANDLERS`,
imported lazily): ``handler(session, *, community_id, frame) -> FaceOutcome`` (see
``fengchao.access.faces``). Without it the face method answers deny, ``face_unavailable``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, String, any_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fengchao.access import policy
from fengchao.access import service as access
from fengchao.access.models import AccessEvent, AlertSetting, Device, Gate, GateKind, QuotaUse
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, require
from fengchao.db import begin_write
from fengchao.registry.models import (
    Building,
    Household,
    Person,
    Relation,
    ResidenceStatus,
    Unit,
    Vehicle,
)
from fengchao.sampling import service as sampling
from fengchao.settings import get_settings
from fengchao.web.i18n import _

METHODS = ("face", "plate", "code", "person", "pin", "pass")

# method → "module:function". The face handler lives in the faces slice of this package;
# tests and other deployments register their own with :func:`register_handler`. The
# visitors slice reads visitor passes (also shown as a ``code``: they start with FV1-) and
# lets a visitor's car in by its plate (``pass_plate``).
METHOD_HANDLERS: dict[str, str] = {
    "face": "fengchao.access.faces:identify_for_gate",
    "pass": "fengchao.visitors.gate:identify_pass",
    "pass_plate": "fengchao.visitors.gate:identify_plate",
}

UNKNOWN_FACE_MESSAGE = "未识别，请到物业登记"

# Quick decisions may be decided in a group, in one write transaction committed once (see
# ``access.device_api``). Within a group, what every decision reads alike (a gate's row with its
# alert level and its device's state, the community's rules) is read once: the group's
# decisions are one transaction, as if decided at its start. ``session.info[GROUP]`` holds
# what was read; ``session.info[WRITING]`` says that the decision under way has begun to
# write, so that its failure fails the group (whose decisions are then decided one by one).
GROUP = "access.decision_group"
WRITING = "access.decision_writing"
KEYS_AT_INSERT = ("keys at insert",)  # PostgreSQL: the group's keys are checked by its INSERT
GROUP_EVENTS = "access.decision_events"  # (values, answer) waiting for the group's INSERT


class GroupAbandoned(Exception):
    """A grouped decision found its idempotency key taken by another process after it
    wrote: the group is rolled back and its decisions decided one by one."""


def register_handler(method: str, target: str) -> None:
    """Use ``target`` ("module:function") for ``method`` from the next decision on."""
    METHOD_HANDLERS[method] = target


def _handler(method: str) -> Callable[..., Any] | None:
    target = METHOD_HANDLERS.get(method)
    if target is None:
        return None
    module_name, _sep, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def has_method(method: str) -> bool:
    """Whether this server can take ``method`` through a handler (``face`` without face
    recognition installed: False), so a console need not send frames for nothing."""
    return _handler(method) is not None


def read_plates(pixels: Any) -> list[Any]:
    """The plates this server's reader finds in an RGB frame (``vision.plates.PlateRead``,
    best first), with the reader the decisions use (one per thread)."""
    return list(_plate_reader().read(pixels))


class FaceOutcomeLike(Protocol):
    person_id: int | None
    distance: float | None
    masked: bool
    reason: str | None
    faces_in_frame: int
    timings: dict[str, float]


@dataclass
class PassOutcome:
    """What a ``pass`` / ``pass_plate`` handler answers: the holder as the gate shows them,
    their role, a refusal code, the pass as a rule for its holder (None: the community's
    rules decide, as for couriers), whether a temperature is required, what the event's
    detail keeps, and ``take(session, direction, at) -> bool``, called in the write
    transaction of an allowed passage (False: no entry left)."""

    card: PersonCard | None = None
    role: policy.PassRole | None = None
    building_id: int | None = None
    refusal: str | None = None
    rule: policy.Rule | None = None
    needs_temperature: bool = False
    detail: dict[str, Any] = field(default_factory=dict)
    take: Callable[[Session, str, dt.datetime], bool] | None = None


class IdempotencyConflict(Refusal):
    """The same idempotency key was used before with a different request."""

    status = 409


class BadPassage(Refusal):
    """A request that cannot be decided as given (names the field)."""

    status = 422


@dataclass(frozen=True)
class PassageRequest:
    """What a gate sends. ``value``: a plate text, a resident code, or a person id (for
    ``person`` and ``pin``); ``frame``: a face or plate image. ``device_time`` is when it
    happened by the device's clock, ``device_sent_at`` its clock when sending (a device
    uploading events it kept while offline sends both)."""

    gate_id: int
    direction: str
    method: str
    value: str | None = None
    frame: bytes | None = None
    pin: str | None = None
    temperature: float | str | None = None
    retest_temperature: float | str | None = None
    device_time: dt.datetime | None = None
    device_sent_at: dt.datetime | None = None
    idempotency_key: str | None = None
    role: str | None = None  # an unregistered person's role as the operator declares it
    # Frames known to belong to one passage (a replayed CSV's ``passage`` column): their
    # idempotency keys start with it, and a masked frame pairs only within it.
    passage: str | None = None
    # A frame sent because something moved (the console): when it holds no face and no
    # temperature was typed, there was no passage, and nothing is recorded.
    skip_empty: bool = False

    def body_hash(self) -> str:
        body = {
            "gate": self.gate_id,
            "direction": self.direction,
            "method": self.method,
            "value": self.value,
            "frame": hashlib.sha256(self.frame).hexdigest() if self.frame else None,
            "pin": hashlib.sha256(self.pin.encode()).hexdigest() if self.pin else None,
            "temperature": str(self.temperature) if self.temperature is not None else None,
            "retest": str(self.retest_temperature) if self.retest_temperature is not None else None,
            "device_time": self.device_time.isoformat() if self.device_time else None,
            "role": self.role,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PersonCard:
    """What the gate shows of a person (no phone, no ID number)."""

    id: int
    name: str
    household_id: int
    place: str  # building-unit-room, e.g. 5-2-301
    relation: str
    health_status: str
    last_sampled: dt.date | None = None  # local date of the last swab, any round
    thumbnail_url: str | None = None


@dataclass(frozen=True)
class VehicleCard:
    id: int
    plate: str
    household_id: int
    place: str


@dataclass
class Decision:
    """The answer to a passage."""

    decision: str  # allow | deny | pending
    reasons: list[str]
    message: str
    gate_id: int
    direction: str
    method: str
    person: PersonCard | None = None
    vehicle: VehicleCard | None = None
    masked: bool = False
    distance: float | None = None
    plate_read: str | None = None
    match_how: str | None = None
    alert_level: str = "normal"
    late: bool = False
    clock_off: bool = False
    event_id: int | None = None
    replayed: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def person_id(self) -> int | None:
        return self.person.id if self.person else None

    @property
    def vehicle_id(self) -> int | None:
        return self.vehicle.id if self.vehicle else None


@dataclass(frozen=True)
class Sender:
    """Who sends the passage: an authenticated device, an operator at the console, or the
    command line (``scope`` keys the idempotency keys)."""

    scope: str
    device_id: int | None = None
    operator: Actor | None = None
    device_seen_at: dt.datetime | None = None  # skips touching a device seen a moment ago

    @classmethod
    def device(cls, device: access.DeviceRef) -> Sender:
        return cls(f"device:{device.id}", device_id=device.id, device_seen_at=device.last_seen_at)

    @classmethod
    def console(cls, actor: Actor, device_id: int | None = None) -> Sender:
        return cls(f"user:{actor.user_id}", device_id=device_id, operator=actor)


# --- messages ----------------------------------------------------------------------------

REASON_TEXT = {
    "resident": "住户，放行",
    "staff": "工作人员，放行",
    "rule_allow": "按通行规则放行",
    "rule_deny": "通行规则不允许",
    "no_rule": "没有允许此身份通行的规则",
    "lockdown": "静默管理期间不能外出",
    "health_no_exit": "健康状态为居家或集中隔离、阳性，不能外出",
    "health_no_entry": "健康状态不允许进入",
    "fever": "体温异常，不能通行，已通知社区",
    "fever_soft": "体温异常，已放行并通知社区",
    "quota_used": "本户本期出入额度已用完",
    "unknown_face": UNKNOWN_FACE_MESSAGE,
    "no_face": "画面中没有人脸，请正对摄像头",
    "several_faces": "画面中有多张人脸，按最大、居中的一张判断",
    "face_unavailable": "人脸识别暂不可用，请用通行码或人工核验",
    "masked_needs_second_frame": "戴口罩：请稍停，再确认一帧",
    "masked_confirmed": "戴口罩，两帧一致，放行",
    "masked_frames_disagree": "戴口罩：两帧结果不一致，请再确认",
    "unknown_vehicle": "车辆未登记",
    "plate_tolerant": "车牌容错匹配，请核对",
    "code_refused": "通行码无效",
    "pin_wrong": "PIN 错误",
    "pin_locked": "PIN 错误次数过多，已暂时锁定",
    "pin_unset": "此人未设置 PIN",
    "moved_out": "此人已迁出",
    "clock_off": "设备时钟偏差过大，已按服务器时间记录",
    "late": "离线补传的记录",
    "visitor_pass": "访客通行证有效，放行",
    "pass_malformed": "这不是访客通行证",
    "pass_forged": "通行证无效（可能被改动过）",
    "pass_other_community": "这是其他社区的通行证",
    "pass_wrong_gate": "通行证不含此出入口",
    "pass_expired": "通行证已过期",
    "pass_not_yet": "通行证尚未生效",
    "pass_unknown": "通行证不存在或已清除",
    "pass_pending": "通行证待审批",
    "pass_revoked": "通行证已撤销或未获批准",
    "pass_used": "通行证次数已用完",
    "pass_stale": "通行证已作废（二维码已更换），请重新登记",
    "pass_unavailable": "访客通行证暂不可用，请人工核验",
    "pass_watch": "请联系物业",
}


def reason_text(code: str) -> str:
    text = REASON_TEXT.get(code)
    if text is None and code.startswith("code_"):
        text = REASON_TEXT["code_refused"]
    return _(text) if text else code


# --- reading the inputs ------------------------------------------------------------------


def _temperature(
    value: float | str | None, rule: policy.TemperatureRule, name: str
) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadPassage(_("体温要写成数字，例如 36.5"), field=name) from None
    if number != number or not rule.valid(number):
        raise BadPassage(
            _("体温 {t} 超出可测范围（{lo}–{hi} °C），请重新测量").format(
                t=value, lo=rule.lowest_valid, hi=rule.highest_valid
            ),
            field=name,
        )
    return round(number, 1)


def _clock(request: PassageRequest, now: dt.datetime) -> tuple[dt.datetime, bool, bool]:
    """(occurred_at, late, clock_off). A device's time is trusted when its clock is within
    the allowed skew of the server's; a far-off clock is flagged and the server's time
    used (also for the quota)."""
    settings = get_settings().access
    skew = dt.timedelta(seconds=settings.max_clock_skew_seconds)
    late_after = dt.timedelta(seconds=settings.late_after_seconds)
    happened = request.device_time
    if happened is None:
        return now, False, False
    if happened.tzinfo is None:
        raise BadPassage(_("设备时间要带时区（ISO 8601）"), field="device_time")
    sent = request.device_sent_at
    if sent is not None:
        if sent.tzinfo is None:
            raise BadPassage(_("设备时间要带时区（ISO 8601）"), field="device_sent_at")
        if abs(sent - now) > skew or happened > sent + skew:
            return now, False, True
        # Trusted clock: the event keeps its time, corrected by the clock's small offset.
        occurred = happened + (now - sent)
        return occurred, now - occurred > late_after, False
    if happened > now + skew:
        return now, False, True
    if now - happened > skew:
        return now, False, True
    return happened, now - happened > late_after, False


def _place(building: str, unit: str, room: str) -> str:
    return f"{building}-{unit}-{room}"


ROLE_OF_RELATION = {
    Relation.owner: policy.PassRole.owner,
    Relation.tenant: policy.PassRole.tenant,
    Relation.family: policy.PassRole.family,
    Relation.other: policy.PassRole.family,
}


@dataclass
class _Subject:
    card: PersonCard | None = None
    vehicle: VehicleCard | None = None
    role: policy.PassRole | None = None
    health: str | None = None
    household_id: int | None = None
    building_id: int | None = None
    moved_out: bool = False
    pass_rule: policy.Rule | None = None  # a visitor's pass: the rule for its holder
    take: Callable[[Session, str, dt.datetime], bool] | None = None


_PERSON_COLUMNS = (
    select(
        Person.id, Person.name, Person.household_id, Person.relation, Person.health_status,
        Person.residence_status, Household.room, Household.building_id,
        Building.name.label("building"), Unit.name.label("unit"),
        sampling.last_sampled_column(Person.id),
    )
    .join(Household, Household.id == Person.household_id)
    .join(Building, Building.id == Household.building_id)
    .join(Unit, Unit.id == Household.unit_id)
)  # fmt: skip
_PERSON = _PERSON_COLUMNS.where(
    Person.id == bindparam("person_id"), Person.community_id == bindparam("community_id")
)
# A group's people by id alone (their community is checked on the rows): with nothing but
# the primary key to go by, no planner reads a whole community. On PostgreSQL one text for
# any number of people (an array), prepared once: a list of a new length is a new
# statement, planned anew (a millisecond, ten times its execution).
_PEOPLE = _PERSON_COLUMNS.add_columns(Person.community_id).where(
    Person.id.in_(bindparam("ids", expanding=True))
)
_PEOPLE_PG = _PERSON_COLUMNS.add_columns(Person.community_id).where(
    Person.id == any_(bindparam("ids", type_=ARRAY(Integer)))
)


def _local_day(taken: dt.datetime | None) -> dt.date | None:
    if taken is None:
        return None
    if taken.tzinfo is None:  # SQLite gives back naive UTC
        taken = taken.replace(tzinfo=dt.UTC)
    return _local(taken).date()


def _person_row(session: Session, person_id: int, community_id: int) -> Any:
    group: dict[tuple[object, ...], Any] | None = session.info.get(GROUP)
    key = ("person", person_id, community_id)
    if group is not None and key in group:
        return group[key]
    return (
        session.connection()
        .execute(_PERSON, {"person_id": person_id, "community_id": community_id})
        .first()
    )


def _person_subject(session: Session, person_id: int, community_id: int) -> _Subject | None:
    row = _person_row(session, person_id, community_id)
    if row is None:
        return None
    card = PersonCard(
        id=row.id,
        name=row.name,
        household_id=row.household_id,
        place=_place(row.building, row.unit, row.room),
        relation=str(row.relation),
        health_status=str(row.health_status),
        last_sampled=_local_day(row.last_sampled),
    )
    return _Subject(
        card=card,
        role=ROLE_OF_RELATION.get(row.relation, policy.PassRole.family),
        health=str(row.health_status),
        household_id=row.household_id,
        building_id=row.building_id,
        moved_out=row.residence_status == ResidenceStatus.moved_out,
    )


_VEHICLE = (
    select(
        Vehicle.id, Vehicle.plate, Vehicle.community_id, Vehicle.household_id,
        Vehicle.owner_person_id, Household.room, Household.building_id,
        Building.name.label("building"), Unit.name.label("unit"),
    )
    .join(Household, Household.id == Vehicle.household_id)
    .join(Building, Building.id == Household.building_id)
    .join(Unit, Unit.id == Household.unit_id)
)  # fmt: skip


def _vehicle_subject(session: Session, vehicle_id: int, row: Any = None) -> _Subject:
    if row is None:
        row = session.execute(_VEHICLE.where(Vehicle.id == vehicle_id)).one()
    vehicle = VehicleCard(
        row.id, row.plate, row.household_id, _place(row.building, row.unit, row.room)
    )
    subject = _Subject(vehicle=vehicle, role=policy.PassRole.owner,
                       household_id=row.household_id, building_id=row.building_id)  # fmt: skip
    if row.owner_person_id is not None:
        owner = _person_subject(session, row.owner_person_id, row.community_id)
        if owner is not None:
            subject.card, subject.role = owner.card, owner.role
    return subject


_VEHICLES_BY_PLATE = _VEHICLE.where(
    Vehicle.community_id == bindparam("community_id"),
    Vehicle.plate.in_(bindparam("plates", expanding=True)),
).order_by(Vehicle.id)
_VEHICLES_BY_PLATE_PG = _VEHICLE.where(
    Vehicle.community_id == bindparam("community_id"),
    Vehicle.plate == any_(bindparam("plates", type_=ARRAY(String))),
).order_by(Vehicle.id)


def read_ahead(
    session: Session,
    community_id: int,
    *,
    people: list[str],
    plates: list[str],
    keys: list[tuple[str, str]],
) -> None:
    """For a group of decisions in a community: read in one statement each the people and
    the plates they name (``value`` as sent) and which of their idempotency keys (scope,
    key) were used before, rather than one statement of each per decision."""
    from fengchao.vision.plate_rules import normalise_plate

    group: dict[tuple[object, ...], Any] = session.info[GROUP]
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    ids = sorted({number for value in people if (number := _person_number(value))})
    if ids:
        rows = connection.execute(_PEOPLE_PG if postgresql else _PEOPLE, {"ids": ids})
        found = {row.id: row for row in rows if row.community_id == community_id}
        for person_id in ids:
            group[("person", person_id, community_id)] = found.get(person_id)
    texts = sorted({text for value in plates if 0 < len(text := normalise_plate(value)) <= 12})
    if texts:
        by_plate: dict[str, Any] = {}
        for row in connection.execute(
            _VEHICLES_BY_PLATE_PG if postgresql else _VEHICLES_BY_PLATE,
            {"plates": texts, "community_id": community_id},
        ):
            by_plate.setdefault(row.plate, row)  # the first registered, as one by one
        for text in texts:
            group[("plate", text, community_id)] = by_plate.get(text)
    if postgresql:
        # Not read: a key already taken fails the group's one INSERT (write_group_events),
        # and the group is decided again one by one. Reading them cost more than the rest
        # of the group's reads together while the record was young (its statistics stale).
        group[KEYS_AT_INSERT] = True
    elif keys:
        lists = {"scopes": sorted({s for s, _k in keys}), "keys": sorted({k for _s, k in keys})}
        used = {(row[0], row[1]) for row in connection.execute(_KEYS_USED, lists)}
        for scope, key in keys:
            group[("key", scope, key)] = (scope, key) in used


# --- plates ------------------------------------------------------------------------------

_plate_cache: dict[int, tuple[float, tuple[int, int], Any]] = {}
_plate_cache_lock = threading.Lock()
_reader_local = threading.local()
PLATE_INDEX_SECONDS = 30.0


def _plate_index(session: Session, community_id: int) -> Any:
    """The community's PlateIndex, rebuilt when vehicles were added or removed or after
    30 seconds (an edited plate is seen within that)."""
    from fengchao.vision.plate_match import PlateIndex

    fingerprint = tuple(
        session.execute(
            select(func.count(Vehicle.id), func.coalesce(func.max(Vehicle.id), 0)).where(
                Vehicle.community_id == community_id
            )
        ).one()
    )
    with _plate_cache_lock:
        cached = _plate_cache.get(community_id)
    if cached and cached[1] == fingerprint and time.monotonic() - cached[0] < PLATE_INDEX_SECONDS:
        return cached[2]
    plates = session.scalars(select(Vehicle.plate).where(Vehicle.community_id == community_id))
    index = PlateIndex(list(plates), local_province=get_settings().vision.local_province)
    with _plate_cache_lock:
        _plate_cache[community_id] = (time.monotonic(), fingerprint, index)  # type: ignore[assignment]
    return index


def _plate_reader() -> Any:
    reader = getattr(_reader_local, "reader", None)
    if reader is None:
        from fengchao.vision.plates import plate_reader_class

        reader = plate_reader_class(get_settings().vision.plate_reader)()
        _reader_local.reader = reader
    return reader


def _text_read(text: str) -> Any:
    from fengchao.vision.plates import PlateRead

    corners = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    return PlateRead(text, corners, tuple(1.0 for _c in text), 1.0, 1.0)


# --- the flow ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRef:
    """A gate as the flow needs it, with the alert level in force there."""

    id: int
    community_id: int
    compound_id: int
    name: str
    kind: str
    allows_in: bool
    allows_out: bool
    soft_temperature: bool
    level: policy.AlertLevel


_OWN_LEVEL = (
    select(AlertSetting.level)
    .where(AlertSetting.compound_id == Gate.compound_id)
    .correlate(Gate)
    .scalar_subquery()
)
_COMMUNITY_LEVEL = (
    select(AlertSetting.level)
    .where(AlertSetting.community_id == Gate.community_id, AlertSetting.place == "community")
    .correlate(Gate)
    .scalar_subquery()
)
_DEVICE_ACTIVE = (
    select(Device.id)
    .where(Device.id == bindparam("device_id"), Device.revoked_at.is_(None))
    .scalar_subquery()
)
_GATE = select(
    Gate.id, Gate.community_id, Gate.compound_id, Gate.name, Gate.kind, Gate.allows_in,
    Gate.allows_out, Gate.soft_temperature, _OWN_LEVEL.label("own_level"),
    _COMMUNITY_LEVEL.label("community_level"),
).where(Gate.id == bindparam("gate_id"), Gate.active.is_(True))  # fmt: skip
# The same row, and whether the sending device is still active (one statement: the device's
# key is remembered per process, its revocation is read by every decision).
_GATE_AND_DEVICE = _GATE.add_columns(_DEVICE_ACTIVE.label("device_active"))
# The device alone, for a decision at an unknown or inactive gate (a refused key comes first).
_DEVICE_ONLY = select(_DEVICE_ACTIVE.label("device_active"))


def _gate_row(session: Session, gate_id: int, sender: Sender) -> Any:
    """The gate's row (None: unknown or inactive); raises ``DeviceKeyRefused`` when the
    sender is a device that was revoked."""
    group: dict[tuple[object, ...], Any] | None = session.info.get(GROUP)
    if group is None:
        return _read_gate_row(session, gate_id, sender)
    key = ("gate", gate_id, sender.device_id, sender.operator is not None)
    if key not in group:
        group[key] = _read_gate_row(session, gate_id, sender)
    return group[key]


def _read_gate_row(session: Session, gate_id: int, sender: Sender) -> Any:
    connection = session.connection()
    if sender.device_id is None or sender.operator is not None:
        return connection.execute(_GATE, {"gate_id": gate_id}).first()
    params = {"gate_id": gate_id, "device_id": sender.device_id}
    row = connection.execute(_GATE_AND_DEVICE, params).first()
    active = (
        row.device_active if row is not None else connection.execute(_DEVICE_ONLY, params).scalar()
    )
    if active is None:
        access.forget_device(sender.device_id)
        raise access.DeviceKeyRefused(_("设备密钥无效或已吊销"), field="X-Device-Key")
    return row


def _gate_ref(row: Any, gate_id: int) -> GateRef:
    if row is None:
        raise NotFound(f"gate {gate_id}")
    level = policy.AlertLevel(row.own_level or row.community_level or "normal")
    return GateRef(
        row.id, row.community_id, row.compound_id, row.name, str(row.kind), row.allows_in,
        row.allows_out, row.soft_temperature, level,
    )  # fmt: skip


def _gate(session: Session, gate_id: int) -> GateRef:
    """The active gate and its alert level (its compound's own, else its community's, else
    normal: see :func:`fengchao.access.service.level_at`), read in one statement."""
    return _gate_ref(session.connection().execute(_GATE, {"gate_id": gate_id}).first(), gate_id)


_REPLAY = select(AccessEvent.id, AccessEvent.body_hash).where(
    AccessEvent.idem_scope == bindparam("scope"), AccessEvent.idem_key == bindparam("key")
)
# Two lists, each a range of the unique index on (scope, key) (SQLite uses no index for
# pairs of values).
_KEYS_USED = select(AccessEvent.idem_scope, AccessEvent.idem_key).where(
    AccessEvent.idem_scope.in_(bindparam("scopes", expanding=True)),
    AccessEvent.idem_key.in_(bindparam("keys", expanding=True)),
)


def _rules(session: Session, community_id: int) -> policy.Policy:
    group: dict[tuple[object, ...], Any] | None = session.info.get(GROUP)
    if group is None:
        return access.community_policy(session=session, community_id=community_id)
    key = ("rules", community_id)
    if key not in group:
        group[key] = access.community_policy(session=session, community_id=community_id)
    return group[key]  # type: ignore[no-any-return]


def _replayed(session: Session, sender: Sender, request: PassageRequest) -> Decision | None:
    if request.idempotency_key is None:
        return None
    group: dict[tuple[object, ...], Any] | None = session.info.get(GROUP)
    if group is not None and (
        group.get(KEYS_AT_INSERT)
        or group.get(("key", sender.scope, request.idempotency_key)) is False
    ):
        # Not used before the group (or found taken by its INSERT); a key used twice within
        # it fails its insert: the group is then decided one by one.
        return None
    found = (
        session.connection()
        .execute(_REPLAY, {"scope": sender.scope, "key": request.idempotency_key})
        .first()
    )
    if found is None:
        return None
    if found.body_hash != request.body_hash():
        raise IdempotencyConflict(
            _("幂等键 {key} 已用于另一个请求").format(key=request.idempotency_key[:40]),
            field="idempotency_key",
        )
    event = session.get(AccessEvent, found.id)
    assert event is not None
    return decision_of_event(session, event, replayed=True)


def decision_of_event(session: Session, event: AccessEvent, *, replayed: bool = False) -> Decision:
    """The answer an event recorded (for a retried request, and the record's pages)."""
    card = None
    vehicle = None
    if event.vehicle_id is not None:
        subject = _vehicle_subject(session, event.vehicle_id)
        card, vehicle = subject.card, subject.vehicle
    elif event.person_id is not None:
        found = _person_subject(session, event.person_id, event.community_id)
        card = found.card if found else None
    return Decision(
        decision=event.decision,
        reasons=list(event.reasons),
        message=_message(event.decision, list(event.reasons)),
        gate_id=event.gate_id,
        direction=event.direction,
        method=event.method,
        person=card,
        vehicle=vehicle,
        masked=event.masked,
        distance=event.distance,
        plate_read=event.plate_read,
        match_how=event.match_how,
        alert_level=event.alert_level,
        late=event.late,
        clock_off=event.clock_off,
        event_id=event.id,
        replayed=replayed,
    )


def _message(decision: str, reasons: list[str]) -> str:
    main = [r for r in reasons if r not in ("late",)]
    return "；".join(reason_text(r) for r in main[:2]) if main else decision


def _local(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(ZoneInfo(get_settings().timezone)).replace(tzinfo=None)


def decide(
    *,
    session: Session,
    request: PassageRequest,
    sender: Sender,
    now: dt.datetime | None = None,
) -> Decision:
    """Decide one passage and record it. Raises ``NotFound`` (unknown or inactive gate, a
    gate outside the operator's scope), :class:`BadPassage` (a method the gate does not
    take, a bad temperature, an unreadable frame…), :class:`IdempotencyConflict`."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    now = now or dt.datetime.now(dt.UTC)
    if sender.operator is not None:
        require(sender.operator, Permission.gate_operate)
    quick = request.method in ("person", "code") or (
        request.method == "plate" and not request.frame
    )
    if quick:
        # Nothing slow before the write: one transaction, the write lock held ~a millisecond.
        begin_write(session)
    # A device is checked first (revoked: refused, even a retry), then a retry answered.
    gate_row = _gate_row(session, request.gate_id, sender)
    if (replay := _replayed(session, sender, request)) is not None:
        return replay
    gate = _gate_ref(gate_row, request.gate_id)
    if sender.operator is not None:
        access.get_gate(session=session, actor=sender.operator, gate_id=gate.id)
    if request.method not in METHODS:
        raise BadPassage(_("通行方式只能是 face、plate、code、person、pin 或 pass"), field="method")
    if request.direction not in ("in", "out"):
        raise BadPassage(_("方向只能是 in 或 out"), field="direction")
    if (request.direction == "in" and not gate.allows_in) or (
        request.direction == "out" and not gate.allows_out
    ):
        raise BadPassage(_("这个出入口不走这个方向"), field="direction")
    if request.method == "plate" and gate.kind == GateKind.pedestrian.value:
        raise BadPassage(_("人行出入口不识别车牌"), field="method")
    if request.idempotency_key is not None and not 1 <= len(request.idempotency_key) <= 128:
        raise BadPassage(_("幂等键最多 128 个字符"), field="idempotency_key")
    rules = _rules(session, gate.community_id)
    temperature = _temperature(request.temperature, rules.temperature, "temperature")
    retest = _temperature(request.retest_temperature, rules.temperature, "retest_temperature")
    occurred_at, late, clock_off = _clock(request, now)

    # Who or what is at the gate.
    t0 = time.perf_counter()
    subject = _Subject()
    refusals: list[str] = []
    notes: list[str] = []
    masked = False
    distance: float | None = None
    plate_read: str | None = None
    match_how: str | None = None
    pending = False
    detail: dict[str, Any] = {}
    method = request.method
    if method == "person" and not (request.value or "").strip() and request.role:
        # A courier, contractor or visitor not in the registry: the operator at the console
        # vouches for the role, and the rules for that role decide.
        if sender.operator is None:
            raise BadPassage(_("只有值守人员可以按身份放行未登记人员"), field="role")
        try:
            subject = _Subject(role=policy.PassRole(request.role))
        except ValueError:
            raise BadPassage(_("身份或防控等级不认识"), field="role") from None
        detail["declared_role"] = subject.role.value if subject.role else None
    elif method in ("person", "pin"):
        person_id = _person_id(request.value)
        found = _person_subject(session, person_id, gate.community_id)
        if found is None:
            raise BadPassage(_("本社区没有编号为 {id} 的人").format(id=person_id), field="value")
        subject = found
        if method == "pin" and not request.pin:
            raise BadPassage(_("请输入 PIN"), field="pin")
    elif method == "pass" or (method == "code" and _looks_like_pass(request.value)):
        subject, refusal = _pass_subject(session, gate, request, temperature, now, detail)
        if refusal:
            refusals.append(refusal)
    elif method == "code":
        subject, refusal = _code_subject(session, request.value, gate.community_id)
        if refusal:
            refusals.append(refusal)
            detail["code"] = refusal
    elif method == "plate":
        subject, plate_read, match_how, refusal = _plate_subject(
            session, request, gate.community_id
        )
        if refusal == "unknown_vehicle" and plate_read:
            found_pass = _pass_plate(session, gate, request, plate_read, temperature, now, detail)
            if found_pass is not None:
                subject, refusal = found_pass
                match_how = "visitor_pass"
        if refusal:
            refusals.append(refusal)
        elif match_how == "tolerant":
            notes.append("plate_tolerant")
    else:
        outcome = _face(session, request, gate.community_id)
        if outcome is None:
            refusals.append("face_unavailable")
        else:
            timings.update({f"face_{k}": v for k, v in outcome.timings.items()})
            masked, distance = outcome.masked, outcome.distance
            if outcome.faces_in_frame > 1:
                notes.append("several_faces")
            if outcome.reason == "bad_image":
                raise BadPassage(_("画面不是可用的图片"), field="frame")
            if (
                outcome.reason == "no_face"
                and request.skip_empty
                and request.temperature in (None, "")
                and request.retest_temperature in (None, "")
            ):
                return _unrecorded(gate, request, "no_face")
            if outcome.reason in ("no_face", "unknown_face") or outcome.person_id is None:
                refusals.append(outcome.reason or "unknown_face")
            else:
                found = _person_subject(session, outcome.person_id, gate.community_id)
                if found is None:
                    refusals.append("unknown_face")
                else:
                    subject = found
                    if masked:
                        agreed = _masked_partner(
                            session, sender, gate.id, found, now, request.passage
                        )
                        if agreed:
                            notes.append("masked_confirmed")
                        else:
                            pending = True
                            notes.append("masked_needs_second_frame")
    if subject.moved_out:
        refusals.append("moved_out")
    timings["identify_ms"] = (time.perf_counter() - t0) * 1000

    # The policy.
    t1 = time.perf_counter()
    level = gate.level
    verdict: policy.Verdict | None = None
    if not refusals and subject.role is not None:
        decisive = retest if retest is not None else temperature
        verdict = policy.evaluate(
            policy.Passage(
                role=subject.role,
                gate_id=gate.id,
                direction=policy.Direction(request.direction),
                at=_local(occurred_at),
                level=level,
                health=subject.health,
                temperature=decisive,
                soft_temperature=gate.soft_temperature,
            ),
            rules if subject.pass_rule is None else _with_rule(rules, subject.pass_rule),
        )
        if not verdict.allowed:
            refusals.extend(verdict.reasons)
        else:
            notes = [*verdict.reasons, *notes]
        if verdict.rule is not None and verdict.rule is subject.pass_rule:
            notes = ["visitor_pass" if r == "rule_allow" else r for r in notes]
        elif verdict.rule is not None:
            detail["rule_id"] = verdict.rule.id
    decisive = retest if retest is not None else temperature
    fever = (
        verdict.fever
        if verdict is not None
        else (decisive is not None and decisive >= rules.temperature.threshold)
    )
    if fever and verdict is None:
        # Whoever it is (an unknown face, a refused code), a fever at the gate is told.
        refusals.append("fever")
    timings["policy_ms"] = (time.perf_counter() - t1) * 1000
    if pending:
        # The second frame is what the gate waits for: say so first.
        notes.remove("masked_needs_second_frame")
        notes.insert(0, "masked_needs_second_frame")
    if late:
        notes.append("late")
    if clock_off:
        notes.append("clock_off")

    # The write: short, after everything slow.
    t2 = time.perf_counter()
    pin_outcome = None
    if method == "pin" and not refusals and subject.card is not None:
        # Verified before the write transaction: argon2 takes tens of milliseconds.
        pin_outcome = access.verify_pin(
            session=session, person_id=subject.card.id, pin=request.pin or "", now=now
        )
        if pin_outcome != "ok":
            refusals.insert(0, f"pin_{pin_outcome}")
    begin_write(session)
    session.info[WRITING] = True
    # A quick passage looked for its key inside this transaction already; a slow one (a
    # frame read outside it) looks again now that it writes.
    if not quick and (replay := _replayed(session, sender, request)) is not None:
        return replay
    if pin_outcome in ("ok", "wrong") and subject.card is not None:
        locked = access.record_pin_outcome(
            session=session, person_id=subject.card.id, right=pin_outcome == "ok", now=now
        )
        if locked:
            refusals[0] = "pin_locked"
    decision = "deny" if refusals else ("pending" if pending else "allow")
    # A far-off clock already put occurred_at at the server's time (not trusted for quotas).
    takes_quota = decision == "allow" and verdict is not None and verdict.takes_quota
    if takes_quota and not _take_quota(
        session, gate.community_id, subject.household_id, occurred_at, rules.quota
    ):
        decision = "deny"
        refusals.append("quota_used")
    taken = subject.take is None or decision != "allow"
    if not taken and not subject.take(session, request.direction, occurred_at):  # type: ignore[misc]
        decision = "deny"
        refusals.append("pass_used")
    reasons = refusals + notes if decision == "deny" else notes
    operator = sender.operator
    values = dict(
        community_id=gate.community_id,
        compound_id=gate.compound_id,
        gate_id=gate.id,
        device_id=sender.device_id,
        direction=request.direction,
        method=method,
        decision=decision,
        reasons=reasons,
        person_id=subject.card.id if subject.card and subject.card.id else None,
        household_id=subject.household_id,
        building_id=subject.building_id,
        vehicle_id=subject.vehicle.id if subject.vehicle else None,
        plate_read=plate_read,
        match_how=match_how,
        masked=masked,
        distance=distance,
        temperature=temperature,
        retest_temperature=retest,
        alert_level=level.value,
        device_time=request.device_time,
        occurred_at=occurred_at,
        server_time=now,
        late=late,
        clock_off=clock_off,
        operator_id=operator.user_id if operator else None,
        operator_name=operator.username if operator else None,
        idem_scope=sender.scope if request.idempotency_key else None,
        idem_key=request.idempotency_key,
        body_hash=request.body_hash() if request.idempotency_key else None,
        detail=detail or None,
    )
    # In a group, the event waits for the group's one INSERT (write_group_events), unless a
    # fever alert must link to it now.
    deferred = GROUP in session.info and not fever
    event_id = None
    if not deferred:
        write_group_events(session)  # the group's events before this one, in their order
        # One INSERT … ON CONFLICT DO NOTHING: a retry that raced this one (another
        # process, PostgreSQL) finds the key taken and is answered with the first answer.
        event_id = _insert_event(session, values)
        if event_id is None:
            if GROUP in session.info:
                raise GroupAbandoned(request.idempotency_key)
            session.rollback()  # the quota pass taken above goes back
            if (replay := _replayed(session, sender, request)) is not None:
                return replay
            raise RuntimeError("idempotency key taken but no event found")
    if fever and decision != "pending":  # a pending frame's fever is told by the next
        assert event_id is not None  # not deferred: a fever is inserted at once
        _fever_alert(
            session,
            gate,
            event_id,
            decision,
            subject,
            retest if retest is not None else temperature,
        )
    seen = sender.device_seen_at
    if sender.device_id is not None and (seen is None or now - seen > dt.timedelta(minutes=1)):
        access.touch_device(session=session, device_id=sender.device_id, now=now)
        access.device_seen(sender.device_id, now)
    timings["write_ms"] = (time.perf_counter() - t2) * 1000
    timings["total_ms"] = (time.perf_counter() - started) * 1000
    answer = Decision(
        decision=decision,
        reasons=reasons,
        message=_message(decision, reasons),
        gate_id=gate.id,
        direction=request.direction,
        method=method,
        person=subject.card,
        vehicle=subject.vehicle,
        masked=masked,
        distance=distance,
        plate_read=plate_read,
        match_how=match_how,
        alert_level=level.value,
        late=late,
        clock_off=clock_off,
        event_id=event_id,
        timings={k: round(v, 2) for k, v in timings.items()},
    )
    if deferred:
        session.info.setdefault(GROUP_EVENTS, []).append((values, answer))
    return answer


def _unrecorded(gate: GateRef, request: PassageRequest, reason: str) -> Decision:
    """The answer to a frame that held nothing to decide on (no event: ``event_id`` None)."""
    return Decision(
        decision="deny",
        reasons=[reason],
        message=_message("deny", [reason]),
        gate_id=gate.id,
        direction=request.direction,
        method=request.method,
        alert_level=gate.level.value,
    )


def _person_number(value: str | None) -> int | None:
    try:
        return _person_id(value)
    except BadPassage:
        return None


def _person_id(value: str | None) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise BadPassage(_("人员编号要写成数字"), field="value") from None
    if not 1 <= number < 2**31:
        raise BadPassage(_("人员编号要写成数字"), field="value")
    return number


def _code_subject(
    session: Session, value: str | None, community_id: int
) -> tuple[_Subject, str | None]:
    from fengchao.access import codes

    try:
        resolved = codes.resolve_code(session, (value or "").strip(), community_id=community_id)
    except codes.CodeRefused as refused:
        return _Subject(), f"code_{refused.code}"
    found = _person_subject(session, resolved.person_id, community_id)
    if found is None:
        return _Subject(), "code_unknown_person"
    return found, None


def _looks_like_pass(value: str | None) -> bool:
    return bool(value) and str(value).strip().upper().startswith("FV1-")


def _with_rule(rules: policy.Policy, rule: policy.Rule) -> policy.Policy:
    from dataclasses import replace

    return replace(rules, rules=(*rules.rules, rule))


def _from_pass(
    outcome: PassOutcome, request: PassageRequest, temperature: float | None, detail: dict[str, Any]
) -> tuple[_Subject, str | None]:
    detail.update(outcome.detail)
    if outcome.refusal:
        return _Subject(card=outcome.card), outcome.refusal
    if outcome.needs_temperature and temperature is None and request.retest_temperature is None:
        raise BadPassage(_("访客、快递人员进入须测体温"), field="temperature")
    subject = _Subject(
        card=outcome.card, role=outcome.role, building_id=outcome.building_id,
        pass_rule=outcome.rule, take=outcome.take,
    )  # fmt: skip
    return subject, None


def _pass_subject(
    session: Session,
    gate: GateRef,
    request: PassageRequest,
    temperature: float | None,
    now: dt.datetime,
    detail: dict[str, Any],
) -> tuple[_Subject, str | None]:
    handler = _handler("pass")
    if handler is None:
        return _Subject(), "pass_unavailable"
    outcome: PassOutcome = handler(
        session, gate=gate, value=(request.value or "")[:200], direction=request.direction, now=now
    )
    return _from_pass(outcome, request, temperature, detail)


def _pass_plate(
    session: Session,
    gate: GateRef,
    request: PassageRequest,
    plate: str,
    temperature: float | None,
    now: dt.datetime,
    detail: dict[str, Any],
) -> tuple[_Subject, str | None] | None:
    """A plate not registered to a household: a visitor's pass for it, if any."""
    handler = _handler("pass_plate")
    if handler is None:
        return None
    outcome: PassOutcome | None = handler(
        session, gate=gate, plate=plate, direction=request.direction, now=now
    )
    if outcome is None:
        return None
    return _from_pass(outcome, request, temperature, detail)


def _plate_subject(
    session: Session, request: PassageRequest, community_id: int
) -> tuple[_Subject, str | None, str | None, str | None]:
    """(subject, text read, how matched, refusal)."""
    from fengchao.vision.images import ImageError, decode_image
    from fengchao.vision.plate_rules import normalise_plate

    if request.frame is not None:
        try:
            pixels = decode_image(request.frame)
        except ImageError as exc:
            raise BadPassage(exc.message, field="frame") from None
        reads = _plate_reader().read(pixels)
        match = _plate_index(session, community_id).match_frame(reads)
        read_text: str = match.read
    else:
        text = normalise_plate(request.value or "")
        if not text or len(text) > 12:
            raise BadPassage(_("车牌号不能为空，最多 12 个字符"), field="value")
        read_text = text
        # Fast path: the exact plate by index, without the community's whole plate list.
        group: dict[tuple[object, ...], Any] | None = session.info.get(GROUP)
        key = ("plate", text, community_id)
        if group is not None and key in group:
            row = group[key]
            if row is not None:
                return _vehicle_subject(session, row.id, row), text, "exact", None
        else:
            vehicle_id = session.scalar(
                select(Vehicle.id)
                .where(Vehicle.community_id == community_id, Vehicle.plate == text)
                .order_by(Vehicle.id)
            )
            if vehicle_id is not None:
                return _vehicle_subject(session, vehicle_id), text, "exact", None
        match = _plate_index(session, community_id).match(_text_read(text))
    if not match.matched:
        return _Subject(), read_text[:32] or None, None, "unknown_vehicle"
    vehicle_id = session.scalar(
        select(Vehicle.id)
        .where(Vehicle.community_id == community_id, Vehicle.plate == match.plate)
        .order_by(Vehicle.id)
    )
    if vehicle_id is None:
        return _Subject(), read_text[:32], None, "unknown_vehicle"
    return _vehicle_subject(session, vehicle_id), read_text[:32], match.how, None


def _face(session: Session, request: PassageRequest, community_id: int) -> FaceOutcomeLike | None:
    if not request.frame:
        raise BadPassage(_("刷脸需要一帧图片"), field="frame")
    handler = _handler("face")
    if handler is None:
        return None
    outcome: FaceOutcomeLike = handler(session, community_id=community_id, frame=request.frame)
    return outcome


def _masked_partner(
    session: Session,
    sender: Sender,
    gate_id: int,
    subject: _Subject,
    now: dt.datetime,
    passage: str | None = None,
) -> bool:
    """Whether the previous frame of this passage (same device, or same gate from the
    console, within a few seconds; or, when the frames name their passage, the previous
    frame of that passage) was a masked match of the same person left pending."""
    assert subject.card is not None
    window = dt.timedelta(seconds=get_settings().access.masked_pair_seconds)
    query = (
        select(AccessEvent.person_id, AccessEvent.decision)
        .where(
            AccessEvent.gate_id == gate_id,
            AccessEvent.server_time >= now - window,
            AccessEvent.server_time <= now,
            AccessEvent.method == "face",
        )
        .order_by(AccessEvent.id.desc())
        .limit(1)
    )
    if sender.device_id is not None:
        query = query.where(AccessEvent.device_id == sender.device_id)
    if passage:
        query = query.where(
            AccessEvent.idem_scope == sender.scope,
            AccessEvent.idem_key.startswith(passage, autoescape=True),
        )
    last = session.execute(query).first()
    return last is not None and last.decision == "pending" and last.person_id == subject.card.id


@lru_cache(maxsize=4)
def _event_insert(dialect: str) -> Any:
    table: Any = AccessEvent.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover
        statement = insert(table)
    return statement.returning(table.c.id)


def _insert_event(session: Session, values: dict[str, Any]) -> int | None:
    """Insert an access event; None when its idempotency key is already taken. One statement
    built once per dialect, so a decision pays no statement construction."""
    connection = session.connection()
    found = connection.execute(_event_insert(connection.dialect.name), values).first()
    return None if found is None else int(found[0])


def write_group_events(session: Session) -> None:
    """Insert the events a group's decisions left waiting, in one statement, and give each
    decision its event's id. A key taken meanwhile (another process) raises IntegrityError:
    the group is then rolled back and decided one by one."""
    waiting: list[tuple[dict[str, Any], Decision]] = session.info.pop(GROUP_EVENTS, [])
    if not waiting:
        return
    table: Any = AccessEvent.__table__
    connection = session.connection()
    rows = [values for values, _answer in waiting]
    if connection.dialect.name == "postgresql":
        # Statements of one text whatever the group's size, which PostgreSQL prepares once:
        # the ids drawn first, then the rows sent by the driver's executemany in one round
        # trip. (A multi-row INSERT … RETURNING is a new text for each size of group, and
        # PostgreSQL parsed it anew every time: half a millisecond a group.)
        ids = sorted(connection.execute(_NEXT_EVENT_IDS, {"n": len(rows)}).scalars())
        rows = [{**values, "id": event_id} for values, event_id in zip(rows, ids, strict=True)]
        # A key already taken fails the INSERT (IntegrityError): the group is rolled back
        # and decided one by one, where a retry finds its first answer.
        connection.execute(insert(table), rows)
    else:
        returned = connection.execute(
            insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
        )
        ids = [event_id for (event_id,) in returned]
    for (_values, answer), event_id in zip(waiting, ids, strict=True):
        answer.event_id = event_id


_NEXT_EVENT_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('access_event', 'id')) FROM generate_series(1, :n)"
)


def _insert_ignore(session: Session, table: Any, values: dict[str, Any]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(table).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(table).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover
        try:
            with session.begin_nested():
                session.execute(insert(table).values(**values))
        except IntegrityError:
            pass


def _take_quota(
    session: Session,
    community_id: int,
    household_id: int | None,
    moment: dt.datetime,
    quota: policy.QuotaRule,
) -> bool:
    """Take one pass of the household's quota for the period of ``moment``: one
    conditional UPDATE, so that of two gates deciding at once only one gets the last pass
    (PostgreSQL re-checks the condition after the other's row lock; SQLite writes one at
    a time)."""
    if household_id is None:
        return True
    period = quota.period(_local(moment).date())
    _insert_ignore(
        session,
        QuotaUse.__table__,
        {"household_id": household_id, "period": period, "community_id": community_id, "used": 0},
    )
    taken = session.execute(
        update(QuotaUse)
        .where(
            QuotaUse.household_id == household_id,
            QuotaUse.period == period,
            QuotaUse.used < quota.persons,
        )
        .values(used=QuotaUse.used + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def _fever_alert(
    session: Session,
    gate: GateRef,
    event_id: int,
    decision: str,
    subject: _Subject,
    temperature: float | None,
) -> None:
    from fengchao.notify import service as notify
    from fengchao.notify.models import Urgency

    who = subject.card
    detail = f"{who.name} {who.place}" if who else ""
    notify.send(
        session=session,
        community_id=gate.community_id,
        kind="fever",
        title=_("体温异常：{gate} {t} °C").format(gate=gate.name, t=temperature),
        body=_("{gate} 测得体温 {t} °C（{decision}），请到场复测。").format(
            gate=gate.name,
            t=temperature,
            decision=_("已放行") if decision == "allow" else _("未放行"),
        ),
        detail=detail,
        to=[
            notify.Recipient.at(Role.community_worker, ScopeLevel.community, gate.community_id),
            notify.Recipient.at(Role.property_staff, ScopeLevel.compound, gate.compound_id),
        ],
        urgency=Urgency.urgent,
        link=f"/access/events/{event_id}",
        key=f"fever:{event_id}",
        source="access",
    )


@dataclass(frozen=True)
class Simulation:
    """What the policy simulator answers: would this person (or role) pass this gate at
    this time, and why. Nothing is written."""

    verdict: policy.Verdict
    gate: GateRef
    level: policy.AlertLevel
    at: dt.datetime  # local
    role: policy.PassRole
    person: PersonCard | None
    quota_used: int | None  # passes already used by the household this period
    quota_total: int


def simulate(
    *,
    session: Session,
    actor: Actor,
    gate_id: int,
    direction: str,
    at: dt.datetime,
    person_id: int | None = None,
    role: str | None = None,
    level: str | None = None,
    temperature: float | str | None = None,
) -> Simulation:
    """Evaluate a passage without recording it; ``at`` is local wall-clock time, ``level``
    overrides the level in force ("what if we switched to closed management")."""
    require(actor, Permission.access_read)
    access.get_gate(session=session, actor=actor, gate_id=gate_id)
    gate = _gate(session, gate_id)
    rules = access.community_policy(session=session, community_id=gate.community_id)
    if direction not in ("in", "out"):
        raise BadPassage(_("方向只能是 in 或 out"), field="direction")
    subject = _Subject()
    if person_id is not None:
        found = _person_subject(session, person_id, gate.community_id)
        if found is None:
            raise BadPassage(
                _("本社区没有编号为 {id} 的人").format(id=person_id), field="person_id"
            )
        subject = found
    try:
        pass_role = subject.role or policy.PassRole(role or "owner")
        in_force = policy.AlertLevel(level) if level else gate.level
    except ValueError:
        raise BadPassage(_("身份或防控等级不认识"), field="role") from None
    measured = _temperature(temperature, rules.temperature, "temperature")
    verdict = policy.evaluate(
        policy.Passage(
            role=pass_role, gate_id=gate.id, direction=policy.Direction(direction), at=at,
            level=in_force, health=subject.health, temperature=measured,
            soft_temperature=gate.soft_temperature,
        ),
        rules,
    )  # fmt: skip
    used = None
    if verdict.takes_quota and subject.household_id is not None:
        used = (
            session.scalar(
                select(QuotaUse.used).where(
                    QuotaUse.household_id == subject.household_id,
                    QuotaUse.period == rules.quota.period(at.date()),
                )
            )
            or 0
        )
    return Simulation(
        verdict, gate, in_force, at, pass_role, subject.card, used, rules.quota.persons
    )
