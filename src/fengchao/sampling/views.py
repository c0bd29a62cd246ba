"""Pages of the sampling site: rounds and sites (community workers), the sampler's
registration page, coverage and the unsampled list, lab results and the retest list."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from fengchao.auth.service import Actor, NotFound, Permission, Refusal, require
from fengchao.registry.id_numbers import today
from fengchao.sampling import coverage as cover
from fengchao.sampling import results, service
from fengchao.sampling.models import ExemptionKind, LabResult, RoundScope
from fengchao.settings import get_settings
from fengchao.tabular import Sheet, xlsx_bytes
from fengchao.web.deps import CurrentActor, DbSession, OptionalRowId, RowId, render, require_csrf
from fengchao.web.forms import Form as Submitted
from fengchao.web.forms import attempt, integer, text
from fengchao.web.i18n import _

router = APIRouter(
    prefix="/sampling", dependencies=[Depends(require_csrf)], include_in_schema=False
)

E = TypeVar("E", bound=StrEnum)

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


SITE_DEFAULTS = {
    "community_id": "",
    "name": "",
    "opens": "07:30",
    "closes": "13:30",
    "stations": "4",
    "per_station_hour": "100",
}
ROUND_DEFAULTS = {
    "site_id": "",
    "name": "",
    "day": "",
    "scope": RoundScope.community.value,
    "scope_ids": "",
    "tube_capacity": "10",
    "household_tubes": "",
    "turnout": "90",
}
EXEMPTION_DEFAULTS = {"person_id": "", "kind": "", "note": ""}


def _values(form: FormData, defaults: dict[str, str]) -> dict[str, str]:
    """What was typed, to be shown again (cut short: the services check the lengths); a
    field not sent at all has its default, as it had before."""
    return {
        name: text(form, name)[:2000] if name in form else default
        for name, default in defaults.items()
    }


def _form(name: str, values: dict[str, str], problem: Refusal | None = None) -> dict[str, object]:
    """One form of a page: what it shows in its fields and, when refused, the problem (the
    template puts the message at ``problem.field`` and the cursor in it)."""
    return {"id": name, "typed": values, "problem": problem}


def _row_id(form: FormData, name: str) -> int:
    """An id chosen or typed in a form; wrong or missing is said at its field."""
    try:
        value = integer(form, name)
    except Refusal as wrong:
        raise service.SamplingRefused(wrong.message, field=name) from None
    if value is None:
        raise service.SamplingRefused(_("必填"), field=name)
    return value


def _count(form: FormData, name: str, default: str) -> int:
    """A whole number of a form (the services check its range and say it at the field);
    one not sent at all is its default."""
    raw = text(form, name).strip() if name in form else default
    if not raw:
        raise service.SamplingRefused(_("必填"), field=name)
    try:
        return int(raw)
    except ValueError:
        raise service.SamplingRefused(_("应为整数"), field=name) from None


def _day(raw: str) -> dt.date:
    raw = raw.strip()
    if not raw:
        raise service.SamplingRefused(_("必填"), field="day")
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:  # 2026-02-30 as well as 30/11
        raise service.SamplingRefused(_("应为日期（如 2026-01-31）"), field="day") from None
    if not 2000 <= day.year <= 2999:
        raise service.SamplingRefused(_("日期不在合理范围内，请检查年份"), field="day")
    return day


def _choice(kind: type[E], values: dict[str, str], name: str) -> E:
    try:
        return kind(values[name])
    except ValueError:
        raise service.SamplingRefused(_("取值不在允许范围内"), field=name) from None


def _home(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    site_form: dict[str, object] | None = None,
    round_form: dict[str, object] | None = None,
) -> Response:
    """Rounds (newest first) and sites; forms to add them for those who manage sampling,
    shown again with what was typed and the problem when one was refused."""
    refused = site_form is not None or round_form is not None
    return render(
        request,
        "sampling/home.html",
        {
            "rounds": service.rounds(session, actor),
            "sites": service.sites(session, actor),
            "communities": service.community_ids(session, actor),
            "manage": actor.can(Permission.sampling_manage),
            "site_form": site_form or _form("site", dict(SITE_DEFAULTS)),
            "round_form": round_form
            or _form("round", {**ROUND_DEFAULTS, "day": today().isoformat()}),
        },
        status_code=422 if refused else 200,
    )


@router.get("", response_class=HTMLResponse)
def home(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    _require_any_sampling(actor)
    return _home(request, session, actor)


@router.post("/sites")
def create_site(
    request: Request, session: DbSession, actor: CurrentActor, form: Submitted
) -> Response:
    require(actor, Permission.sampling_manage)
    values = _values(form, SITE_DEFAULTS)
    try:
        with attempt(session):
            service.create_site(
                session=session,
                actor=actor,
                community_id=_row_id(form, "community_id"),
                name=values["name"],
                opens=values["opens"],
                closes=values["closes"],
                stations=_count(form, "stations", SITE_DEFAULTS["stations"]),
                per_station_hour=_count(
                    form, "per_station_hour", SITE_DEFAULTS["per_station_hour"]
                ),
            )
    except Refusal as refused:  # nothing written: the form again, as typed
        return _home(request, session, actor, site_form=_form("site", values, refused))
    return RedirectResponse("/sampling", status_code=303)


def _ids(raw: str) -> list[int]:
    ids = []
    for part in raw.replace("，", ",").replace(" ", ",").split(","):
        if part.strip():
            try:
                number = int(part)
            except ValueError:
                number = -1
            if not 0 < number < 2**31:
                raise service.SamplingRefused(_("编号应为数字，用逗号分开"), field="scope_ids")
            ids.append(number)
    return ids


@router.post("/rounds")
def create_round(
    request: Request, session: DbSession, actor: CurrentActor, form: Submitted
) -> Response:
    require(actor, Permission.sampling_manage)
    values = _values(form, ROUND_DEFAULTS)
    try:
        with attempt(session):
            made = service.create_round(
                session=session,
                actor=actor,
                site_id=_row_id(form, "site_id"),
                name=values["name"],
                day=_day(values["day"]),
                scope=_choice(RoundScope, values, "scope"),
                scope_ids=_ids(values["scope_ids"]),
                tube_capacity=_count(form, "tube_capacity", ROUND_DEFAULTS["tube_capacity"]),
                household_tubes=values["household_tubes"].lower() in {"true", "on", "1", "yes"},
                turnout=_count(form, "turnout", ROUND_DEFAULTS["turnout"]),
            )
    except Refusal as refused:  # nothing written: the form again, as typed
        return _home(request, session, actor, round_form=_form("round", values, refused))
    return RedirectResponse(f"/sampling/rounds/{made.id}", status_code=303)


@router.get("/rounds/{round_id}", response_class=HTMLResponse)
def round_page(
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor
) -> Response:
    return _round(request, session, actor, round_id)


def _round(
    request: Request,
    session: Session,
    actor: Actor,
    round_id: int,
    exemption_form: dict[str, object] | None = None,
) -> Response:
    """The round page; with ``exemption_form``, its exemption form as typed and refused."""
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
            "exemption_form": exemption_form or _form("exemption", dict(EXEMPTION_DEFAULTS)),
        },
        status_code=422 if exemption_form is not None else 200,
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
    request: Request, round_id: RowId, session: DbSession, actor: CurrentActor, form: Submitted
) -> Response:
    require(actor, Permission.sampling_manage)
    values = _values(form, EXEMPTION_DEFAULTS)
    try:
        with attempt(session):
            service.add_exemption(
                session=session,
                actor=actor,
                round_id=round_id,
                person_id=_row_id(form, "person_id"),
                kind=_choice(ExemptionKind, values, "kind"),
                note=values["note"],
            )
    except Refusal as refused:
        # Nothing written: the round page, its exemption form as typed (also when it came
        # from the unsampled list, whose row has no field to type into).
        exemption_form = _form("exemption", values, refused)
        return _round(request, session, actor, round_id, exemption_form)
    if text(form, "back") == "coverage":  # from the unsampled list: back to it, one name shorter
        building = text(form, "building")
        where = f"?building={int(building)}" if building.isdigit() and len(building) < 10 else ""
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
