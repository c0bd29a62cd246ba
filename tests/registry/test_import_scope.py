"""Imports honour the importer's grid scope — on the page, in the API and on the command
line — and a dry run does not tell who holds an ID number outside that scope."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.auth import service as auth_service
from fengchao.auth.models import AuditEvent, Role, ScopeLevel
from fengchao.auth.service import SYSTEM_ACTOR, GridScope
from fengchao.registry import imports as service
from fengchao.registry.models import Household, Person, Vehicle
from fengchao.registry.service import register_person_id
from tests.conftest import PASSWORD, Grid, Persona, build_grid, make_persona
from tests.registry.test_import import GOOD, xlsx

IN_PARK = GOOD[0]  # 华润中央公园 5-1-102
IN_OTHER = ["王建国", "男", "350181198001010017", "", "宏侨新村", "1", "1", "101", "户主"]
OUT_OF_SCOPE = "宏侨新村 1号楼不在您负责的范围内（您负责：华润中央公园）"


@pytest.fixture
def park_worker(session: Session, grid: Grid) -> Persona:
    """A community worker responsible for one compound only."""
    return make_persona(
        session, "park-worker", Role.community_worker, GridScope(ScopeLevel.compound, grid.park.id)
    )


def people_in(session: Session, compound_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Person)
            .join(Household, Household.id == Person.household_id)
            .where(Household.compound_id == compound_id)
        )
        or 0
    )


def test_compound_worker_cannot_import_a_row_into_another_compound(
    session: Session, grid: Grid, park_worker: Persona
) -> None:
    report = service.import_residents(
        session=session,
        actor=park_worker.actor,
        community_id=grid.community.id,
        content=xlsx([IN_PARK, IN_OTHER]),
        filename="居民.xlsx",
        dry_run=False,
        create_missing=True,  # not even a new room may be made there
        skip_invalid=True,
    )
    assert [(e.row, e.field) for e in report.errors] == [(3, "building")]
    assert OUT_OF_SCOPE in report.errors[0].message
    assert report.written and report.created == 1
    assert people_in(session, grid.other.id) == 0


def test_compound_worker_cannot_import_a_vehicle_into_another_compound(
    session: Session, grid: Grid, park_worker: Persona
) -> None:
    header = ["车牌号", "小区", "楼栋", "单元", "房号"]
    rows = [
        ["闽A12345", "华润中央公园", "5", "1", "101"],
        ["闽A54321", "宏侨新村", "1", "1", "101"],
    ]
    report = service.import_vehicles(
        session=session,
        actor=park_worker.actor,
        community_id=grid.community.id,
        content=xlsx(rows, header=header),
        filename="车辆.xlsx",
        dry_run=False,
        skip_invalid=True,
    )
    assert [e.row for e in report.errors] == [3] and OUT_OF_SCOPE in report.errors[0].message
    assert set(session.scalars(select(Vehicle.plate))) == {"闽A12345"}


def test_out_of_scope_row_is_refused_on_the_page_and_in_the_api(  # type: ignore[no-untyped-def]
    login_as, session: Session, grid: Grid, park_worker: Persona
) -> None:
    browser = login_as(park_worker)
    content = xlsx([IN_PARK, IN_OTHER])
    page = browser.post("/registry/import", files={"file": ("居民.xlsx", content)})
    assert page.status_code == 200 and OUT_OF_SCOPE in page.text
    token = re.search(r"/registry/import/([\w-]+)/confirm", page.text)[1]  # type: ignore[index]
    confirmed = browser.post(f"/registry/import/{token}/confirm", data={"skip_invalid": "true"})
    assert confirmed.status_code == 200 and "导入完成" in confirmed.text
    api = browser.post(
        "/api/registry/import/residents",
        files={"file": ("居民.xlsx", content)},
        params={"dry_run": "false", "skip_invalid": "true"},
    )
    body = api.json()
    assert api.status_code == 200
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(3, "building")]
    assert OUT_OF_SCOPE in body["errors"][0]["message"]
    assert people_in(session, grid.other.id) == 0


def _person_in_other_compound(session: Session, grid: Grid) -> Person:
    household = session.scalars(
        select(Household).where(Household.compound_id == grid.other.id, Household.room == "101")
    ).first()
    assert household is not None
    person = Person(community_id=grid.community.id, household_id=household.id, name="赵秀英")
    register_person_id(person, "350181198001010025")
    session.add(person)
    session.flush()
    return person


def test_dry_run_does_not_say_who_holds_an_id_outside_the_scope(
    session: Session, grid: Grid, park_worker: Persona
) -> None:
    _person_in_other_compound(session, grid)
    row = ["赵秀英", "女", "350181198001010025", "", "华润中央公园", "5", "1", "102", ""]
    report = service.import_residents(
        session=session,
        actor=park_worker.actor,
        community_id=grid.community.id,
        content=xlsx([row]),
        filename="居民.xlsx",
        dry_run=True,
    )
    assert [(e.row, e.field) for e in report.errors] == [(2, "id_number")]
    message = report.errors[0].message
    assert "已登记在本社区的其他住户，不在您负责的范围内" in message
    for secret in ("赵秀英", "1-1-101", "宏侨新村"):
        assert secret not in message, message
    # Inside the scope the holder is still named, so the worker can sort it out.
    inside = ["陈美玲", "男", "350181198505051234", "", "华润中央公园", "5", "1", "101", ""]
    report = service.import_residents(
        session=session,
        actor=park_worker.actor,
        community_id=grid.community.id,
        content=xlsx([inside]),
        filename="居民.xlsx",
        dry_run=True,
    )
    assert "6-1-101" in report.errors[0].message and "陈美玲" in report.errors[0].message
    # The system (the command line without --as) sees the whole community.
    report = service.import_residents(
        session=session,
        actor=SYSTEM_ACTOR,
        community_id=grid.community.id,
        content=xlsx([row]),
        filename="居民.xlsx",
        dry_run=True,
    )
    assert "1-1-101" in report.errors[0].message


def test_command_line_as_a_compound_worker(cli_engine: Engine, tmp_path: Path) -> None:
    from fengchao.cli import app

    with Session(cli_engine) as session:
        grid = build_grid(session)
        username = f"park-{uuid.uuid4().hex[:6]}"
        auth_service.create_user(
            session=session,
            username=username,
            password=PASSWORD,
            role=Role.community_worker,
            scope=GridScope(ScopeLevel.compound, grid.park.id),
            display_name="小区干部",
        )
        session.commit()
        other_id = grid.other.id
    sheet = tmp_path / "居民.xlsx"
    sheet.write_bytes(xlsx([IN_PARK, IN_OTHER]))
    runner = CliRunner()

    refused = runner.invoke(app, ["import", "residents", str(sheet), "--as", username, "--json"])
    assert refused.exit_code == 1, refused.output
    payload = json.loads(refused.stdout.strip().splitlines()[-1])
    assert [(e["row"], e["field"]) for e in payload["errors"]] == [(3, "building")]
    assert OUT_OF_SCOPE in payload["errors"][0]["message"] and not payload["written"]

    args = ["import", "residents", str(sheet), "--as", username, "--skip-invalid", "--json"]
    partly = runner.invoke(app, args)
    assert partly.exit_code == 0, partly.output
    assert json.loads(partly.stdout.strip().splitlines()[-1])["created"] == 1
    with Session(cli_engine) as session:
        assert people_in(session, other_id) == 0
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "import")).one()
        assert event.username == username

    unknown = runner.invoke(app, ["import", "residents", str(sheet), "--as", "nobody"])
    assert unknown.exit_code == 2
    # Without --as the system imports anywhere, as before.
    system = runner.invoke(app, ["import", "residents", str(sheet), "--json"])
    assert system.exit_code == 0, system.output
    with Session(cli_engine) as session:
        assert people_in(session, other_id) == 1
