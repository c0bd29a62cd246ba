"""Pages of the access slice: a household's printable resident-code cards."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fengchao.access import codes
from fengchao.auth.service import NotFound, Permission, audit, require
from fengchao.registry import service as registry
from fengchao.registry.models import ResidenceStatus
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf

router = APIRouter(dependencies=[Depends(require_csrf)], include_in_schema=False)


@router.get("/registry/households/{household_id}/codes", response_class=HTMLResponse)
def household_codes(
    household_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    rotated: Annotated[Literal["1"] | None, Query()] = None,
) -> Response:
    """Every living member's code as a card to print or to send to their phone."""
    require(actor, Permission.codes_issue)
    household = registry.get_household(session=session, actor=actor, household_id=household_id)
    members = [p for p in household.people if p.residence_status != ResidenceStatus.moved_out]
    cards = []
    for person in members:
        text = codes.personal_code(session, person.id)
        cards.append({"person": person, "svg": codes.qr_svg(text)})
    audit(
        session=session,
        actor=actor,
        action="print",
        object_type="resident_code",
        object_id=household.id,
        community_id=household.community_id,
        people=len(cards),
    )
    context = {"household": household, "cards": cards, "rotated": rotated}
    return render(request, "access/household_codes.html", context)


@router.post("/registry/households/{household_id}/codes/rotate")
def rotate(
    household_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    person_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    """Void a lost or shared code: the person gets a new one at once."""
    household = registry.get_household(session=session, actor=actor, household_id=household_id)
    if person_id not in {p.id for p in household.people}:
        raise NotFound(f"person {person_id}")
    codes.rotate_code(session, actor, person_id)
    return RedirectResponse(f"/registry/households/{household_id}/codes?rotated=1", 303)
