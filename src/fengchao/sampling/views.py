"""Pages of the sampling site: rounds and sites (community workers), the sampler's
registration page, coverage and the unsampled list, lab results and the retest list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.auth.service import Actor, NotFound, Permission, require
from fengchao.registry.id_numbers import today
from fengchao.sampling import coverage as cover
from fengchao.sampling import results, service
from fengchao.sampling.models import ExemptionKind, LabResult, RoundScope
from fengchao.settings import get_settings
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.web.deps import CurrentActor, DbSession, OptionalRowId, RowId, render, require_csrf
from fengchao.web.i18n import _

router = APIRouter(
    prefix="/sampling", dependencies=[Depends(require_csrf)], include_in_schema=False
)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def exemption_labels() -> dict[str, str]:
    return {
        ExemptionKind.home_visit.value: _("上门采样（卧床、行动不便）"),
        ExemptionKind.infant.value: _("婴幼儿"),
        ExemptionKind.away.value: _("不在社区"),
        ExemptionKind.other.value: _("其他"),
    }


def _attachment(content: bytes, name: str) -> Response:
    return Response(
        content,
        media_type=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _require_any_sampling(actor: Actor) -> None:
    """Rounds, sites and slot tables are for those who work the sampling site in any way
    (manage it, swab at it, or chase the unsampled); a gate guard is refused."""
    if not (
        actor.can(Permission.sampling_register)
        or actor.can(Permission.sampling_manage)
        or actor.can(Permission.sampling_coverage)
    ):
        require(actor, Permission.sampling_register)


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: DbSession, actor: CurrentActor) -> HTMLResponse:
    """Rounds (newest first) and sites; forms to add them for those who manage sampling."""
    _require_any_sampling(actor)
    return render(
        request,
        "sampling/home.html",
        {
            "rounds": service.rounds(session, actor),
            "sites": service.sites(session, actor),
            "communities": service.community_ids(session, actor),
            "today": today(),
            "manage": actor.can(Permission.sampling_manage),
        },
    )


@router.post("/sites")
def create_site(
    session: DbSession,
    actor: CurrentActor,
    community_id: Annotated[int, Form()],
    name: Annotated[str, Form(max_length=64)],
    opens: Annotated[str, Form(max_length=5)] = "07:30",
    closes: Annotated[str, Form(max_length=5)] = "13:30",
    stations: Annotated[int, Form(ge=1, le=50)] = 4,
    per_station_hour: Annotated[int, Form(ge=1, le=1000)] = 100,
) -> RedirectResponse:
    service.create_site(
        session=session,
        actor=actor,
        community_id=community_id,
        name=name,
        opens=opens,
        closes=closes,
        stations=stations,
        per_station_hour=per_station_hour,
    )
    return RedirectResponse("/sampling", status_code=303)


def _ids(text: str) -> list[int]:
    ids = []
    for part in text.replace("，", ",").replace(" ", ",").split(","):
        if part.strip():
            try:
                ids.append(int(part))
            except ValueError:
                raise service.SamplingRefused(
                    _("编号应为数字，用逗号分开"), field="scope_ids"
                ) from None
    return ids


@router.post("/rounds")
def create_round(
    session: DbSession,
    actor: CurrentActor,
    site_id: Annotated[int, Form(ge=1)],
    name: Annotated[str, Form(max_length=64)],
    day: Annotated[dt.date, Form()],
    scope: Annotated[RoundScope, Form()] = RoundScope.community,
    scope_ids: Annotated[str, Form(max_length=2000)] = "",
    tube_capacity: Annotated[int, Form()] = 10,
    household_tubes: Annotated[bool, Form()] = False,
    turnout: Annotated[int, Form(ge=1, le=100)] = 90,
) -> RedirectResponse:
    made = service.create_round(
        session=session,
        actor=actor,
        site_id=site_id,
        name=name,
        day=day,
        scope=scope,
        scope_ids=_ids(scope_ids),
        tube_capacity=tube_capacity,
        household_tubes=household_tubes,
        turnout=turnout,
    )
    return RedirectResponse(f"/sampling/rounds/{made.id}", status_code=303)


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_page(
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    _require_any_sampling(actor)
    found = service.get_round(session, actor, round_id)
    return render(
        request,
        "sampling/round.html",
        {
            "round": found,
            "site": service.get_site(session, actor, found.site_id),
            "schedule": service.schedule_rows(session, found),
            "unplaced": (found.slot_plan or {}).get("unplaced", []),
            "slots": (found.slot_plan or {}).get("slots", []),
            "manage": actor.can(Permission.sampling_manage),
            "exemption_labels": exemption_labels(),
            "exemptions": service.exemptions(session=session, actor=actor, round_id=round_id)
            if actor.can(Permission.sampling_coverage)
            else [],
        },
    )


@router.post("/rounds/{round_id}/plan")
def plan(round_id: RowId, session: DbSession, actor: CurrentActor) -> RedirectResponse:
    service.plan_round(session=session, actor=actor, round_id=round_id)
    return RedirectResponse(f"/sampling/rounds/{round_id}#schedule", status_code=303)


@router.post("/rounds/{round_id}/announce")
def announce(round_id: RowId, session: DbSession, actor: CurrentActor) -> RedirectResponse:
    service.announce_schedule(session=session, actor=actor, round_id=round_id)
    return RedirectResponse(f"/sampling/rounds/{round_id}?announced=1#schedule", status_code=303)


@router.post("/rounds/{round_id}/close")
def close_round(
    round_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    closed: Annotated[bool, Form()] = True,
) -> RedirectResponse:
    service.set_round_closed(session=session, actor=actor, round_id=round_id, closed=closed)
    return RedirectResponse(f"/sampling/rounds/{round_id}", status_code=303)


@router.post("/rounds/{round_id}/exemptions")
def exempt(
    round_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    person_id: Annotated[int, Form(ge=1)],
    kind: Annotated[ExemptionKind, Form()],
    note: Annotated[str, Form(max_length=200)] = "",
    back: Annotated[str, Form(max_length=20)] = "",
    building: Annotated[str, Form(max_length=12)] = "",
) -> RedirectResponse:
    service.add_exemption(
        session=session, actor=actor, round_id=round_id, person_id=person_id, kind=kind, note=note
    )
    if back == "coverage":  # from the unsampled list: back to it, one name shorter
        where = f"?building={int(building)}" if building.isdigit() else ""
        return RedirectResponse(
            f"/sampling/rounds/{round_id}/coverage{where}#unsampled", status_code=303
        )
    return RedirectResponse(f"/sampling/rounds/{round_id}#exemptions", status_code=303)


@router.get("/rounds/{round_id}/schedule.xlsx")
def schedule_xlsx(round_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    """The slot table for the building leads."""
    _require_any_sampling(actor)
    found = service.get_round(session, actor, round_id)
    rows = service.schedule_rows(session, found)
    content = xlsx_bytes(
        [
            Sheet(
                _("分时段安排"),
                [_("开始"), _("结束"), _("楼栋"), _("单元"), _("预计人数")],
                [[r.start, r.end, r.building, r.units, r.expected] for r in rows],
                text_columns=("A", "B"),
            )
        ]
    )
    return _attachment(content, f"schedule-round-{round_id}.xlsx")


@router.get("/rounds/{round_id}/register", response_class=HTMLResponse)
def register_page(
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    """The sampler's page: scan a tube, then people; works with a keyboard-wedge scanner
    and the keyboard alone, and keeps what it could not send (see static/js/sampling.js)."""
    require(actor, Permission.sampling_register)
    found = service.get_round(session, actor, round_id)
    site = service.get_site(session, actor, found.site_id)
    return render(
        request,
        "sampling/register.html",
        {"round": found, "stations": range(1, site.stations + 1)},
    )


@router.get("/rounds/{round_id}/coverage", response_class=HTMLResponse)
def coverage_page(
    request: Request,
    round_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    building: OptionalRowId = None,
) -> HTMLResponse:
    report = cover.coverage(session=session, actor=actor, round_id=round_id)
    if building is not None and building not in {b.building_id for b in report.buildings}:
        # Another building than the lead's, or none of this round: not "everyone sampled".
        raise NotFound(f"building {building} in round {round_id}")
    people = (
        cover.unsampled(session=session, actor=actor, round_id=round_id, building_id=building)
        if building is not None or len(report.buildings) == 1
        else []
    )
    return render(
        request,
        "sampling/coverage.html",
        {
            "report": report,
            "round": report.round,
            "building": building,
            "people": people,
            "peak": max((n for _h, n, _t in report.per_hour), default=0),
            # The door-to-door list is where a bedridden or absent person is found out.
            "may_exempt": actor.can(Permission.sampling_manage),
            "exemption_labels": exemption_labels(),
        },
    )


@router.get("/rounds/{round_id}/coverage.xlsx")
def coverage_xlsx(round_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    content = cover.coverage_xlsx(session=session, actor=actor, round_id=round_id)
    return _attachment(content, f"coverage-round-{round_id}.xlsx")


@router.get("/rounds/{round_id}/results", response_class=HTMLResponse)
def results_page(
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    require(actor, Permission.sampling_manage)
    found = service.get_round(session, actor, round_id)
    return render(
        request,
        "sampling/results.html",
        {
            "round": found,
            "report": None,
            "limit_mb": get_settings().imports.max_bytes // 1048576,
        },
    )


@router.post("/rounds/{round_id}/results", response_class=HTMLResponse)
async def import_results(
    request: Request,
    round_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    file: Annotated[UploadFile, File()],
) -> HTMLResponse:
    require(actor, Permission.sampling_manage)
    content = await file.read(get_settings().imports.max_bytes + 1)
    report = results.import_results(
        session=session,
        actor=actor,
        round_id=round_id,
        content=content,
        filename=file.filename or "results.csv",
    )
    found = service.get_round(session, actor, round_id)
    return render(
        request,
        "sampling/results.html",
        {
            "round": found,
            "report": report,
            "limit_mb": get_settings().imports.max_bytes // 1048576,
        },
        status_code=422 if report.errors else 200,
    )


@router.get("/rounds/{round_id}/retests", response_class=HTMLResponse)
def retests_page(
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor
) -> HTMLResponse:
    found = service.get_round(session, actor, round_id)
    return render(
        request,
        "sampling/retests.html",
        {
            "round": found,
            "rows": results.retests(session=session, actor=actor, round_id=round_id),
            "manage": actor.can(Permission.sampling_manage),
        },
    )


@router.post("/retests/{retest_id}", response_model=None)
def resolve_retest(
    request: Request,
    retest_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    result: Annotated[LabResult, Form()],
    round_id: Annotated[int, Query(ge=1)],
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Record an individual retest. A positive one makes the person a confirmed case: it
    is recorded only by a second submit that says ``confirm=yes``; the first shows what
    it will do."""
    if result == LabResult.positive and confirm != "yes":
        require(actor, Permission.sampling_manage)
        rows = results.retests(session=session, actor=actor, round_id=round_id, retest_id=retest_id)
        if not rows:
            raise NotFound(f"retest {retest_id} in round {round_id}")
        return render(
            request,
            "sampling/retest_confirm.html",
            {"round": service.get_round(session, actor, round_id), "row": rows[0]},
        )
    results.resolve_retest(session=session, actor=actor, retest_id=retest_id, result=result)
    return RedirectResponse(f"/sampling/rounds/{round_id}/retests", status_code=303)
