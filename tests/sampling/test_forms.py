"""The forms of the sampling pages refused: the form comes back (422) as typed, the message
at the field at fault with the cursor in it, and nothing stored."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from fengchao.sampling.models import SamplingExemption, SamplingRound, SamplingSite
from tests.conftest import Grid, Persona
from tests.sampling.conftest import Site


def counts(session: Session) -> tuple[int, ...]:
    return tuple(
        session.scalar(select(func.count()).select_from(model)) or 0
        for model in (SamplingSite, SamplingRound, SamplingExemption, AuditEvent)
    )


def settled(browser, session: Session) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
    """The counts once the fixtures' audit rows are written (at the end of a request)."""
    browser.get("/")
    return counts(session)


def field_tag(page: str, name: str) -> str:
    """The <input> or <select> named ``name``."""
    found = re.search(rf'<(?:input|select)[^>]*\bname="{name}"[^>]*>', page)
    assert found, name
    return found.group(0)


def assert_refused_at(page: str, name: str, message: str) -> None:
    tag = field_tag(page, name)
    assert 'aria-invalid="true"' in tag and "autofocus" in tag, tag
    error = re.search(rf'<span class="field-error" id="[a-z]+-{name}-error">([^<]*)</span>', page)
    assert error and message in html.unescape(error.group(1)), (name, error)
    assert page.count("autofocus") == 1  # the cursor in that field alone
    assert 'class="alert" role="alert"' in page  # and the summary on top


def site_form(grid: Grid, **changes: str) -> dict[str, object]:
    data: dict[str, object] = {"community_id": grid.community.id, "name": "北门采样点",
                               "opens": "07:30", "closes": "13:30", "stations": "4",
                               "per_station_hour": "100"}  # fmt: skip
    return {**data, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "   "}, "name", "采样点名称不能为空"),
        ({"stations": "99"}, "stations", "1 到 50"),
        ({"stations": "四"}, "stations", "应为整数"),
        ({"per_station_hour": "0"}, "per_station_hour", "1 到 1000"),
        ({"opens": "7点半"}, "opens", "时:分"),
        ({"closes": "06:00"}, "closes", "晚于开始时间"),
    ],
)
def test_a_refused_site_comes_back_as_typed(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona,
    changes: dict[str, str], field: str, message: str,
) -> None:  # fmt: skip
    browser = login_as(worker)
    before = settled(browser, session)
    typed = site_form(grid, **changes)
    refused = browser.post("/sampling/sites", data=typed)
    assert refused.status_code == 422
    page = refused.text
    assert_refused_at(page, field, message)
    for name in ("name", "opens", "closes", "stations", "per_station_hour"):
        assert f'value="{html.escape(str(typed[name]))}"' in field_tag(page, name), name
    assert counts(session) == before


def test_a_good_site_is_still_added(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    made = browser.post("/sampling/sites", data=site_form(grid, name="西门采样点"))
    assert made.status_code == 303
    assert session.scalar(select(SamplingSite).where(SamplingSite.name == "西门采样点"))


def round_form(site: Site, **changes: str) -> dict[str, object]:
    data: dict[str, object] = {"site_id": site.site.id, "name": "第二轮 周四",
                               "day": "2026-12-03", "scope": "buildings", "scope_ids": "1, 2",
                               "tube_capacity": "20", "household_tubes": "true",
                               "turnout": "85"}  # fmt: skip
    return {**data, **changes}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "轮次名称不能为空"),
        ({"day": "2026-02-30"}, "day", "应为日期"),
        ({"day": "30/11/2026"}, "day", "应为日期"),
        ({"day": "0001-01-01"}, "day", "年份"),
        ({"turnout": "150"}, "turnout", "1% 到 100%"),
        ({"turnout": "九十"}, "turnout", "应为整数"),
        ({"tube_capacity": "11"}, "tube_capacity", "1、5、10 或 20"),
        ({"scope_ids": "1, 二"}, "scope_ids", "编号应为数字"),
        ({"scope": "planet"}, "scope", "取值不在允许范围内"),
    ],
)
def test_a_refused_round_comes_back_as_typed(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona,
    changes: dict[str, str], field: str, message: str,
) -> None:  # fmt: skip
    browser = login_as(worker)
    before = settled(browser, session)
    typed = round_form(site, **changes)
    refused = browser.post("/sampling/rounds", data=typed)
    assert refused.status_code == 422
    page = refused.text
    assert_refused_at(page, field, message)
    for name in ("name", "day", "scope_ids", "turnout"):
        assert f'value="{html.escape(str(typed[name]))}"' in field_tag(page, name), name
    if field != "scope":
        assert re.search(r'<option value="buildings" selected>', page)
    if field != "tube_capacity":
        assert re.search(r'<option value="20" selected>', page)
    assert re.search(r'name="household_tubes" value="true" checked', page)
    assert f'<option value="{site.site.id}" selected>' in page
    assert counts(session) == before


