"""Pages of the registry: grid browser, household, person, search, import wizard,
completeness report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fengchao.auth.service import Actor, NotFound, Permission, Refusal, require
from fengchao.db import begin_write
from fengchao.registry import (
    edits,
    exports,
    homes,
    id_numbers,
    imports,
    proposals,
    scope,
    search,
    service,
    uploads,
)
from fengchao.registry.completeness import Figures, Gap
from fengchao.registry.importer import field_label
from fengchao.registry.models import (
    LABELS,
    CareTag,
    Community,
    HealthStatus,
    ImportUpload,
    ResidenceStatus,
)
from fengchao.settings import get_settings
from fengchao.web.deps import (
    MAX_ROW_ID,
    CurrentActor,
    DbSession,
    OptionalRowId,
    RowId,
    render,
    require_csrf,
    templates,
)
from fengchao.web.i18n import _

router = APIRouter(
    prefix="/registry", dependencies=[Depends(require_csrf)], include_in_schema=False
)

templates.env.filters["label"] = lambda value: _(LABELS.get(value, str(value)))
# What a room tile's colour means (the building page and its legend).
ROOM_LABELS = {
    "normal": "正常",
    "care": "有需关怀的人",
    "isolation": "有隔离人员",
    "positive": "有阳性",
    "empty": "无人登记",
    "vacant": "空置",
}
templates.env.globals["room_labels"] = ROOM_LABELS

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def pick_community(session: Session, actor: Actor, community_id: int | None) -> Community:
    communities = scope.communities_in_scope(session=session, scope=actor.scope)
    if not communities:
        raise NotFound("no community in scope")
    if community_id is None:
        return communities[0]
    for community in communities:
        if community.id == community_id:
            return community
    raise NotFound(f"community {community_id}")


def _download(content: bytes, filename: str) -> Response:
    from urllib.parse import quote

    return Response(
        content,
        media_type=XLSX,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
    )


@router.get("", response_class=HTMLResponse)
def grid_browser(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    community: OptionalRowId = None,
) -> Response:
    chosen = pick_community(session, actor, community)
    tree = service.grid_tree(session=session, actor=actor, community_id=chosen.id)
    return render(
        request,
        "registry/grid.html",
        {
            "community": chosen,
            "communities": scope.communities_in_scope(session=session, scope=actor.scope),
            "tree": tree,
            "scope_label": scope.scope_label(session=session, scope=actor.scope),
            "households": sum(node.households for node in tree),
            "people": sum(node.people for node in tree),
        },
    )


@router.get("/buildings/{building_id}", response_class=HTMLResponse)
def building_page(
    building_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    building = service.get_building(session=session, actor=actor, building_id=building_id)
    units = service.building_units(session=session, building=building)
    lead = service.building_lead(session=session, building_id=building_id)
    template = (
        "registry/_units.html" if request.headers.get("HX-Request") else ("registry/building.html")
    )
    return render(request, template, {"building": building, "units": units, "lead": lead})


# After an edit the page says what happened: saved (a worker) or proposed (a lead).
Done = Annotated[Literal["saved", "proposed"] | None, Query()]


@router.get("/households/{household_id}", response_class=HTMLResponse)
def household_page(
    household_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    done: Done = None,
) -> Response:
    household = service.get_household(session=session, actor=actor, household_id=household_id)
    context = {
        "household": household,
        "history": edits.history(session=session, household_id=household.id),
        "proposals": proposals.list_proposals(
            session=session, actor=actor, household_id=household.id
        ),
        "done": done,
    }
    return render(request, "registry/household.html", context)


@router.get("/people/{person_id}", response_class=HTMLResponse)
def person_page(
    person_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    done: Done = None,
) -> Response:
    view = service.get_person(session=session, actor=actor, person_id=person_id)
    return render(request, "registry/person.html", _person_context(session, actor, view, done=done))


def _person_context(
    session: Session, actor: Actor, view: service.PersonView, **extra: object
) -> dict[str, object]:
    return {
        "view": view,
        "person": view.person,
        "reasons": id_numbers.SUGGESTED_REASONS,
        "revealed": None,
        "reveal_error": None,
        "reason": "",
        "history": edits.history(session=session, person_id=view.person.id),
        "proposals": proposals.list_proposals(
            session=session, actor=actor, person_id=view.person.id
        ),
        "done": None,
        **extra,
    }


@router.post("/people/{person_id}/id-number", response_class=HTMLResponse)
def reveal_id_number(
    person_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    reason: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Show the whole ID number once, for the reason given (audited)."""
    partial = request.headers.get("HX-Request") == "true"
    try:
        number = id_numbers.reveal(session=session, actor=actor, person_id=person_id, reason=reason)
    except Refusal as refusal:
        if not partial:
            raise
        # The refusal replaces the form in place, so the user can correct the reason.
        view = service.get_person(session=session, actor=actor, person_id=person_id)
        context = _person_context(session, actor, view, reveal_error=refusal.message, reason=reason)
        return render(request, "registry/_id_number.html", context)
    view = service.get_person(session=session, actor=actor, person_id=person_id)
    context = _person_context(session, actor, view, revealed=number, reason=reason)
    template = "registry/_id_number.html" if partial else "registry/person.html"
    return render(request, template, context)


