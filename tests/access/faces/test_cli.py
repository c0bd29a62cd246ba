"""``fengchao faces enrol``: one person from photo files, or a CSV of many; one JSON object
per person, refusals named by their code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from fengchao import db, settings
from fengchao.access.face_models import ConsentMethod, FaceConsent, FaceTemplate
from fengchao.cli import app
from fengchao.migrate import upgrade
from tests.conftest import build_grid, shared_data


def _clear_caches() -> None:
    for cached in (settings.get_settings, db.get_engine, db.get_sessionmaker):
        cached.cache_clear()


@pytest.fixture
def people(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engine, int, int]]:
    """A migrated SQLite file the command uses, with the test grid's two residents."""
    monkeypatch.setenv("FENGCHAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    _clear_caches()
    engine = db.get_engine()
    try:
        upgrade(engine)
        with Session(engine) as session:
            grid = build_grid(session)
            ids = grid.resident5.id, grid.resident6.id
            session.commit()
        yield engine, ids[0], ids[1]
    finally:
        engine.dispose()
        _clear_caches()


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.strip().splitlines() if line.startswith("{")]


def test_consent_is_required_and_arguments_checked(people: tuple[Engine, int, int]) -> None:
    runner = CliRunner()
    no_consent = runner.invoke(app, ["faces", "enrol", "1", "a.jpg", "--json"])
    assert no_consent.exit_code == 2
    neither = runner.invoke(app, ["faces", "enrol", "--consent-by", "林", "--json"])
    assert neither.exit_code == 2
    not_a_number = runner.invoke(app, ["faces", "enrol", "x", "a.jpg", "--consent-by", "林"])
    assert not_a_number.exit_code == 2


def test_a_missing_file_or_person_is_reported_per_person(
    people: tuple[Engine, int, int], tmp_path: Path
) -> None:
    _engine, first, _second = people
    result = CliRunner().invoke(
        app,
        [
            "faces",
            "enrol",
            str(first),
            str(tmp_path / "none.jpg"),
            "--consent-by",
            "林国平",
            "--json",
        ],
    )
    assert result.exit_code == 1
    assert lines(result.stdout) == [
        {
            "person_id": first,
            "templates": 0,
            "error": "file_missing",
            "message": f"no such file: {tmp_path / 'none.jpg'}",
        }
    ]


@pytest.mark.vision
def test_enrol_one_person_from_photos(people: tuple[Engine, int, int]) -> None:
    engine, first, _second = people
    photos = [str(shared_data("faces", f"angelina_jolie_0{n}.jpg")) for n in (1, 2)]
    result = CliRunner().invoke(
        app, ["faces", "enrol", str(first), *photos, "--consent-by", "林国平", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert lines(result.stdout) == [{"person_id": first, "templates": 8, "added": 8}]
    with Session(engine) as session:
        consent = session.scalars(select(FaceConsent)).one()
        assert consent.consented_by == "林国平" and consent.method == ConsentMethod.command_line


@pytest.mark.vision
def test_enrol_from_a_csv_one_object_per_person(
    people: tuple[Engine, int, int], tmp_path: Path
) -> None:
    engine, first, second = people
    group = shared_data("faces_group", "group_02.jpg")
    sheet = tmp_path / "faces.csv"
    sheet.write_text(
        "person_id,photo\n"
        f"{first},{shared_data('faces', 'angelina_jolie_01.jpg')}\n"
        f"{second},{group}\n"
        f"{first},{shared_data('faces', 'angelina_jolie_03.jpg')}\n"
        "999999,nothing.jpg\n",
        encoding="utf-8",
    )
    (tmp_path / "nothing.jpg").write_bytes(b"x")
    result = CliRunner().invoke(
        app, ["faces", "enrol", "--csv", str(sheet), "--consent-by", "本人", "--json"]
    )
    assert result.exit_code == 1, result.output
    found = lines(result.stdout)
    assert [f["person_id"] for f in found] == [first, second, 999999]
    assert found[0] == {"person_id": first, "templates": 8, "added": 8}
    assert found[1]["error"] == "several_faces" and found[1]["templates"] == 0
    assert isinstance(found[1]["message"], str) and found[1]["message"]
    assert found[2]["error"] == "unknown_person"
    with Session(engine) as session:
        assert session.scalar(select(func.count(FaceTemplate.id))) == 8
