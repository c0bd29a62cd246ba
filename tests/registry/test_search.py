"""Search as people write: rooms in every form the importer reads, names with a space,
status words, filters, the true count with pages; the guard's room check."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from fengchao.registry.importer import validate_resident_rows
from fengchao.registry.models import CareTag, HealthStatus, Household, Person
from fengchao.registry.search import understand
from fengchao.registry.sheets import Table
from tests.conftest import Grid, Persona, _building

part = st.from_regex(r"[1-9][0-9]{0,2}", fullmatch=True)
room = st.from_regex(r"[1-9][0-9]{2,3}", fullmatch=True)
FORMS = (
    "{b}-{u}-{r}", "{b}-{u}-{r}室", "{b}栋{u}单元{r}", "{b}号楼{u}单元{r}室", "{b}幢{u}单元{r}",
    "{c}{b}-{u}-{r}", "{c} {b}-{u}-{r}", "{c}{b}栋{u}单元{r}室",
)  # fmt: skip


@given(b=part, u=part, r=room, form=st.sampled_from(FORMS))
def test_every_room_form_reads_the_same_in_search_and_in_the_importer(
    b: str, u: str, r: str, form: str
) -> None:
    text = form.format(b=b, u=u, r=r, c="华润中央公园")
    address = understand(text).address
    assert address is not None, text
    assert (address.building, address.unit, address.room) == (b, u, r)
    assert address.compound in ("", "华润中央公园")
    table = Table(
        {"name": 0, "id_number": 1, "address": 2},
        1,
        ["姓名", "身份证号", "地址"],
        [(2, ["张三", "", text])],
    )
    records, errors = validate_resident_rows(table)
    assert not errors, (text, errors)
    imported = records[0].address
    assert (imported.building, imported.unit, imported.room) == (b, u, r)
    assert imported.compound == address.compound


def test_words_become_filters_and_names_lose_their_spaces() -> None:
    assert understand("居家隔离").words.health == HealthStatus.home_isolation
    assert understand("独居老人").words.care == CareTag.elderly_alone
    assert understand("刘 海").name == "刘海"
    assert understand("138 0000 0001").digits == "13800000001"


def _people(session: Session, grid: Grid, n: int, surname: str) -> None:
    for i in range(n):
        session.add(
            Person(
                community_id=grid.community.id,
                household_id=grid.h5_101.id,
                name=f"{surname}{i:03d}",
            )
        )
    session.flush()


def test_results_name_their_compound_and_the_compound_narrows_a_room(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    # Building 5 in the other compound too: "5-1-101" is then two flats.
    _b, rooms = _building(session, grid.community, grid.other, "5", ("101",))
    session.add(Person(community_id=grid.community.id, household_id=rooms[0].id, name="王新村"))
    session.flush()
    browser = login_as(worker)
    both = browser.get("/registry/search", params={"q": "5-1-101"}).text
    assert "华润中央公园 5-1-101" in both and "宏侨新村 5-1-101" in both
    for q in ("华润 5-1-101", "华润中央公园5栋1单元101室", "华润 5-1-101室"):
        names = [p["name"] for p in browser.get("/api/registry/search", params={"q": q}).json()]
        assert names == ["林国平"], q
        page = browser.get("/registry/search", params={"q": q}).text
        assert "宏侨新村 5-1-101" not in page and "华润中央公园 5-1-101" in page
    api = browser.get("/api/registry/search", params={"q": "王新村"}).json()
    assert api[0]["compound"] == "宏侨新村"


def test_true_count_with_pages_and_names_with_a_space(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    _people(session, grid, 75, "刘")
    session.add(Person(community_id=grid.community.id, household_id=grid.h6_101.id, name="刘海"))
    session.flush()
    browser = login_as(worker)
    first = browser.get("/api/registry/search", params={"q": "刘"})
    assert first.headers["x-total-count"] == "76" and len(first.json()) == 30
    last = browser.get("/api/registry/search", params={"q": "刘", "page": 3})
    assert len(last.json()) == 16
    page = browser.get("/registry/search", params={"q": "刘"}).text
    assert "找到 76 人" in page and "第 1/3 页" in page and "下一页" in page
    assert [
        p["name"] for p in browser.get("/api/registry/search", params={"q": "刘 海"}).json()
    ] == ["刘海"]


def test_status_words_and_filters(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    grid.resident5.health_status = HealthStatus.home_isolation
    grid.resident6.care_tags = [CareTag.elderly_alone.value, CareTag.chronic_illness.value]
    session.flush()
    browser = login_as(worker)

    def names(**params: object) -> list[str]:
        return [p["name"] for p in browser.get("/api/registry/search", params=params).json()]

    assert names(q="居家隔离") == ["林国平"]
    assert names(q="独居老人") == ["陈美玲"]
    assert names(care="chronic_illness") == ["陈美玲"]
    assert names(health="home_isolation", building=grid.b6.id) == []
    assert names(q="林", building=grid.b5.id) == ["林国平"]
    empty = browser.get("/registry/search", params={"q": "没有这个人"}).text
    assert "没有找到" in empty and "可以试试" in empty


def test_guard_sees_who_lives_in_a_flat_but_no_phone_or_id(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, guard: Persona
) -> None:
    browser = login_as(guard)
    page = browser.get("/registry/rooms", params={"q": "5栋1单元101"})
    assert page.status_code == 200 and "林国平" in page.text and "华润中央公园 5-1-101" in page.text
    assert "13800000001" not in page.text and "002X" not in page.text
    by_name = browser.get("/registry/rooms", params={"q": "陈美玲"}).text
    assert "6-1-101" in by_name
    assert browser.get("/registry/search", params={"q": "林"}).status_code == 403
    assert browser.get(f"/registry/people/{grid.resident5.id}").status_code == 403


def test_lead_todo_orders_by_urgency_and_lists_empty_flats(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, lead5: Persona
) -> None:
    alone = Person(
        community_id=grid.community.id, household_id=grid.h5_101.id, name="独居甲",
        care_tags=[CareTag.elderly_alone.value], birth_date=dt.date(1940, 1, 1),
    )  # fmt: skip
    pregnant = Person(
        community_id=grid.community.id, household_id=grid.h5_101.id, name="孕妇乙",
        care_tags=[CareTag.pregnant.value], phone="13900000008",
    )  # fmt: skip
    session.add_all([alone, pregnant])
    grid.resident5.health_status = HealthStatus.positive
    grid.resident6.health_status = HealthStatus.home_isolation  # another building
    session.flush()
    page = login_as(lead5).get("/registry/todo").text
    order = [page.index(n) for n in ("林国平", "独居甲", "孕妇乙")]
    assert order == sorted(order)
    assert "陈美玲" not in page
    assert 'href="tel:13900000008"' in page
    empty = session.query(Household).filter(Household.building_id == grid.b5.id).count() - 1
    assert f"<b>{empty}</b><span>无人登记户</span>" in page


def test_worker_overview_counts_by_health_and_care(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, worker: Persona
) -> None:
    grid.resident5.health_status = HealthStatus.home_isolation
    grid.resident6.care_tags = [CareTag.elderly_alone.value]
    session.flush()
    page = login_as(worker).get("/registry/overview").text
    assert "/registry/search?health=home_isolation" in page
    assert "社区概况" in page and "今日变更" in page


def test_overview_coverage_matches_the_completeness_report(  # type: ignore[no-untyped-def]
    session: Session, grid: Grid, worker: Persona
) -> None:
    from fengchao.registry import homes, service

    extra = Person(community_id=grid.community.id, household_id=grid.h5_101.id, name="无手机")
    session.add(extra)
    session.flush()
    shown = homes.overview(session=session, actor=worker.actor).coverage
    report = service.completeness_report(
        session=session, actor=worker.actor, community_id=grid.community.id
    ).report.total
    for figure in ("household_coverage", "phone_coverage", "id_coverage", "face_coverage"):
        assert getattr(shown, figure) == getattr(report, figure), figure
