"""Swab registration at the site (采样登记): a tube barcode, then each person's code, ID
number or room pick, into the tube until it holds its capacity.

Each registration is one short write transaction, idempotent by the page's key (a page
that lost the server sends its queue again and nothing counts twice). Refusals carry the
field at fault: ``tube`` (a closed tube, another round's tube, a full tube), ``person``
(an unknown or forged code, a person already in this tube) and ``retest_reason`` (a
person already sampled in this round: allowed again only with a reason).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.registry.models import Household, Person, Unit
from fengchao.registry.validation import FieldError, parse_id_number
from fengchao.sampling.models import SamplingRound, Swab, Tube, TubeStatus
from fengchao.sampling.service import community_of
from fengchao.web.i18n import _

BARCODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,31}$")
ID_NUMBER = re.compile(r"^\d{17}[\dX]$|^\d{15}$")
KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
STATION_MAX = 16
REASON_MAX = 200


class SwabRefused(Refusal):
    """A registration that cannot be taken as given (``code`` says which case)."""

    status = 409

    def __init__(self, message: str, *, field: str, code: str) -> None:
        super().__init__(message, field=field)
        self.code = code


@dataclass(frozen=True)
class TubeState:
    id: int
    barcode: str
    swabs: int
    capacity: int
    closed: bool


@dataclass(frozen=True)
class Registered:
    swab_id: int
    person_id: int
    name: str
    place: str
    tube: TubeState
    repeated: bool  # the same key seen before: nothing new written
    retest: bool


def normalise_barcode(text: str) -> str:
    barcode = text.strip().upper()
    if not BARCODE.match(barcode):
        raise SwabRefused(
            _("试管条码格式不对：应为 4 到 32 位字母、数字或连字符"), field="tube", code="barcode"
        )
    return barcode


def _state(tube: Tube) -> TubeState:
    return TubeState(
        tube.id, tube.barcode, tube.swabs, tube.capacity, tube.status == TubeStatus.closed
    )


def _round_for_registration(session: Session, actor: Actor, round_id: int) -> SamplingRound:
    require(actor, Permission.sampling_register)
    found = session.get(SamplingRound, round_id)
    if found is None:
        raise NotFound(f"round {round_id}")
    if not (
        actor.scope.level == ScopeLevel.community and actor.scope.node_id == found.community_id
    ):
        community_of(session, actor, found.community_id)  # other scopes: one more query
    if found.closed:
        raise SwabRefused(_("这一轮采样已结束，不能再登记"), field="round", code="round_closed")
    return found


def _tube_for(session: Session, found: SamplingRound, barcode: str, *, create: bool) -> Tube | None:
    # Locked on PostgreSQL: two stations scanning one tube cannot both take its tenth place.
    tube = session.scalar(
        select(Tube).where(Tube.round_id == found.id, Tube.barcode == barcode).with_for_update()
    )
    if tube is not None:
        return tube
    elsewhere = session.scalar(
        select(Tube.round_id).where(
            Tube.community_id == found.community_id,
            Tube.barcode == barcode,
            Tube.round_id != found.id,
        )
    )
    if elsewhere is not None:
        raise SwabRefused(
            _("试管 {barcode} 属于另一轮采样，不能用于本轮").format(barcode=barcode),
            field="tube",
            code="other_round",
        )
    if not create:
        return None
    tube = Tube(
        community_id=found.community_id,
        round_id=found.id,
        barcode=barcode,
        capacity=found.tube_capacity,
    )
    try:
        with session.begin_nested():
            session.add(tube)
            session.flush()
    except IntegrityError:
        # Opened meanwhile by another station (PostgreSQL).
        tube = session.scalar(
            select(Tube).where(Tube.round_id == found.id, Tube.barcode == barcode)
        )
        assert tube is not None
    return tube


def open_tube(
    *, session: Session, actor: Actor, round_id: int, barcode: str, station: str = ""
) -> TubeState:
    """Scan a tube: a new barcode opens a tube of this round, an open one is taken up again;
    a closed tube or one of another round is refused."""
    barcode = normalise_barcode(barcode)
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    tube = _tube_for(session, found, barcode, create=True)
    assert tube is not None
    if tube.status == TubeStatus.closed:
        raise SwabRefused(
            _("试管 {barcode} 已封管（{n} 人），请换一支新试管").format(
                barcode=barcode, n=tube.swabs
            ),
            field="tube",
            code="tube_closed",
        )
    if station and not tube.station:
        tube.station = station[:STATION_MAX]
    return _state(tube)


def _with_place(session: Session, *where: ColumnElement[bool]) -> tuple[Person, str] | None:
    """A person and their unit-room, in one query."""
    row = session.execute(
        select(Person, Unit.name, Household.room)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(*where)
    ).first()
    return None if row is None else (row[0], f"{row[1]}-{row[2]}")


def resolve_person(
    session: Session, actor: Actor, found: SamplingRound, *, text: str | None, person_id: int | None
) -> tuple[Person, str, str]:
    """The person a scan or a pick names, their unit-room, and how they were named (code,
    id, room). Refused with the field ``person``: an unknown, forged or foreign code, an ID
    number not registered here."""
    in_community = Person.community_id == found.community_id
    if person_id is not None:
        picked = _with_place(session, Person.id == person_id, in_community)
        if picked is None:
            raise SwabRefused(_("没有这个人"), field="person", code="unknown_person")
        return *picked, "room"
    raw = (text or "").strip()
    if not raw:
        raise SwabRefused(_("请扫描居民码或输入身份证号"), field="person", code="empty")
    compact = raw.upper().replace(" ", "")
    if ID_NUMBER.match(compact):
        try:
            number = parse_id_number(compact).number
        except FieldError as exc:
            raise SwabRefused(exc.message, field="person", code="bad_id") from None
        digest = get_cipher().lookup_hash(number)
        by_id = _with_place(session, in_community, Person.id_number_hash == digest)
        if by_id is None:
            raise SwabRefused(
                _("本社区没有登记这个身份证号，请按房号查找或先登记"),
                field="person",
                code="unknown_id",
            )
        return *by_id, "id"
    if codes.looks_like_code(raw):
        try:
            resolved = codes.resolve_code(session, raw, community_id=found.community_id)
        except codes.CodeRefused as exc:
            raise SwabRefused(exc.message, field="person", code=exc.code) from None
        by_code = _with_place(session, Person.id == resolved.person_id)
        if by_code is None:
            raise SwabRefused(_("没有这个人"), field="person", code="unknown_person")
        return *by_code, "code"
    raise SwabRefused(_("无法识别：不是居民码，也不是身份证号"), field="person", code="malformed")


def _repeated(session: Session, found: SamplingRound, earlier: Swab) -> Registered:
    """The answer to a key seen before: that registration, nothing written."""
    if earlier.round_id != found.id:
        raise SwabRefused(_("幂等键已被另一轮使用"), field="key", code="key")
    tube = session.get(Tube, earlier.tube_id)
    again = _with_place(session, Person.id == earlier.person_id)
    assert tube is not None and again is not None
    return Registered(
        earlier.id,
        again[0].id,
        again[0].name,
        again[1],
        _state(tube),
        True,
        earlier.retest_reason is not None,
    )


def register_swab(
    *,
    session: Session,
    actor: Actor,
    round_id: int,
    barcode: str,
    key: str,
    code: str | None = None,
    person_id: int | None = None,
    station: str = "",
    retest_reason: str | None = None,
    taken_at: dt.datetime | None = None,
) -> Registered:
    """Register one swab into the tube ``barcode`` (opened if new). Idempotent by ``key``:
    a key seen before returns that registration and writes nothing. Closes the tube when it
    reaches its capacity. See the module's docstring for the refusals."""
    if not KEY.match(key or ""):
        raise SwabRefused(_("登记缺少有效的幂等键"), field="key", code="key")
    barcode = normalise_barcode(barcode)
    reason = (retest_reason or "").strip() or None
    if reason is not None and len(reason) > REASON_MAX:
        raise SwabRefused(_("原因最多 200 个字符"), field="retest_reason", code="reason")
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    earlier = session.scalar(select(Swab).where(Swab.key == key))
    if earlier is not None:
        return _repeated(session, found, earlier)
    tube = _tube_for(session, found, barcode, create=True)
    assert tube is not None
    if tube.status == TubeStatus.closed or tube.swabs >= tube.capacity:
        raise SwabRefused(
            _("试管 {barcode} 已满或已封管（{n}/{cap}），请换一支新试管").format(
                barcode=barcode, n=tube.swabs, cap=tube.capacity
            ),
            field="tube",
            code="tube_full" if tube.swabs >= tube.capacity else "tube_closed",
        )
    person, place, via = resolve_person(session, actor, found, text=code, person_id=person_id)
    # The tubes this person is in this round (usually none): one query for both refusals.
    tubes_before = set(
        session.scalars(
            select(Swab.tube_id).where(Swab.round_id == found.id, Swab.person_id == person.id)
        )
    )
    if tube.id in tubes_before:
        raise SwabRefused(
            _("{name} 已在这支试管里").format(name=person.name), field="person", code="in_tube"
        )
    if found.household_tubes and tube.household_id not in (None, person.household_id):
        raise SwabRefused(
            _("这支试管只装同一户的人（按户混采）"), field="person", code="other_household"
        )
    before = bool(tubes_before)
    if before and reason is None:
        raise SwabRefused(
            _("{name} 本轮已采过样；如需复采，请填写原因").format(name=person.name),
            field="retest_reason",
            code="already_sampled",
        )
    swab = Swab(
        community_id=found.community_id,
        round_id=found.id,
        tube_id=tube.id,
        person_id=person.id,
        station=(station or tube.station)[:STATION_MAX],
        taken_at=taken_at or utcnow(),
        key=key,
        via=via,
        retest_reason=reason if before else None,
        user_id=actor.user_id or None,
    )
    try:
        with session.begin_nested():
            session.add(swab)
            session.flush()
    except IntegrityError:
        # The same key committed meanwhile by another request (a page that resent).
        earlier = session.scalar(select(Swab).where(Swab.key == key))
        if earlier is None:
            raise
        return _repeated(session, found, earlier)
    tube.swabs += 1
    if found.household_tubes and tube.household_id is None:
        tube.household_id = person.household_id
    if station and not tube.station:
        tube.station = station[:STATION_MAX]
    if tube.swabs >= tube.capacity:
        tube.status = TubeStatus.closed
        tube.closed_at = utcnow()
    session.flush()
    if via == "id":
        # A whole ID number typed at the site: kept in the audit log (masked), so that a
        # sampler account used to test numbers shows in it.
        audit(
            session=session,
            actor=actor,
            action="swab_by_id",
            object_type="person",
            object_id=person.id,
            community_id=found.community_id,
        )
    return Registered(
        swab.id,
        person.id,
        person.name,
        place,
        _state(tube),
        False,
        swab.retest_reason is not None,
    )


