"""Passages read back for contact tracing: a person's allowed passages over the (person,
time) index and who passed a gate around a moment over the (gate, time) index — each one
indexed range read, never a scan. Tracing reads the access record and never writes it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Float,
    Interval,
    Select,
    and_,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, aliased

from fengchao.access.models import AccessEvent

_PASSED = ("allow",)


@dataclass(frozen=True)
class PassageRow:
    event_id: int
    person_id: int
    gate_id: int
    direction: str
    at: dt.datetime


def _rows(result: object) -> list[PassageRow]:
    return [PassageRow(*row) for row in result]  # type: ignore[attr-defined]


_COLUMNS = (
    AccessEvent.id,
    AccessEvent.person_id,
    AccessEvent.gate_id,
    AccessEvent.direction,
    AccessEvent.occurred_at,
)


def passages_of(
    session: Session, *, person_id: int, start: dt.datetime, end: dt.datetime
) -> list[PassageRow]:
    """The person's passages (allowed decisions) between ``start`` and ``end``."""
    query = (
        select(*_COLUMNS)
        .where(
            AccessEvent.person_id == person_id,
            AccessEvent.occurred_at >= start,
            AccessEvent.occurred_at <= end,
            AccessEvent.decision.in_(_PASSED),
        )
        .order_by(AccessEvent.occurred_at)
    )
    return _rows(session.execute(query))


def passages_near(
    session: Session, *, gate_id: int, at: dt.datetime, minutes: int
) -> list[PassageRow]:
    """Everyone who passed ``gate_id`` within ``minutes`` of ``at`` (people only)."""
    reach = dt.timedelta(minutes=minutes)
    query = (
        select(*_COLUMNS)
        .where(
            AccessEvent.gate_id == gate_id,
            AccessEvent.occurred_at >= at - reach,
            AccessEvent.occurred_at <= at + reach,
            AccessEvent.decision.in_(_PASSED),
            AccessEvent.person_id.is_not(None),
        )
        .order_by(AccessEvent.occurred_at)
    )
    return _rows(session.execute(query))


def oldest_event_at(session: Session, *, community_id: int) -> dt.datetime | None:
    """When the community's access record now begins (older events have been purged)."""
    return session.scalar(
        select(AccessEvent.occurred_at)
        .where(AccessEvent.community_id == community_id)
        .order_by(AccessEvent.occurred_at)
        .limit(1)
    )


def passages_of_pass(
    session: Session,
    *,
    pass_id: int,
    gate_ids: list[int],
    start: dt.datetime,
    end: dt.datetime,
) -> list[PassageRow]:
    """The allowed passages of a visitor's pass (``person_id`` is then empty and the
    event's detail names the pass) at its gates between ``start`` and ``end``: one range
    read on (gate, time) per gate; the ``person_id`` of the rows is 0."""
    if not gate_ids:
        return []
    query = (
        select(*_COLUMNS[:1], AccessEvent.detail, *_COLUMNS[2:])
        .where(
            AccessEvent.gate_id.in_(gate_ids),
            AccessEvent.occurred_at >= start,
            AccessEvent.occurred_at <= end,
            AccessEvent.decision.in_(_PASSED),
            AccessEvent.person_id.is_(None),
        )
        .order_by(AccessEvent.occurred_at)
    )
    return [
        PassageRow(event_id, 0, gate_id, direction, at)
        for event_id, detail, gate_id, direction, at in session.execute(query)
        if isinstance(detail, dict) and detail.get("pass_id") == pass_id
    ]


class CoPassageRow(NamedTuple):
    """Another person's passage at the same gate near one of the person's passages
    (``case_event_id``): when, as ISO 8601 text in UTC to the second (``at``), and how many
    seconds after the person's passage (negative: before). Both are computed by the
    database: a busy month gives a case a hundred thousand of these, and turning each into
    datetimes in Python cost more than the query."""

    case_event_id: int
    event_id: int
    person_id: int
    direction: str
    at: str
    seconds: float


