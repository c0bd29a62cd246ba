"""Every page reads as English when English is chosen: no Chinese left outside what users
typed (names of people and places), as each role that can open it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.models import User
from fengchao.registry.models import Building, Community, Compound, Person, Street
from tests.conftest import Live

CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]+")
# Chinese that belongs on an English page: the logo's character, and the language switch
# naming Chinese in Chinese.
ALLOWED = ("简体中文", '<span class="mark">蜂</span>')


def _user_data(live: Live) -> list[str]:
    """Text users wrote: names of people and places, and what the tests type in."""
    with Session(live.engine) as session:
        texts = [
            "林",
            *session.scalars(select(Person.name)),
            *session.scalars(select(Compound.name)),
            *session.scalars(select(Community.name)),
            *session.scalars(select(Street.name)),
            *session.scalars(select(Building.name)),
            *session.scalars(select(User.display_name)),
        ]
    return sorted({t for t in texts if t}, key=len, reverse=True)


def _pages(live: Live, role: str) -> list[str]:
    g = live.grid
    common = ["/", "/no-such-page", "/api/docs"]
    readers = [
        "/registry",
        "/registry/search?q=林",
        "/registry/search?q=nobody-here",
        "/registry/search?health=home_isolation",
        "/registry/completeness",
        f"/registry/completeness?building={g.b5.id}&gap=no_phone",
        f"/registry/buildings/{g.b5.id}",
        f"/registry/households/{g.h5_101.id}",
        f"/registry/people/{g.resident5.id}",
        "/registry/proposals",
    ]
    by_role = {
        "admin": [*readers, "/registry/overview", "/registry/import", "/audit",
                  f"/registry/people/{g.resident5.id}/edit",
                  f"/registry/households/{g.h5_101.id}/people/new"],
        "worker": [*readers, "/registry/overview", "/registry/import", "/audit",
                   f"/dashboard?node=building:{g.b5.id}",
                   f"/registry/people/{g.resident5.id}/edit"],
        "lead5": [*readers, "/registry/todo", f"/registry/people/{g.resident5.id}/edit",
                  "/dashboard"],
        "guard": ["/registry/rooms", "/registry/rooms?q=5-1-101", "/registry/rooms?q=nobody",
                  "/registry"],
    }  # fmt: skip
    return common + by_role[role]


@pytest.mark.parametrize("role", ["admin", "worker", "lead5", "guard"])
def test_english_pages_have_no_chinese_outside_user_data(live: Live, role: str) -> None:
    client = live.client(role, lang="en")
    user_data = _user_data(live)
    problems = []
    for url in _pages(live, role):
        response = client.get(url, follow_redirects=True)
        text = response.text
        for allowed in ALLOWED:
            text = text.replace(allowed, "")
        for data in user_data:
            text = text.replace(data, "")
        left = sorted(set(CJK.findall(text)))
        if left:
            problems.append(f"{url} ({response.status_code}): {left[:8]}")
    assert not problems, "\n".join(problems)


def test_login_page_in_english(live: Live) -> None:
    text = live.client(lang="en").get("/login").text
    for allowed in ALLOWED:
        text = text.replace(allowed, "")
    assert not CJK.findall(text)
