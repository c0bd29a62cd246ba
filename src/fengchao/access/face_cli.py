"""``fengchao faces``: enrol faces from photo files, one person or a CSV of many.

The face service (and the models it loads) is imported when a command runs, not when the
``fengchao`` command starts."""

from __future__ import annotations

import csv
import json
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import func, select

from fengchao.access.face_models import ConsentMethod, FaceTemplate
from fengchao.auth import service as auth_service
from fengchao.auth.models import User
from fengchao.auth.service import SYSTEM_ACTOR, Actor, Forbidden, NotFound
from fengchao.db import session_scope

faces_app = typer.Typer(
    help="Faces on file: enrol residents' faces from photos.", no_args_is_help=True
)
console = Console(stderr=True)


def _actor(username: str | None) -> Actor:
    if username is None:
        return SYSTEM_ACTOR
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            console.print(f"[red]no active account named {username!r}[/red]")
            raise typer.Exit(2)
        return auth_service.actor_for(user, session)


def _rows_of_csv(path: Path) -> OrderedDict[int, list[Path]]:
    """person_id → photo paths (relative ones from the CSV's folder), in file order."""
    wanted: OrderedDict[int, list[Path]] = OrderedDict()
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or {"person_id", "photo"} - set(reader.fieldnames):
            console.print(f"[red]{path}: the columns must be person_id,photo[/red]")
            raise typer.Exit(2)
        for number, row in enumerate(reader, start=2):
            try:
                person_id = int((row["person_id"] or "").strip())
            except ValueError:
                console.print(f"[red]{path}: row {number}: person_id is not a number[/red]")
                raise typer.Exit(2) from None
            photo = Path((row["photo"] or "").strip())
            wanted.setdefault(person_id, []).append(
                photo if photo.is_absolute() else path.parent / photo
            )
    return wanted


def _enrol_one(actor: Actor, person_id: int, photos: list[Path], consent_by: str) -> dict[str, Any]:
    outcome: dict[str, Any] = {"person_id": person_id}
    missing = [str(p) for p in photos if not p.is_file()]
    if missing:
        return {
            **outcome,
            "templates": _stored(person_id),
            "error": "file_missing",
            "message": f"no such file: {', '.join(missing)}",
        }
    from fengchao.access import faces

    try:
        with session_scope(write=True) as session:
            result = faces.enrol(
                session,
                actor,
                person_id,
                [p.read_bytes() for p in photos],
                consent=faces.ConsentGiven(consent_by, ConsentMethod.command_line),
            )
        return {**outcome, "templates": result.templates, "added": result.added}
    except faces.FaceRefused as refused:
        error, message = refused.code, refused.message
    except NotFound:
        error, message = "unknown_person", f"no person {person_id} (or outside the account's scope)"
    except Forbidden:
        error, message = "forbidden", "this account may not enrol faces"
    return {**outcome, "templates": _stored(person_id), "error": error, "message": message}


def _stored(person_id: int) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count(FaceTemplate.id)).where(FaceTemplate.person_id == person_id)
            )
            or 0
        )


@faces_app.command("enrol")
def enrol(
    args: Annotated[
        list[str] | None, typer.Argument(metavar="PERSON_ID PHOTO...", show_default=False)
    ] = None,
    consent_by: Annotated[
        str,
        typer.Option(
            "--consent-by", help="Who gave consent (the resident or their guardian), on paper."
        ),
    ] = "",
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="A CSV with columns person_id,photo.")
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option("--as", help="Enrol as this account (its role and scope apply)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per person.")] = False,
) -> None:
    """Enrol faces: PERSON_ID PHOTO..., or --csv FILE (columns person_id,photo). Each person's
    consent is recorded as given to --consent-by (on a signed paper form). Exit status 1
    when any person was refused."""
    if not consent_by.strip():
        console.print(
            "[red]--consent-by NAME is required: nobody's face is enrolled without consent[/red]"
        )
        raise typer.Exit(2)
    if csv_file is not None:
        if args:
            console.print("[red]give either --csv FILE or PERSON_ID PHOTO..., not both[/red]")
            raise typer.Exit(2)
        if not csv_file.is_file():
            console.print(f"[red]{csv_file}: no such file[/red]")
            raise typer.Exit(2)
        wanted = _rows_of_csv(csv_file)
    else:
        if not args or len(args) < 2:
            console.print("[red]give PERSON_ID and at least one PHOTO (or --csv FILE)[/red]")
            raise typer.Exit(2)
        try:
            wanted = OrderedDict({int(args[0]): [Path(p) for p in args[1:]]})
        except ValueError:
            console.print(f"[red]PERSON_ID must be a number, not {args[0]!r}[/red]")
            raise typer.Exit(2) from None
    actor = _actor(as_user)
    refused = 0
    for person_id, photos in wanted.items():
        outcome = _enrol_one(actor, person_id, photos, consent_by.strip())
        refused += "error" in outcome
        if as_json:
            print(json.dumps(outcome, ensure_ascii=False), flush=True)
        elif "error" in outcome:
            console.print(f"person {person_id}: [red]{outcome['error']}[/red] {outcome['message']}")
        else:
            console.print(f"person {person_id}: {outcome['templates']} template(s) on file")
    if refused:
        raise typer.Exit(1)
