"""The ``fengchao`` command: serve, worker, demo, migrate, import, purge, users, backup,
restore."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao import backup as backups
from fengchao.access import cli as access_cli
from fengchao.access.codes_cli import codes_app
from fengchao.access.face_cli import faces_app
from fengchao.auth import service as auth_service
from fengchao.auth.models import Role, ScopeLevel, User
from fengchao.auth.service import SYSTEM_ACTOR, Actor, AuthError, Forbidden, GridScope
from fengchao.dashboard.report_cli import report_app
from fengchao.db import get_engine, session_scope
from fengchao.duty import cli as duty_cli
from fengchao.migrate import schema_drift, upgrade
from fengchao.registry import demo as demo_module
from fengchao.registry import exports as registry_exports
from fengchao.registry import imports as registry_imports
from fengchao.registry import jobs as registry_jobs
from fengchao.registry import scope as registry_scope
from fengchao.registry.models import Building, Community, Compound, Street
from fengchao.sampling import cli as sampling_cli
from fengchao.settings import get_settings
from fengchao.tracing.cli import trace_app
from fengchao.visitors.cli import visitors_app

if TYPE_CHECKING:
    from fengchao.vision.face_pipeline import FacePipeline

app = typer.Typer(help="Fengchao (蜂巢): community outbreak operations.", no_args_is_help=True)
import_app = typer.Typer(help="Import residents or vehicles from XLSX/CSV.", no_args_is_help=True)
users_app = typer.Typer(help="Manage login accounts.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure face and plate recognition on a labelled folder.")
app.add_typer(import_app, name="import")
app.add_typer(users_app, name="users")
app.add_typer(eval_app, name="eval")
app.add_typer(sampling_cli.app, name="sampling")
app.add_typer(codes_app, name="codes")
app.add_typer(duty_cli.app, name="duty")
app.add_typer(access_cli.gates_app, name="gates")
app.add_typer(access_cli.devices_app, name="devices")
app.add_typer(access_cli.gate_app, name="gate")
app.add_typer(access_cli.alert_app, name="alert")
app.add_typer(faces_app, name="faces")
app.add_typer(trace_app, name="trace")
app.add_typer(visitors_app, name="visitors")
app.add_typer(report_app, name="report")
console = Console(stderr=True)


def _community(session: Session, name: str | None, actor: Actor | None = None) -> Community:
    """The named (or first) community; with ``actor``, only among those in its scope."""
    query = select(Community).order_by(Community.id)
    if name:
        query = query.where(Community.name == name)
    community = session.scalars(query).first()
    if community is not None and actor is not None:
        allowed = registry_scope.communities_in_scope(session=session, scope=actor.scope)
        if community.id not in {c.id for c in allowed}:
            if name or not allowed:
                console.print(
                    f"[red]{actor.username} is not responsible for community "
                    f"{community.name!r}[/red]"
                )
                raise typer.Exit(2)
            community = allowed[0]
    if community is None:
        console.print(
            f"[red]no community{' named ' + name if name else ''} in the database; "
            "run `fengchao demo --no-serve` or create the grid first[/red]"
        )
        raise typer.Exit(2)
    return community


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    upgrade(get_engine())
    console.print("schema up to date")


@app.command("check-migrations")
def check_migrations() -> None:
    """Fail when the models and the migrations disagree (run in CI)."""
    engine = get_engine()
    upgrade(engine)
    drift = schema_drift(engine)
    if drift:
        for item in drift:
            console.print(f"[red]{item}[/red]")
        raise typer.Exit(1)
    console.print("models and migrations agree")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    with_worker: Annotated[
        bool,
        typer.Option(
            "--with-worker",
            help="Also deliver notifications and run scheduled jobs in this process (a "
            "single machine; production runs `fengchao worker` beside it).",
        ),
    ] = False,
) -> None:
    """Serve the web pages and the JSON API."""
    import uvicorn

    upgrade(get_engine())
    background = None
    if with_worker:
        import signal

        from fengchao.notify.worker import start_in_thread

        # uvicorn re-raises SIGTERM once it has shut down; by default that would end the
        # process before the worker lets go of its lease. Raised as SystemExit instead.
        signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
        background = start_in_thread(public_url=f"http://{host}:{port}")
    try:
        uvicorn.run(
            "fengchao.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            # uvicorn would otherwise believe X-Forwarded-For/-Proto from any local peer; the
            # client address counts for login throttling, so one setting decides for both.
            proxy_headers=get_settings().login.trust_forwarded_for,
            # dlib holds the GIL while it loads its models (about a second, several on a busy
            # machine): uvicorn's default 5 s would kill a worker that was only loading them.
            timeout_worker_healthcheck=30,
        )
    finally:
        if background is not None:
            background[0].stop()
            background[1].join(timeout=30)


def _ensure_user(
    session: Session, username: str, password: str, role: Role, scope: GridScope, display: str
) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        auth_service.create_user(
            session=session,
            username=username,
            password=password,
            role=role,
            scope=scope,
            display_name=display,
        )
    else:
        auth_service.reset_password(session=session, username=username, password=password)


def _demo_password() -> str:
    """A random 12-character password that the password policy accepts for every demo
    account (a random draw is refused about once in 3,000: a run or too few characters)."""
    from fengchao.auth.passwords import password_problem

    while True:
        password = secrets.token_urlsafe(9)
        if not any(
            password_problem(password, username=name)
            for name in ("admin", "worker", "lead5", "guard", "street")
        ):
            return password


@app.command()
def demo(
    serve_too: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after building.")
    ] = True,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    reset: Annotated[bool, typer.Option(help="Rebuild the demo community from scratch.")] = False,
) -> None:
    """Build the demo community (宏路街道 宏侨社区, 4,883 households) and serve it."""
    engine = get_engine()
    if reset:
        from fengchao.db import Base
        from fengchao.models import load_all_models

        load_all_models()
        Base.metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(engine)
    password = _demo_password()
    with session_scope(write=True) as session:
        community = session.scalar(select(Community).where(Community.name == demo_module.COMMUNITY))
        if community is None:
            with console.status("building the demo community…"):
                summary = demo_module.build_demo(session)
            console.print(
                f"built {summary.households} households, {summary.people} people, "
                f"{summary.vehicles} vehicles, {summary.buildings} buildings, "
                f"{summary.party_members} party members in {summary.seconds:.1f} s"
            )
            community_id = summary.community_id
        else:
            community_id = community.id
            console.print("demo community already present (use --reset to rebuild)")
        street_id = session.scalar(select(Street.id).where(Street.name == demo_module.STREET))
        building_5 = session.scalar(
            select(Building.id)
            .join(Compound, Compound.id == Building.compound_id)
            .where(Compound.name == "华润中央公园", Building.name == "5")
        )
        assert street_id is not None and building_5 is not None
        accounts = [
            ("admin", Role.admin, GridScope(ScopeLevel.street, street_id), "管理员"),
            (
                "worker",
                Role.community_worker,
                GridScope(ScopeLevel.community, community_id),
                "社区干部",
            ),
            (
                "lead5",
                Role.building_lead,
                GridScope(ScopeLevel.building, building_5),
                "5号楼楼栋长",
            ),
            ("guard", Role.guard, GridScope(ScopeLevel.community, community_id), "卡口"),
            # The street office: its communities side by side on the dashboard.
            ("street", Role.community_worker, GridScope(ScopeLevel.street, street_id), "街道办"),
        ]
        for username, role, scope, display in accounts:
            _ensure_user(session, username, password, role, scope, display)
    url = f"http://{host}:{port}/"
    print(f"Fengchao demo: {url}")
    print(
        f"  login: admin / {password}   (also worker, lead5, guard, street with the same password)"
    )
    sys.stdout.flush()
    if serve_too:
        serve(host=host, port=port, workers=1, with_worker=True)


def _actor(session: Session, username: str | None) -> Actor:
    """The account named by ``--as``; without it the system actor (the whole grid)."""
    if username is None:
        return SYSTEM_ACTOR
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        console.print(f"[red]no active account named {username!r}[/red]")
        raise typer.Exit(2)
    return auth_service.actor_for(user)


def _import(
    kind: registry_imports.ImportKind,
    file: Path,
    dry_run: bool,
    as_json: bool,
    create_missing: bool,
    skip_invalid: bool,
    community_name: str | None,
    username: str | None,
    errors_file: Path | None = None,
) -> None:
    if not file.is_file():
        console.print(f"[red]{file}: no such file[/red]")
        raise typer.Exit(2)
    limit = get_settings().imports.max_bytes
    with file.open("rb") as stream:
        content = stream.read(limit + 1)  # over the limit: refused without reading it all
    upgrade(get_engine())
    with session_scope() as session:
        actor = _actor(session, username)
        community = _community(session, community_name, None if username is None else actor)
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        ) as bar:
            task = bar.add_task("validating" if dry_run else "importing", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = registry_imports.import_sheet(
                    kind,
                    session=session,
                    actor=actor,
                    community_id=community.id,
                    content=content,
                    filename=file.name,
                    dry_run=dry_run,
                    create_missing=create_missing,
                    skip_invalid=skip_invalid,
                    progress=progress,
                )
            except Forbidden:
                console.print(f"[red]{actor.username} ({actor.role.value}) may not import[/red]")
                raise typer.Exit(2) from None
    if errors_file is not None and report.problem_cells:
        errors_file.write_bytes(registry_exports.error_report_xlsx(report))
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        _print_report(report, dry_run, errors_file)
    if report.errors and not report.written:
        raise typer.Exit(1)


def _print_report(
    report: registry_imports.ImportReport, dry_run: bool, errors_file: Path | None
) -> None:
    table = Table("row", "name", "field", "problem", title=f"{len(report.errors)} problem(s)")
    for error in report.errors[:200]:
        table.add_row(str(error.row), error.name, error.field, error.message)
    if report.errors:
        console.print(table)
    console.print(
        f"rows {report.rows}, valid {report.valid} (new {report.new}, changed "
        f"{report.changed}, unchanged {report.unchanged}), rows with problems "
        f"{report.problem_rows}"
    )
    for plan in report.plans:
        if plan.action == "changed":
            fields = "; ".join(f"{k}: {old} → {new}" for k, (old, new) in plan.changes.items())
            console.print(f"  row {plan.row} {plan.name} {plan.where}: {fields}", highlight=False)
    if report.written:
        console.print(
            f"created {report.created}, updated {report.updated}, "
            f"unchanged {report.unchanged}, new households {report.new_households}, "
            f"skipped {report.skipped} row(s) with problems"
        )
    elif report.errors and not dry_run:
        console.print("[yellow]nothing written: fix the errors or pass --skip-invalid[/yellow]")
    elif report.valid and not report.would_change:
        console.print("nothing to change: everyone in the sheet is registered as it says")
    if errors_file is not None and report.problem_cells:
        console.print(f"rows with problems, to fix and import again: {errors_file}")


DryRun = Annotated[bool, typer.Option("--dry-run", help="Validate only; write nothing.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CreateMissing = Annotated[bool, typer.Option(help="Create missing units and households.")]
SkipInvalid = Annotated[bool, typer.Option(help="Import the valid rows even if others fail.")]
CommunityName = Annotated[str | None, typer.Option("--community", help="Community name.")]
ErrorsFile = Annotated[
    Path | None,
    typer.Option(
        "--errors-file",
        help="Write the rows with problems to this XLSX: the sheet's own columns and a "
        "column of problems, to fix and import again.",
    ),
]
AsUser = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Import as this account: its role and grid scope apply and the audit names it "
        "(default: the system, the whole grid).",
    ),
]


@import_app.command("residents")
def import_residents(
    file: Path,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    create_missing: CreateMissing = False,
    skip_invalid: SkipInvalid = False,
    community: CommunityName = None,
    as_user: AsUser = None,
    errors_file: ErrorsFile = None,
) -> None:
    """Import residents from FILE (.xlsx or .csv in UTF-8/GBK)."""
    _import(
        "residents",
        file,
        dry_run,
        as_json,
        create_missing,
        skip_invalid,
        community,
        as_user,
        errors_file,
    )


@import_app.command("vehicles")
def import_vehicles(
    file: Path,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    skip_invalid: SkipInvalid = False,
    community: CommunityName = None,
    as_user: AsUser = None,
    errors_file: ErrorsFile = None,
) -> None:
    """Import vehicles from FILE (.xlsx or .csv)."""
    _import(
        "vehicles", file, dry_run, as_json, False, skip_invalid, community, as_user, errors_file
    )


@app.command()
def purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
) -> None:
    """Delete what is past its keeping time: expired import uploads, access events older
    than FENGCHAO_ACCESS__EVENT_KEEP_DAYS, visitors' passes ended more than
    FENGCHAO_VISITORS__KEEP_DAYS ago, the faces of people who moved out, and grid work's
    visits, finished requests and photos past FENGCHAO_GRIDWORK__* (run from cron)."""
    from fengchao.access.faces import purge_faces
    from fengchao.access.records import purge_events
    from fengchao.db import utcnow
    from fengchao.gridwork.retention import purge as purge_gridwork
    from fengchao.visitors.service import purge_passes

    upgrade(get_engine())
    with session_scope() as session:
        events = purge_events(session=session, dry_run=dry_run)
        visitors = purge_passes(session=session, dry_run=dry_run)
    with session_scope() as session:
        faces = purge_faces(session, now=utcnow(), dry_run=dry_run)
    with session_scope() as session:
        grid = purge_gridwork(session=session, dry_run=dry_run)
    face_counts = ", ".join(f"{n} {what}" for what, n in faces.items())
    grid_counts = ", ".join(f"{n} {what}" for what, n in grid.items())
    found = (
        f"{events} access event(s), {visitors} visitor pass(es); faces: {face_counts}; "
        f"grid work: {grid_counts}"
    )
    if dry_run:
        console.print(f"would purge {found}")
        return
    purged = registry_jobs.purge_uploads()
    console.print(f"purged {purged} expired upload(s), {found}")


@app.command()
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Do what is due now, then exit (for cron or tests).")
    ] = False,
) -> None:
    """Deliver notifications to group chats and run the scheduled jobs, until stopped
    (SIGTERM or Ctrl-C finish the messages under way first). Run it beside `fengchao
    serve`; on SQLite one worker runs at a time (a second one waits)."""
    import logging
    import signal

    from fengchao.notify.worker import Worker

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    upgrade(get_engine())
    runner = Worker()
    if not runner.public_url:
        console.print(
            "[yellow]FENGCHAO_NOTIFY__PUBLIC_URL is not set: chat messages will carry no "
            "link back to the platform[/yellow]"
        )

    def stop(_signal: int, _frame: object) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stats = runner.run(once=once)
    console.print(
        f"sent {stats.sent}, failed {stats.failed}, dead-lettered {stats.dead}, "
        f"jobs run {stats.jobs_run}"
    )


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="Role of the account.")],
    scope: Annotated[ScopeLevel, typer.Option(help="Level of the grid node.")],
    scope_id: Annotated[int, typer.Option(help="Id of the grid node.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a login account scoped to one node of the grid (the name is kept lower-case;
    the password must pass the password policy)."""
    upgrade(get_engine())
    try:
        with session_scope(write=True) as session:
            user = auth_service.create_user(
                session=session,
                username=username,
                password=password,
                role=role,
                scope=GridScope(scope, scope_id),
                display_name=display_name,
            )
            stored = user.username
    except AuthError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"created {stored}")


