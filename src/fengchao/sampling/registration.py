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
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fengchao.access import codes
from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write, utcnow
from fengchao.registry.models import Household, Person, Unit
from fengchao.registry.validation import FieldError, parse_id_number
from fengchao.sampling.models import SamplingRound, SamplingSite, Swab, Tube, TubeStatus
from fengchao.sampling.service import community_of
from fengchao.web.i18n import _

BARCODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,31}$")
BARCODE_CHARACTERS = frozenset(string.ascii_uppercase + string.digits + "-")
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


class SwabInvalid(SwabRefused):
    """A value no registration could take (a station the site does not have)."""

    status = 422


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
    """The barcode as stored: what a scanner sends (its Enter, lower case, full-width text
    from a Chinese input method) made plain; a space or another character inside refused,
    never dropped ("hello world" is no barcode, not HELLOWORLD)."""
    barcode = unicodedata.normalize("NFKC", text).strip().upper()
    if BARCODE.match(barcode):
        return barcode
    if any(c.isspace() for c in barcode):
        message = _("试管条码中间不能有空格，请重新扫描试管")
    elif bad := next((c for c in barcode if c not in BARCODE_CHARACTERS), None):
        message = _("试管条码只能有字母、数字和连字符，不能有“{c}”").format(c=bad)
    else:
        message = _("试管条码格式不对：应为 4 到 32 位字母、数字或连字符")
    raise SwabRefused(message, field="tube", code="barcode")


def _state(tube: Tube) -> TubeState:
    return TubeState(
        tube.id, tube.barcode, tube.swabs, tube.capacity, tube.status == TubeStatus.closed
    )


@dataclass(frozen=True)
class RoundForRegistration:
    """What registration needs of a round, read as plain columns (the round's slot plan, a
    JSON document, is never loaded at the site)."""

    id: int
    community_id: int
    tube_capacity: int
    household_tubes: bool
    earlier_swab: int | None  # the swab already registered under the request's key
    stations: int  # the site's stations (采样台), numbered from 1

    def check_station(self, station: str) -> None:
        """A station named by the page is one of the site's; none named is allowed."""
        if station and not (station.isascii() and station.isdigit()
                            and 1 <= int(station) <= self.stations):  # fmt: skip
            raise SwabInvalid(
                _("采样台应为 1 到 {n} 号（本采样点有 {n} 个采样台）").format(n=self.stations),
                field="station",
                code="station",
            )


# Statements of the registration path are built once: building a select costs about as
# much Python as running it. The key's swab comes in the round's query (one round trip).
_ROUND = select(
    SamplingRound.id,
    SamplingRound.community_id,
    SamplingRound.tube_capacity,
    SamplingRound.household_tubes,
    SamplingRound.closed,
    select(Swab.id).where(Swab.key == bindparam("key")).scalar_subquery().label("earlier"),
    select(SamplingSite.stations)
    .where(SamplingSite.id == SamplingRound.site_id)
    .scalar_subquery()
    .label("stations"),
).where(SamplingRound.id == bindparam("round_id"))


def _round_for_registration(
    session: Session, actor: Actor, round_id: int, key: str = ""
) -> RoundForRegistration:
    require(actor, Permission.sampling_register)
    row = session.connection().execute(_ROUND, {"round_id": round_id, "key": key}).first()
    if row is None:
        raise NotFound(f"round {round_id}")
    if not (actor.scope.level == ScopeLevel.community and actor.scope.node_id == row.community_id):
        community_of(session, actor, row.community_id)  # other scopes: one more query
    if row.closed:
        raise SwabRefused(_("这一轮采样已结束，不能再登记"), field="round", code="round_closed")
    return RoundForRegistration(
        row.id, row.community_id, row.tube_capacity, row.household_tubes, row.earlier,
        row.stations or 1,
    )  # fmt: skip


_TUBE_COLUMNS = (Tube.id, Tube.barcode, Tube.swabs, Tube.capacity, Tube.status, Tube.station,
                 Tube.household_id)  # fmt: skip
