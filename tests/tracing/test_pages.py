"""The tracing pages as production runs them: open a case, read its contacts, decide,
protect, export; refusals for other roles and scopes; English."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest
from sqlalchemy.orm import Session

from fengchao.registry.models import HealthStatus, Person, Relation
from tests.conftest import Live
from tests.web.test_english import ALLOWED, CJK, _user_data


def _csrf(client: object) -> str:
    page = client.get("/tracing")  # type: ignore[attr-defined]
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if found:
        return found.group(1)
    page = client.get("/registry")  # type: ignore[attr-defined]
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def case_url(live: Live) -> str:
    with Session(live.engine) as session:
        session.add(
            Person(
                community_id=live.grid.community.id,
                household_id=live.grid.h5_101.id,
                name="林太太",
                relation=Relation.family,
            )
        )
        session.commit()
    client = live.client("worker")
    token = _csrf(client)
    empty = client.post(
        "/tracing/new",
        data={"person_id": live.grid.resident5.id, "confirmed_at": ""},
        headers={"X-CSRF-Token": token},
    )
    assert empty.status_code == 422 and "请填写时间" in empty.text
    wrong = client.post(
        "/tracing/new",
        data={
            "person_id": live.grid.resident5.id,
            "confirmed_at": "2026-11-20T10:00",
            "onset_at": "2026-11-21T10:00",
        },
        headers={"X-CSRF-Token": token},
    )
    assert wrong.status_code == 422 and "不能晚于确诊时间" in wrong.text
    for moment in ("0001-01-01T00:00", "9999-12-31T23:59"):  # the edges of what Python reads
        edge = client.post(
            "/tracing/new",
            data={"person_id": live.grid.resident5.id, "confirmed_at": moment},
            headers={"X-CSRF-Token": token},
        )
        assert edge.status_code == 422 and 'aria-invalid="true"' in edge.text, moment
    opened = client.post(
        "/tracing/new",
        data={
            "person_id": live.grid.resident5.id,
            "confirmed_at": "2026-11-28T10:00",
            "onset_at": "2026-11-27T08:00",
        },
        headers={"X-CSRF-Token": token},
    )
    assert opened.status_code == 303, opened.text
    return str(opened.headers["location"])


def test_worker_reads_the_case_decides_and_protects(live: Live, case_url: str) -> None:
    client = live.client("worker")
    page = client.get(case_url)
    assert page.status_code == 200
    assert "林太太" in page.text and "同住家庭成员" in page.text and "data-graph=" in page.text
    with Session(live.engine) as session:
        wife = session.query(Person).filter_by(name="林太太").one()
    token = _csrf(client)
    saved = client.post(
        f"{case_url}/contacts",
        data={"subject": f"person:{wife.id}", "status": "confirmed"},
        headers={"X-CSRF-Token": token},
    )
    assert saved.status_code == 303
    protected = client.post(
        f"{case_url}/protect",
        data={"isolation": "central_isolation"},
        headers={"X-CSRF-Token": token},
    )
    assert protected.status_code == 303
    assert "已落实 1 人" in client.get(protected.headers["location"]).text
    twice = client.post(  # a double tap, or a second tab: nothing more to do, and said so
        f"{case_url}/protect",
        data={"isolation": "central_isolation"},
        headers={"X-CSRF-Token": token},
    )
    again = client.get(twice.headers["location"]).text
    assert "没有待落实的接触者" in again and "已落实 1 人" not in again
    with Session(live.engine) as session:
        assert session.get(Person, wife.id).health_status == HealthStatus.central_isolation  # type: ignore[union-attr]
        assert session.get(Person, live.grid.resident5.id).health_status == HealthStatus.positive  # type: ignore[union-attr]
    forged = client.post(
        f"{case_url}/contacts",
        data={"subject": "person:<script>", "status": "confirmed"},
        headers={"X-CSRF-Token": token},
    )
    assert forged.status_code == 422


def test_exports_in_go_data_columns(live: Live, case_url: str) -> None:
    client = live.client("worker")
    book = openpyxl.load_workbook(io.BytesIO(client.get(f"{case_url}/contacts.xlsx").content))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:3] == ("First Name", "Last Name", "Gender")
    assert ("太太", "林") in {(r[0], r[1]) for r in rows[1:]}
    gbk = client.get(f"{case_url}/contacts.csv?encoding=gbk")
    assert "charset=gbk" in gbk.headers["content-type"]
    table = list(csv.reader(io.StringIO(gbk.content.decode("gbk"))))
    assert table[0][0] == "First Name" and any(r[1] == "林" for r in table[1:])
    utf8 = client.get(f"{case_url}/contacts.csv")
    assert utf8.content.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize("persona", ["lead5", "guard"])
def test_other_roles_are_refused_with_a_page(live: Live, case_url: str, persona: str) -> None:
    client = live.client(persona, raise_errors=False)
    for url in ("/tracing", case_url, f"{case_url}/contacts.xlsx"):
        response = client.get(url)
        assert response.status_code == 403, url
        assert "林太太" not in response.text


def test_a_case_that_does_not_exist_is_a_404_page(live: Live) -> None:
    response = live.client("worker", raise_errors=False).get("/tracing/cases/999999")
    assert response.status_code == 404 and "<html" in response.text


def test_tracing_pages_read_as_english(live: Live, case_url: str) -> None:
    client = live.client("worker", lang="en")
    user_data = _user_data(live)
    for url in ("/tracing", case_url, f"/tracing/new?person_id={live.grid.resident6.id}"):
        text = client.get(url).text
        for allowed in ALLOWED:
            text = text.replace(allowed, "")
        for data in user_data:
            text = text.replace(data, "")
        assert not CJK.findall(text), (url, sorted(set(CJK.findall(text)))[:8])


def test_a_visitor_as_a_case_on_the_pages(live: Live) -> None:
    """Opened from the visitor's pass (a visitor is not in the registry): the page names
    them and lists the household they visited."""
    import datetime as dt

    from fengchao.db import utcnow
    from fengchao.visitors.models import PassStatus, VisitorPass

    came = utcnow() - dt.timedelta(hours=30)  # the form reads local time: well before
    with Session(live.engine) as session:
        row = VisitorPass(
            community_id=live.grid.community.id,
            compound_id=live.grid.park.id,
            status=PassStatus.active,
            name="访客乙",
            phone="13800002222",
            host_household_id=live.grid.h6_101.id,
            host_place="6-1-101",
            gate_ids=[1],
            valid_from=came,
            valid_until=came + dt.timedelta(hours=2),
        )
        session.add(row)
        session.commit()
        pass_id = row.id
    client = live.client("worker")
    assert "访客乙" in client.get(f"/visitors/passes/{pass_id}").text
    form = client.get(f"/tracing/new?visitor_pass_id={pass_id}")
    assert form.status_code == 200 and "访客乙" in form.text
    opened = client.post(
        "/tracing/new",
        data={"visitor_pass_id": pass_id, "confirmed_at": utcnow().strftime("%Y-%m-%dT%H:%M")},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert opened.status_code == 303, opened.text
    page = client.get(opened.headers["location"])
    assert page.status_code == 200 and "访客乙" in page.text
    assert live.grid.resident6.name in page.text and "访客往来" in page.text
    refused = live.client("lead5", raise_errors=False).get(opened.headers["location"])
    assert refused.status_code == 403


def test_a_dismissal_without_reason_comes_back_on_the_case_page(live: Live, case_url: str) -> None:
    """Not a bare error page that loses the case: the same page, the message at the
    contact's card and the cursor in its reason field."""
    client = live.client("worker")
    with Session(live.engine) as session:
        wife = session.query(Person).filter_by(name="林太太").one()
    refused = client.post(
        f"{case_url}/contacts",
        data={"subject": f"person:{wife.id}", "status": "dismissed", "reason": "  "},
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert refused.status_code == 422
    assert 'data-graph="' in refused.text  # the case page, not the error page
    card = refused.text.split(f'id="c-person-{wife.id}"')[1].split("</form>")[0]
    assert "排除密接须写明理由" in card
    assert 'aria-invalid="true"' in card and "autofocus" in card


def test_a_stale_tab_is_told_what_a_colleague_decided(live: Live, case_url: str) -> None:
    client = live.client("worker")
    with Session(live.engine) as session:
        wife = session.query(Person).filter_by(name="林太太").one()
    token = _csrf(client)
    subject = f"person:{wife.id}"
    page = client.get(case_url).text
    assert 'name="shown"' in page
    client.post(
        f"{case_url}/contacts",
        data={"subject": subject, "status": "confirmed", "shown": "undecided"},
        headers={"X-CSRF-Token": token},
    )
    stale = client.post(
        f"{case_url}/contacts",
        data={"subject": subject, "status": "dismissed", "reason": "出差", "shown": "undecided"},
        headers={"X-CSRF-Token": token},
    )
    assert stale.status_code == 409 and 'data-graph="' in stale.text
    card = stale.text.split(f'id="c-person-{wife.id}"')[1].split("</form>")[0]
    assert "已确认" in card and "请核对后再决定" in card


def test_a_dismissed_contact_is_not_exported_as_a_contact(live: Live, case_url: str) -> None:
    """The list goes to the health authority's system as contacts: someone the worker
    dismissed (with a reason) is not one."""
    client = live.client("worker")
    with Session(live.engine) as session:
        wife = session.query(Person).filter_by(name="林太太").one()
    token = _csrf(client)

    def decide(status: str, reason: str = "") -> None:
        answer = client.post(
            f"{case_url}/contacts",
            data={"subject": f"person:{wife.id}", "status": status, "reason": reason},
            headers={"X-CSRF-Token": token},
        )
        assert answer.status_code == 303, answer.text

    def exported() -> set[tuple[object, object]]:
        """Names in the XLSX and in the CSV, together."""
        book = openpyxl.load_workbook(io.BytesIO(client.get(f"{case_url}/contacts.xlsx").content))
        table = list(csv.reader(io.StringIO(client.get(f"{case_url}/contacts.csv").text)))
        xlsx_rows = list(book.active.iter_rows(values_only=True))[1:]
        return {(r[0], r[1]) for r in xlsx_rows} | {(r[0], r[1]) for r in table[1:]}

    decide("dismissed", "已搬离，不同住")
    assert ("太太", "林") not in exported()
    # She was isolated by the one-click protection earlier: dismissing does not lift it.
    page = client.get(case_url).text
    card = page.split(f'id="c-person-{wife.id}"')[1].split("</form>")[0]
    assert "不会自动解除隔离" in card and f'href="/registry/people/{wife.id}"' in card
    decide("confirmed")
    assert ("太太", "林") in exported()


def test_a_co_passage_names_the_gate_and_the_direction(live: Live) -> None:
    """A worker knows 北门, not gate #7: the evidence names the gate as the gate's own
    page does, the way the contact went, and whole minutes without a stray ".0"."""
    import datetime as dt

    from fengchao.access.models import Gate
    from fengchao.db import utcnow
    from tests.tracing.test_cases import passage_at

    then = utcnow() - dt.timedelta(hours=3)
    with Session(live.engine) as session:
        gate = Gate(
            community_id=live.grid.community.id,
            compound_id=live.grid.park.id,
            name="北门",
            kind="pedestrian",
        )
        session.add(gate)
        session.flush()
        for person, at, way in (
            (live.grid.resident6, then, "out"),
            (live.grid.resident5, then + dt.timedelta(minutes=2), "in"),
        ):
            passage_at(session, live.grid, person, gate.id, at, way)
        session.commit()
        gate_id = gate.id
    client = live.client("worker")
    opened = client.post(
        "/tracing/new",
        data={
            "person_id": live.grid.resident6.id,
            "confirmed_at": utcnow()
            .astimezone(dt.timezone(dt.timedelta(hours=8)))
            .strftime("%Y-%m-%dT%H:%M"),
        },
        headers={"X-CSRF-Token": _csrf(client)},
    )
    assert opened.status_code == 303, opened.text
    page = client.get(opened.headers["location"]).text
    card = page.split(f'id="c-person-{live.grid.resident5.id}"')[1].split("</form>")[0]
    assert "北门" in card and "进" in card and "相隔 2 分钟" in card, card
    assert f"卡口 {gate_id}" not in card