@users_app.command("reset-password")
def users_reset_password(
    username: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
) -> None:
    """Set a new password and end the account's sessions."""
    upgrade(get_engine())
    try:
        with session_scope(write=True) as session:
            auth_service.reset_password(session=session, username=username, password=password)
    except AuthError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"password of {username} reset")


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Lift the lock that repeated failed logins put on an account (audited)."""
    upgrade(get_engine())
    try:
        with session_scope(write=True) as session:
            was_locked = auth_service.unlock_account(
                session=session, username=username, actor=SYSTEM_ACTOR
            )
    except AuthError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    normalised = auth_service.normalise_username(username)
    if was_locked:
        console.print(f"{normalised} unlocked")
    else:
        console.print(f"{normalised} was not locked; its failed logins are forgotten")


@users_app.command("list")
def users_list() -> None:
    """List accounts with role, scope and whether failed logins have locked them."""
    upgrade(get_engine())
    zone = ZoneInfo(get_settings().timezone)
    with session_scope() as session:
        locks = auth_service.account_locks(session=session)
        table = Table("username", "name", "role", "scope", "active", "locked until")
        for user in session.scalars(select(User).order_by(User.id)):
            until = locks.get(user.username)
            table.add_row(
                user.username,
                user.display_name,
                user.role.value,
                f"{user.scope_level.value}:{user.scope_id}",
                str(user.active),
                until.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if until else "",
            )
        Console().print(table)


@contextmanager
def _rows_progress(description: str) -> Iterator[backups.Progress]:
    """A progress bar that appears with the first rows (a refusal shows none)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = bar.add_task(description, total=None)
    started = False

    def progress(table: str, done: int, total: int) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, description=f"{description} {table}", completed=done, total=total)

    try:
        yield progress
    finally:
        if started:
            bar.stop()


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(help="The backup file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Back up the whole database to FILE (mode 0600), compressed and encrypted with the
    data key; restore it with `fengchao restore`."""
    try:
        with _rows_progress("backing up") as progress:
            header = backups.backup_to_file(
                get_engine(),
                file,
                data_key=get_settings().security.data_key_bytes(),
                overwrite=force,
                progress=progress,
            )
    except FileExistsError:
        console.print(f"[red]{file} already exists: pass --force to overwrite it[/red]")
        raise typer.Exit(1) from None
    except backups.BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        console.print(f"[red]{file}: {exc.strerror or exc}[/red]")
        raise typer.Exit(2) from None
    console.print(
        f"{file}: {header.rows} rows of {len(header.tables)} tables, schema "
        f"{header.schema_revision}, {file.stat().st_size / 1e6:.1f} MB"
    )


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `fengchao backup`.")],
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Delete every row the database holds first, in the same transaction.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only read and check FILE; write nothing.")
    ] = False,
) -> None:
    """Restore FILE into an empty database (migrated to this version's schema first), in one
    transaction; refuses a backup of another schema version."""
    try:
        with file.open("rb") as src:
            header = backups.read_header(src)
        console.print(
            f"backup of {header.created_at.isoformat()} from {header.dialect}, schema "
            f"{header.schema_revision}, fengchao {header.fengchao_version}: {header.rows} rows"
        )
        with _rows_progress("checking" if dry_run else "restoring") as progress:
            backups.restore_from_file(
                get_engine(),
                file,
                data_key=get_settings().security.data_key_bytes(),
                replace=replace,
                dry_run=dry_run,
                progress=progress,
            )
    except backups.BackupError as exc:
        console.print(f"[red]{exc}[/red]")
        console.print("[red]nothing was written[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        console.print(f"[red]{file}: {exc.strerror or exc}[/red]")
        raise typer.Exit(2) from None
    if dry_run:
        console.print(f"{file}: sound, {header.rows} rows; nothing written")
    else:
        console.print(f"restored {header.rows} rows of {len(header.tables)} tables")


def _print_figures(title: str, figures: dict[str, object]) -> None:
    table = Table("figure", "value", title=title)
    for key, value in figures.items():
        if not isinstance(value, dict | list):
            table.add_row(key, str(value))
    Console().print(table)


@eval_app.command("plates")
def eval_plates(
    folder: Annotated[Path, typer.Argument(help="Folder with labels.csv (file,plate).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Exact match, character and province accuracy, misses and latency of the plate reader."""
    from fengchao.vision import plate_eval
    from fengchao.vision.plates import plate_reader_class

    reader = plate_reader_class(get_settings().vision.plate_reader)()
    try:
        outcomes = plate_eval.run_plates(folder, reader)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    figures = plate_eval.summarise(outcomes)
    if as_json:
        print(json.dumps(figures, ensure_ascii=False))
        return
    _print_figures(f"plates: {folder}", figures)
    for name, sub in figures["by_folder"].items():
        _print_figures(f"{folder}/{name}", sub)
    for miss in figures["misses"][:40]:
        console.print(f"{miss['file']}: expected {miss['expected']}, read {miss['read'] or '—'}")


@eval_app.command("faces")
def eval_faces(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Folder with labels.csv: file,identity[,masked] or file,faces "
            "(several folders only with --calibrate)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    detector: Annotated[
        str | None, typer.Option(help="Face detector backend (default: from settings).")
    ] = None,
    synthetic_masks: Annotated[
        bool, typer.Option(help="Enrol masked variants of each photo too.")
    ] = True,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Choose the threshold and margin: no false accept, the most residents let in.",
        ),
    ] = False,
) -> None:
    """Verification, rank-1, faces not found, latency, and the masked gate case; for group
    photos (file,faces) how many faces are found; with --calibrate the operating point."""
    from fengchao.vision import face_eval
    from fengchao.vision.face_pipeline import FacePipeline
    from fengchao.vision.faces import face_detector_class, face_encoder_class
    from fengchao.vision.labels import label_rows

    vision = get_settings().vision
    if len(folders) > 1 and not calibrate:
        console.print("[red]several folders are only read together with --calibrate[/red]")
        raise typer.Exit(2)
    folder = folders[0]
    try:
        found_detector = face_detector_class(detector or vision.face_detector)()
        if calibrate:
            pipeline = FacePipeline(found_detector, face_encoder_class(vision.face_encoder)())
            _calibrate_faces(folders, pipeline, as_json)
            return
        columns = set(next(iter(label_rows(folder, "file")), {}))
        if "faces" in columns and "identity" not in columns:
            counted = face_eval.count_faces(folder, found_detector)
            if as_json:
                print(json.dumps(counted))
            else:
                _print_figures(f"group photos: {folder}", counted)
            return
        pipeline = FacePipeline(found_detector, face_encoder_class(vision.face_encoder)())
        samples, has_masked = face_eval.embed_folder(folder, pipeline)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    figures = face_eval.summarise(
        samples, has_masked, pipeline, vision.face_threshold, vision.face_margin, synthetic_masks
    )
    if as_json:
        print(json.dumps(figures, ensure_ascii=False))
        return
    _print_figures(f"faces: {folder}", figures)
    for section in ("passage", "masked", "masked_enrolled", "masked_enrolled_detail"):
        if section in figures:
            _print_figures(section, figures[section])