# Locked on PostgreSQL: two stations scanning one tube cannot both take its tenth place.
# (SQLite has no row locks: its writers take turns, see db.begin_write.)
_TUBE = (
    select(*_TUBE_COLUMNS)
    .where(Tube.round_id == bindparam("round_id"), Tube.barcode == bindparam("barcode"))
    .with_for_update()
)
_ELSEWHERE = select(Tube.round_id).where(
    Tube.community_id == bindparam("community_id"),
    Tube.barcode == bindparam("barcode"),
    Tube.round_id != bindparam("round_id"),
)


# INSERTs that do nothing on a unique conflict (both dialects know ON CONFLICT): a race
# lost to another station (PostgreSQL) needs no savepoint to recover from. The values come
# as parameters, per dialect.
_TUBE_KEY = [Tube.round_id, Tube.barcode]
_INSERT_TUBE = {
    "postgresql": postgresql.insert(Tube).on_conflict_do_nothing(index_elements=_TUBE_KEY),
    "sqlite": sqlite.insert(Tube).on_conflict_do_nothing(index_elements=_TUBE_KEY),
}
_INSERT_SWAB = {
    "postgresql": postgresql.insert(Swab)
    .on_conflict_do_nothing(index_elements=[Swab.key])
    .returning(Swab.id),
    "sqlite": sqlite.insert(Swab)
    .on_conflict_do_nothing(index_elements=[Swab.key])
    .returning(Swab.id),
}
_SWAB_ADDED = (
    update(Tube)
    .where(Tube.id == bindparam("tube_id"))
    .values(
        swabs=bindparam("new_swabs"),
        household_id=bindparam("new_household_id"),
        station=bindparam("new_station"),
        status=bindparam("new_status"),
        closed_at=bindparam("new_closed_at"),
    )
)


def _refuse_other_round(session: Session, found: RoundForRegistration, barcode: str) -> None:
    params = {"community_id": found.community_id, "barcode": barcode, "round_id": found.id}
    if session.connection().execute(_ELSEWHERE, params).first() is not None:
        raise SwabRefused(
            _("试管 {barcode} 属于另一轮采样，不能用于本轮").format(barcode=barcode),
            field="tube",
            code="other_round",
        )


def _open_tube_row(session: Session, found: RoundForRegistration, barcode: str) -> None:
    """Open the tube ``barcode`` in the round, unless it exists (a tube of another round
    is refused); a tube opened meanwhile by another station is left as it is."""
    _refuse_other_round(session, found, barcode)
    conn = session.connection()
    conn.execute(
        _INSERT_TUBE[conn.dialect.name],
        {
            "community_id": found.community_id,
            "round_id": found.id,
            "barcode": barcode,
            "capacity": found.tube_capacity,
            "swabs": 0,
            "station": "",
            "status": TubeStatus.open,
            "opened_at": utcnow(),
        },
    )


