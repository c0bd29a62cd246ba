"""`fengchao sampling plan --json`: the published shape, every building placed or listed."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao.cli import app
from fengchao.registry.models import Building
from fengchao.testing import throwaway_database
from tests.conftest import build_grid


def test_plan_prints_the_published_json(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    with throwaway_database("sqlite", tmp_path) as engine:
        with Session(engine) as session:
            grid = build_grid(session)
            community_id = grid.community.id
            buildings = set(session.scalars(select(Building.id)))
            session.commit()
        monkeypatch.setenv(
            "FENGCHAO_DATABASE_URL", engine.url.render_as_string(hide_password=False)
        )
        from fengchao.db import get_engine, get_sessionmaker
        from fengchao.settings import get_settings

        get_settings.cache_clear()
        get_engine.cache_clear()
        get_sessionmaker.cache_clear()
        try:
            result = CliRunner().invoke(
                app,
                ["sampling", "plan", "--community", str(community_id), "--start", "07:30",
                 "--end", "13:30", "--stations", "4", "--per-station-hour", "100",
                 "--turnout", "0.9", "--json"],
            )  # fmt: skip
        finally:
            get_settings.cache_clear()
            get_engine.cache_clear()
            get_sessionmaker.cache_clear()
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"slots", "unplaced"}
    assert data["slots"][0]["start"] == "07:30" and data["slots"][-1]["end"] == "13:30"
    placed = {b["building_id"] for s in data["slots"] for b in s["buildings"]}
    placed |= {u["building_id"] for u in data["unplaced"]}
    assert placed == buildings
    for slot in data["slots"]:
        assert slot["expected"] <= slot["capacity"] == 200
        assert set(slot) == {"start", "end", "capacity", "expected", "buildings"}
        for piece in slot["buildings"]:
            assert set(piece) == {"building_id", "units", "expected"}


def test_plan_refuses_a_bad_time() -> None:
    result = CliRunner().invoke(app, ["sampling", "plan", "--community", "1", "--start", "7h"])
    assert result.exit_code == 2
