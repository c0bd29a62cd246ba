"""``fengchao trace``: the contacts of a person taken as a case, from the command line."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer

from fengchao.auth.service import NotFound
from fengchao.db import session_scope
from fengchao.tracing import service
from fengchao.tracing.contacts import Contact

trace_app = typer.Typer(help="Contact tracing (流调溯源).", no_args_is_help=True)


def contact_json(contact: Contact) -> dict[str, Any]:
    kind, number = contact.subject
    return {
        "person_id": number if kind == "person" else None,
        **({"visitor_id": number} if kind == "visitor" else {}),
        "tier": contact.tier,
        "reasons": [{"kind": r.kind, **r.evidence} for r in contact.reasons],
        "earlier_dismissals": [
            {"case": d.case_id, "reason": d.reason} for d in contact.earlier_dismissals
        ],
    }


@trace_app.command("case")
def case(
    person_id: Annotated[
        int | None, typer.Argument(help="The case: a registered person's id.")
    ] = None,
    visitor_pass: Annotated[
        int | None,
        typer.Option(help="The case is a visitor (not in the registry): one of their passes."),
    ] = None,
    since: Annotated[str, typer.Option(help="First day of the lookback, YYYY-MM-DD (local).")] = "",
    window_minutes: Annotated[
        int, typer.Option(min=0, max=120, help="Co-passage window, ± minutes.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Compute (without saving) the contacts of PERSON_ID (or of the visitor holding
    --visitor-pass) taken as a case."""
    if (person_id is None) == (visitor_pass is None):
        typer.echo("give PERSON_ID or --visitor-pass PASS_ID (one of them)", err=True)
        raise typer.Exit(2)
    if not since:
        typer.echo("--since YYYY-MM-DD is required", err=True)
        raise typer.Exit(2)
    try:
        day = dt.date.fromisoformat(since)
    except ValueError:
        typer.echo(f"--since: not a date (YYYY-MM-DD): {since!r}", err=True)
        raise typer.Exit(2) from None
    with session_scope() as session:
        try:
            result = service.trace_since(
                session,
                person_id=person_id,
                visitor_pass_id=visitor_pass,
                since=day,
                window_minutes=window_minutes,
            )
        except NotFound:
            named = f"person with id {person_id}" if person_id else f"visitor pass {visitor_pass}"
            typer.echo(f"no {named}", err=True)
            raise typer.Exit(2) from None
    contacts = [contact_json(c) for c in result.contacts]
    output = {
        "case": person_id,
        **({"visitor_pass": visitor_pass} if visitor_pass else {}),
        "window": {"start": result.window.start.isoformat(), "end": result.window.end.isoformat()},
        "contacts": contacts,
        "notes": result.notes,
    }
    if as_json:
        typer.echo(json.dumps(output, ensure_ascii=False))
        return
    for contact in contacts:
        kinds = ", ".join(r["kind"] for r in contact["reasons"])
        who = contact["person_id"] or contact.get("visitor_id")
        typer.echo(f"{who}\t{contact['tier']}\t{kinds}")
    for note in result.notes:
        typer.echo(note, err=True)
