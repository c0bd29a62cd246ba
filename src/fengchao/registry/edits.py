"""Changing the registry from its pages: a person's fields, a new person, moving out, a
vacant flat. A community worker's change applies at once; a building lead's is a proposal
(变更申请) that a worker confirms or rejects. Every applied change is kept as the record's
history (who, when, old → new) and audited; an edit made from an older version of the
record is refused, never merged silently.

Values are checked by the same parsers as the import (``validation``), so a phone number
the import refuses is refused here too, with the same words.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Actor, Forbidden, NotFound, Permission, Refusal, audit, require
from fengchao.db import begin_write
from fengchao.registry.importer import field_label
from fengchao.registry.models import (
    LABELS,
    CareTag,
    ChangeProposal,
    ChangeVia,
    Gender,
    HealthStatus,
    Household,
    Person,
    RecordChange,
    Relation,
    ResidenceStatus,
)
from fengchao.registry.scope import household_in_scope
from fengchao.registry.validation import (
    FieldError,
    mask_id_number,
    parse_gender,
    parse_health,
    parse_id_number,
    parse_mobile,
    parse_relation,
    parse_residence,
)
from fengchao.web.i18n import _

# Fields a page may change, in the order forms show them.
PERSON_FIELDS = (
    "name", "gender", "relation", "phone", "residence_status", "health_status",
    "care_tags", "note", "id_number",
)  # fmt: skip
NAME_MAX, NOTE_MAX, DECISION_NOTE_MAX = 64, 200, 200

# Actions, as history and proposals name them.
PERSON_CREATE = "person.create"
PERSON_UPDATE = "person.update"
PERSON_MOVE_OUT = "person.move_out"
HOUSEHOLD_VACANT = "household.vacant"
ACTION_LABELS = {
    PERSON_CREATE: "登记新成员",
    PERSON_UPDATE: "修改信息",
    PERSON_MOVE_OUT: "标为迁出",
    HOUSEHOLD_VACANT: "空置状态",
}


class InvalidFields(Refusal):
    """One or more fields are wrong; ``errors`` names each with its problem."""

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(f"{field_label(first)}：{errors[first]}", field=first)
        self.errors = errors


class StaleRecord(Refusal):
    """The record changed since the form was opened."""

    status = 409


class NothingChanged(Refusal):
    status = 422


@dataclass
class EditResult:
    """What became of a change: applied at once, or waiting as a proposal."""

    applied: bool
    changes: dict[str, list[Any]]
    person_id: int | None = None
    proposal_id: int | None = None


# --- values as stored ------------------------------------------------------------------


def stored(person: Person | None, name: str) -> Any:
    """A field's value as history keeps it: enum values, lists, masked ID numbers."""
    if person is None:
        return [] if name == "care_tags" else None
    if name == "id_number":
        return person.id_mask
    value = getattr(person, name)
    if isinstance(value, list):
        return sorted(value)
    return value.value if hasattr(value, "value") else value


def _parse(name: str, raw: object, actor: Actor) -> Any:
    """A submitted value checked as the import checks it, in its stored form."""
    text = "" if raw is None or isinstance(raw, list) else str(raw).strip()
    match name:
        case "name":
            if not text:
                raise FieldError(_("姓名不能为空"))
            if len(text) > NAME_MAX:
                raise FieldError(_("姓名太长（最多 {n} 个字）").format(n=NAME_MAX))
            return text
        case "gender":
            if not text:
                return None
            return text if text in set(Gender) else parse_gender(text).value
        case "relation":
            return text if text in set(Relation) else parse_relation(text).value
        case "phone":
            return parse_mobile(text) if text else None
        case "residence_status":
            return text if text in set(ResidenceStatus) else parse_residence(text).value
        case "health_status":
            return text if text in set(HealthStatus) else parse_health(text).value
        case "care_tags":
            values = [str(v) for v in raw] if isinstance(raw, list) else text.split(",")
            values = [v.strip() for v in values if v.strip()]
            unknown = [v for v in values if v not in set(CareTag)]
            if unknown:
                raise FieldError(_("不认识的关怀标签“{tag}”").format(tag=unknown[0][:20]))
            return sorted(set(values))
        case "note":
            if len(text) > NOTE_MAX:
                raise FieldError(_("备注太长（最多 {n} 个字）").format(n=NOTE_MAX))
            return text or None
        case "id_number":
            if not actor.can(Permission.registry_write):
                raise FieldError(_("身份证号由社区干部登记"))
            return parse_id_number(text).number if text else None
    raise FieldError(_("不能修改这一项"))


