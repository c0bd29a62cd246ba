"""Grid work on the app as production runs it: every request opens, commits and closes its
own session (a refused form must not leave half a visit behind)."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.gridwork.models import HelpRequest, Sweep, SweepTarget, SweepVisit
from tests.conftest import Live


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found[1]


def test_sweep_visit_request_and_status_link_through_real_sessions(live: Live) -> None:
    grid = live.grid
    worker = live.client("worker")
    page = worker.get("/gridwork/sweeps/new")
    deadline = (dt.datetime.now() + dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    made = worker.post(
        "/gridwork/sweeps",
        data={"title": "扫楼清户", "node": f"building:{grid.b5.id}", "deadline": deadline,
              "csrf_token": _csrf(page.text)},
    )  # fmt: skip
    assert made.status_code == 303, made.text
    with Session(live.engine) as session:
        sweep = session.scalar(select(Sweep).order_by(Sweep.id.desc()))
        assert sweep is not None
        target = session.scalar(
            select(SweepTarget.id).where(
                SweepTarget.sweep_id == sweep.id, SweepTarget.household_id == grid.h5_101.id
            )
        )
    lead = live.client("lead5")
    form = lead.get(f"/gridwork/sweeps/{sweep.id}/visit/{target}")
    token = _csrf(form.text)
    # A refused visit (a new member's name too long) leaves nothing behind.
    refused = lead.post(
        f"/gridwork/sweeps/{sweep.id}/visit/{target}",
        data={"outcome": "visited", "needs_food": "1", "new_member": "名" * 80,
              "csrf_token": token},
    )  # fmt: skip
    assert refused.status_code == 422
    with Session(live.engine) as session:
        assert session.scalar(select(func.count()).select_from(SweepVisit)) == 0
        assert session.scalar(select(func.count()).select_from(HelpRequest)) == 0
    done = lead.post(
        f"/gridwork/sweeps/{sweep.id}/visit/{target}",
        data={"outcome": "visited", "needs_food": "1", "csrf_token": token},
    )
    assert done.status_code == 303
    assert "生活物资" in lead.get("/gridwork/todo").text

    resident = live.client()
    page = resident.get(f"/help/{grid.community.id}")
    asked = resident.post(
        f"/help/{grid.community.id}/request",
        data={"compound": str(grid.park.id), "address": "5-1-102", "category": "medicine",
              "urgency": "urgent", "phone": "13900000077", "csrf_token": _csrf(page.text)},
    )  # fmt: skip
    assert asked.status_code == 303
    link = asked.headers["location"]
    assert "待接单" in resident.get(link).text
    with Session(live.engine) as session:
        request_id = session.scalar(select(HelpRequest.id).where(HelpRequest.source == "resident"))
    todo = lead.get("/gridwork/todo")
    assert (
        lead.post(
            f"/gridwork/requests/{request_id}/accept", data={"csrf_token": _csrf(todo.text)}
        ).status_code
        == 303
    )
    assert "处理中" in resident.get(link).text
    overview = worker.get("/gridwork")
    assert overview.status_code == 200 and "买药" in overview.text


def test_grid_work_pages_read_as_english(live: Live) -> None:
    """Runs after the test above (same module, same database): every page with data."""
    from tests.web.test_english import ALLOWED, CJK, _user_data

    with Session(live.engine) as session:
        sweep = session.scalar(select(Sweep).order_by(Sweep.id.desc()))
        request = session.scalar(select(HelpRequest).order_by(HelpRequest.id))
        assert sweep is not None and request is not None
        target = session.scalar(select(SweepTarget.id).where(SweepTarget.sweep_id == sweep.id))
        typed = [sweep.title, *session.scalars(select(HelpRequest.details))]
    grid = live.grid
    pages = {
        "worker": ["/gridwork", "/gridwork/sweeps/new", f"/gridwork/sweeps/{sweep.id}",
                   f"/gridwork/requests/{request.id}", "/gridwork/requests/new"],
        "lead5": ["/gridwork/todo", "/gridwork/todo/panel",
                  f"/gridwork/sweeps/{sweep.id}/buildings/{grid.b5.id}",
                  f"/gridwork/sweeps/{sweep.id}/visit/{target}"],
        None: [f"/help/{grid.community.id}"],
    }  # fmt: skip
    allowed = [*ALLOWED, *typed, *_user_data(live)]
    for persona, urls in pages.items():
        client = live.client(persona, lang="en")
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (persona, url)
            text = response.text
            for ok in allowed:
                text = text.replace(ok, "")
            left = CJK.findall(text)
            assert not left, (persona, url, left[:5])
