"""The command-line contract: `fengchao visitors issue ... --json` prints the pass id and
token, and the token goes through `fengchao gate replay` with method code like a resident
code (admitted once, the second entry refused); the poster written to a file."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from typer.testing import CliRunner

from fengchao import cli
from tests.access.test_cli import cli_grid, run  # noqa: F401  (the fixture)
from tests.conftest import Grid


def test_issue_then_replay_admits_once(cli_grid: tuple[Engine, Grid], tmp_path: Path) -> None:  # noqa: F811
    _engine, grid = cli_grid
    (gate,) = run("gates", "create", "--compound", str(grid.park.id), "--name", "东门",
                  "--kind", "pedestrian", "--json")  # fmt: skip
    (issued,) = run("visitors", "issue", "--gate", str(gate["id"]), "--name", "李奶奶",
                    "--phone", "13600000000", "--host-room", "5-1-101",
                    "--compound", "华润", "--hours", "2", "--entries", "1", "--json")  # fmt: skip
    assert isinstance(issued["pass_id"], int) and str(issued["token"]).startswith("FV1-")
    rows = tmp_path / "passages.csv"
    rows.write_text(
        "passage,gate,direction,method,value,temperature\n"
        f"1,{gate['id']},in,code,{issued['token']},36.5\n"
        f"2,{gate['id']},in,code,{issued['token']},36.6\n",
        encoding="utf-8",
    )
    lines = run("gate", "replay", str(rows), "--json")
    decisions = [line["decision"] for line in lines if "decision" in line]
    assert decisions[:2] == ["allow", "deny"], lines
    refused = CliRunner().invoke(
        cli.app,
        ["visitors", "issue", "--gate", str(gate["id"]), "--name", "x", "--phone", "1",
         "--host-room", "5-1-101", "--json"],
    )  # fmt: skip
    assert refused.exit_code == 2 and "phone" in refused.output


def test_poster_to_file(cli_grid: tuple[Engine, Grid], tmp_path: Path) -> None:  # noqa: F811
    _engine, grid = cli_grid
    (gate,) = run("gates", "create", "--compound", str(grid.park.id), "--name", "北门",
                  "--kind", "both", "--json")  # fmt: skip
    out = tmp_path / "poster.pdf"
    (made,) = run("visitors", "poster", "--gate", str(gate["id"]), "--out", str(out), "--json")
    assert out.read_bytes().startswith(b"%PDF") and "/v/" in str(made["url"])
