"""The residents' page (no account needed): ask for help, report a problem, and follow a
request through its private status link. Open to anyone, so: CSRF on every form (the
anonymous double-submit cookie), a size limit on the body (``app.body_limit``), and a
count per client address and phone (``throttle``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from fengchao.auth.service import NotFound, Refusal
from fengchao.auth.views import client_address
from fengchao.db import utcnow
from fengchao.gridwork import help as help_service
from fengchao.gridwork import photos, reports, throttle
from fengchao.gridwork.models import HelpCategory, HelpUrgency, ReportCategory
from fengchao.gridwork.scoping import find_household
from fengchao.gridwork.throttle import TooMany
from fengchao.registry.models import Building, Community, Compound
from fengchao.registry.validation import FieldError, parse_mobile
from fengchao.web.deps import DbSession, RowId, render, require_csrf
from fengchao.web.forms import Form, attempt, integer, text
from fengchao.web.i18n import _

router = APIRouter(prefix="/help", dependencies=[Depends(require_csrf)], include_in_schema=False)

# Links that carry a token must not leak through the Referer header or a shared cache.
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _community(session: Session, community_id: int) -> Community:
    community = session.get(Community, community_id)
    if community is None:
        raise NotFound(f"community {community_id}")
    return community


def _page(
    request: Request,
    session: Session,
    community: Community,
    *,
    values: dict[str, str] | None = None,
    problem: Refusal | None = None,
    form: str = "help",
) -> Response:
    compounds = list(
        session.scalars(
            select(Compound).where(Compound.community_id == community.id).order_by(Compound.id)
        )
    )
    response = render(
        request,
        "gridwork/resident.html",
        {
            "community": community,
            "compounds": compounds,
            "values": values or {"urgency": "normal"},
            "problem": problem,
            "form": form,
            "categories": list(HelpCategory),
            "urgencies": list(HelpUrgency),
            "report_categories": list(ReportCategory),
            "photo_mb": photos.PHOTO_MAX_BYTES // 1048576,
        },
        status_code=problem.status if problem else 200,
    )
    response.headers.update(PRIVATE)
    return response


@router.get("", response_class=HTMLResponse)
def pick(request: Request, session: DbSession) -> Response:
    communities = list(session.scalars(select(Community).order_by(Community.id).limit(50)))
    if len(communities) == 1:
        return RedirectResponse(f"/help/{communities[0].id}", status_code=303)
    return render(request, "gridwork/resident_pick.html", {"communities": communities})


@router.get("/{community_id}", response_class=HTMLResponse)
def resident_page(request: Request, session: DbSession, community_id: RowId) -> Response:
    """Ask for help, or report a problem, from a phone."""
    return _page(request, session, _community(session, community_id))


def _client(request: Request) -> str | None:
    return client_address(request)  # the same address login throttling counts by


@router.post("/{community_id}/request")
def submit_request(
    request: Request, session: DbSession, community_id: RowId, form: Form
) -> Response:
    community = _community(session, community_id)
    values = {
        k: text(form, k)
        for k in ("compound", "address", "category", "urgency", "details", "name", "phone")
    }
    try:
        phone = values["phone"]
        try:
            phone_key = parse_mobile(phone) if phone.strip() else None
        except FieldError:
            phone_key = None
        throttle.count(session=session, host=_client(request), phone=phone_key, now=utcnow())
        compound = integer(form, "compound") or 0
        if (
            session.scalar(
                select(Compound.id).where(
                    Compound.id == compound, Compound.community_id == community.id
                )
            )
            is None
        ):
            raise help_service.HelpRefused(_("请选择小区"), field="compound")
        household = find_household(session, compound_id=compound, address=values["address"])
        if household is None:
            raise help_service.HelpRefused(
                _("找不到这一户：请按“楼-单元-室”填写，例如 5-2-1302"), field="address"
            )
        with attempt(session):
            made = help_service.submit(
                session=session, actor=None, household_id=household.id,
                category=values["category"], urgency=values["urgency"],
                details=values["details"], contact_name=values["name"], phone=phone,
            )  # fmt: skip
    except TooMany:
        raise
    except Refusal as exc:
        return _page(request, session, community, values=values, problem=exc)
    return RedirectResponse(f"/help/status/{made.token}", status_code=303, headers=PRIVATE)


async def _photo_of(form: FormData) -> bytes | None:
    upload = form.get("photo")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(photos.PHOTO_MAX_BYTES + 1)
    return data or None


async def _report_form(request: Request) -> tuple[FormData, bytes | None]:
    form = await request.form(max_files=1, max_fields=20)
    return form, await _photo_of(form)


@router.post("/{community_id}/report")
def submit_report(
    request: Request,
    session: DbSession,
    community_id: RowId,
    submitted: tuple[FormData, bytes | None] = Depends(_report_form),
) -> Response:
    community = _community(session, community_id)
    form, photo = submitted
    values = {k: text(form, k) for k in ("compound", "building", "category", "place", "details")}
    try:
        throttle.count(session=session, host=_client(request), phone=None, now=utcnow())
        compound = integer(form, "compound") or 0
        building_id = None
        name = values["building"].strip().removesuffix("号楼").removesuffix("栋")
        if name:
            building_id = session.scalar(
                select(Building.id).where(
                    Building.compound_id == compound, Building.name == name[:32]
                )
            )
            if building_id is None:
                raise reports.ReportRefused(_("这个小区没有这栋楼"), field="building")
        with attempt(session):
            made = reports.submit(
                session=session, community_id=community.id, compound_id=compound,
                building_id=building_id, category=values["category"], place=values["place"],
                details=values["details"], photo=photo,
            )  # fmt: skip
    except TooMany:
        raise
    except Refusal as exc:
        return _page(request, session, community, values=values, problem=exc, form="report")
    return RedirectResponse(f"/help/report/{made.token}", status_code=303, headers=PRIVATE)


@router.get("/status/{token}", response_class=HTMLResponse)
def status_page(request: Request, session: DbSession, token: str) -> Response:
    """A request's state for whoever holds the link: no account, no personal data."""
    data = help_service.public_status(session=session, token=token)
    response = render(request, "gridwork/status.html", {"s": data, "token": token})
    response.headers.update(PRIVATE)
    return response


@router.get("/report/{token}", response_class=HTMLResponse)
def report_status_page(request: Request, session: DbSession, token: str) -> Response:
    data = reports.public_status(session=session, token=token)
    response = render(request, "gridwork/report_status.html", {"s": data})
    response.headers.update(PRIVATE)
    return response
