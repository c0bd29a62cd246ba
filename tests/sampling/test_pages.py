"""Pages and the JSON API of the sampling site: roles, scope, the whole day's flow."""

from __future__ import annotations

import io
import re
import uuid

from openpyxl import load_workbook
from sqlalchemy.orm import Session

from tests.conftest import Grid, Persona
from tests.sampling.conftest import Site


def test_a_worker_sets_up_a_site_and_a_round_and_plans_slots(  # type: ignore[no-untyped-def]
    login_as, grid: Grid, worker: Persona
) -> None:
    browser = login_as(worker)
    assert browser.get("/sampling").status_code == 200
    made = browser.post(
        "/sampling/sites",
        data={"community_id": grid.community.id, "name": "东门采样点", "opens": "07:30",
              "closes": "13:30", "stations": "4", "per_station_hour": "100"},
    )  # fmt: skip
    assert made.status_code == 303
    page = browser.get("/sampling")
    assert "东门采样点" in page.text
    site_id = page.text.split('name="site_id"><option value="')[1].split('"')[0]
    created = browser.post(
        "/sampling/rounds",
        data={"site_id": site_id, "name": "全员核酸", "day": "2026-11-30", "scope": "community",
              "tube_capacity": "10", "turnout": "90"},
    )  # fmt: skip
    assert created.status_code == 303
    round_url = created.headers["location"]
    assert browser.post(f"{round_url}/plan").status_code == 303
    shown = browser.get(round_url)
    assert shown.status_code == 200 and "07:30–08:00" in shown.text
    sheet = browser.get(f"{round_url}/schedule.xlsx")
    assert sheet.status_code == 200
    rows = list(load_workbook(io.BytesIO(sheet.content)).active.iter_rows(values_only=True))
    assert rows[0][0] == "开始" and len(rows) >= 2
    assert browser.post(f"{round_url}/announce").status_code == 303


