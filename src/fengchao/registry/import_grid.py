"""The community's grid in memory for an import: 15,000 rows resolve their addresses without
15,000 queries, within the part of the grid the importer answers for."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.service import GridScope
from fengchao.registry.models import Building, Community, Compound, Household, Unit
from fengchao.registry.scope import covers, scope_label
from fengchao.registry.service import room_key
from fengchao.registry.validation import Address, clip
from fengchao.web.i18n import _


class GridMiss(LookupError):
    """An address the grid (or the importer's part of it) does not have; ``field`` is the
    column at fault: compound, building, unit or room."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class GridIndex:
    """The community's grid in memory, so that 15,000 rows resolve without 15,000 queries,
    and the part of it the importer is responsible for (``scope``; None: all of it)."""

    def __init__(self, session: Session, community_id: int, scope: GridScope | None) -> None:
        self.session = session
        self.community_id = community_id
        self.scope = scope
        community = session.get(Community, community_id)
        self.street_id = community.street_id if community else 0
        self.scope_name = scope_label(session=session, scope=scope) if scope else ""
        self.compounds = {
            c.name: c
            for c in session.scalars(select(Compound).where(Compound.community_id == community_id))
        }
        self.compound_names = {c.id: c.name for c in self.compounds.values()}
        self.buildings: dict[tuple[int, str], Building] = {}
        self.buildings_by_name: dict[str, list[Building]] = {}
        for b in session.scalars(select(Building).where(Building.community_id == community_id)):
            self.buildings[(b.compound_id, b.name)] = b
            self.buildings_by_name.setdefault(b.name, []).append(b)
        self.units = {
            (u.building_id, u.name): u
            for u in session.scalars(select(Unit).where(Unit.community_id == community_id))
        }
        self.households = {
            (h.unit_id, h.room): h
            for h in session.scalars(
                select(Household).where(Household.community_id == community_id)
            )
        }

    def covers(self, household: Household | Building) -> bool:
        """Whether the importer is responsible for this household or building."""
        if self.scope is None:
            return True
        building_id = household.id if isinstance(household, Building) else household.building_id
        return covers(
            self.scope,
            street_id=self.street_id,
            community_id=household.community_id,
            compound_id=household.compound_id,
            building_id=building_id,
        )

    def building_for(self, address: Address) -> Building:
        """The building; :class:`GridMiss` saying why it cannot be found."""
        if address.compound:
            compound = self.compounds.get(address.compound)
            if compound is None:
                known = "、".join(self.compounds) or "—"
                raise GridMiss(
                    _("小区“{c}”不在本社区（本社区有：{known}）").format(
                        c=clip(address.compound), known=known
                    ),
                    "compound",
                )
            building = self.buildings.get((compound.id, address.building))
            if building is None:
                raise GridMiss(
                    _("{c} 没有 {b} 号楼").format(
                        c=clip(address.compound), b=clip(address.building)
                    ),
                    "building",
                )
            return building
        candidates = self.buildings_by_name.get(address.building, [])
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise GridMiss(_("本社区没有 {b} 号楼").format(b=clip(address.building)), "building")
        raise GridMiss(
            _("{b} 号楼在多个小区都有，请填写“小区”列").format(b=clip(address.building)),
            "compound",
        )

    def resolve(self, address: Address, create_missing: bool) -> tuple[int | None, str | None]:
        """(household id, None), or (None, a planned new household key); :class:`GridMiss`
        when the place is not in the grid or not in the importer's part of it."""
        building = self.building_for(address)
        if not self.covers(building):
            raise GridMiss(
                _("{c} {b}号楼不在您负责的范围内（您负责：{scope}）").format(
                    c=self.compound_names.get(building.compound_id, ""),
                    b=building.name,
                    scope=self.scope_name,
                ),
                "building",
            )
        unit = self.units.get((building.id, address.unit))
        household = self.households.get((unit.id, address.room)) if unit else None
        if household is not None:
            return household.id, None
        if not create_missing:
            raise GridMiss(
                _(
                    "{b}号楼{u}单元{r}室 在网格中不存在（如确是新房号，请勾选“自动创建缺少的单元和房号”）"  # noqa: E501
                ).format(b=building.name, u=clip(address.unit), r=clip(address.room)),
                "room" if unit else "unit",
            )
        return None, f"{building.id}|{address.unit}|{address.room}"

    def create(self, key: str) -> int:
        building_id_s, unit_name, room = key.split("|")
        building = self.session.get(Building, int(building_id_s))
        assert building is not None
        unit = self.units.get((building.id, unit_name))
        if unit is None:
            unit = Unit(
                community_id=self.community_id,
                building_id=building.id,
                name=unit_name,
                sort_key=room_key(unit_name)[0],
            )
            self.session.add(unit)
            self.session.flush()
            self.units[(building.id, unit_name)] = unit
        household = Household(
            community_id=self.community_id,
            compound_id=building.compound_id,
            building_id=building.id,
            unit_id=unit.id,
            room=room,
        )
        self.session.add(household)
        self.session.flush()
        self.households[(unit.id, room)] = household
        return household.id
