"""The dashboard's figures as JSON (the same data as the page, for a wall screen or a
street office's own tools)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder

from fengchao.dashboard import service
from fengchao.dashboard.views import NodeText, parse_node_param
from fengchao.web.deps import CurrentActor, DbSession, require_csrf

router = APIRouter(
    prefix="/api/dashboard", tags=["dashboard"], dependencies=[Depends(require_csrf)]
)


@router.get("")
def figures(
    session: DbSession,
    actor: CurrentActor,
    node: NodeText = None,
    day: Annotated[dt.date | None, Query(description="a local day; today by default")] = None,
) -> dict[str, Any]:
    """Every section's figures for a node of the grid within the account's scope (its own
    node by default) and a local day, with the day before's gate traffic; a section the
    role does not cover is null. ``node`` is ``level:id`` (``building:12``)."""
    level, node_id = parse_node_param(node)
    board = service.dashboard(session=session, actor=actor, level=level, node_id=node_id, day=day)
    encoded: dict[str, Any] = jsonable_encoder(dataclasses.asdict(board))
    return encoded
