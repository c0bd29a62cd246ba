"""Which part of the grid an account sees: SQL filters and the communities in scope."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import (
    GridScope,
)
from fengchao.registry.models import (
    Building,
    Community,
    Compound,
    Household,
    Street,
)
from fengchao.web.i18n import _


def _community_ids_of_street(street_id: int) -> Any:
    return select(Community.id).where(Community.street_id == street_id).scalar_subquery()


def household_in_scope(scope: GridScope) -> ColumnElement[bool]:
    match scope.level:
        case ScopeLevel.street:
            return Household.community_id.in_(_community_ids_of_street(scope.node_id))
        case ScopeLevel.community:
            return Household.community_id == scope.node_id
        case ScopeLevel.compound:
            return Household.compound_id == scope.node_id
        case ScopeLevel.building:
            return Household.building_id == scope.node_id
    raise ValueError(scope.level)


def building_in_scope(scope: GridScope) -> ColumnElement[bool]:
    match scope.level:
        case ScopeLevel.street:
            return Building.community_id.in_(_community_ids_of_street(scope.node_id))
        case ScopeLevel.community:
            return Building.community_id == scope.node_id
        case ScopeLevel.compound:
            return Building.compound_id == scope.node_id
        case ScopeLevel.building:
            return Building.id == scope.node_id
    raise ValueError(scope.level)


def covers(
    scope: GridScope, *, street_id: int, community_id: int, compound_id: int, building_id: int
) -> bool:
    """Whether ``scope`` covers a place already loaded (the Python twin of
    :func:`household_in_scope`, for checking many rows without a query each)."""
    match scope.level:
        case ScopeLevel.street:
            return street_id == scope.node_id
        case ScopeLevel.community:
            return community_id == scope.node_id
        case ScopeLevel.compound:
            return compound_id == scope.node_id
        case ScopeLevel.building:
            return building_id == scope.node_id
    raise ValueError(scope.level)


def communities_in_scope(*, session: Session, scope: GridScope) -> list[Community]:
    query = select(Community).options(joinedload(Community.street)).order_by(Community.id)
    match scope.level:
        case ScopeLevel.street:
            query = query.where(Community.street_id == scope.node_id)
        case ScopeLevel.community:
            query = query.where(Community.id == scope.node_id)
        case ScopeLevel.compound:
            query = query.where(
                Community.id
                == select(Compound.community_id)
                .where(Compound.id == scope.node_id)
                .scalar_subquery()
            )
        case ScopeLevel.building:
            query = query.where(
                Community.id
                == select(Building.community_id)
                .where(Building.id == scope.node_id)
                .scalar_subquery()
            )
    return list(session.scalars(query))


def scope_label(*, session: Session, scope: GridScope) -> str:
    if scope.level == ScopeLevel.building:
        building = session.get(Building, scope.node_id)
        if building is None:
            return "—"
        return _("{c} {b}号楼").format(c=building.compound.name, b=building.name)
    node: Street | Community | Compound | None
    if scope.level == ScopeLevel.street:
        node = session.get(Street, scope.node_id)
    elif scope.level == ScopeLevel.community:
        node = session.get(Community, scope.node_id)
    else:
        node = session.get(Compound, scope.node_id)
    return node.name if node else "—"


_NODE_TABLES: dict[ScopeLevel, type[Street | Community | Compound | Building]] = {
    ScopeLevel.street: Street,
    ScopeLevel.community: Community,
    ScopeLevel.compound: Compound,
    ScopeLevel.building: Building,
}


def grid_node_exists(*, session: Session, level: ScopeLevel, node_id: int) -> bool:
    """Whether the grid has a node ``node_id`` at ``level`` (an account's scope must)."""
    table = _NODE_TABLES[level]
    return session.scalar(select(table.id).where(table.id == node_id)) is not None