def close_tube(*, session: Session, actor: Actor, round_id: int, barcode: str) -> TubeState:
    """Close a tube early (fewer than its capacity); closing a closed tube changes nothing."""
    barcode = normalise_barcode(barcode)
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    tube = _tube_for(session, found, barcode, create=False)
    if tube is None:
        raise SwabRefused(_("没有这支试管"), field="tube", code="unknown_tube")
    if tube.status != TubeStatus.closed:
        tube.status = TubeStatus.closed
        tube.closed_at = utcnow()
    return _state(tube)


def undo_last(*, session: Session, actor: Actor, round_id: int, barcode: str) -> TubeState:
    """Take the last swab out of an open tube (scanned by mistake)."""
    barcode = normalise_barcode(barcode)
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    tube = _tube_for(session, found, barcode, create=False)
    if tube is None:
        raise SwabRefused(_("没有这支试管"), field="tube", code="unknown_tube")
    if tube.status == TubeStatus.closed:
        raise SwabRefused(_("试管已封管，不能撤销"), field="tube", code="tube_closed")
    last = session.scalar(
        select(Swab).where(Swab.tube_id == tube.id).order_by(Swab.id.desc()).limit(1)
    )
    if last is None:
        raise SwabRefused(_("试管里还没有人"), field="tube", code="empty_tube")
    session.delete(last)
    tube.swabs -= 1
    if tube.swabs == 0:
        tube.household_id = None
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="swab_undo",
        object_type="sampling_tube",
        object_id=tube.id,
        community_id=found.community_id,
    )
    return _state(tube)


