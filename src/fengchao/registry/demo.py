"""A community like the reference one (宏路街道 宏侨社区, 4,883 households), generated.

Names, ID numbers (checksum-valid), phones and Fujian plates are synthetic and seeded,
so every run builds the same community. Rows go in with bulk inserts: seconds, not minutes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.registry.models import (
    Building,
    BuildingLead,
    CareTag,
    Community,
    Compound,
    Gender,
    HealthStatus,
    Household,
    PartyOrg,
    PartyOrgKind,
    Person,
    Relation,
    ResidenceStatus,
    Street,
    Unit,
    Vehicle,
)
from fengchao.registry.validation import id_check_char, mask_id_number

STREET = "宏路街道"
COMMUNITY = "宏侨社区"
TARGET_HOUSEHOLDS = 4883
# (compound, buildings, units per building, floors, rooms per floor)
COMPOUNDS: tuple[tuple[str, int, int, int, int], ...] = (
    ("华润中央公园", 16, 2, 32, 3),
    ("宏侨新村", 12, 3, 6, 2),
    ("侨兴花园", 9, 2, 11, 3),
    ("融侨锦城", 8, 2, 25, 2),
)

SURNAMES = "陈林黄张吴郑王李刘许杨何谢曾周蔡方翁游江魏薛施俞邱罗高梁朱徐宋叶詹苏赖潘卢韩余胡"
MALE_CHARS = "伟强明辉建国华志文斌军杰海涛峰宇鹏晨浩俊磊鑫凯旭东龙锦荣德平昌福"
FEMALE_CHARS = "丽芳敏静婷娟霞燕玲萍红梅秀英华美雪琴兰莹慧颖欣怡佳月珍玉淑晶"
REGIONS = ("350181", "350102", "350104", "350121", "350111", "350182", "350123", "350128")
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
PLATE_CHARS = PLATE_LETTERS + "0123456789"


@dataclass
class DemoSummary:
    community_id: int
    households: int
    people: int
    vehicles: int
    buildings: int
    party_members: int
    seconds: float


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.used_ids: set[str] = set()
        self.used_phones: set[str] = set()
        self.used_plates: set[str] = set()
        self.today = dt.date(2026, 11, 29)

    def name(self, surname: str, gender: Gender) -> str:
        chars = MALE_CHARS if gender == Gender.male else FEMALE_CHARS
        given = "".join(self.rng.choice(chars) for _ in range(self.rng.choice((1, 2, 2, 2))))
        return surname + given

    def birth(self, min_age: int, max_age: int) -> dt.date:
        age_days = self.rng.randint(min_age * 365, max_age * 365 + 364)
        return self.today - dt.timedelta(days=age_days)

    def id_number(self, birth: dt.date, gender: Gender) -> str:
        while True:
            seq = self.rng.randint(0, 99)
            last = self.rng.choice("13579" if gender == Gender.male else "02468")
            first17 = f"{self.rng.choice(REGIONS)}{birth:%Y%m%d}{seq:02d}{last}"
            number = first17 + id_check_char(first17)
            if number not in self.used_ids:
                self.used_ids.add(number)
                return number

    def phone(self) -> str:
        while True:
            number = (
                self.rng.choice(("13", "15", "18", "19", "17")) + f"{self.rng.randrange(10**9):09d}"
            )
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def plate(self) -> str:
        while True:
            if self.rng.random() < 0.2:
                plate = (
                    "闽A"
                    + self.rng.choice("DF")
                    + self.rng.choice(PLATE_CHARS)
                    + (f"{self.rng.randrange(10**4):04d}")
                )
            else:
                plate = "闽A" + "".join(self.rng.choice(PLATE_CHARS) for _ in range(5))
            if plate not in self.used_plates:
                self.used_plates.add(plate)
                return plate


def _household_members(gen: _Generator) -> list[tuple[Relation, Gender, dt.date]]:
    """A plausible household: a couple with children, an elderly person alone, tenants…"""
    rng = gen.rng
    kind = rng.choices(
        ("family", "couple", "elderly", "single", "tenants", "three_gen"),
        weights=(40, 12, 7, 5, 8, 28),
    )[0]
    head_gender = rng.choice((Gender.male, Gender.female))
    other = Gender.female if head_gender == Gender.male else Gender.male
    if kind == "elderly":
        return [(Relation.owner, head_gender, gen.birth(68, 92))]
    if kind == "single":
        return [(Relation.owner, head_gender, gen.birth(24, 60))]
    if kind == "tenants":
        return [
            (Relation.tenant, rng.choice(list(Gender)), gen.birth(20, 45))
            for _ in range(rng.randint(1, 3))
        ]
    members = [(Relation.owner, head_gender, gen.birth(30, 60))]
    members.append((Relation.family, other, gen.birth(28, 58)))
    if kind in ("family", "three_gen"):
        for _ in range(rng.choice((1, 2))):
            members.append((Relation.family, rng.choice(list(Gender)), gen.birth(1, 22)))
    if kind == "three_gen":
        members.append((Relation.family, rng.choice(list(Gender)), gen.birth(62, 88)))
        if rng.random() < 0.5:
            members.append((Relation.family, rng.choice(list(Gender)), gen.birth(62, 88)))
    return members


def build_demo(
    session: Session, *, seed: int = 20221111, progress: Callable[[str], None] | None = None
) -> DemoSummary:
    """Create the demo street and community in ``session`` (the caller commits)."""
    started = dt.datetime.now()
    say = progress or (lambda _msg: None)
    gen = _Generator(seed)
    cipher = get_cipher()
    street = session.scalar(select(Street).where(Street.name == STREET))
    if street is None:
        street = Street(name=STREET)
        session.add(street)
        session.flush()
    community = Community(street_id=street.id, name=COMMUNITY)
    session.add(community)
    session.flush()
    cid = community.id

    say("网格")
    layout: list[tuple[Compound, Building, list[Unit], int, int]] = []
    for order, (cname, n_buildings, n_units, floors, per_floor) in enumerate(COMPOUNDS):
        compound = Compound(community_id=cid, name=cname)
        session.add(compound)
        session.flush()
        for b in range(1, n_buildings + 1):
            building = Building(
                community_id=cid, compound_id=compound.id, name=str(b), sort_key=order * 100 + b
            )
            session.add(building)
            session.flush()
            units = [
                Unit(community_id=cid, building_id=building.id, name=str(u), sort_key=u)
                for u in range(1, n_units + 1)
            ]
            session.add_all(units)
            layout.append((compound, building, units, floors, per_floor))
    session.flush()

    rooms: list[dict[str, Any]] = []
    for compound, building, units, floors, per_floor in layout:
        for unit in units:
            for floor in range(1, floors + 1):
                for r in range(1, per_floor + 1):
                    rooms.append(
                        {
                            "community_id": cid,
                            "compound_id": compound.id,
                            "building_id": building.id,
                            "unit_id": unit.id,
                            "room": f"{floor}{r:02d}",
                            "vacant": gen.rng.random() < 0.03,
                        }
                    )
    # Trim the top floors so the count matches the reference community exactly.
    rooms = rooms[:TARGET_HOUSEHOLDS]
    session.execute(insert(Household), rooms)
    households = session.execute(
        select(Household.id, Household.building_id, Household.vacant)
        .where(Household.community_id == cid)
        .order_by(Household.id)
    ).all()

    say("居民")
    people: list[dict[str, Any]] = []
    vehicles: list[dict[str, Any]] = []
    by_building: dict[int, list[int]] = {}
    for household_id, building_id, vacant in households:
        if vacant or gen.rng.random() < 0.015:
            continue  # vacant flats, and a few that nobody has registered yet
        surname = gen.rng.choice(SURNAMES)
        members = _household_members(gen)
        for relation, gender, birth in members:
            last_name = (
                surname
                if relation != Relation.family or gen.rng.random() < 0.5
                else (gen.rng.choice(SURNAMES))
            )
            age = (gen.today - birth).days // 365
            has_id = gen.rng.random() > 0.01
            number = gen.id_number(birth, gender) if has_id else None
            care: list[str] = []
            if len(members) == 1 and age >= 70:
                care.append(CareTag.elderly_alone.value)
            if age >= 55 and gen.rng.random() < 0.12:
                care.append(CareTag.chronic_illness.value)
            if gen.rng.random() < 0.01:
                care.append(CareTag.disabled.value)
            status = ResidenceStatus.living
            roll = gen.rng.random()
            if roll < 0.04:
                status = ResidenceStatus.away
            elif roll < 0.05:
                status = ResidenceStatus.moved_out
            people.append(
                {
                    "community_id": cid,
                    "household_id": household_id,
                    "name": gen.name(last_name, gender),
                    "gender": gender,
                    "birth_date": birth,
                    "id_number_enc": cipher.encrypt(number) if number else None,
                    "id_number_hash": cipher.lookup_hash(number) if number else None,
                    "id_mask": mask_id_number(number) if number else None,
                    "id_last4": number[-4:] if number else None,
                    "phone": gen.phone() if age >= 14 and gen.rng.random() > 0.03 else None,
                    "relation": relation,
                    "residence_status": status,
                    "health_status": HealthStatus.normal,
                    "care_tags": care,
                    "party_member": False,
                }
            )
            if relation == Relation.owner and 25 <= age <= 65:
                by_building.setdefault(building_id, []).append(len(people) - 1)
        if gen.rng.random() < 0.35:
            vehicles.append(
                {"community_id": cid, "household_id": household_id, "plate": gen.plate()}
            )
    for start in range(0, len(people), 2000):
        session.execute(insert(Person), people[start : start + 2000])
    session.execute(insert(Vehicle), vehicles)

    say("党组织")
    person_ids = list(
        session.scalars(select(Person.id).where(Person.community_id == cid).order_by(Person.id))
    )
    branch = PartyOrg(
        community_id=cid, kind=PartyOrgKind.community_branch, name=f"{COMMUNITY}党总支"
    )
    session.add(branch)
    session.flush()
    compound_orgs: dict[int, PartyOrg] = {}
    for compound, *_rest in layout:
        if compound.id not in compound_orgs:
            org = PartyOrg(
                community_id=cid,
                kind=PartyOrgKind.compound_branch,
                name=f"{compound.name}党支部",
                parent_id=branch.id,
                compound_id=compound.id,
            )
            session.add(org)
            compound_orgs[compound.id] = org
    session.flush()
    party_members = 0
    for compound, building, *_rest in layout:
        group = PartyOrg(
            community_id=cid,
            kind=PartyOrgKind.building_group,
            name=f"{compound.name}{building.name}号楼党小组",
            parent_id=compound_orgs[compound.id].id,
            building_id=building.id,
        )
        session.add(group)
        session.flush()
        candidates = by_building.get(building.id, [])
        chosen = gen.rng.sample(candidates, k=min(len(candidates), gen.rng.choice((1, 1, 2))))
        for index in chosen:
            person = session.get(Person, person_ids[index])
            assert person is not None
            person.party_member = True
            person.party_org_id = group.id
            party_members += 1
        if chosen:
            session.add(
                BuildingLead(
                    building_id=building.id, community_id=cid, person_id=person_ids[chosen[0]]
                )
            )
    session.flush()
    # Imported here: the sampling slice stands on the registry.
    from fengchao.sampling.demo import add_demo_sampling

    say("核酸采样")
    add_demo_sampling(session, cid)
    from fengchao.duty.demo import build_duty_demo  # the duty slice's posts and volunteers

    say("值班")
    build_duty_demo(session, cid)
    from fengchao.gridwork.demo import build_gridwork_demo  # grid work stands on the registry

    say("网格工作")
    build_gridwork_demo(session, cid)
    from fengchao.access.demo import add_demo_gates  # the access slice's part of the demo

    add_demo_gates(session, cid)
    from fengchao.visitors.demo import add_demo_visitors  # posters and passes at those gates

    add_demo_visitors(session, cid)
    seconds = (dt.datetime.now() - started).total_seconds()
    return DemoSummary(
        cid, len(rooms), len(people), len(vehicles), len(layout), party_members, seconds
    )
