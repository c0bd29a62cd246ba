"""The sampling pages on the app as production runs it (real login, each request its own
session and commit), and in English with no Chinese outside user data."""

from __future__ import annotations

import re
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.sampling.models import SamplingRound, SamplingSite, Swab
from tests.conftest import Live
from tests.web.test_english import ALLOWED, CJK, _user_data


def _csrf(page: str) -> str:
    return re.search(r'"X-CSRF-Token": "([^"]+)"', page).group(1)  # type: ignore[union-attr]


def test_a_day_at_the_site_then_every_page_in_english(live: Live) -> None:
    worker = live.client("worker")
    home = worker.get("/sampling")
    csrf = _csrf(home.text)
    made = worker.post(
        "/sampling/sites",
        data={"community_id": live.grid.community.id, "name": "Served site", "csrf_token": csrf},
    )
    assert made.status_code == 303
    with Session(live.engine) as session:
        site_id = session.scalars(select(SamplingSite.id).order_by(SamplingSite.id.desc())).first()
    created = worker.post(
        "/sampling/rounds",
        data={"site_id": site_id, "name": "Served round", "day": "2026-11-30", "csrf_token": csrf},
    )
    assert created.status_code == 303
    url = created.headers["location"]
    assert worker.post(f"{url}/plan", data={"csrf_token": csrf}).status_code == 303
    round_id = int(url.rsplit("/", 1)[1])
    api = f"/api/sampling/rounds/{round_id}"
    person = live.grid.resident5.id
    swab = {"barcode": "SV0001", "key": uuid.uuid4().hex, "person_id": person}
    first = worker.post(f"{api}/swabs", json=swab, headers={"X-CSRF-Token": csrf})
    assert first.status_code == 200, first.text
    repeat = worker.post(f"{api}/swabs", json=swab, headers={"X-CSRF-Token": csrf})
    assert repeat.json()["repeated"] is True
    refused = worker.post(
        f"{api}/swabs",
        json={**swab, "key": uuid.uuid4().hex, "barcode": "SV0002"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 409
    with Session(live.engine) as session:
        stored = session.scalars(select(Swab).where(Swab.round_id == round_id)).all()
        assert len(stored) == 1  # the refused one left nothing, not even its tube's swab
        assert session.get(SamplingRound, round_id) is not None
    imported = worker.post(
        f"{url}/results",
        data={"csrf_token": csrf},
        files={"file": ("lab.csv", b"barcode,result\nSV0001,negative\n", "text/csv")},
    )
    assert imported.status_code == 200

    user_data = [*_user_data(live), "Served site", "Served round"]
    pages = {
        "worker": ["/sampling", url, f"{url}/register", f"{url}/coverage",
                   f"{url}/coverage?building={live.grid.b5.id}", f"{url}/results",
                   f"{url}/retests"],
        "lead5": ["/sampling", url, f"{url}/coverage", f"{url}/retests"],
    }  # fmt: skip
    problems = []
    for role, urls in pages.items():
        client = live.client(role, lang="en")
        for page in urls:
            response = client.get(page)
            assert response.status_code == 200, (role, page, response.status_code)
            text = response.text
            for allowed in (*ALLOWED, *user_data):
                text = text.replace(allowed, "")
            left = sorted(set(CJK.findall(text)))
            if left:
                problems.append(f"{role} {page}: {left[:8]}")
    assert not problems, "\n".join(problems)
