"""Passages from other slices into contact tracing (流调): a positive result confirmed
elsewhere opens the case here, through this slice's service."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from fengchao.auth.service import Actor, Permission
from fengchao.tracing import service
from fengchao.tracing.models import CaseSource, TracingCase


def case_from_result(
    *,
    session: Session,
    actor: Actor,
    person_id: int,
    confirmed_at: dt.datetime | None,
    sampled_at: dt.datetime | None,
    note: str,
) -> TracingCase | None:
    """A resident's positive individual result from the lab (单采阳性, recorded at the
    sampling site) opens their case, or adds the result to the case already open. Nothing
    when the one recording it may not trace (the case then waits for a worker who may)."""
    if not actor.can(Permission.tracing_manage):
        return None
    confirmed = confirmed_at or dt.datetime.now(dt.UTC)
    if sampled_at is not None and sampled_at > confirmed:
        sampled_at = None
    return service.open_case(
        session=session,
        actor=actor,
        person_id=person_id,
        confirmed_at=confirmed,
        sampled_at=sampled_at,
        source=CaseSource.lab_import,
        note=note,
    )
