"""Finding people as community workers write what they look for: a name ("刘海", "刘 海"),
a phone or its last digits, the last four of an ID number, a whole ID number (only for
roles that see whole numbers), a room in any of the forms the importer reads ("5-2-1302",
"5栋2单元1302", "5-2-1302室", "华润 5-2-1302"), and status words ("居家隔离", "独居老人")
that become filters beside the building, health, residence and care-tag filters.

Also the guard's room check: who lives in a flat, without phone or ID numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, cast, func, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.types import String

from fengchao.auth.service import Actor, Permission, Refusal, audit, require
from fengchao.registry import id_numbers
from fengchao.registry.models import (
    LABELS,
    Building,
    CareTag,
    Compound,
    HealthStatus,
    Household,
    Person,
    ResidenceStatus,
    Unit,
)
from fengchao.registry.scope import building_in_scope, household_in_scope
from fengchao.registry.validation import FieldError, parse_address
from fengchao.web.i18n import _

PER_PAGE = 30
QUERY_MAX = 64

# Words that name a status rather than a person: "居家隔离" lists the people in home
# isolation. Built from the labels pages show, plus the short forms people type.
_STATUS_WORDS: dict[str, HealthStatus | ResidenceStatus | CareTag] = {
    text: value
    for value, text in LABELS.items()
    if isinstance(value, HealthStatus | ResidenceStatus | CareTag)
} | {
    "隔离": HealthStatus.home_isolation,
    "康复": HealthStatus.recovered,
    "外出": ResidenceStatus.away,
    "迁出": ResidenceStatus.moved_out,
    "独居": CareTag.elderly_alone,
}


@dataclass
class Filters:
    """What the filter form and the status words narrow the search to."""

    building_id: int | None = None
    health: HealthStatus | None = None
    residence: ResidenceStatus | None = None
    care: CareTag | None = None

    @property
    def any(self) -> bool:
        values = (self.building_id, self.health, self.residence, self.care)
        return any(v is not None for v in values)


@dataclass
class Query:
    """A search box's text understood: an address, digits, a name, status words."""

    address: Any = None  # validation.Address
    digits: str = ""
    name: str = ""
    words: Filters = field(default_factory=Filters)


def understand(text: str) -> Query:
    """Split the box's text into what it says; pure, tested without a database."""
    query = Query()
    rest: list[str] = []
    whole = text.strip()
    try:
        query.address = parse_address(whole)
        return query
    except FieldError:
        pass
    for token in whole.split():
        status = _STATUS_WORDS.get(token)
        if isinstance(status, HealthStatus):
            query.words.health = status
        elif isinstance(status, ResidenceStatus):
            query.words.residence = status
        elif isinstance(status, CareTag):
            query.words.care = status
        else:
            rest.append(token)
    joined = "".join(rest)
    compact = re.sub(r"[\s\-()（）]", "", joined).upper()
    if compact and re.fullmatch(r"\+?[\dX]+", compact):
        query.digits = compact.lstrip("+")
    else:
        # Chinese names have no spaces: "刘 海" is 刘海.
        query.name = joined
    return query


@dataclass
class SearchResult:
    people: list[Person]
    households: list[Household]
    total: int
    page: int
    pages: int
    filters: Filters
    query: Query | None


def _household_options() -> Any:
    return (
        joinedload(Person.household).joinedload(Household.unit),
        joinedload(Person.household).joinedload(Household.building),
        joinedload(Person.household).joinedload(Household.compound),
    )


def _matching_households(
    session: Session, actor: Actor, address: Any, limit: int = 50
) -> list[Household]:
    conditions: list[ColumnElement[bool]] = [
        household_in_scope(actor.scope),
        Building.name == address.building,
        Unit.name == address.unit,
        Household.room == address.room,
    ]
    if address.compound:
        # "华润" names 华润中央公园: the start of a compound's name is enough.
        conditions.append(Compound.name.startswith(address.compound, autoescape=True))
    return list(
        session.scalars(
            select(Household)
            .join(Unit, Unit.id == Household.unit_id)
            .join(Building, Building.id == Household.building_id)
            .join(Compound, Compound.id == Household.compound_id)
            .options(
                joinedload(Household.unit),
                joinedload(Household.building),
                joinedload(Household.compound),
            )
            .where(*conditions)
            .order_by(Household.compound_id)
            .limit(limit)
        )
    )


def _merge(filters: Filters, words: Filters) -> Filters:
    return Filters(
        filters.building_id,
        filters.health or words.health,
        filters.residence or words.residence,
        filters.care or words.care,
    )