@dataclass(frozen=True)
class SearchRequest:
    """What the search page and the search API take from the address."""

    q: str
    filters: search.Filters
    page: int


def search_request(
    q: Annotated[str, Query(max_length=64)] = "",
    building: OptionalRowId = None,
    health: Annotated[HealthStatus | None, Query()] = None,
    residence: Annotated[ResidenceStatus | None, Query()] = None,
    care: Annotated[CareTag | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> SearchRequest:
    return SearchRequest(q, search.Filters(building, health, residence, care), page)


SearchWanted = Annotated[SearchRequest, Depends(search_request)]


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    wanted: SearchWanted,
) -> Response:
    result = search.search(
        session=session, actor=actor, query=wanted.q, filters=wanted.filters, page=wanted.page
    )
    context = {
        "q": wanted.q,
        "result": result,
        "buildings": search.buildings_in_scope(session=session, actor=actor),
        "healths": list(HealthStatus),
        "residences": list(ResidenceStatus),
        "cares": list(CareTag),
    }
    partial = request.headers.get("HX-Request") == "true"
    template = "registry/_search_results.html" if partial else "registry/search.html"
    return render(request, template, context)


@router.get("/todo", response_class=HTMLResponse)
def lead_todo_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """A building lead's first page: what to do in the building, most urgent first."""
    todo = homes.lead_todo(session=session, actor=actor)
    label = scope.scope_label(session=session, scope=actor.scope)
    return render(request, "registry/todo.html", {"todo": todo, "scope_label": label})


@router.get("/overview", response_class=HTMLResponse)
def overview_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """A community worker's first page: the community by health and care, today's changes,
    what waits for them."""
    data = homes.overview(session=session, actor=actor)
    label = scope.scope_label(session=session, scope=actor.scope)
    return render(
        request,
        "registry/overview.html",
        {"o": data, "total": data.coverage, "scope_label": label},
    )


@router.get("/rooms", response_class=HTMLResponse)
def room_check_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    q: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The guard's room check (查房): who lives in a flat, without phones or ID numbers."""
    cards = search.room_check(session=session, actor=actor, query=q)
    partial = request.headers.get("HX-Request") == "true"
    template = "registry/_rooms.html" if partial else "registry/rooms.html"
    return render(request, template, {"q": q, "cards": cards})


# --- import wizard ---------------------------------------------------------------------


@router.get("/import", response_class=HTMLResponse)
def import_form(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    require(actor, Permission.registry_write)
    return render(
        request,
        "registry/import.html",
        {
            "communities": scope.communities_in_scope(session=session, scope=actor.scope),
            "limit_mb": get_settings().imports.max_bytes // 1048576,
        },
    )


@router.get("/import/template.xlsx")
def import_template(actor: CurrentActor) -> Response:
    require(actor, Permission.registry_read)
    return _download(exports.resident_template_xlsx(), "居民信息导入模板.xlsx")


@router.get("/import/vehicle-template.xlsx")
def import_vehicle_template(actor: CurrentActor) -> Response:
    require(actor, Permission.registry_read)
    return _download(exports.vehicle_template_xlsx(), "车辆信息导入模板.xlsx")


def _run(
    session: Session, actor: Actor, upload: ImportUpload, content: bytes, dry_run: bool
) -> imports.ImportReport:
    options = upload.options or {}
    return imports.import_sheet(
        "vehicles" if upload.kind == "vehicles" else "residents",
        session=session,
        actor=actor,
        community_id=upload.community_id,
        content=content,
        filename=upload.filename,
        dry_run=dry_run,
        create_missing=bool(options.get("create_missing")),
        skip_invalid=bool(options.get("skip_invalid")),
    )


def _expired(request: Request, imported: bool = False) -> Response:
    """The page for a token whose sheet is gone: purged, expired, or never the user's; or,
    after the import, whose error file is."""
    return render(
        request,
        "registry/import_expired.html",
        {"keep_minutes": get_settings().imports.upload_keep_minutes, "imported": imported},
        status_code=410,
    )


def _report_page(
    request: Request,
    report: imports.ImportReport,
    upload: ImportUpload | None,
    filename: str,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "registry/import_report.html",
        {
            "report": report,
            "upload": upload,
            "filename": filename,
            "field_label": field_label,
            "shown": SHOWN_ROWS,
        },
        status_code=status_code,
    )


# Rows the check page lists in each group; the error file has them all.
SHOWN_ROWS = 500


def import_summary(report: imports.ImportReport) -> str:
    """What an import does, as its confirm button and done page say it: “新增 2 人，更新 1
    人，30 人无变化” (parts that are zero are left out)."""
    if report.kind == "vehicles":
        words = (_("新增 {n} 辆"), _("更新 {n} 辆"), _("{n} 辆无变化"))
    else:
        words = (_("新增 {n} 人"), _("更新 {n} 人"), _("{n} 人无变化"))
    counts = (report.new, report.changed, report.unchanged)
    return _("，").join(w.format(n=n) for w, n in zip(words, counts, strict=True) if n)


templates.env.globals["import_summary"] = import_summary


# Plain ``def`` routes: FastAPI runs them in its thread pool, so that parsing a sheet and
# the database work never hold up the event loop (and /healthz with it).
@router.post("/import", response_class=HTMLResponse)
def import_upload(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    file: Annotated[UploadFile, File()],
    kind: Annotated[str, Form(pattern="^(residents|vehicles)$")] = "residents",
    community_id: Annotated[int | None, Form(ge=1, le=MAX_ROW_ID)] = None,
    create_missing: Annotated[bool, Form()] = False,
) -> Response:
    """Step 1: keep the file and show the dry run; nothing is imported yet."""
    require(actor, Permission.registry_write)
    community = pick_community(session, actor, community_id)
    limit = get_settings().imports.max_bytes
    content = file.file.read(limit + 1)  # one byte over the limit is enough to refuse
    filename = file.filename or "upload"
    report = imports.import_sheet(
        "vehicles" if kind == "vehicles" else "residents",
        session=session,
        actor=actor,
        community_id=community.id,
        content=content,
        filename=filename,
        dry_run=True,
        create_missing=create_missing,
    )
    upload = None
    # Kept only when there is something to confirm or rows to fix: a sheet that changes
    # nothing is not stored at all.
    if report.rows and len(content) <= limit and (report.would_change or report.problem_rows):
        begin_write(session)
        uploads.purge_expired_uploads(session=session)
        upload = uploads.store_upload(
            session=session,
            actor=actor,
            community_id=community.id,
            kind=kind,
            filename=filename,
            content=content,
            options={"create_missing": create_missing},
        )
        session.flush()
    return _report_page(request, report, upload, filename)


@router.post("/import/{token}/confirm", response_class=HTMLResponse)
def import_confirm(
    token: str,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    skip_invalid: Annotated[bool, Form()] = False,
) -> Response:
    """Step 2: the user confirmed; write in one transaction."""
    require(actor, Permission.registry_write)
    begin_write(session)
    try:
        upload = uploads.find_upload(session=session, actor=actor, token=token)
        if upload.imported_at is not None:
            # A second click (or a replayed form) must not import twice.
            return render(
                request,
                "registry/import_done.html",
                {
                    "report": None,
                    "upload": upload,
                    "errors_kept": uploads.has_error_file(upload),
                    "keep_minutes": get_settings().imports.upload_keep_minutes,
                },
            )
        content = uploads.upload_content(upload)
    except uploads.UploadExpired:
        return _expired(request)
    upload.options = {**(upload.options or {}), "skip_invalid": skip_invalid}
    report = _run(session, actor, upload, content, dry_run=False)
    if report.written:
        # The skipped rows are what is left to do: their error file outlives the sheet.
        error_file = exports.error_report_xlsx(report) if report.errors else None
        uploads.mark_upload_imported(upload, error_file)
        return render(
            request,
            "registry/import_done.html",
            {
                "report": report,
                "upload": upload,
                "errors_kept": error_file is not None,
                "keep_minutes": get_settings().imports.upload_keep_minutes,
            },
        )
    return _report_page(request, report, upload, upload.filename, status_code=422)


@router.get("/import/{token}/errors.xlsx")
def import_errors(
    token: str, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    """The rows with problems as the sheet holds them, with a column of their problems:
    before the import from a new check, after it the rows the import skipped."""
    require(actor, Permission.registry_write)
    try:
        upload = uploads.find_upload(session=session, actor=actor, token=token)
        uploads.audit_error_file(session=session, actor=actor, upload=upload)
        name = f"{_('需修改的行')}-{PurePath(upload.filename).stem}.xlsx"
        if upload.imported_at is not None:
            try:
                return _download(uploads.kept_error_file(upload), name)
            except uploads.UploadExpired:
                return _expired(request, imported=True)
        content = uploads.upload_content(upload)
    except uploads.UploadExpired:
        return _expired(request)
    report = _run(session, actor, upload, content, dry_run=True)
    return _download(exports.error_report_xlsx(report), name)


# --- completeness ----------------------------------------------------------------------


@router.get("/completeness", response_class=HTMLResponse)
def completeness_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    community: OptionalRowId = None,
    building: OptionalRowId = None,
    gap: Annotated[Gap | None, Query()] = None,
) -> Response:
    chosen = pick_community(session, actor, community)
    drill = building is not None or gap is not None
    result = service.completeness_report(
        session=session, actor=actor, community_id=chosen.id, items=drill, building_id=building
    )
    items = [i for i in result.report.items if gap is None or i.gap == gap]
    return render(
        request,
        "registry/completeness.html",
        {
            "community": chosen,
            "result": result,
            "gaps": list(Gap),
            "Figures": Figures,
            "gap_labels": service.GAP_LABELS,
            "items": items[:500],
            "items_total": len(items),
            "building": building,
            "gap": gap,
        },
    )


@router.get("/completeness.xlsx")
def completeness_export(
    session: DbSession, actor: CurrentActor, community: OptionalRowId = None
) -> Response:
    chosen = pick_community(session, actor, community)
    result = service.completeness_report(
        session=session, actor=actor, community_id=chosen.id, items=True
    )
    return _download(exports.completeness_xlsx(result), f"应录尽录-{chosen.name}.xlsx")


@router.get("/", include_in_schema=False)
def registry_slash() -> RedirectResponse:
    return RedirectResponse("/registry", status_code=303)
