"""Lab results: checked first, applied in one transaction, idempotent; a positive tube
flags its members and tells their building lead; individual retests close the loop."""

from __future__ import annotations

import io
import uuid

from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.notify.models import Notification
from fengchao.registry.models import HealthStatus
from fengchao.sampling import registration as reg
from fengchao.sampling import results, service, tubes
from fengchao.sampling.models import LabResult, Retest, RetestStatus, Swab, Tube
from fengchao.tracing import service as tracing
from fengchao.tracing.models import CaseResult, CaseSource, CaseStatus, TracingCase
from tests.conftest import Persona
from tests.sampling.conftest import Site


def fill(session: Session, sampler: Persona, site: Site, barcode: str, people: range) -> None:
    for i in people:
        reg.register_swab(
            session=session,
            actor=sampler.actor,
            round_id=site.round.id,
            barcode=barcode,
            key=uuid.uuid4().hex,
            code=site.numbers[i],
        )
    tubes.close_tube(session=session, actor=sampler.actor, round_id=site.round.id, barcode=barcode)


def run(session: Session, worker: Persona, site: Site, content: bytes, name: str = "lab.csv"):  # type: ignore[no-untyped-def]
    return results.import_results(
        session=session, actor=worker.actor, round_id=site.round.id, content=content, filename=name
    )