def _shifted(session: Session, moment: Any, seconds: int) -> ColumnElement[Any]:
    """``moment`` moved by ``seconds`` in SQL: an interval on PostgreSQL; on SQLite, where
    timestamps are text (``YYYY-MM-DD HH:MM:SS.ffffff``), the same text form."""
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", moment, f"{seconds:+d} seconds")
    shifted: ColumnElement[Any] = moment + literal(dt.timedelta(seconds=seconds), Interval())
    return shifted


def _stamp_and_gap(session: Session, moment: Any, origin: Any) -> tuple[Any, Any]:
    """SQL for ``moment`` as ``2026-12-07T18:03:00+00:00`` and its distance in seconds from
    ``origin``."""
    if session.get_bind().dialect.name == "sqlite":
        stamp = func.strftime("%Y-%m-%dT%H:%M:%S+00:00", moment)
        gap = (func.julianday(moment) - func.julianday(origin)) * 86400.0
        return stamp, gap
    stamp = func.to_char(func.timezone("UTC", moment), 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')
    return stamp, cast(func.extract("epoch", moment - origin), Float)


def co_passages(
    session: Session, *, person_id: int, start: dt.datetime, end: dt.datetime, minutes: int
) -> list[CoPassageRow]:
    """Everyone else who passed the same gate within ``minutes`` of each of the person's
    passages between ``start`` and ``end``: one windowed self-join, the person's passages
    over the (person, time) index and, for each, a range read on (gate, time). The answer
    may be a second wider than ``minutes`` on each side; the caller applies the rule."""
    query = co_passage_query(session, person_id=person_id, start=start, end=end, minutes=minutes)
    connection = session.connection()
    with _nested_loop_plan(connection):
        # Core rows (no ORM loading): the columns need no conversion.
        rows: list[Any] = list(connection.execute(query))
    return rows  # rows unpack like CoPassageRow


_PLAN_SETTINGS = {
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "plan_cache_mode": "force_custom_plan",
}


@contextmanager
def _nested_loop_plan(connection: Connection) -> Iterator[None]:
    """On PostgreSQL, plan the join as the small nested loop it is. The planner cannot
    know how narrow a range computed from the outer row is (it guesses 1% of the table per
    case passage), so it expects millions of rows: it then compiles the query with JIT
    (seconds) and goes parallel with a sequential scan of the whole table instead of the
    (person, time) index. Once the driver prepares the statement (from its fifth run),
    PostgreSQL may keep a generic plan made without the person and the dates, which ran
    for minutes. All three are set for this statement only (restored after, within the
    transaction)."""
    if connection.dialect.name != "postgresql":
        yield
        return

    def apply(values: dict[str, str]) -> None:
        calls = ", ".join(f"set_config('{name}', %({name})s, true)" for name in values)
        connection.exec_driver_sql(f"SELECT {calls}", values)

    names = ", ".join(f"current_setting('{name}')" for name in _PLAN_SETTINGS)
    before = connection.exec_driver_sql(f"SELECT {names}").one()
    apply(_PLAN_SETTINGS)
    try:
        yield
    finally:
        apply(dict(zip(_PLAN_SETTINGS, before, strict=True)))


def co_passage_query(
    session: Session, *, person_id: int, start: dt.datetime, end: dt.datetime, minutes: int
) -> Select[Any]:
    """The statement of :func:`co_passages` (for EXPLAIN)."""
    mine, other = aliased(AccessEvent), aliased(AccessEvent)
    reach = minutes * 60 + 1
    stamp, gap = _stamp_and_gap(session, other.occurred_at, mine.occurred_at)
    query = (
        select(mine.id, other.id, other.person_id, other.direction, stamp, gap)
        .join(
            other,
            and_(
                other.gate_id == mine.gate_id,
                other.occurred_at >= _shifted(session, mine.occurred_at, -reach),
                other.occurred_at <= _shifted(session, mine.occurred_at, reach),
            ),
        )
        .where(
            mine.person_id == person_id,
            mine.occurred_at >= start,
            mine.occurred_at <= end,
            mine.decision.in_(_PASSED),
            other.decision.in_(_PASSED),
            other.person_id.is_not(None),
            other.person_id != person_id,
        )
        .order_by(mine.occurred_at, mine.id, other.occurred_at, other.id)
    )
    return query