def _calibrate_faces(folders: list[Path], pipeline: FacePipeline, as_json: bool) -> None:
    """``eval faces --calibrate``: the operating point for these photos, or why there is none."""
    from fengchao.vision import face_eval
    from fengchao.vision.calibration import CalibrationRefused, LabelledFace, calibrate

    faces: list[LabelledFace] = []
    no_face = 0
    for folder in folders:
        samples, _ = face_eval.embed_folder(folder, pipeline, paint=False)
        for s in samples:
            if s.face is None:
                no_face += 1
            else:
                faces.append(LabelledFace(s.identity, s.masked, s.face.descriptor))
    try:
        chosen = calibrate(faces)
    except CalibrationRefused as exc:
        if as_json:
            print(json.dumps({"refused": exc.code, "message": exc.message}, ensure_ascii=False))
        else:
            console.print(f"[red]{exc.message}[/red] ({exc.code})")
        raise typer.Exit(2) from None
    figures = chosen.as_dict() | {"no_face": no_face}
    if as_json:
        print(json.dumps(figures, ensure_ascii=False))
        return
    _print_figures(f"calibration: {', '.join(str(f) for f in folders)}", figures)
    by_threshold: dict[str, object] = dict(chosen.acceptance_by_threshold)
    _print_figures("residents let in, by threshold (chosen margin)", by_threshold)
    console.print(
        f"FENGCHAO_VISION__FACE_THRESHOLD={chosen.threshold} "
        f"FENGCHAO_VISION__FACE_MARGIN={chosen.margin}: out of 100 residents at the gate, "
        f"{chosen.asked_again_per_100} are asked to look again"
    )


@app.callback()
def main() -> None:
    """Settings come from FENGCHAO_* environment variables (see README)."""
    get_settings()