@dataclass(frozen=True)
class TubeMember:
    name: str
    place: str


def tube_members(session: Session, tube_id: int) -> list[TubeMember]:
    rows = session.execute(
        select(Person.name, Unit.name, Household.room)
        .join(Swab, Swab.person_id == Person.id)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(Swab.tube_id == tube_id)
        .order_by(Swab.id)
    ).all()
    return [TubeMember(name, f"{unit}-{room}") for name, unit, room in rows]


@dataclass(frozen=True)
class RoomChoice:
    person_id: int
    name: str
    sampled: bool


def people_in_room(
    *, session: Session, actor: Actor, round_id: int, building: str, unit: str, room: str
) -> list[RoomChoice]:
    """The people of a flat (building-unit-room as typed) to pick from, for someone who has
    no code and no ID card with them."""
    from fengchao.registry.models import Building, ResidenceStatus

    found = _round_for_registration(session, actor, round_id)
    rows = session.execute(
        select(Person.id, Person.name)
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .join(Building, Building.id == Household.building_id)
        .where(
            Household.community_id == found.community_id,
            Building.name == building,
            Unit.name == unit,
            Household.room == room,
            Person.residence_status != ResidenceStatus.moved_out,
        )
        .order_by(Person.id)
    ).all()
    sampled = set(
        session.scalars(
            select(Swab.person_id).where(
                Swab.round_id == found.id, Swab.person_id.in_([r[0] for r in rows])
            )
        )
    )
    return [RoomChoice(pid, name, pid in sampled) for pid, name in rows]