def _diff(
    session: Session,
    person: Person | None,
    community_id: int,
    submitted: Mapping[str, object],
    actor: Actor,
) -> dict[str, list[Any]]:
    """{field: [current, new]} for every submitted field whose value changes. Every check
    happens here, before anything is assigned, so a refusal leaves the record untouched."""
    errors: dict[str, str] = {}
    changes: dict[str, list[Any]] = {}
    for name in PERSON_FIELDS:
        if name not in submitted:
            continue
        if name == "id_number" and not str(submitted[name] or "").strip():
            continue  # an empty ID box on a form means "leave it as it is"
        try:
            new = _parse(name, submitted[name], actor)
        except FieldError as exc:
            errors[name] = exc.message
            continue
        old = stored(person, name)
        if name == "id_number":
            digest = get_cipher().lookup_hash(new)
            if person is not None and person.id_number_hash == digest:
                continue
            others = [Person.community_id == community_id, Person.id_number_hash == digest]
            if person is not None:
                others.append(Person.id != person.id)
            if session.scalar(select(Person.id).where(*others)) is not None:
                errors[name] = _("此身份证号已登记在本社区另一人名下")
                continue
            changes[name] = [old, new]  # the whole number travels only to _assign
        elif new != old:
            changes[name] = [old, new]
    if errors:
        raise InvalidFields(errors)
    return changes


def assign(person: Person, changes: dict[str, list[Any]]) -> None:
    """Set checked values (from :func:`_diff`); it cannot fail halfway."""
    for name, (_old, new) in changes.items():
        if name == "id_number":
            _set_id_number(person, new)
        elif name == "gender":
            person.gender = Gender(new) if new else None
        elif name == "relation":
            person.relation = Relation(new)
        elif name == "residence_status":
            person.residence_status = ResidenceStatus(new)
        elif name == "health_status":
            person.health_status = HealthStatus(new)
        else:
            setattr(person, name, new)


def _set_id_number(person: Person, number: str | None) -> None:
    if number is None:
        return
    parsed = parse_id_number(number)
    cipher = get_cipher()
    person.id_number_enc = cipher.encrypt(parsed.number)
    person.id_number_hash = cipher.lookup_hash(parsed.number)
    person.id_mask = parsed.masked
    person.id_last4 = parsed.number[-4:]
    person.birth_date = parsed.birth_date
    person.gender = parsed.gender


def history_changes(changes: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """What history keeps: whole ID numbers masked."""
    kept = {}
    for name, (old, new) in changes.items():
        if name == "id_number" and new:
            new = mask_id_number(new)
        kept[name] = [old, new]
    return kept


# --- loading within scope --------------------------------------------------------------


def _person_for_edit(session: Session, actor: Actor, person_id: int) -> Person:
    person = session.scalar(
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .options(joinedload(Person.household))
        .where(Person.id == person_id, household_in_scope(actor.scope))
    )
    if person is None:
        raise NotFound(f"person {person_id}")
    return person


def _household_for_edit(session: Session, actor: Actor, household_id: int) -> Household:
    household = session.scalar(
        select(Household).where(Household.id == household_id, household_in_scope(actor.scope))
    )
    if household is None:
        raise NotFound(f"household {household_id}")
    return household


def _check_version(session: Session, record: Person | Household, version: int | None) -> None:
    if version is None or version == record.version:
        return
    last = session.scalar(
        select(RecordChange)
        .where(
            RecordChange.person_id == record.id
            if isinstance(record, Person)
            else RecordChange.household_id == record.id
        )
        .order_by(RecordChange.id.desc())
        .limit(1)
    )
    who = last.username if last else _("其他人")
    raise StaleRecord(
        _("您打开页面后，这条记录已被{who}修改。请刷新页面，看过最新内容后再改。").format(who=who)
    )


def _may_change(actor: Actor) -> bool:
    """True: the change applies at once; False: it becomes a proposal. Refuses others."""
    if actor.can(Permission.registry_write):
        return True
    if actor.can(Permission.registry_propose):
        return False
    raise Forbidden(Permission.registry_propose.value)


# --- applying and proposing ------------------------------------------------------------


def record(
    session: Session,
    actor: Actor,
    household: Household,
    person_id: int | None,
    action: str,
    changes: dict[str, list[Any]],
    via: ChangeVia,
    proposal_id: int | None = None,
) -> None:
    kept = history_changes(changes)
    if person_id and str(changes.get("residence_status", [None, None])[1]) == "moved_out":
        from fengchao.access.faces import forget_person  # the access slice stands on this one

        forget_person(session, person_id)  # a face on file leaves with the resident
    session.add(
        RecordChange(
            community_id=household.community_id,
            household_id=household.id,
            person_id=person_id,
            action=action,
            changes=kept,
            via=via,
            proposal_id=proposal_id,
            user_id=actor.user_id or None,
            username=actor.username,
        )
    )
    audit(
        session=session,
        actor=actor,
        action="change",
        object_type="person" if person_id else "household",
        object_id=person_id or household.id,
        community_id=household.community_id,
        kind=action,
        fields=sorted(kept),
        via=via.value,
    )


def _propose(
    session: Session,
    actor: Actor,
    household: Household,
    person_id: int | None,
    action: str,
    changes: dict[str, list[Any]],
) -> EditResult:
    proposal = ChangeProposal(
        community_id=household.community_id,
        building_id=household.building_id,
        household_id=household.id,
        person_id=person_id,
        action=action,
        changes=changes,
        proposed_by=actor.user_id,
        proposed_by_name=actor.display_name,
    )
    session.add(proposal)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="propose",
        object_type="person" if person_id else "household",
        object_id=person_id or household.id,
        community_id=household.community_id,
        kind=action,
        fields=sorted(changes),
        proposal=proposal.id,
    )
    return EditResult(False, changes, person_id, proposal.id)


