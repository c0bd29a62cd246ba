"""Pages that change the registry: edit a person, add one, move out, mark a flat vacant,
and the queue where community workers confirm building leads' proposals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fengchao.auth.service import Actor, Permission
from fengchao.registry import edits, proposals, service
from fengchao.registry.importer import FIELD_LABELS
from fengchao.registry.models import (
    LABELS,
    CareTag,
    Gender,
    HealthStatus,
    ProposalState,
    Relation,
    ResidenceStatus,
)
from fengchao.web.deps import CurrentActor, DbSession, RowId, render, require_csrf, templates

router = APIRouter(
    prefix="/registry", dependencies=[Depends(require_csrf)], include_in_schema=False
)

templates.env.filters["value_label"] = edits.value_label
templates.env.globals["action_labels"] = edits.ACTION_LABELS
templates.env.globals["state_labels"] = proposals.STATE_LABELS
templates.env.globals["field_labels"] = {**FIELD_LABELS, "vacant": "空置"}

CHOICES = {
    "gender": [("", "—"), *((g.value, LABELS[g]) for g in Gender)],
    "relation": [(r.value, LABELS[r]) for r in Relation],
    "residence_status": [(s.value, LABELS[s]) for s in ResidenceStatus],
    "health_status": [(s.value, LABELS[s]) for s in HealthStatus],
    "care_tags": [(c.value, LABELS[c]) for c in CareTag],
}

Text = Annotated[str, Form(max_length=400)]
Version = Annotated[int | None, Form(ge=1, le=2**31 - 1)]


def _done(url: str, outcome: edits.EditResult) -> RedirectResponse:
    return RedirectResponse(f"{url}?done={'saved' if outcome.applied else 'proposed'}", 303)


def person_form(
    name: Text = "",
    gender: Text = "",
    relation: Text = "",
    phone: Text = "",
    residence_status: Text = "",
    health_status: Text = "",
    care_tags: Annotated[list[str] | None, Form(max_length=10)] = None,
    note: Text = "",
    id_number: Text = "",
) -> dict[str, Any]:
    """The person form's fields as submitted (the services check them)."""
    return {
        "name": name,
        "gender": gender,
        "relation": relation,
        "phone": phone,
        "residence_status": residence_status,
        "health_status": health_status,
        "care_tags": care_tags or [],
        "note": note,
        "id_number": id_number,
    }


PersonForm = Annotated[dict[str, Any], Depends(person_form)]


def _form_page(
    request: Request,
    *,
    title: str,
    action: str,
    back: str,
    values: dict[str, Any],
    version: int | None,
    actor: Actor,
    id_mask: str | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "registry/person_form.html",
        {
            "title": title,
            "action": action,
            "back": back,
            "values": values,
            "version": version,
            "choices": CHOICES,
            "errors": errors or {},
            "problem": problem,
            "id_mask": id_mask,
            "may_enter_id": actor.can(Permission.registry_write),
            "proposes": not actor.can(Permission.registry_write),
        },
        status_code=status_code,
    )