def test_negative_results_are_applied(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0001", range(0, 5))
    fill(session, sampler, site, "L0002", range(5, 10))
    report = run(session, worker, site, "试管条码,检测结果\nL0001,阴性\nL0002,阴性\n".encode())
    assert not report.errors and report.applied == 2 and not report.positives
    tube = session.scalar(select(Tube).where(Tube.barcode == "L0001"))
    assert tube is not None and tube.result == LabResult.negative


def test_a_gbk_file_with_a_title_row_is_read(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0003", range(0, 3))
    content = "宏侨社区核酸检测结果报告\n试管条码,检测结果,检测时间\nL0003,阴性,2026-11-30 15:00\n"
    report = run(session, worker, site, content.encode("gbk"))
    assert not report.errors, report.errors
    assert report.applied == 1


def test_an_xlsx_file_is_read(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0004", range(0, 2))
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["检测机构：某某医学检验所"])
    sheet.append(["条码", "结果"])
    sheet.append(["L0004", "negative"])
    buffer = io.BytesIO()
    book.save(buffer)
    report = run(session, worker, site, buffer.getvalue(), "lab.xlsx")
    assert not report.errors and report.applied == 1


def test_unknown_and_duplicate_tubes_are_listed_by_row_and_nothing_applied(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0005", range(0, 3))
    content = "试管条码,检测结果\nL0005,阴性\nNOSUCH1,阴性\nL0005,阴性\nL0005X,蓝色\n"
    report = run(session, worker, site, content.encode())
    rows = {e.row for e in report.errors}
    assert rows == {3, 4, 5}
    assert report.applied == 0
    tube = session.scalar(select(Tube).where(Tube.barcode == "L0005"))
    assert tube is not None and tube.result is None


def test_a_tube_of_another_round_is_listed(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0006", range(0, 2))
    other = service.create_round(
        session=session, actor=worker.actor, site_id=site.site.id, name="下一轮", day=site.round.day
    )
    report = results.import_results(
        session=session,
        actor=worker.actor,
        round_id=other.id,
        content=b"barcode,result\nL0006,negative\n",
        filename="lab.csv",
    )
    assert [e.row for e in report.errors] == [2]
    assert "另一轮" in report.errors[0].message


def test_a_positive_tube_flags_its_members_once_even_when_imported_twice(
    session: Session, site: Site, sampler: Persona, worker: Persona, grid
) -> None:  # type: ignore[no-untyped-def]
    fill(session, sampler, site, "P0001", range(0, 10))
    content = "试管条码,检测结果\nP0001,阳性\n".encode()
    first = run(session, worker, site, content)
    assert first.positives == ["P0001"] and first.flagged == 10
    for person in site.people[:10]:
        session.refresh(person)
        assert person.health_status == HealthStatus.home_isolation
    notices = session.scalar(
        select(func.count(Notification.id)).where(Notification.kind == "sampling_positive")
    )
    again = run(session, worker, site, content)
    assert not again.errors and again.applied == 0 and again.unchanged == 1 and again.repeated
    assert (
        session.scalar(
            select(func.count(Notification.id)).where(Notification.kind == "sampling_positive")
        )
        == notices
    )
    assert (
        session.scalar(select(func.count(Retest.id)).where(Retest.round_id == site.round.id)) == 10
    )

    rows = results.retests(session=session, actor=worker.actor, round_id=site.round.id)
    negative, positive = rows[0], rows[1]
    results.resolve_retest(
        session=session, actor=worker.actor, retest_id=negative.id, result=LabResult.negative
    )
    results.resolve_retest(
        session=session, actor=worker.actor, retest_id=positive.id, result=LabResult.positive
    )
    by_id = {p.id: p for p in site.people}
    session.refresh(by_id[negative.person_id])
    session.refresh(by_id[positive.person_id])
    assert by_id[negative.person_id].health_status == HealthStatus.normal
    assert by_id[positive.person_id].health_status == HealthStatus.positive
    statuses = {
        r.status
        for r in results.retests(session=session, actor=worker.actor, round_id=site.round.id)
    }
    assert RetestStatus.pending in statuses and RetestStatus.positive in statuses


def test_a_positive_individual_result_opens_the_tracing_case(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    # 单采阳性 from the lab: the person's case opens for contact tracing at once (source: lab
    # import), dated from the pooled swab; a second positive result joins the same case.
    fill(session, sampler, site, "P0002", range(0, 3))
    run(session, worker, site, "试管条码,检测结果\nP0002,阳性\n".encode())
    first, second = results.retests(session=session, actor=worker.actor, round_id=site.round.id)[:2]
    swabbed = session.scalar(
        select(Swab.taken_at).where(Swab.person_id == first.person_id, Swab.tube_id.is_not(None))
    )
    results.resolve_retest(
        session=session, actor=worker.actor, retest_id=first.id, result=LabResult.positive
    )
    cases = session.scalars(select(TracingCase)).all()
    assert [(c.person_id, c.source) for c in cases] == [(first.person_id, CaseSource.lab_import)]
    assert cases[0].sampled_at == swabbed and cases[0].status == CaseStatus.open
    results_of = session.scalars(select(CaseResult).where(CaseResult.case_id == cases[0].id))
    assert ["P0002" in (r.note or "") for r in results_of] == [True]
    # The worker opens it on the tracing page.
    assert tracing.get_case(session=session, actor=worker.actor, case_id=cases[0].id) == cases[0]
    # Negative for the other member: no case.
    results.resolve_retest(
        session=session, actor=worker.actor, retest_id=second.id, result=LabResult.negative
    )
    assert session.scalar(select(func.count(TracingCase.id))) == 1


def test_a_changed_result_for_a_tube_is_refused(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    fill(session, sampler, site, "L0007", range(0, 2))
    run(session, worker, site, "试管条码,检测结果\nL0007,阴性\n".encode())
    report = run(session, worker, site, "试管条码,检测结果\nL0007,阳性\n".encode())
    assert [e.row for e in report.errors] == [2]


def test_the_retest_list_names_the_building_of_each_person(
    session: Session, site: Site, sampler: Persona, worker: Persona
) -> None:
    # A worker's list spans every compound: "1-101" alone is a flat in every building.
    fill(session, sampler, site, "L0050", range(0, 2))
    run(session, worker, site, "试管条码,检测结果\nL0050,阳性\n".encode())
    rows = results.retests(session=session, actor=worker.actor, round_id=site.round.id)
    assert rows and all(r.place.startswith("华润中央公园 5号楼 ") for r in rows), rows
