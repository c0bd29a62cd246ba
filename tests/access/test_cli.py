"""The command-line contracts: gates create, devices create, gate replay, purge."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao import cli, db, settings
from fengchao.access.models import AccessEvent
from fengchao.migrate import upgrade
from fengchao.registry.models import Vehicle
from tests.conftest import Grid, build_grid


def _clear_caches() -> None:
    for cached in (settings.get_settings, db.get_engine, db.get_sessionmaker):
        cached.cache_clear()


@pytest.fixture
def cli_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, Grid]]:
    monkeypatch.setenv("FENGCHAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    _clear_caches()
    engine = db.get_engine()
    try:
        upgrade(engine)
        with Session(engine, expire_on_commit=False) as session:
            grid = build_grid(session)
            session.add(Vehicle(community_id=grid.community.id, household_id=grid.h5_101.id,
                                plate="闽A12345", owner_person_id=grid.resident5.id))  # fmt: skip
            session.commit()
        yield engine, grid
    finally:
        engine.dispose()
        _clear_caches()


def run(*args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_gates_devices_and_replay(cli_grid: tuple[Engine, Grid], tmp_path: Path) -> None:
    engine, grid = cli_grid
    (gate,) = run("gates", "create", "--compound", str(grid.park.id), "--name", "东门",
                  "--kind", "both", "--json")  # fmt: skip
    assert isinstance(gate["id"], int) and gate["kind"] == "both"
    (device,) = run("devices", "create", "--gate", str(gate["id"]), "--name", "东门平板", "--json")
    assert str(device["key"]).startswith("fcd_")
    refused = CliRunner().invoke(
        cli.app,
        ["gates", "create", "--compound", "99999", "--name", "x", "--kind", "both", "--json"],
    )
    assert refused.exit_code == 2

    earlier = (dt.datetime.now() - dt.timedelta(hours=2)).isoformat(timespec="seconds")
    sheet = tmp_path / "passages.csv"
    sheet.write_text(
        "passage,gate,direction,method,value,temperature,time\n"
        f"p1,{gate['id']},out,person,{grid.resident5.id},36.5,\n"
        f"p2,{gate['id']},in,plate,闽A12345,,\n"
        f"p3,{gate['id']},out,person,{grid.resident6.id},38.2,\n"
        f"p4,{gate['id']},out,person,{grid.resident6.id},25,\n"
        f"p5,{gate['id']},in,person,{grid.resident5.id},,{earlier}\n"
        f"p6,{gate['id']},in,face,nothing.jpg,,\n",
        encoding="utf-8",
    )
    *rows, summary = run("gate", "replay", str(sheet), "--json")
    assert [r["decision"] for r in rows] == ["allow", "allow", "deny", None, "allow", None]
    assert rows[1]["vehicle_id"] is not None and rows[1]["person_id"] == grid.resident5.id
    assert rows[2]["reasons"] == ["fever"]
    assert rows[3]["error"] == "temperature"
    assert rows[4]["late"] is True
    assert rows[5]["error"] == "frame"  # no such image file
    for row in rows:
        assert {"row", "passage", "decision", "person_id", "vehicle_id", "reasons", "masked",
                "ms"} <= row.keys()  # fmt: skip
    assert summary["summary"] is True and summary["rows"] == 6 and summary["error"] == 2

    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AccessEvent)) == 4
        session.execute(AccessEvent.__table__.update().values(
            server_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=400)))  # fmt: skip
        session.commit()
    dry = CliRunner().invoke(cli.app, ["purge", "--dry-run"])
    assert dry.exit_code == 0 and "4" in dry.output
    wet = CliRunner().invoke(cli.app, ["purge"])
    assert wet.exit_code == 0, wet.output
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AccessEvent)) == 0
