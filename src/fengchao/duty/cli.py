"""``fengchao duty``: roster commands that need no database (``duty solve PROBLEM.json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fengchao.duty import solver

app = typer.Typer(help="Volunteer duty: solve rosters.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("solve")
def solve_command(
    problem_file: Annotated[Path, typer.Argument(help="The roster problem as JSON.")],
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Seconds the solver may take.", min=0.1)
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workers: Annotated[int, typer.Option(help="Solver threads.", min=1)] = 2,
) -> None:
    """Solve a roster problem given as JSON, without touching the database.

    Input: {"shifts": [{"id", "post", "start", "end", "min", "max", "skills"}],
    "volunteers": [{"id", "skills", "available", "max_hours_week"}], "rules":
    {"min_rest_hours", "max_shifts_per_day", "max_consecutive_nights"}}. A night shift
    covers 02:00; a day is the calendar day a shift starts on. Output: assignments, holes
    (each with the reason), gap, seconds, hours_spread, nights_spread.
    """
    try:
        data = json.loads(problem_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        _fail(as_json, [("file", f"cannot read {problem_file}: {error}")])
    try:
        problem = solver.problem_from_json(data)
        result = solver.solve(problem, time_limit=time_limit, workers=workers)
    except solver.ProblemError as error:
        _fail(as_json, error.problems)
    except (TypeError, ValueError, KeyError) as error:  # a value of the wrong kind
        _fail(as_json, [("problem", f"malformed: {error}")])
    if as_json:
        sys.stdout.write(json.dumps(solver.result_to_json(result), ensure_ascii=False) + "\n")
        return
    table = Table("shift", "volunteers")
    staffed: dict[str, list[str]] = {}
    for shift_id, person in result.assignments:
        staffed.setdefault(shift_id, []).append(person)
    for shift in problem.shifts:
        table.add_row(shift.id, ", ".join(staffed.get(shift.id, [])) or "—")
    Console().print(table)
    for hole in result.holes:
        Console().print(f"[red]hole[/red] {hole.shift}: {hole.missing} missing — {hole.reason}")
    Console().print(
        f"{result.status}, gap {result.gap:.2%}, {result.seconds:.2f} s, "
        f"hours spread {result.hours_spread:g} h, nights spread {result.nights_spread}"
    )


def _fail(as_json: bool, problems: list[tuple[str, str]]) -> None:
    if as_json:
        out = {
            "error": "invalid problem",
            "problems": [{"field": f, "message": m} for f, m in problems],
        }
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
    else:
        for where, what in problems:
            console.print(f"[red]{where}: {what}[/red]")
    raise typer.Exit(2)