@router.get("/people/{person_id}/edit", response_class=HTMLResponse)
def edit_person_form(
    person_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    view = service.get_person(session=session, actor=actor, person_id=person_id)
    p = view.person
    values: dict[str, Any] = {name: edits.stored(p, name) or "" for name in edits.PERSON_FIELDS}
    values.update(care_tags=list(p.care_tags), id_number="")
    return _form_page(
        request,
        title=p.name,
        action=f"/registry/people/{p.id}/edit",
        back=f"/registry/people/{p.id}",
        values=values,
        version=p.version,
        actor=actor,
        id_mask=p.id_mask,
    )


def _refused_form(
    request: Request,
    session: Session,
    actor: Actor,
    exc: edits.InvalidFields | edits.StaleRecord | edits.NothingChanged,
    **form: Any,
) -> Response:
    errors = exc.errors if isinstance(exc, edits.InvalidFields) else {}
    problem = None if errors else exc.message
    return _form_page(
        request, actor=actor, errors=errors, problem=problem, status_code=exc.status, **form
    )


@router.post("/people/{person_id}/edit", response_class=HTMLResponse)
def edit_person(
    person_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    values: PersonForm,
    version: Version = None,
) -> Response:
    try:
        outcome = edits.edit_person(
            session=session, actor=actor, person_id=person_id, version=version, submitted=values
        )
    except (edits.InvalidFields, edits.StaleRecord, edits.NothingChanged) as exc:
        # Refused before anything was assigned: the record is as it was.
        view = service.get_person(session=session, actor=actor, person_id=person_id)
        return _refused_form(
            request, session, actor, exc,
            title=view.person.name, action=f"/registry/people/{person_id}/edit",
            back=f"/registry/people/{person_id}", values=values,
            version=view.person.version if isinstance(exc, edits.StaleRecord) else version,
            id_mask=view.person.id_mask,
        )  # fmt: skip
    return _done(f"/registry/people/{person_id}", outcome)


@router.post("/people/{person_id}/move-out")
def move_out(
    person_id: RowId, session: DbSession, actor: CurrentActor, version: Version = None
) -> Response:
    outcome = edits.move_out(session=session, actor=actor, person_id=person_id, version=version)
    return _done(f"/registry/people/{person_id}", outcome)


@router.get("/households/{household_id}/people/new", response_class=HTMLResponse)
def new_person_form(
    household_id: RowId, request: Request, session: DbSession, actor: CurrentActor
) -> Response:
    household = service.get_household(session=session, actor=actor, household_id=household_id)
    values: dict[str, Any] = {name: "" for name in edits.PERSON_FIELDS}
    values.update(
        relation=Relation.family.value,
        residence_status=ResidenceStatus.living.value,
        health_status=HealthStatus.normal.value,
        care_tags=[],
    )
    return _form_page(
        request,
        title=f"{household.compound.name} {household.address}",
        action=f"/registry/households/{household.id}/people/new",
        back=f"/registry/households/{household.id}",
        values=values,
        version=None,
        actor=actor,
    )


@router.post("/households/{household_id}/people/new", response_class=HTMLResponse)
def add_person(
    household_id: RowId,
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    values: PersonForm,
) -> Response:
    try:
        outcome = edits.add_person(
            session=session, actor=actor, household_id=household_id, submitted=values
        )
    except (edits.InvalidFields, edits.NothingChanged) as exc:
        household = service.get_household(session=session, actor=actor, household_id=household_id)
        return _refused_form(
            request, session, actor, exc,
            title=f"{household.compound.name} {household.address}",
            action=f"/registry/households/{household_id}/people/new",
            back=f"/registry/households/{household_id}", values=values, version=None,
        )  # fmt: skip
    if outcome.applied and outcome.person_id:
        return _done(f"/registry/people/{outcome.person_id}", outcome)
    return _done(f"/registry/households/{household_id}", outcome)


@router.post("/households/{household_id}/vacant")
def set_vacant(
    household_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    vacant: Annotated[bool, Form()],
    version: Version = None,
) -> Response:
    outcome = edits.set_vacant(
        session=session, actor=actor, household_id=household_id, version=version, vacant=vacant
    )
    return _done(f"/registry/households/{household_id}", outcome)


# --- the queue -------------------------------------------------------------------------


@router.get("/proposals", response_class=HTMLResponse)
def proposals_page(
    request: Request,
    session: DbSession,
    actor: CurrentActor,
    state: Annotated[ProposalState | None, Query()] = None,
) -> Response:
    """Workers: what waits for a decision in their scope. Leads: their own proposals."""
    deciding = actor.can(Permission.registry_write)
    shown = state if state is not None else (ProposalState.pending if deciding else None)
    views = proposals.queue(session=session, actor=actor, state=shown, mine=not deciding)
    return render(
        request,
        "registry/proposals.html",
        {"proposals": views, "deciding": deciding, "state": shown, "states": list(ProposalState)},
    )


@router.post("/proposals/{proposal_id}/decision")
def decide(
    proposal_id: RowId,
    session: DbSession,
    actor: CurrentActor,
    approve: Annotated[bool, Form()],
    note: Annotated[str, Form(max_length=400)] = "",
    force: Annotated[bool, Form()] = False,
) -> Response:
    proposals.decide(
        session=session,
        actor=actor,
        proposal_id=proposal_id,
        approve=approve,
        note=note,
        force=force,
    )
    return RedirectResponse("/registry/proposals", status_code=303)


@router.post("/proposals/{proposal_id}/withdraw")
def withdraw(proposal_id: RowId, session: DbSession, actor: CurrentActor) -> Response:
    proposals.withdraw(session=session, actor=actor, proposal_id=proposal_id)
    return RedirectResponse("/registry/proposals", status_code=303)