def edit_person(
    *,
    session: Session,
    actor: Actor,
    person_id: int,
    version: int | None,
    submitted: Mapping[str, object],
    action: str = PERSON_UPDATE,
) -> EditResult:
    """Change the submitted fields of a person (only those that differ)."""
    require(actor, Permission.registry_read)
    applies = _may_change(actor)
    begin_write(session)
    person = _person_for_edit(session, actor, person_id)
    _check_version(session, person, version)
    changes = _diff(session, person, person.community_id, submitted, actor)
    if not changes:
        raise NothingChanged(_("没有改动"))
    household = person.household
    if not applies:
        return _propose(session, actor, household, person.id, action, changes)
    assign(person, changes)
    session.flush()
    record(session, actor, household, person.id, action, changes, ChangeVia.edit)
    return EditResult(True, history_changes(changes), person.id)


def move_out(*, session: Session, actor: Actor, person_id: int, version: int | None) -> EditResult:
    """Mark a person as moved out (已迁出): they stay in the record, no longer counted."""
    return edit_person(
        session=session,
        actor=actor,
        person_id=person_id,
        version=version,
        submitted={"residence_status": ResidenceStatus.moved_out.value},
        action=PERSON_MOVE_OUT,
    )


def add_person(
    *, session: Session, actor: Actor, household_id: int, submitted: Mapping[str, object]
) -> EditResult:
    """Register a new member of a household."""
    require(actor, Permission.registry_read)
    applies = _may_change(actor)
    begin_write(session)
    household = _household_for_edit(session, actor, household_id)
    wanted = {"relation": Relation.family.value, **submitted}
    changes = _diff(session, None, household.community_id, wanted, actor)
    if "name" not in changes:
        raise InvalidFields({"name": _("姓名不能为空")})
    if not applies:
        return _propose(session, actor, household, None, PERSON_CREATE, changes)
    person = create(session, household, changes)
    record(session, actor, household, person.id, PERSON_CREATE, changes, ChangeVia.edit)
    return EditResult(True, history_changes(changes), person.id)


def create(session: Session, household: Household, changes: dict[str, list[Any]]) -> Person:
    person = Person(community_id=household.community_id, household_id=household.id, name="")
    session.add(person)
    assign(person, changes)
    session.flush()
    return person


def set_vacant(
    *, session: Session, actor: Actor, household_id: int, version: int | None, vacant: bool
) -> EditResult:
    """Mark a flat vacant (空置) or lived in again."""
    require(actor, Permission.registry_read)
    applies = _may_change(actor)
    begin_write(session)
    household = _household_for_edit(session, actor, household_id)
    _check_version(session, household, version)
    if household.vacant == vacant:
        raise NothingChanged(_("没有改动"))
    changes = {"vacant": [household.vacant, vacant]}
    if not applies:
        return _propose(session, actor, household, None, HOUSEHOLD_VACANT, changes)
    household.vacant = vacant
    session.flush()
    record(session, actor, household, None, HOUSEHOLD_VACANT, changes, ChangeVia.edit)
    return EditResult(True, changes)


# --- history ---------------------------------------------------------------------------


@dataclass
class HistoryLine:
    at: dt.datetime
    who: str
    action: str
    via: ChangeVia
    fields: list[tuple[str, Any, Any]]


def history(
    *, session: Session, person_id: int | None = None, household_id: int | None = None
) -> list[HistoryLine]:
    """The changes of a record the caller has already loaded within scope (and audited),
    newest first."""
    query = select(RecordChange).order_by(RecordChange.id.desc()).limit(100)
    if person_id is not None:
        query = query.where(RecordChange.person_id == person_id)
    else:
        query = query.where(
            RecordChange.household_id == household_id, RecordChange.person_id.is_(None)
        )
    return [
        HistoryLine(
            c.at,
            c.username,
            c.action,
            c.via,
            [(name, old, new) for name, (old, new) in c.changes.items()],
        )
        for c in session.scalars(query)
    ]


def value_label(value: Any) -> str:
    """A stored value as the pages show it, in the user's language."""
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return _("是") if value else _("否")
    if isinstance(value, list):
        return _("、").join(_(LABELS.get(v, str(v))) for v in value)
    return _(LABELS[value]) if value in LABELS else str(value)