def test_a_round_over_buildings_outside_the_community_is_refused_as_typed(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona
) -> None:
    browser = login_as(worker)
    before = settled(browser, session)
    typed = round_form(site, scope_ids="999999")
    refused = browser.post("/sampling/rounds", data=typed)
    assert refused.status_code == 422
    assert_refused_at(refused.text, "scope_ids", "不在本社区")
    assert counts(session) == before


def test_a_good_round_is_still_made(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona, grid: Grid
) -> None:
    browser = login_as(worker)
    made = browser.post(
        "/sampling/rounds", data=round_form(site, scope_ids=str(grid.b5.id), turnout="80")
    )
    assert made.status_code == 303
    found = session.get(SamplingRound, int(made.headers["location"].rsplit("/", 1)[1]))
    assert found is not None and found.name == "第二轮 周四" and found.tube_capacity == 20
    assert found.household_tubes and found.turnout == 80 and found.scope_ids == [grid.b5.id]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"person_id": ""}, "person_id", "必填"),
        ({"person_id": "abc"}, "person_id", "应为整数"),
        ({"person_id": "99999999999"}, "person_id", "应为整数"),
        ({"person_id": "999999"}, "person_id", "本社区没有这个人员编号"),
        ({"kind": "other", "note": "  "}, "note", "请写明免采原因"),
        ({"kind": "holiday"}, "kind", "取值不在允许范围内"),
    ],
)
def test_a_refused_exemption_comes_back_as_typed(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona,
    changes: dict[str, str], field: str, message: str,
) -> None:  # fmt: skip
    browser = login_as(worker)
    before = settled(browser, session)
    typed = {"person_id": str(site.people[0].id), "kind": "away", "note": "在外地出差", **changes}
    refused = browser.post(f"/sampling/rounds/{site.round.id}/exemptions", data=typed)
    assert refused.status_code == 422
    page = refused.text
    assert site.round.name in page  # the round's page, not an error page
    assert_refused_at(page, field, message)
    assert f'value="{html.escape(typed["person_id"])}"' in field_tag(page, "person_id")
    assert f'value="{html.escape(typed["note"])}"' in field_tag(page, "note")
    if field != "kind":
        assert f'<option value="{typed["kind"]}" selected>' in page
    assert counts(session) == before


def test_a_good_exemption_is_still_recorded(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona
) -> None:
    browser = login_as(worker)
    person = site.people[0]
    made = browser.post(
        f"/sampling/rounds/{site.round.id}/exemptions",
        data={"person_id": str(person.id), "kind": "away", "note": "在外地出差"},
    )
    assert made.status_code == 303 and made.headers["location"].endswith("#exemptions")
    found = session.scalar(
        select(SamplingExemption).where(SamplingExemption.person_id == person.id)
    )
    assert found is not None and found.note == "在外地出差"


def test_a_guard_posting_the_forms_is_refused_without_a_form(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, guard: Persona, grid: Grid
) -> None:
    browser = login_as(guard)
    before = settled(browser, session)
    assert browser.post("/sampling/sites", data=site_form(grid)).status_code == 403
    assert browser.post("/sampling/rounds", data=round_form(site)).status_code == 403
    exemption = {"person_id": str(site.people[0].id), "kind": "away"}
    url = f"/sampling/rounds/{site.round.id}/exemptions"
    assert browser.post(url, data=exemption).status_code == 403
    assert counts(session) == before
