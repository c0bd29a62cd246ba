"""An individual retest found positive makes a person a confirmed case: the page asks to
confirm first, and only a submit that says so records it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fengchao.registry.models import HealthStatus
from fengchao.sampling import results
from tests.conftest import Persona
from tests.sampling.conftest import Site
from tests.sampling.test_results import fill, run


def test_a_positive_retest_needs_a_confirmation(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "Q0001", range(0, 2))
    run(session, worker, site, "试管条码,检测结果\nQ0001,阳性\n".encode())
    row = results.retests(session=session, actor=worker.actor, round_id=site.round.id)[0]
    person = next(p for p in site.people if p.id == row.person_id)
    browser = login_as(worker)
    url = f"/sampling/retests/{row.id}?round_id={site.round.id}"
    asked = browser.post(url, data={"result": "positive"})
    assert asked.status_code == 200, asked.text
    assert "确认" in asked.text and row.name in asked.text and 'name="confirm"' in asked.text
    session.refresh(person)
    assert person.health_status == HealthStatus.home_isolation  # nothing recorded yet
    done = browser.post(url, data={"result": "positive", "confirm": "yes"})
    assert done.status_code == 303
    session.refresh(person)
    assert person.health_status == HealthStatus.positive


def test_a_negative_retest_needs_no_confirmation(  # type: ignore[no-untyped-def]
    login_as, session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "Q0002", range(0, 1))
    run(session, worker, site, "试管条码,检测结果\nQ0002,阳性\n".encode())
    row = results.retests(session=session, actor=worker.actor, round_id=site.round.id)[0]
    done = login_as(worker).post(
        f"/sampling/retests/{row.id}?round_id={site.round.id}", data={"result": "negative"}
    )
    assert done.status_code == 303
