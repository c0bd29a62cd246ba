"""ID numbers (身份证号) as people see them: masked everywhere; revealed whole only by an
explicit request that names its reason and is audited; looked up whole only by the roles
that may see them, and not often enough to guess a masked number by trial.

A mask shows the first three and last four characters. With the birth date beside it
(and a last digit that is a checksum) the rest could be guessed in about a hundred tries,
so no page shows a birth date in full, and a whole-number search is not an oracle for
the roles that only see masks.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import (
    Actor,
    NotFound,
    Permission,
    Refusal,
    audit,
    recent_acts,
    require,
)
from fengchao.db import utcnow
from fengchao.registry.models import Household, Person
from fengchao.registry.scope import household_in_scope
from fengchao.settings import get_settings
from fengchao.web.i18n import _

REVEAL = "reveal_id"
SEARCH = "search_id"
REASON_MIN, REASON_MAX = 2, 200
# Offered on the reveal form; any other reason may be typed.
SUGGESTED_REASONS = ("核对证件", "核酸采样登记", "隔离转运", "上报上级部门", "办理证明")


class IdLookupRefused(Refusal):
    """This role may not reveal or look up whole ID numbers."""

    status = 403


class TooManyLookups(Refusal):
    """The account revealed or searched too many whole ID numbers in the last hour."""

    status = 429


class ReasonMissing(Refusal):
    """A reveal without a usable reason."""

    status = 422


def today() -> dt.date:
    return dt.datetime.now(ZoneInfo(get_settings().timezone)).date()


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def mask_phone(phone: str) -> str:
    """138****0001: enough to tell numbers apart in an audit log."""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:] if len(phone) >= 7 else "***"


def short_hash(value: str) -> str:
    """The keyed lookup hash, cut short: an auditor holding a number can check whether it
    was searched for, the log itself does not give it away."""
    return get_cipher().lookup_hash(value)[:16]


def _check_allowance(session: Session, actor: Actor) -> None:
    limit = get_settings().security.id_lookups_per_hour
    since = utcnow() - dt.timedelta(hours=1)
    if recent_acts(session=session, actor=actor, actions=(REVEAL, SEARCH), since=since) >= limit:
        raise TooManyLookups(
            _("一小时内查看或查找完整身份证号已达 {n} 次，请稍后再试").format(n=limit)
        )


WHOLE_ID = re.compile(r"\d{17}[\dX]")


def allow_whole_number_search(session: Session, actor: Actor, number: str) -> str:
    """The lookup hash to search by, once the actor may and the allowance holds (the
    search is audited as ``SEARCH`` by the caller, see :func:`audit_query`)."""
    if not actor.can(Permission.id_number_unmasked):
        raise IdLookupRefused(
            _("您的角色不能按完整身份证号查找；可以按姓名、房号或证件号后四位查找")
        )
    _check_allowance(session, actor)
    return get_cipher().lookup_hash(number)


def reveal(*, session: Session, actor: Actor, person_id: int, reason: str) -> str:
    """The whole ID number of a person in scope, for a stated reason; audited."""
    require(actor, Permission.registry_read)
    if not actor.can(Permission.id_number_unmasked):
        raise IdLookupRefused(_("您的角色不能查看完整身份证号"))
    reason = " ".join(reason.split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise ReasonMissing(_("请写明查看原因（{a}–{b} 个字）").format(a=REASON_MIN, b=REASON_MAX))
    person = session.scalar(
        select(Person)
        .join(Household, Household.id == Person.household_id)
        .where(Person.id == person_id, household_in_scope(actor.scope))
    )
    if person is None:
        raise NotFound(f"person {person_id}")
    if person.id_number_enc is None:
        raise NotFound(f"person {person_id} has no ID number")
    _check_allowance(session, actor)
    audit(
        session=session,
        actor=actor,
        action=REVEAL,
        object_type="person",
        object_id=person.id,
        community_id=person.community_id,
        reason=reason,
    )
    return get_cipher().decrypt(person.id_number_enc)


def audit_query(query: str, compact: str) -> tuple[str, dict[str, Any]]:
    """The audit action and detail of a search: ID and phone numbers masked, with a short
    keyed hash; names, rooms and four digits as typed."""
    if WHOLE_ID.fullmatch(compact):
        masked = compact[:3] + "*" * 11 + compact[-4:]
        return SEARCH, {"query": masked, "query_hash": short_hash(compact)}
    if compact.isdigit() and len(compact) >= 7:
        return "search", {"query": mask_phone(compact), "query_hash": short_hash(compact)}
    return "search", {"query": query}
