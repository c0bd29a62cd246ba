"""``fengchao codes``: show or rotate a resident's gate code from the command line."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from fengchao.access import codes
from fengchao.auth.service import SYSTEM_ACTOR, NotFound
from fengchao.db import session_scope

codes_app = typer.Typer(help="Residents' gate codes (通行码).", no_args_is_help=True)


@codes_app.command("show")
def show(
    person_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print the text a person's QR code carries."""
    with session_scope() as session:
        try:
            text = codes.personal_code(session, person_id)
        except LookupError:
            typer.echo(f"no person with id {person_id}", err=True)
            raise typer.Exit(2) from None
    typer.echo(json.dumps({"person_id": person_id, "code": text}) if as_json else text)


@codes_app.command("rotate")
def rotate(
    person_id: int,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Issue a new code: every code shown or printed before stops working."""
    with session_scope(write=True) as session:
        try:
            text = codes.rotate_code(session, SYSTEM_ACTOR, person_id)
        except NotFound:
            typer.echo(f"no person with id {person_id}", err=True)
            raise typer.Exit(2) from None
    typer.echo(json.dumps({"person_id": person_id, "code": text}) if as_json else text)
