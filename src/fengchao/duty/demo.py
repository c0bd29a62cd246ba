"""Duty in the demo community: the posts of the reference community (two gates round the
clock with 值大夜, the sampling site, the evening patrol) and 40 volunteers, most of them
the demo's party members, with certificates and weekly availability."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.duty.models import Certificate, Identity, Post, PostKind, ShiftTemplate, Volunteer
from fengchao.registry.models import Person

GATE = (("值大夜", 0, 0, 8, 0), ("白班", 8, 0, 16, 0), ("晚班", 16, 0, 0, 0))
# name, kind, (shift, start h, m, end h, m), min, max, skills
POSTS: tuple[
    tuple[str, PostKind, tuple[tuple[str, int, int, int, int], ...], int, int, list[str]], ...
] = (
    ("东门卡口", PostKind.gate, GATE, 2, 3, []),
    ("西门卡口", PostKind.gate, GATE, 2, 3, []),
    ("核酸采样点", PostKind.sampling, (("采样", 7, 30, 13, 30),), 3, 4, ["medical"]),
    ("夜间巡逻", PostKind.patrol, (("巡逻", 19, 0, 22, 0),), 2, 2, []),
)
OTHERS = (Identity.veteran, Identity.retired_cadre, Identity.teacher, Identity.resident)


def build_duty_demo(session: Session, community_id: int, seed: int = 16) -> int:
    """Add the posts and volunteers; returns the number of volunteers. The caller commits."""
    rng = random.Random(seed)
    for name, kind, shifts, low, high, skills in POSTS:
        post = Post(community_id=community_id, name=name, kind=kind)
        session.add(post)
        session.flush()
        for label, h1, m1, h2, m2 in shifts:
            session.add(
                ShiftTemplate(
                    post_id=post.id,
                    name=label,
                    starts=dt.time(h1, m1),
                    ends=dt.time(h2, m2),
                    min_people=low,
                    max_people=high,
                    skills=list(skills),
                    weekdays=list(range(7)),
                )
            )
    party = list(
        session.scalars(
            select(Person)
            .where(Person.community_id == community_id, Person.party_member.is_(True))
            .order_by(Person.id)
            .limit(30)
        )
    )
    people: list[tuple[str, str | None, Identity, int | None]] = [
        (p.name, p.phone, Identity.party_member, p.id) for p in party
    ]
    others = session.scalars(
        select(Person)
        .where(Person.community_id == community_id, Person.party_member.is_(False))
        .order_by(Person.id)
        .limit(40 - len(people))
    )
    people += [(p.name, p.phone, OTHERS[i % len(OTHERS)], p.id) for i, p in enumerate(others)]
    for i, (name, phone, identity, person_id) in enumerate(people):
        days_off = set(rng.sample(range(7), rng.choice((1, 2, 2, 3))))
        nights = rng.random() > 0.3
        weekly = [
            f"{d}-{period}"
            for d in range(7)
            if d not in days_off
            for period in ("night", "day", "evening")
            if nights or period != "night"
        ]
        volunteer = Volunteer(
            community_id=community_id,
            name=name,
            phone=phone,
            identity=identity,
            person_id=person_id,
            skills=["lead"] if identity == Identity.party_member and i % 3 == 0 else [],
            max_hours_week=rng.choice((24, 32, 40, 40)),
            weekly=weekly,
        )
        session.add(volunteer)
        session.flush()
        if i % 4 == 0:
            session.add(
                Certificate(
                    volunteer_id=volunteer.id,
                    skill="medical",
                    name="护士执业证书",
                    expires_on=dt.date(2028, 12, 31) if i != 8 else dt.date(2026, 1, 31),
                )
            )
    session.flush()
    return len(people)
