"""``fengchao gates``, ``fengchao devices`` and ``fengchao gate replay``: gates and device
keys from the command line, and a CSV of passages replayed through the decision flow."""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Annotated

import typer

from fengchao.access import flows
from fengchao.access import service as access
from fengchao.access.flows import PassageRequest, Sender
from fengchao.auth.service import SYSTEM_ACTOR, NotFound, Refusal
from fengchao.db import get_engine, session_scope
from fengchao.migrate import upgrade

gates_app = typer.Typer(help="Gates (出入口) of the compounds.", no_args_is_help=True)
devices_app = typer.Typer(help="Devices at the gates and their API keys.", no_args_is_help=True)
gate_app = typer.Typer(help="Passages at a gate from the command line.", no_args_is_help=True)
alert_app = typer.Typer(help="Alert levels (防控等级).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, as_json: bool, code: int = 2) -> typer.Exit:
    typer.echo(json.dumps({"error": message}, ensure_ascii=False) if as_json else message, err=True)
    return typer.Exit(code)


@gates_app.command("create")
def gates_create(
    compound: Annotated[int, typer.Option("--compound", help="Compound id.")],
    name: Annotated[str, typer.Option("--name", help="Gate name, e.g. 东门.")],
    kind: Annotated[str, typer.Option("--kind", help="pedestrian, vehicle or both.")],
    directions: Annotated[str, typer.Option(help="in, out or in,out.")] = "in,out",
    soft_temperature: Annotated[
        bool, typer.Option("--soft-temperature", help="Let a fever pass with an alert.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a gate of a compound."""
    upgrade(get_engine())
    wanted = {d.strip() for d in directions.split(",") if d.strip()}
    if not wanted or wanted - {"in", "out"}:
        raise _fail("--directions takes in, out or in,out", as_json)
    try:
        with session_scope(write=True) as session:
            gate = access.create_gate(
                session=session, actor=SYSTEM_ACTOR, compound_id=compound, name=name,
                kind=kind, allows_in="in" in wanted, allows_out="out" in wanted,
                soft_temperature=soft_temperature,
            )  # fmt: skip
            out = {
                "id": gate.id, "name": gate.name, "compound_id": gate.compound_id,
                "community_id": gate.community_id, "kind": str(gate.kind),
                "allows_in": gate.allows_in, "allows_out": gate.allows_out,
                "soft_temperature": gate.soft_temperature,
            }  # fmt: skip
    except NotFound:
        raise _fail(f"no compound with id {compound}", as_json) from None
    except Refusal as refused:
        raise _fail(refused.message, as_json) from None
    typer.echo(json.dumps(out, ensure_ascii=False) if as_json else f"gate {out['id']}: {name}")


@gates_app.command("list")
def gates_list(as_json: JsonFlag = False) -> None:
    """Every gate."""
    with session_scope() as session:
        found = [
            {"id": g.id, "name": g.name, "compound_id": g.compound_id, "kind": str(g.kind)}
            for g in access.list_gates(session=session, actor=SYSTEM_ACTOR)
        ]
    for gate in found:
        typer.echo(json.dumps(gate, ensure_ascii=False) if as_json else
                   f"{gate['id']:>4}  {gate['name']}  ({gate['kind']})")  # fmt: skip


@devices_app.command("create")
def devices_create(
    gate: Annotated[int, typer.Option("--gate", help="Gate id.")],
    name: Annotated[str, typer.Option("--name", help="Device name.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a device of a gate and print its API key (shown this once)."""
    upgrade(get_engine())
    try:
        with session_scope(write=True) as session:
            device, key = access.create_device(
                session=session, actor=SYSTEM_ACTOR, gate_id=gate, name=name
            )
            out = {"id": device.id, "gate_id": device.gate_id, "name": device.name, "key": key}
    except NotFound:
        raise _fail(f"no gate with id {gate}", as_json) from None
    except Refusal as refused:
        raise _fail(refused.message, as_json) from None
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(f"device {out['id']} at gate {gate}; its key, shown this once:\n{key}")


@devices_app.command("revoke")
def devices_revoke(device_id: int) -> None:
    """Revoke a device's key at once."""
    try:
        with session_scope(write=True) as session:
            access.revoke_device(session=session, actor=SYSTEM_ACTOR, device_id=device_id)
    except NotFound:
        raise _fail(f"no device with id {device_id}", False) from None
    typer.echo(f"device {device_id} revoked")


@alert_app.command("set")
def alert_set(
    level: Annotated[str, typer.Argument(help="normal, heightened, closed or lockdown.")],
    community: Annotated[int, typer.Option("--community", help="Community id.")],
    compound: Annotated[int | None, typer.Option("--compound", help="Only this compound.")] = None,
    note: Annotated[str, typer.Option(help="Shown with the broadcast.")] = "",
) -> None:
    """Switch the alert level (audited, broadcast, in force at the next decision)."""
    try:
        with session_scope(write=True) as session:
            access.set_level(session=session, actor=SYSTEM_ACTOR, community_id=community,
                             level=level, compound_id=compound, note=note)  # fmt: skip
    except NotFound as missing:
        raise _fail(f"not found: {missing}", False) from None
    except Refusal as refused:
        raise _fail(refused.message, False) from None
    typer.echo(f"alert level {level}")


def _frame_or_text(value: str, base: Path) -> tuple[bytes | None, str]:
    """A value that names an image file is read as a frame (relative to the CSV's folder
    first); anything else is text."""
    for candidate in (Path(value), base / value):
        try:
            if (
                candidate.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
                and candidate.is_file()
            ):
                return candidate.read_bytes(), value
        except OSError:
            continue
    return None, value


@gate_app.command("replay")
def replay(
    file: Annotated[
        Path, typer.Argument(help="CSV: passage,gate,direction,method,value,temperature[,time]")
    ],
    as_json: JsonFlag = False,
) -> None:
    """Send each row of a CSV through the decision flow (the same as the device API): rows
    of one ``passage`` are consecutive frames of one passage. ``time`` is the device's
    local time (ISO 8601); such rows are kept with their time and marked late."""
    upgrade(get_engine())
    try:
        reader = csv.DictReader(file.read_text(encoding="utf-8-sig").splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}", as_json) from None
    required = {"passage", "gate", "direction", "method", "value", "temperature"}
    if not required <= set(reader.fieldnames or ()):
        missing = ", ".join(sorted(required - set(reader.fieldnames or ())))
        raise _fail(f"{file}: missing columns {missing}", as_json)
    from zoneinfo import ZoneInfo

    from fengchao.settings import get_settings

    zone = ZoneInfo(get_settings().timezone)
    sender = Sender("cli")
    # Each run is its own: replaying a file again decides again (after an alert level
    # changed, say); within the run, frames pair by their passage, not by neighbourhood.
    run = uuid.uuid4().hex[:12]
    counts = {"allow": 0, "deny": 0, "pending": 0, "error": 0}
    times: list[float] = []
    passages: set[str] = set()
    for number, row in enumerate(reader, start=1):
        passage = (row.get("passage") or "").strip()
        passages.add(passage)
        out: dict[str, object] = {"row": number, "passage": passage}
        started = time.perf_counter()
        try:
            frame, text = _frame_or_text((row.get("value") or "").strip(), file.parent)
            device_time = None
            if (row.get("time") or "").strip():
                try:
                    device_time = dt.datetime.fromisoformat(row["time"].strip())
                except ValueError:
                    raise flows.BadPassage("time: ISO 8601 expected", field="time") from None
                if device_time.tzinfo is None:
                    device_time = device_time.replace(tzinfo=zone)
            gate_text = (row.get("gate") or "").strip()
            if not gate_text.isdigit():
                raise flows.BadPassage("gate: a gate id expected", field="gate")
            request = PassageRequest(
                gate_id=int(gate_text),
                direction=(row.get("direction") or "").strip(),
                method=(row.get("method") or "").strip(),
                value=None if frame is not None else text,
                frame=frame,
                temperature=(row.get("temperature") or "").strip() or None,
                device_time=device_time,
                device_sent_at=dt.datetime.now(dt.UTC) if device_time else None,
                idempotency_key=f"replay-{run}:{passage[:80]}:{number}",
                passage=f"replay-{run}:{passage[:80]}:",
            )
            with session_scope() as session:
                answer = flows.decide(session=session, request=request, sender=sender)
            elapsed = (time.perf_counter() - started) * 1000
            times.append(elapsed)
            counts[answer.decision] += 1
            out.update(
                decision=answer.decision, person_id=answer.person_id,
                vehicle_id=answer.vehicle_id, reasons=answer.reasons, masked=answer.masked,
                ms=round(elapsed, 2), message=answer.message, event_id=answer.event_id,
                match_how=answer.match_how, plate_read=answer.plate_read, late=answer.late,
                clock_off=answer.clock_off,
            )  # fmt: skip
        except (Refusal, NotFound) as refused:
            counts["error"] += 1
            message = refused.message if isinstance(refused, Refusal) else f"not found: {refused}"
            out.update(
                decision=None, person_id=None, vehicle_id=None, reasons=[], masked=False,
                ms=round((time.perf_counter() - started) * 1000, 2),
                error=getattr(refused, "field", None) or "gate", message=message,
            )  # fmt: skip
        if as_json:
            typer.echo(json.dumps(out, ensure_ascii=False))
        else:
            typer.echo(f"{number:>4} {passage:<8} {out['decision'] or 'error':<8} "
                       f"{out.get('message', '')}")  # fmt: skip
    summary = {
        "summary": True,
        "rows": sum(counts.values()),
        "passages": len(passages),
        **counts,
        "p50_ms": round(statistics.median(times), 2) if times else None,
        "max_ms": round(max(times), 2) if times else None,
    }
    typer.echo(json.dumps(summary, ensure_ascii=False) if as_json else str(summary))
