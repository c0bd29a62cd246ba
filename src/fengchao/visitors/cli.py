"""``fengchao visitors``: a pass issued as staff would (a visitor without a phone, a courier),
a gate's poster written to a file, the poster's token rotated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fengchao.auth.service import SYSTEM_ACTOR, NotFound, Refusal
from fengchao.db import get_engine, session_scope
from fengchao.migrate import upgrade

visitors_app = typer.Typer(help="Visitors and couriers (访客、快递外卖).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, as_json: bool, code: int = 2) -> typer.Exit:
    typer.echo(json.dumps({"error": message}, ensure_ascii=False) if as_json else message, err=True)
    return typer.Exit(code)


@visitors_app.command("issue")
def issue(
    gate: Annotated[int, typer.Option("--gate", help="Gate id the pass is for.")],
    name: Annotated[str, typer.Option("--name", help="The visitor's name.")],
    phone: Annotated[str, typer.Option("--phone", help="The visitor's mobile number.")],
    host_room: Annotated[
        str, typer.Option("--host-room", help="Whom they visit: building-unit-room (5-2-1302).")
    ] = "",
    compound: Annotated[
        str | None, typer.Option("--compound", help="The host's compound (default: the gate's).")
    ] = None,
    hours: Annotated[int, typer.Option("--hours", help="Hours the pass is valid.")] = 2,
    entries: Annotated[int, typer.Option("--entries", help="Entries allowed.")] = 1,
    plate: Annotated[str | None, typer.Option("--plate", help="A vehicle plate.")] = None,
    courier: Annotated[
        bool, typer.Option("--courier", help="A courier's pass (30 days, by the rules).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Issue a pass at once, as staff would; prints the pass id and the token its QR
    carries (the token also goes through `fengchao gate replay` with method code)."""
    from fengchao.visitors import service
    from fengchao.visitors.models import PassKind

    upgrade(get_engine())
    kind = PassKind.courier if courier else PassKind.visitor
    if courier:
        hours, entries = 24 * service.COURIER_DAYS, service.COURIER_ENTRIES
    try:
        with session_scope(write=True) as session:
            row, link = service.issue(
                session=session, actor=SYSTEM_ACTOR, gate_id=gate, name=name, phone=phone,
                host_room=host_room, hours=hours, entries=entries, kind=kind, plate=plate,
                compound=compound,
            )  # fmt: skip
            out = {
                "pass_id": row.id,
                "token": service.token_for(row),
                "link": f"/v/pass/{link}",
                "valid_from": row.valid_from.isoformat(),
                "valid_until": row.valid_until.isoformat(),
                "entries": row.entries_allowed,
                "gates": list(row.gate_ids),
                "host": row.host_place,
            }
    except NotFound:
        raise _fail(f"no gate {gate}", as_json) from None
    except Refusal as refused:
        raise _fail(f"{refused.field or 'error'}: {refused.message}", as_json) from None
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(f"pass {out['pass_id']} for {name} until {out['valid_until']}\n{out['token']}")


@visitors_app.command("poster")
def poster(
    gate: Annotated[int, typer.Option("--gate", help="Gate id.")],
    out: Annotated[Path, typer.Option("--out", help="File to write: .pdf or .png.")],
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Give the poster a new token first.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a gate's A4 visitor poster (PDF or PNG)."""
    from fengchao.registry.models import Compound
    from fengchao.visitors import posters, service

    if out.suffix.lower() not in (".pdf", ".png"):
        raise _fail("--out must end in .pdf or .png", as_json)
    upgrade(get_engine())
    try:
        with session_scope(write=True) as session:
            if rotate:
                service.rotate_poster(session=session, actor=SYSTEM_ACTOR, gate_id=gate)
            row, token_row = service.poster_for_gate(
                session=session, actor=SYSTEM_ACTOR, gate_id=gate
            )
            compound = session.get(Compound, row.compound_id)
            url = service.poster_url(token_row.token)
            args = {"url": url, "compound": compound.name if compound else "", "gate": row.name}
            version = token_row.version
    except NotFound:
        raise _fail(f"no gate {gate}", as_json) from None
    data = posters.pdf(**args) if out.suffix.lower() == ".pdf" else posters.png(**args)
    out.write_bytes(data)
    result = {"gate": gate, "file": str(out), "url": url, "version": version, "bytes": len(data)}
    typer.echo(json.dumps(result, ensure_ascii=False) if as_json else f"{out}: {url}")
