"""What the import check tells before anything is written: which rows are new, which change
(and what changes), which are unchanged; every problem of a row, with the person's name;
and the history an import leaves on each person it touches."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.auth.models import AuditEvent
from fengchao.auth.service import SYSTEM_ACTOR
from fengchao.registry import imports as service
from fengchao.registry.models import (
    ChangeVia,
    HealthStatus,
    Person,
    RecordChange,
    ResidenceStatus,
    Vehicle,
)
from tests.conftest import Grid
from tests.registry.test_import import GOOD, HEADER, people, run, xlsx

NEW = ["王芳", "女", "350181199001011524", "13900000003", "华润中央公园", "5", "2", "101", "租户"]


def actions(report: service.ImportReport) -> dict[int, str]:
    return {plan.row: plan.action for plan in report.plans}


def test_dry_run_says_which_rows_are_new_changed_and_unchanged(
    session: Session, grid: Grid
) -> None:
    run(session, grid, xlsx(GOOD), dry_run=False)
    moved_phone = [*GOOD[0][:3], "13900000000", *GOOD[0][4:]]
    report = run(session, grid, xlsx([moved_phone, GOOD[1], NEW]))
    assert actions(report) == {2: "changed", 3: "unchanged", 4: "new"}
    assert (report.new, report.changed, report.unchanged) == (1, 1, 1)
    changed = next(p for p in report.plans if p.action == "changed")
    assert changed.name == "许国平" and changed.changes == {"phone": ["13757527960", "13900000000"]}
    # The dry run wrote nothing; the write does exactly what the check said.
    assert session.scalar(select(Person.phone).where(Person.name == "许国平")) == "13757527960"
    written = run(session, grid, xlsx([moved_phone, GOOD[1], NEW]), dry_run=False)
    assert (written.created, written.updated, written.unchanged) == (1, 1, 1)


def test_reuploading_an_imported_file_would_change_nothing(session: Session, grid: Grid) -> None:
    content = xlsx(GOOD)
    run(session, grid, content, dry_run=False)
    again = run(session, grid, content)
    assert again.valid == 2 and again.unchanged == 2
    assert not again.would_change and again.new == again.changed == 0


def test_a_wrong_room_does_not_hide_a_duplicate_id_on_the_same_row(
    session: Session, grid: Grid
) -> None:
    twice = [*GOOD[0][:7], "909", *GOOD[0][8:]]  # room 5-1-909 does not exist
    report = run(session, grid, xlsx([GOOD[0], twice]))
    assert {(e.row, e.field) for e in report.errors} == {(3, "room"), (3, "id_number")}
    assert all(e.name == "许国平" for e in report.errors)


def test_every_problem_of_a_row_is_listed_with_its_name(session: Session, grid: Grid) -> None:
    bad = ["许文彬", "女", "350181201105152831", "12345", "华润中央公园", "5", "1", "909", ""]
    report = run(session, grid, xlsx([GOOD[1], bad]))
    rows = report.problems()
    assert [(p.row, p.name) for p in rows] == [(3, "许文彬")]
    fields = [e.field for e in rows[0].problems]
    # The gender against the ID, the phone, the room, and the ID given twice: all at once.
    assert sorted(fields) == sorted(["gender", "phone", "room", "id_number"])
    assert report.problem_rows == 1 and report.valid == 1


def test_a_row_with_every_address_part_empty_says_so_once(session: Session, grid: Grid) -> None:
    report = run(session, grid, xlsx([["张伟", "", "", "", "", "", "", "", ""]]))
    assert [(e.field, e.name) for e in report.errors] == [("address", "张伟")]
    report = run(session, grid, xlsx([["张伟", "", "", "", "", "5", "", "", ""]]))
    assert [e.field for e in report.errors] == ["unit", "room"]


def test_changes_name_values_in_words_and_mask_id_numbers(session: Session, grid: Grid) -> None:
    header = [*HEADER, "健康状态"]
    run(session, grid, xlsx([GOOD[0] + ["正常"]], header=header), dry_run=False)
    report = run(session, grid, xlsx([GOOD[0] + ["居家隔离"]], header=header))
    (plan,) = report.plans
    assert plan.changes == {"health_status": ["normal", "home_isolation"]}
    payload = report.as_json()
    assert payload["changes"] == [
        {
            "row": 2,
            "name": "许国平",
            "where": "华润中央公园 5-1-102",
            "fields": {"health_status": ["normal", "home_isolation"]},
        }
    ]
    assert {"new", "changed", "unchanged", "skipped"} <= set(payload)


def test_an_absent_column_or_an_empty_cell_keeps_what_is_registered(
    session: Session, grid: Grid
) -> None:
    # 林国平 (5-1-101) was marked in home isolation and moved out on the web; the office's
    # sheet has no such columns, or leaves them empty.
    person = grid.resident5
    person.health_status = HealthStatus.home_isolation
    person.residence_status = ResidenceStatus.away
    session.flush()
    row = ["林国平", "", "11010519491231002X", "", "华润中央公园", "5", "1", "101", ""]
    assert actions(run(session, grid, xlsx([row]))) == {2: "unchanged"}
    header = [*HEADER, "健康状态", "居住状态"]
    report = run(session, grid, xlsx([[*row, "", ""]], header=header), dry_run=False)
    assert actions(report) == {2: "unchanged"} and report.written
    session.refresh(person)
    assert person.health_status == HealthStatus.home_isolation
    assert person.phone == "13800000001"


def test_an_id_number_is_added_to_a_person_registered_without_one(
    session: Session, grid: Grid
) -> None:
    run(
        session,
        grid,
        xlsx([["王芳", "", "", "", "华润中央公园", "5", "2", "101", ""]]),
        dry_run=False,
    )
    report = run(session, grid, xlsx([NEW]), dry_run=False)
    assert actions(report) == {2: "changed"}
    assert report.plans[0].changes["id_number"] == [None, "350***********1524"]
    named = session.scalars(select(Person).where(Person.name == "王芳")).all()
    assert len(named) == 1 and named[0].id_mask == "350***********1524"


def test_the_same_person_twice_in_one_household_is_a_problem_not_two_updates(
    session: Session, grid: Grid
) -> None:
    run(
        session,
        grid,
        xlsx([["王芳", "", "", "", "华润中央公园", "5", "2", "101", ""]]),
        dry_run=False,
    )
    without_id = ["王芳", "", "", "13900000004", "华润中央公园", "5", "2", "101", ""]
    report = run(session, grid, xlsx([NEW, without_id]))
    assert [(e.row, e.field) for e in report.errors] == [(3, "name")]
    assert "第 2 行" in report.errors[0].message


def test_an_import_keeps_history_for_each_person_it_creates_or_changes(
    session: Session, grid: Grid
) -> None:
    run(session, grid, xlsx(GOOD), dry_run=False)
    moved_phone = [*GOOD[0][:3], "13900000000", *GOOD[0][4:]]
    run(session, grid, xlsx([moved_phone, GOOD[1]]), dry_run=False)
    person = session.scalars(select(Person).where(Person.name == "许国平")).one()
    lines = session.scalars(
        select(RecordChange).where(RecordChange.person_id == person.id).order_by(RecordChange.id)
    ).all()
    assert [(c.action, c.via) for c in lines] == [
        ("person.create", ChangeVia.import_),
        ("person.update", ChangeVia.import_),
    ]
    assert lines[0].changes["id_number"] == [None, "350***********5607"]
    assert lines[0].changes["phone"] == [None, "13757527960"]
    assert lines[1].changes == {"phone": ["13757527960", "13900000000"]}
    assert lines[1].username == "system"
    assert "350181197310225607" not in str([c.changes for c in lines])
    # Unchanged people get no history row; a change bumps the record's version, so an
    # edit form opened before the import is refused rather than overwriting it.
    total = session.scalar(select(func.count()).select_from(RecordChange))
    assert total == 3
    assert person.version == 2


def test_history_of_a_failed_import_is_not_kept(session: Session, grid: Grid) -> None:
    bad = [*GOOD[1][:2], "350181201105152830", *GOOD[1][3:]]
    report = run(session, grid, xlsx([GOOD[0], bad]), dry_run=False)
    assert not report.written and people(session, grid) == 2
    assert session.scalar(select(func.count()).select_from(RecordChange)) == 0


def test_skipped_rows_are_counted_after_the_write(session: Session, grid: Grid) -> None:
    bad = [*GOOD[1][:2], "350181201105152830", *GOOD[1][3:]]
    report = run(session, grid, xlsx([GOOD[0], bad]), dry_run=False, skip_invalid=True)
    assert report.written and report.created == 1 and report.skipped == 1
    assert report.as_json()["skipped"] == 1
    assert set(report.problem_cells) == {3}
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "import").order_by(AuditEvent.id.desc())
    ).first()
    assert event is not None and event.detail["skipped_rows"] == 1


def test_template_example_row_left_in_is_a_problem(session: Session, grid: Grid) -> None:
    from fengchao.registry import exports

    report = run(session, grid, exports.resident_template_xlsx(), dry_run=False)
    assert any("示例行" in e.message for e in report.errors)
    assert not report.written and people(session, grid) == 2


def test_vehicle_check_classifies_and_lists_every_problem(session: Session, grid: Grid) -> None:
    header = ["车牌号", "小区", "楼栋", "单元", "房号", "车主"]
    first = [["闽A12345", "华润中央公园", "5", "1", "101", "林国平"]]
    common = {
        "session": session,
        "actor": SYSTEM_ACTOR,
        "community_id": grid.community.id,
        "filename": "车辆.xlsx",
    }
    service.import_vehicles(content=xlsx(first, header=header), dry_run=False, **common)
    rows = [
        ["闽A12345", "华润中央公园", "5", "1", "101", ""],  # unchanged: no owner erased
        ["闽AD12345", "华润中央公园", "5", "1", "101", ""],  # new
        ["闽AD12345", "华润中央公园", "5", "1", "909", ""],  # twice, and no such room
    ]
    report = service.import_vehicles(content=xlsx(rows, header=header), dry_run=True, **common)
    assert actions(report) == {2: "unchanged", 3: "new"}
    assert {(e.row, e.field) for e in report.errors} == {(4, "plate"), (4, "room")}
    assert all(e.name == "闽AD12345" for e in report.errors)
    owner = session.scalar(select(Vehicle.owner_person_id).where(Vehicle.plate == "闽A12345"))
    assert owner == grid.resident5.id
