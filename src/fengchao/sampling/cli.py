"""`fengchao sampling …`: plan a community's building time slots from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fengchao.db import session_scope
from fengchao.registry.models import Community
from fengchao.sampling import service, slots

app = typer.Typer(help="Sampling rounds and building time slots.", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def plan(
    community: Annotated[int, typer.Option("--community", help="Community id.")],
    start: Annotated[str, typer.Option(help="Opening time, HH:MM.")] = "07:30",
    end: Annotated[str, typer.Option(help="Closing time, HH:MM.")] = "13:30",
    stations: Annotated[int, typer.Option(help="Sampling stations (采样台).")] = 4,
    per_station_hour: Annotated[
        int, typer.Option("--per-station-hour", help="Swabs per station per hour.")
    ] = slots.DEFAULT_PER_STATION_HOUR,
    turnout: Annotated[float, typer.Option(help="Share of residents expected (0–1].")] = 0.9,
    slot_minutes: Annotated[int, typer.Option("--slot-minutes", help="Slot length.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """Plan time slots for every building of a community (nothing is saved)."""
    try:
        opens = service.parse_clock(start, "start")
        closes = service.parse_clock(end, "end")
    except service.SamplingRefused as exc:
        console.print(f"[red]{exc.field}: {exc.message}[/red]")
        raise typer.Exit(2) from None
    with session_scope() as session:
        if session.get(Community, community) is None:
            console.print(f"[red]no community with id {community}[/red]")
            raise typer.Exit(2)
        loads, names, _units = service.building_loads(session, community)
    day = slots.SiteDay(opens, closes, stations, per_station_hour, turnout, slot_minutes)
    try:
        result = slots.plan_slots(loads, day)
    except slots.PlanError as exc:
        console.print(f"[red]{exc.field}: {exc}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
        return
    table = Table("slot", "capacity", "expected", "buildings")
    for slot in result.slots:
        table.add_row(
            f"{slot.start:%H:%M}–{slot.end:%H:%M}",
            str(slot.capacity),
            str(slot.expected),
            ", ".join(
                names.get(p.building_id, str(p.building_id))
                + ("" if p.units is None else f" ({len(p.units)} units)")
                for p in slot.pieces
            ),
        )
    Console().print(table)
    if result.unplaced:
        console.print(
            f"[yellow]{len(result.unplaced)} pieces ({result.unplaced_expected} people) "
            "do not fit this day[/yellow]"
        )