def test_a_bad_round_names_the_field(login_as, site: Site, worker: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    refused = browser.post(
        "/sampling/rounds",
        data={"site_id": site.site.id, "name": "x", "day": "2026-11-30", "tube_capacity": "11"},
    )
    assert refused.status_code == 422
    assert "1、5、10 或 20" in refused.text


def test_a_sampler_registers_through_the_api(login_as, site: Site, sampler: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(sampler)
    page = browser.get(f"/sampling/rounds/{site.round.id}/register")
    assert page.status_code == 200 and 'id="swab-input"' in page.text
    base = f"/api/sampling/rounds/{site.round.id}"
    opened = browser.post(f"{base}/tubes", json={"barcode": "A0001", "station": "2"})
    assert opened.status_code == 200 and opened.json()["swabs"] == 0
    body = {"barcode": "A0001", "key": uuid.uuid4().hex, "code": site.numbers[0], "station": "2"}
    first = browser.post(f"{base}/swabs", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["tube"]["swabs"] == 1
    again = browser.post(f"{base}/swabs", json=body)
    assert again.json()["repeated"] is True and again.json()["tube"]["swabs"] == 1
    twice = browser.post(f"{base}/swabs", json={**body, "key": uuid.uuid4().hex})
    assert twice.status_code == 409 and twice.json()["errors"][0]["field"] == "person"
    unknown = browser.post(
        f"{base}/swabs", json={**body, "key": uuid.uuid4().hex, "code": "FC1-" + "A" * 32}
    )
    assert unknown.status_code == 409 and unknown.json()["errors"][0]["field"] == "person"
    undone = browser.post(f"{base}/tubes/A0001/undo")
    assert undone.status_code == 200 and undone.json()["swabs"] == 0
    closed = browser.post(f"{base}/tubes/A0001/close")
    assert closed.json()["closed"] is True
    reopened = browser.post(f"{base}/tubes", json={"barcode": "A0001"})
    assert reopened.status_code == 409 and reopened.json()["errors"][0]["field"] == "tube"


def test_a_sampler_cannot_manage_or_read_coverage(login_as, site: Site, sampler: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(sampler)
    assert browser.get(f"/sampling/rounds/{site.round.id}/coverage").status_code == 403
    assert browser.get(f"/sampling/rounds/{site.round.id}/results").status_code == 403
    assert browser.post(f"/sampling/rounds/{site.round.id}/plan").status_code == 403


def test_a_guard_cannot_register(login_as, site: Site, guard: Persona) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(guard)
    response = browser.post(
        f"/api/sampling/rounds/{site.round.id}/swabs",
        json={"barcode": "A0002", "key": uuid.uuid4().hex, "code": site.numbers[0]},
    )
    assert response.status_code == 403


def test_coverage_shows_the_unsampled_with_phones_for_the_lead(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona, lead5: Persona, grid: Grid
) -> None:
    sampler_browser = login_as(sampler)
    for i in range(3):
        sampler_browser.post(
            f"/api/sampling/rounds/{site.round.id}/swabs",
            json={"barcode": "B0001", "key": uuid.uuid4().hex, "code": site.numbers[i]},
        )
    browser = login_as(lead5)
    page = browser.get(f"/sampling/rounds/{site.round.id}/coverage?building={grid.b5.id}")
    assert page.status_code == 200
    assert "居民4" in page.text and "13900000003" in page.text
    assert "居民1<" not in page.text  # sampled
    assert "陈美玲" not in page.text  # building 6 is not the lead's
    data = browser.get(f"/api/sampling/rounds/{site.round.id}/coverage").json()
    assert [b["building_id"] for b in data["buildings"]] == [grid.b5.id]
    assert data["sampled"] == 3
    export = browser.get(f"/sampling/rounds/{site.round.id}/coverage.xlsx")
    assert export.status_code == 200


def test_a_lab_file_imported_from_the_page(  # type: ignore[no-untyped-def]
    login_as, site: Site, sampler: Persona, worker: Persona
) -> None:
    sampler_browser = login_as(sampler)
    sampler_browser.post(
        f"/api/sampling/rounds/{site.round.id}/swabs",
        json={"barcode": "D0001", "key": uuid.uuid4().hex, "code": site.numbers[0]},
    )
    browser = login_as(worker)
    assert browser.get(f"/sampling/rounds/{site.round.id}/results").status_code == 200
    bad = browser.post(
        f"/sampling/rounds/{site.round.id}/results",
        files={"file": ("lab.csv", "试管条码,检测结果\nNOPE01,阴性\n".encode(), "text/csv")},
    )
    assert bad.status_code == 422 and "NOPE01" in bad.text
    good = browser.post(
        f"/sampling/rounds/{site.round.id}/results",
        files={"file": ("lab.csv", "试管条码,检测结果\nD0001,阳性\n".encode(), "text/csv")},
    )
    assert good.status_code == 200 and "D0001" in good.text
    retests = browser.get(f"/sampling/rounds/{site.round.id}/retests")
    assert "居民1" in retests.text


def test_a_round_over_a_building_with_nobody_registered(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, worker: Persona, grid: Grid
) -> None:
    from sqlalchemy import select

    from fengchao.registry.models import Building

    empty = session.scalar(
        select(Building).where(Building.compound_id == grid.other.id)
    )  # building 1 of 宏侨新村: nobody registered
    assert empty is not None
    browser = login_as(worker)
    created = browser.post(
        "/sampling/rounds",
        data={"site_id": site.site.id, "name": "新村", "day": "2026-11-30", "scope": "buildings",
              "scope_ids": str(empty.id)},
    )  # fmt: skip
    assert created.status_code == 303
    url = created.headers["location"]
    assert browser.post(f"{url}/plan").status_code == 303
    assert browser.get(url).status_code == 200
    page = browser.get(f"{url}/coverage")
    assert page.status_code == 200
    assert "没有登记的居民" in page.text


def test_an_exemption_is_listed_and_leaves_the_expected_count(  # type: ignore[no-untyped-def]
    login_as, site: Site, worker: Persona
) -> None:
    browser = login_as(worker)
    before = browser.get(f"/api/sampling/rounds/{site.round.id}/coverage").json()
    person = site.people[0]
    made = browser.post(
        f"/sampling/rounds/{site.round.id}/exemptions",
        data={"person_id": person.id, "kind": "home_visit", "note": "卧床，上门采样"},
    )
    assert made.status_code == 303
    after = browser.get(f"/api/sampling/rounds/{site.round.id}/coverage").json()
    assert after["exempt"] == before["exempt"] + 1
    assert after["expected"] == before["expected"] - 1
    page = browser.get(f"/sampling/rounds/{site.round.id}")
    assert "卧床，上门采样" in page.text and person.name in page.text
    other = browser.post(
        f"/sampling/rounds/{site.round.id}/exemptions",
        data={"person_id": site.people[1].id, "kind": "other", "note": ""},
    )
    assert other.status_code == 422


def test_a_worker_exempts_from_the_unsampled_list_and_comes_back_to_it(  # type: ignore[no-untyped-def]
    login_as, site: Site, worker: Persona, lead5: Persona, grid: Grid
) -> None:
    url = f"/sampling/rounds/{site.round.id}/coverage?building={grid.b5.id}"
    assert "登记免采" not in login_as(lead5).get(url).text  # leads read, workers decide
    browser = login_as(worker)
    person = site.people[0]
    assert f'name="person_id" value="{person.id}"' in browser.get(url).text
    made = browser.post(
        f"/sampling/rounds/{site.round.id}/exemptions",
        data={"person_id": person.id, "kind": "away", "back": "coverage",
              "building": str(grid.b5.id)},
    )  # fmt: skip
    assert made.status_code == 303 and made.headers["location"] == f"{url}#unsampled"
    assert f'name="person_id" value="{person.id}"' not in browser.get(url).text


def test_a_guard_is_refused_the_round_and_its_slot_table(  # type: ignore[no-untyped-def]
    login_as, site: Site, guard: Persona
) -> None:
    browser = login_as(guard)
    page = browser.get(f"/sampling/rounds/{site.round.id}")
    assert page.status_code == 403 and "<html" in page.text
    assert browser.get(f"/sampling/rounds/{site.round.id}/schedule.xlsx").status_code == 403


def test_a_lead_asking_for_another_building_is_not_told_it_is_all_sampled(  # type: ignore[no-untyped-def]
    login_as, site: Site, lead5: Persona, grid: Grid
) -> None:
    browser = login_as(lead5)
    page = browser.get(f"/sampling/rounds/{site.round.id}/coverage?building={grid.b6.id}")
    assert page.status_code == 404 and "<html" in page.text
    assert "都已采样" not in page.text and "陈美玲" not in page.text


def test_the_leads_hourly_table_counts_the_leads_building(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona, lead5: Persona, grid: Grid
) -> None:
    sampler_browser = login_as(sampler)
    for code in (site.numbers[0], site.numbers[1]):
        sampler_browser.post(
            f"/api/sampling/rounds/{site.round.id}/swabs",
            json={"barcode": "B0001", "key": uuid.uuid4().hex, "code": code},
        )
    sampler_browser.post(
        f"/api/sampling/rounds/{site.round.id}/swabs",
        json={"barcode": "B0001", "key": uuid.uuid4().hex, "person_id": grid.resident6.id},
    )
    browser = login_as(lead5)
    page = browser.get(f"/sampling/rounds/{site.round.id}/coverage")
    assert page.status_code == 200
    hourly = page.text.split("每小时采样数", 1)[1]
    counts = [int(n) for n in re.findall(r"<tr><td>\d\d:00</td><td>(\d+)</td>", hourly)]
    assert sum(counts) == 2  # building 6's swab is not the lead's to count
