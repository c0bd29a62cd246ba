"""The dashboard pages: the community at a glance for one node of the grid (the community
worker's first page), its sections as an htmx partial polled every minute, and the street
office's communities side by side."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, require
from fengchao.dashboard import charts, service
from fengchao.dashboard import figures as f
from fengchao.web.deps import CurrentActor, DbSession, render, require_csrf

router = APIRouter(
    prefix="/dashboard", dependencies=[Depends(require_csrf)], include_in_schema=False
)

NodeText = Annotated[str | None, Query(max_length=40)]
REFRESH_SECONDS = 60


def parse_node_param(text: str | None) -> tuple[ScopeLevel | None, int | None]:
    if not text:
        return None, None
    parsed = service.parse_node(text)
    if parsed is None:
        raise NotFound(text)
    return parsed


def _records(day: dt.date, **more: str) -> str:
    """The access record filtered to a local day (and more)."""
    end = day + dt.timedelta(days=1)
    query = {"start": f"{day.isoformat()}T00:00", "end": f"{end.isoformat()}T00:00", **more}
    return "/access/records?" + urlencode(query)


def links(board: f.Dashboard) -> dict[str, str]:
    """The list behind each figure."""
    d = board.today
    day = d.day
    found = {
        "alert": "/access/alert",
        "registration": "/registry/completeness",
        "people": "/registry/search",
        "traffic": _records(day),
        "refused": _records(day, decision="deny"),
        "face": _records(day, method="face"),
        "plate": _records(day, method="plate"),
        "code": _records(day, method="code"),
        "visitor": "/visitors",
        "fever": "/notify/inbox",
        "sampling": "/sampling",
        "roster": "/duty/roster",
        "help": "/gridwork",
        "tracing": "/tracing",
    }
    if d.node.community_id is not None:
        found["roster"] = "/duty/roster?" + urlencode({"community": d.node.community_id})
    if d.node.level == ScopeLevel.building:
        found["people"] = f"/registry/buildings/{d.node.node_id}"
    if d.sampling is not None:
        found["sampling"] = f"/sampling/rounds/{d.sampling.round_id}/coverage"
    return found


def _chart_options(board: f.Dashboard, found: dict[str, str]) -> dict[str, Any]:
    d = board.today
    out: dict[str, Any] = {}
    if d.traffic is not None:
        now = dt.datetime.now(service.zone())
        upto = now.hour if d.day == now.date() else None
        out["traffic"] = charts.traffic(d.traffic, board.previous_traffic, upto)
        out["kinds"] = charts.kinds(d.traffic, board.previous_traffic, found)
    if d.sampling is not None:
        out["swabs"] = charts.swabs(d.sampling)
        out["heat"] = charts.coverage_heat(d.sampling)
    if d.help is not None:
        out["help"] = charts.help_ages(d.help)
    return out


def _context(session: Session, actor: Actor, board: f.Dashboard) -> dict[str, Any]:
    found = links(board)
    return {
        "board": board,
        "d": board.today,
        "before": board.previous_traffic,
        "links": found,
        "charts": _chart_options(board, found),
        "refresh": REFRESH_SECONDS,
        "change": f.change,
        "kind_labels": charts.kind_labels(),
        "is_today": board.today.day == service.today(),
    }


@router.get("", response_class=HTMLResponse)
def page(
    request: Request, session: DbSession, actor: CurrentActor, node: NodeText = None
) -> Response:
    """The dashboard of a node (the account's own by default); a street-level account
    without a node asked for gets its communities side by side."""
    require(actor, Permission.dashboard_read)
    level, node_id = parse_node_param(node)
    if level is None and actor.scope.level == ScopeLevel.street:
        return RedirectResponse("/dashboard/street", status_code=303)
    board = service.dashboard(session=session, actor=actor, level=level, node_id=node_id)
    board.choices = service.choices(session=session, actor=actor)
    return render(request, "dashboard/page.html", _context(session, actor, board))


@router.get("/sections", response_class=HTMLResponse)
def sections(
    request: Request, session: DbSession, actor: CurrentActor, node: NodeText = None
) -> Response:
    """The sections alone, for the page's polling."""
    level, node_id = parse_node_param(node)
    board = service.dashboard(session=session, actor=actor, level=level, node_id=node_id)
    return render(request, "dashboard/_sections.html", _context(session, actor, board))


def _street_context(session: Session, actor: Actor) -> dict[str, Any]:
    boards = service.street_view(session=session, actor=actor)
    return {
        "boards": boards,
        "chart": charts.street(boards),
        "refresh": REFRESH_SECONDS,
        "street_label": service.node_label(session=session, actor=actor),
    }


@router.get("/street", response_class=HTMLResponse)
def street_page(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    """A street office's communities side by side."""
    return render(request, "dashboard/street.html", _street_context(session, actor))


@router.get("/street/table", response_class=HTMLResponse)
def street_table(request: Request, session: DbSession, actor: CurrentActor) -> Response:
    return render(request, "dashboard/_street.html", _street_context(session, actor))
