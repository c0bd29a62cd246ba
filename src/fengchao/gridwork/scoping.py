"""Grid scopes applied to grid work's rows (each carries community, compound, building),
the permissions grid work checks, and finding a household by the address residents say."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import Actor, Forbidden, GridScope, Permission
from fengchao.registry.models import Building, Community, Household, Unit


def place_in_scope(scope: GridScope, row: Any) -> ColumnElement[bool]:
    """The SQL filter for rows of ``row``'s table lying within ``scope`` (the table has
    ``community_id``, ``compound_id`` and ``building_id``)."""
    found: ColumnElement[bool]
    match scope.level:
        case ScopeLevel.street:
            found = row.community_id.in_(
                select(Community.id).where(Community.street_id == scope.node_id).scalar_subquery()
            )
        case ScopeLevel.community:
            found = row.community_id == scope.node_id
        case ScopeLevel.compound:
            found = row.compound_id == scope.node_id
        case ScopeLevel.building:
            found = row.building_id == scope.node_id
        case _:
            found = false()
    return found


def may_work(actor: Actor) -> bool:
    """Staff who handle requests and sweeps: building leads and community workers."""
    return actor.can(Permission.gridwork_lead) or actor.can(Permission.gridwork_manage)


def require_worker(actor: Actor) -> None:
    if not may_work(actor):
        raise Forbidden(Permission.gridwork_lead.value)


def require_any(actor: Actor) -> None:
    """Anyone who handles grid work in some way (leads, workers, the property)."""
    if not (may_work(actor) or actor.can(Permission.gridwork_property)):
        raise Forbidden(Permission.gridwork_lead.value)


def find_household(session: Session, *, compound_id: int, address: str) -> Household | None:
    """The household at ``address`` (楼-单元-室, e.g. 5-2-1302, also 5栋2单元1302) in a
    compound, or None."""
    parts = parse_address(address)
    if parts is None:
        return None
    building, unit, room = parts
    return session.scalar(
        select(Household)
        .join(Building, Building.id == Household.building_id)
        .join(Unit, Unit.id == Household.unit_id)
        .where(
            Household.compound_id == compound_id,
            Building.name == building,
            Unit.name == unit,
            Household.room == room,
        )
    )


def parse_address(address: str) -> tuple[str, str, str] | None:
    """'5-2-1302', '5栋2单元1302', '5号楼2单元1302室' → ('5', '2', '1302'); None otherwise."""
    import re

    text = address.strip().replace("－", "-").replace("—", "-").replace(" ", "")
    text = re.sub(r"(号楼|栋|幢)", "-", text)
    text = text.replace("单元", "-").replace("室", "")
    parts = [p for p in text.split("-") if p]
    if len(parts) != 3 or any(len(p) > 16 for p in parts):
        return None
    return parts[0], parts[1], parts[2]


ROLE_FOR_LEVEL = {
    ScopeLevel.building: Role.building_lead,
    ScopeLevel.compound: Role.building_lead,  # the compound branch: the leads of its buildings
    ScopeLevel.community: Role.community_worker,
}