def _tube_for(
    session: Session, found: RoundForRegistration, barcode: str, *, create: bool
) -> Tube | None:
    """The round's tube ``barcode`` as a locked ORM row, opened when ``create``; None when
    there is none, refused when the barcode is another round's tube."""
    # Read afresh: registration changes tubes with Core statements, which an ORM row
    # already in this session would not show.
    query = (
        select(Tube)
        .where(Tube.round_id == found.id, Tube.barcode == barcode)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    tube = session.scalar(query)
    if tube is not None:
        return tube
    if not create:
        _refuse_other_round(session, found, barcode)
        return None
    _open_tube_row(session, found, barcode)
    return session.scalar(query)


def open_tube(
    *, session: Session, actor: Actor, round_id: int, barcode: str, station: str = ""
) -> TubeState:
    """Scan a tube: a new barcode opens a tube of this round, an open one is taken up again;
    a closed tube or one of another round is refused."""
    barcode = normalise_barcode(barcode)
    begin_write(session)
    found = _round_for_registration(session, actor, round_id)
    found.check_station(station)
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


@dataclass(frozen=True)
class _Found:
    """A person a scan names, with what registration checks about them, from one query."""

    id: int
    name: str
    household_id: int
    community_id: int
    place: str
    code_version: int
    swabs_in_round: int  # this round's swabs of the person before this one
    in_tube: bool  # one of them in the tube being filled


def _person_query(*where: ColumnElement[bool]) -> Select[Any]:
    """A person and their unit-room, their resident code's version and their swabs so far
    in the round (``round_id``) and tube (``tube_id``): one round trip for every check."""
    mine = and_(Swab.round_id == bindparam("round_id"), Swab.person_id == Person.id)
    return (
        select(
            Person.id,
            Person.name,
            Person.household_id,
            Person.community_id,
            Unit.name.label("unit"),
            Household.room,
            codes.current_version_column(Person.id),
            select(func.count(Swab.id)).where(mine).scalar_subquery().label("swabs_in_round"),
            exists().where(mine, Swab.tube_id == bindparam("tube_id")).label("in_tube"),
        )
        .join(Household, Household.id == Person.household_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(*where)
    )


_BY_ID = _person_query(Person.id == bindparam("person_id"))
_BY_ID_IN_COMMUNITY = _person_query(
    Person.id == bindparam("person_id"), Person.community_id == bindparam("community_id")
)
_BY_ID_NUMBER = _person_query(
    Person.community_id == bindparam("community_id"), Person.id_number_hash == bindparam("digest")
)


def _found(
    session: Session, query: Select[Any], found: RoundForRegistration, tube_id: int, **params: Any
) -> _Found | None:
    row = (
        session.connection()
        .execute(query, {"round_id": found.id, "tube_id": tube_id, **params})
        .first()
    )
    if row is None:
        return None
    return _Found(
        row.id, row.name, row.household_id, row.community_id, f"{row.unit}-{row.room}",
        row.code_version, row.swabs_in_round, bool(row.in_tube),
    )  # fmt: skip


def resolve_person(
    session: Session,
    found: RoundForRegistration,
    tube_id: int,
    *,
    text: str | None,
    person_id: int | None,
) -> tuple[_Found, str]:
    """The person a scan or a pick names and how they were named (code, id, room), with
    their swabs so far. Refused with the field ``person``: an unknown, forged or foreign
    code, an ID number not registered here."""
    if person_id is not None:
        picked = _found(session, _BY_ID_IN_COMMUNITY, found, tube_id,
                        person_id=person_id, community_id=found.community_id)  # fmt: skip
        if picked is None:
            raise SwabRefused(_("没有这个人"), field="person", code="unknown_person")
        return picked, "room"
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
        by_id = _found(session, _BY_ID_NUMBER, found, tube_id,
                       community_id=found.community_id, digest=digest)  # fmt: skip
        if by_id is None:
            raise SwabRefused(
                _("本社区没有登记这个身份证号，请按房号查找或先登记"),
                field="person",
                code="unknown_id",
            )
        return by_id, "id"
    if codes.looks_like_code(raw):
        try:
            resolved = codes.unseal_for(raw, community_id=found.community_id)
            # The person, their place and their code's version in one query: what
            # codes.resolve_code reads in two and registration then read again.
            by_code = _found(session, _BY_ID, found, tube_id, person_id=resolved.person_id)
            codes.check_registered(
                resolved,
                registered_community=None if by_code is None else by_code.community_id,
                version=0 if by_code is None else by_code.code_version,
            )
        except codes.CodeRefused as exc:
            raise SwabRefused(exc.message, field="person", code=exc.code) from None
        assert by_code is not None
        return by_code, "code"
    raise SwabRefused(_("无法识别：不是居民码，也不是身份证号"), field="person", code="malformed")


def _repeated(
    session: Session,
    found: RoundForRegistration,
    earlier_id: int,
    *,
    barcode: str,
    code: str | None,
    person_id: int | None,
) -> Registered:
    """The answer to a key seen before: that registration, nothing written. The key sent
    again for another person or tube is refused (409, field ``key``), never answered with
    someone else's swab."""
    earlier = session.get(Swab, earlier_id)
    assert earlier is not None
    if earlier.round_id != found.id:
        raise SwabRefused(_("幂等键已被另一轮使用"), field="key", code="key")
    tube = session.get(Tube, earlier.tube_id, populate_existing=True)
    assert tube is not None
    if tube.barcode != barcode or not _same_person(session, found, earlier, code, person_id):
        raise SwabRefused(
            _("这个幂等键已用于另一次登记（另一个人或另一支试管），请重新提交"),
            field="key",
            code="key_reused",
        )
    again = _found(session, _BY_ID, found, earlier.tube_id, person_id=earlier.person_id)
    assert again is not None
    return Registered(
        earlier.id,
        again.id,
        again.name,
        again.place,
        _state(tube),
        True,
        earlier.retest_reason is not None,
    )


def _same_person(
    session: Session,
    found: RoundForRegistration,
    earlier: Swab,
    code: str | None,
    person_id: int | None,
) -> bool:
    """Whether a request sent again names the person of the earlier swab (a rare path: the
    person is resolved again only here)."""
    if person_id is not None:
        return person_id == earlier.person_id
    try:
        person, _via = resolve_person(session, found, earlier.tube_id, text=code, person_id=None)
    except SwabRefused:
        return False
    return person.id == earlier.person_id


_SWAB_BY_KEY = select(Swab.id).where(Swab.key == bindparam("key"))


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
    session.flush()  # rows changed through the ORM before (a test's one session) first
    # The hot path of the site (a few thousand a day from four stations at once) runs on
    # the connection with statements built once: about half the Python of ORM objects.
    conn = session.connection()
    found = _round_for_registration(session, actor, round_id, key)
    found.check_station(station)
    if found.earlier_swab is not None:
        return _repeated(session, found, found.earlier_swab,
                         barcode=barcode, code=code, person_id=person_id)  # fmt: skip
    where = {"round_id": found.id, "barcode": barcode}
    tube = conn.execute(_TUBE, where).first()
    if tube is None:
        _open_tube_row(session, found, barcode)
        tube = conn.execute(_TUBE, where).one()
    if tube.status == TubeStatus.closed or tube.swabs >= tube.capacity:
        raise SwabRefused(
            _("试管 {barcode} 已满或已封管（{n}/{cap}），请换一支新试管").format(
                barcode=barcode, n=tube.swabs, cap=tube.capacity
            ),
            field="tube",
            code="tube_full" if tube.swabs >= tube.capacity else "tube_closed",
        )
    person, via = resolve_person(session, found, tube.id, text=code, person_id=person_id)
    if person.in_tube:
        raise SwabRefused(
            _("{name} 已在这支试管里").format(name=person.name), field="person", code="in_tube"
        )
    if found.household_tubes and tube.household_id not in (None, person.household_id):
        raise SwabRefused(
            _("这支试管只装同一户的人（按户混采）"), field="person", code="other_household"
        )
    before = person.swabs_in_round > 0
    if before and reason is None:
        raise SwabRefused(
            _("{name} 本轮已采过样；如需复采，请填写原因").format(name=person.name),
            field="retest_reason",
            code="already_sampled",
        )
    tube_station = tube.station or station[:STATION_MAX]
    swab_id = conn.execute(
        _INSERT_SWAB[conn.dialect.name],
        {
            "community_id": found.community_id,
            "round_id": found.id,
            "tube_id": tube.id,
            "person_id": person.id,
            "station": (station or tube.station)[:STATION_MAX],
            "taken_at": taken_at or utcnow(),
            "key": key,
            "via": via,
            "retest_reason": reason if before else None,
            "user_id": actor.user_id or None,
        },
    ).scalar()
    if swab_id is None:
        # The same key committed meanwhile by another request (a page that resent).
        earlier = conn.execute(_SWAB_BY_KEY, {"key": key}).scalar()
        assert earlier is not None
        return _repeated(session, found, earlier,
                         barcode=barcode, code=code, person_id=person_id)  # fmt: skip
    swabs = tube.swabs + 1
    closed = swabs >= tube.capacity
    household = tube.household_id
    if found.household_tubes and household is None:
        household = person.household_id
    conn.execute(
        _SWAB_ADDED,
        {
            "tube_id": tube.id,
            "new_swabs": swabs,
            "new_household_id": household,
            "new_station": tube_station,
            "new_status": TubeStatus.closed if closed else tube.status,
            "new_closed_at": utcnow() if closed else None,
        },
    )
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
        swab_id,
        person.id,
        person.name,
        person.place,
        TubeState(tube.id, tube.barcode, swabs, tube.capacity, closed),
        False,
        before,
    )
