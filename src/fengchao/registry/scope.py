"""Which part of the grid an account sees: SQL filters and the communities in scope."""

from __future__ import annotations

from dataclasses import dataclass
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
        # One query (a page header on every request of a lead), not the building and then
        # its compound.
        row = session.execute(
            select(Compound.name, Building.name)
            .join(Compound, Compound.id == Building.compound_id)
            .where(Building.id == scope.node_id)
        ).first()
        if row is None:
            return "—"
        return _("{c} {b}号楼").format(c=row[0], b=row[1])
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


GridNode = tuple[ScopeLevel, int]


def node_lineage(*, session: Session, level: ScopeLevel, node_id: int) -> list[GridNode]:
    """The node and every node above it, up to its street (a building: the building, its
    compound, community and street); empty when there is no such node."""
    if level == ScopeLevel.street:
        return (
            [(level, node_id)]
            if grid_node_exists(session=session, level=level, node_id=node_id)
            else []
        )
    if level == ScopeLevel.community:
        street = session.scalar(select(Community.street_id).where(Community.id == node_id))
        return [] if street is None else [(level, node_id), (ScopeLevel.street, street)]
    if level == ScopeLevel.compound:
        row = session.execute(
            select(Compound.community_id, Community.street_id)
            .join(Community, Community.id == Compound.community_id)
            .where(Compound.id == node_id)
        ).first()
        if row is None:
            return []
        return [
            (level, node_id),
            (ScopeLevel.community, row.community_id),
            (ScopeLevel.street, row.street_id),
        ]
    found = session.execute(
        select(Building.compound_id, Building.community_id, Community.street_id)
        .join(Community, Community.id == Building.community_id)
        .where(Building.id == node_id)
    ).first()
    if found is None:
        return []
    return [
        (level, node_id),
        (ScopeLevel.compound, found.compound_id),
        (ScopeLevel.community, found.community_id),
        (ScopeLevel.street, found.street_id),
    ]


def nodes_within(*, session: Session, level: ScopeLevel, node_id: int) -> list[GridNode]:
    """The node and every community, compound and building below it."""
    nodes: list[GridNode] = [(level, node_id)]
    if level == ScopeLevel.building:
        return nodes
    compound_filter: ColumnElement[bool]
    building_filter: ColumnElement[bool]
    if level == ScopeLevel.street:
        communities = list(
            session.scalars(select(Community.id).where(Community.street_id == node_id))
        )
        nodes += [(ScopeLevel.community, c) for c in communities]
        compound_filter = Compound.community_id.in_(communities)
        building_filter = Building.community_id.in_(communities)
    elif level == ScopeLevel.community:
        compound_filter = Compound.community_id == node_id
        building_filter = Building.community_id == node_id
    else:
        compound_filter = Compound.id == node_id
        building_filter = Building.compound_id == node_id
    if level != ScopeLevel.compound:
        nodes += [
            (ScopeLevel.compound, c)
            for c in session.scalars(select(Compound.id).where(compound_filter))
        ]
    nodes += [
        (ScopeLevel.building, b)
        for b in session.scalars(select(Building.id).where(building_filter))
    ]
    return nodes


def node_in_scope(*, session: Session, scope: GridScope, level: ScopeLevel, node_id: int) -> bool:
    """Whether the node lies within ``scope`` (is the scope's node or below it)."""
    lineage = node_lineage(session=session, level=level, node_id=node_id)
    return (scope.level, scope.node_id) in lineage


@dataclass(frozen=True)
class NodeChoice:
    """A node of the grid as a form offers it."""

    level: ScopeLevel
    node_id: int
    community_id: int
    label: str


def nodes_in_scope(*, session: Session, scope: GridScope) -> list[NodeChoice]:
    """Every community, compound and building within ``scope``: each community, then each
    compound followed by its buildings."""
    choices: list[NodeChoice] = []
    for community in communities_in_scope(session=session, scope=scope):
        if scope.level in (ScopeLevel.street, ScopeLevel.community):
            choices.append(
                NodeChoice(ScopeLevel.community, community.id, community.id, community.name)
            )
        compounds = select(Compound).where(Compound.community_id == community.id)
        if scope.level == ScopeLevel.compound:
            compounds = compounds.where(Compound.id == scope.node_id)
        elif scope.level == ScopeLevel.building:
            compounds = compounds.where(
                Compound.id
                == select(Building.compound_id)
                .where(Building.id == scope.node_id)
                .scalar_subquery()
            )
        for compound in session.scalars(compounds.order_by(Compound.id)):
            if scope.level != ScopeLevel.building:
                choices.append(
                    NodeChoice(ScopeLevel.compound, compound.id, community.id, compound.name)
                )
            buildings = select(Building).where(
                Building.compound_id == compound.id, building_in_scope(scope)
            )
            for building in session.scalars(buildings.order_by(Building.sort_key, Building.id)):
                label = _("{c} {b}号楼").format(c=compound.name, b=building.name)
                choices.append(NodeChoice(ScopeLevel.building, building.id, community.id, label))
    return choices
