"""Coverage: per building and household, exemptions, the unsampled list and its masks."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.sampling import coverage as cover
from fengchao.sampling import registration as reg
from fengchao.sampling import service
from fengchao.sampling.models import ExemptionKind
from tests.conftest import Grid, Persona, make_persona
from tests.sampling.conftest import Site


def swab(session: Session, sampler: Persona, site: Site, person_id: int, barcode: str) -> None:
    reg.register_swab(session=session, actor=sampler.actor, round_id=site.round.id,
                      barcode=barcode, key=uuid.uuid4().hex, person_id=person_id)  # fmt: skip


def test_a_household_is_done_when_everyone_is_sampled_or_exempt(
    session: Session, site: Site, sampler: Persona, worker: Persona, grid: Grid
) -> None:
    home = [p for p in site.people if p.household_id == grid.h5_101.id]
    assert len(home) == 2
    swab(session, sampler, site, grid.resident5.id, "V0001")
    swab(session, sampler, site, home[0].id, "V0001")
    service.add_exemption(session=session, actor=worker.actor, round_id=site.round.id,
                          person_id=home[1].id, kind=ExemptionKind.infant)  # fmt: skip
    # Exempt but sampled all the same: counted as sampled, not as exempt.
    service.add_exemption(session=session, actor=worker.actor, round_id=site.round.id,
                          person_id=grid.resident5.id, kind=ExemptionKind.away)  # fmt: skip
    report = cover.coverage(session=session, actor=worker.actor, round_id=site.round.id)
    b5 = next(b for b in report.buildings if b.building_id == grid.b5.id)
    assert (b5.people, b5.sampled, b5.exempt) == (13, 2, 1)
    assert b5.households == 8 and b5.households_done == 1
    rows = cover.unsampled(
        session=session, actor=worker.actor, round_id=site.round.id, building_id=grid.b5.id
    )
    names = [r.name for r in rows]
    assert grid.resident5.name not in names and home[1].name not in names
    assert len(names) == 10
    assert service.last_sampled_at(session, home[0].id) is not None
    assert service.last_sampled_at(session, home[1].id) is None


def test_phones_are_masked_for_a_role_without_the_registry(
    session: Session, site: Site, grid: Grid, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from fengchao.auth import service as auth_service

    viewer = make_persona(session, "viewer", Role.sampler,
                          GridScope(ScopeLevel.community, grid.community.id))  # fmt: skip
    monkeypatch.setitem(
        auth_service.ROLE_PERMISSIONS,
        Role.sampler,
        frozenset({auth_service.Permission.sampling_coverage}),
    )
    rows = cover.unsampled(session=session, actor=viewer.actor, round_id=site.round.id)
    phones = [r.phone for r in rows if r.phone]
    assert phones and all("*" in p for p in phones)


def test_a_round_of_listed_people_expects_only_them(
    session: Session, site: Site, worker: Persona
) -> None:
    listed = service.create_round(
        session=session,
        actor=worker.actor,
        site_id=site.site.id,
        name="复采名单",
        day=site.round.day,
        scope=service.RoundScope.people,
        scope_ids=[site.people[0].id, site.people[1].id],
    )
    report = cover.coverage(session=session, actor=worker.actor, round_id=listed.id)
    assert report.expected == 2


def test_the_unsampled_list_runs_floor_by_floor(
    session: Session, site: Site, worker: Persona, grid: Grid
) -> None:
    # The lead walks 101, 102, 201 … 1001, not in the text order that puts 1001 before 101.
    from fengchao.registry.models import Household, Person, Relation

    high = Household(community_id=grid.community.id, compound_id=grid.park.id,
                     building_id=grid.b5.id, unit_id=grid.h5_101.unit_id, room="1001")  # fmt: skip
    session.add(high)
    session.flush()
    session.add(Person(community_id=grid.community.id, household_id=high.id, name="高层住户",
                       relation=Relation.owner))  # fmt: skip
    session.flush()
    rows = cover.unsampled(
        session=session, actor=worker.actor, round_id=site.round.id, building_id=grid.b5.id
    )
    unit1 = [r.room for r in rows if r.unit == "1"]
    assert unit1[-1] == "1001" and unit1[0] == "101", unit1


def test_the_hourly_counts_are_of_the_actors_buildings_only(
    session: Session, site: Site, sampler: Persona, worker: Persona, lead5: Persona, grid: Grid
) -> None:
    swab(session, sampler, site, grid.resident5.id, "V0001")
    swab(session, sampler, site, site.people[0].id, "V0001")
    swab(session, sampler, site, grid.resident6.id, "V0001")  # building 6: not the lead's

    def hourly(persona: Persona) -> int:
        report = cover.coverage(session=session, actor=persona.actor, round_id=site.round.id)
        return sum(n for _hour, n, _target in report.per_hour)

    assert hourly(worker) == 3  # the worker's whole community
    assert hourly(lead5) == 2  # the lead's building, as the rest of the lead's page
