"""The demo community's sampling: a site, today's round with its slot plan, and the first
few hundred swabs of the morning (so that coverage and the registration page have data)."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fengchao.registry.models import Person, ResidenceStatus
from fengchao.sampling import service, slots
from fengchao.sampling.models import SamplingRound, SamplingSite, Swab, Tube, TubeStatus

DEMO_SWABS = 300


def add_demo_sampling(session: Session, community_id: int) -> None:
    site = SamplingSite(community_id=community_id, name="华润中央公园采样点")
    session.add(site)
    session.flush()
    zone = ZoneInfo("Asia/Shanghai")
    today = dt.datetime.now(zone).date()
    found = SamplingRound(
        community_id=community_id, site_id=site.id, name="全员核酸", day=today, turnout=90
    )
    session.add(found)
    session.flush()
    loads, _b, _u = service.building_loads(session, community_id)
    day = slots.SiteDay(dt.time(7, 30), dt.time(13, 30), site.stations, site.per_station_hour)
    found.slot_plan = slots.plan_slots(loads, day).as_json()
    people = list(
        session.scalars(
            select(Person.id)
            .where(
                Person.community_id == community_id,
                Person.residence_status == ResidenceStatus.living,
            )
            .order_by(Person.household_id, Person.id)
            .limit(DEMO_SWABS)
        )
    )
    start = dt.datetime.combine(today, dt.time(7, 30), tzinfo=zone).astimezone(dt.UTC)
    rows = []
    for t in range(0, len(people), 10):
        members = people[t : t + 10]
        station = str(t // 10 % site.stations + 1)
        opened = start + dt.timedelta(seconds=20 * t)
        tube = Tube(
            community_id=community_id,
            round_id=found.id,
            barcode=f"DEMO{t // 10 + 1:06d}",
            capacity=10,
            swabs=len(members),
            station=station,
            status=TubeStatus.closed,
            opened_at=opened,
            closed_at=opened + dt.timedelta(minutes=4),
        )
        session.add(tube)
        session.flush()
        for i, person_id in enumerate(members):
            rows.append(
                {
                    "community_id": community_id,
                    "round_id": found.id,
                    "tube_id": tube.id,
                    "person_id": person_id,
                    "station": station,
                    "taken_at": opened + dt.timedelta(seconds=20 * i),
                    "key": uuid.uuid4().hex,
                    "via": "code",
                }
            )
    if rows:
        session.execute(insert(Swab), rows)
    session.flush()