def search(
    *,
    session: Session,
    actor: Actor,
    query: str,
    filters: Filters | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> SearchResult:
    """People matching the text and the filters within the actor's scope, with the true
    count and one page of them; audited (numbers masked in the log)."""
    require(actor, Permission.registry_read)
    text = query.strip()[:QUERY_MAX]
    understood = understand(text) if text else None
    chosen = _merge(filters or Filters(), understood.words if understood else Filters())
    if understood is None and not chosen.any:
        return SearchResult([], [], 0, 1, 1, chosen, None)
    conditions: list[ColumnElement[bool]] = [household_in_scope(actor.scope)]
    households: list[Household] = []
    audit_text = re.sub(r"[\s\-]", "", text).upper()
    if understood is not None:
        if understood.address is not None:
            households = _matching_households(session, actor, understood.address)
            conditions.append(Person.household_id.in_([h.id for h in households]))
        elif understood.digits:
            conditions.append(_digits_condition(session, actor, understood.digits))
        elif understood.name:
            # autoescape: "%" and "_" are letters here, not wildcards that list everyone.
            conditions.append(Person.name.contains(understood.name, autoescape=True))
    if chosen.building_id is not None:
        conditions.append(Household.building_id == chosen.building_id)
    if chosen.health is not None:
        conditions.append(Person.health_status == chosen.health)
    if chosen.residence is not None:
        conditions.append(Person.residence_status == chosen.residence)
    if chosen.care is not None:
        # Tags are a JSON list of short codes; a code never contains another's quotes.
        conditions.append(cast(Person.care_tags, String).contains(f'"{chosen.care.value}"'))
    base = select(Person).join(Household, Household.id == Person.household_id).where(*conditions)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    people = list(
        session.scalars(
            base.options(*_household_options())
            .order_by(Household.compound_id, Household.building_id, Household.room, Person.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    action, detail = id_numbers.audit_query(text, audit_text)
    detail |= {k: str(v) for k, v in vars(chosen).items() if v is not None}
    audit(
        session=session,
        actor=actor,
        action=action,
        object_type="person",
        results=total,
        **detail,
    )
    return SearchResult(people, households, total, page, pages, chosen, understood)


def _digits_condition(session: Session, actor: Actor, digits: str) -> ColumnElement[bool]:
    if id_numbers.WHOLE_ID.fullmatch(digits):
        return Person.id_number_hash == id_numbers.allow_whole_number_search(session, actor, digits)
    if re.fullmatch(r"\d{3}[\dX]", digits):
        return (Person.id_last4 == digits) | Person.phone.endswith(digits)
    if re.fullmatch(r"(86)?1\d{10}", digits):
        return Person.phone == digits[-11:]
    if digits.isdigit() and len(digits) >= 5:
        return Person.phone.contains(digits, autoescape=True)
    raise ShortDigits(_("请至少输入手机号的 5 位数字，或证件号的后 4 位"))


class ShortDigits(Refusal):
    status = 422


def buildings_in_scope(*, session: Session, actor: Actor) -> list[Building]:
    """For the filter's building list."""
    return list(
        session.scalars(
            select(Building)
            .options(joinedload(Building.compound))
            .where(building_in_scope(actor.scope))
            .order_by(Building.compound_id, Building.sort_key, Building.name)
        )
    )


# --- the guard's room check --------------------------------------------------------------


@dataclass
class RoomCard:
    """Who lives in a flat, as a gate needs it: no phone, no ID number."""

    household: Household
    people: list[Person]


def room_check(*, session: Session, actor: Actor, query: str, limit: int = 20) -> list[RoomCard]:
    """Flats matching a room (any form) or people matching a name, with their current
    residents; audited as a lookup."""
    require(actor, Permission.registry_lookup)
    text = query.strip()[:QUERY_MAX]
    if not text:
        return []
    understood = understand(text)
    if understood.address is not None:
        households = _matching_households(session, actor, understood.address, limit)
    elif understood.name:
        households = list(
            session.scalars(
                select(Household)
                .join(Person, Person.household_id == Household.id)
                .options(
                    joinedload(Household.unit),
                    joinedload(Household.building),
                    joinedload(Household.compound),
                )
                .where(
                    household_in_scope(actor.scope),
                    Person.name.contains(understood.name, autoescape=True),
                    Person.residence_status != ResidenceStatus.moved_out,
                )
                .distinct()
                .limit(limit)
            )
        )
    else:
        raise ShortDigits(_("请输入房号（如 5-2-1302）或姓名"))
    residents: dict[int, list[Person]] = {h.id: [] for h in households}
    for person in session.scalars(
        select(Person)
        .where(
            Person.household_id.in_(residents),
            Person.residence_status != ResidenceStatus.moved_out,
        )
        .order_by(Person.id)
    ):
        residents[person.household_id].append(person)
    audit(
        session=session,
        actor=actor,
        action="lookup",
        object_type="household",
        query=text,
        results=len(households),
    )
    return [RoomCard(h, residents[h.id]) for h in households]
