"""Gate traffic for the dashboard, kept per process and brought up to date by the events
that came since: a day of a busy community is tens of thousands of events, and the page
polls every minute. The first request of a node and day counts the whole range once; each
later one reads only the events above the last id it counted (along the primary key).

Only settled events are folded into the kept counts (ids up to
``records.settled_event_id``: older than a few seconds), since on PostgreSQL an id can
commit after a higher one; the newer ones are counted afresh on every request. Every
process keeps its own counts and reads the same database, so processes agree.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from fengchao.access import records
from fengchao.auth.service import Actor
from fengchao.dashboard import figures as f

SETTLE_SECONDS = 10
_SIZE = 64  # kept counts are a few hundred keys each


@dataclass
class _Kept:
    upto_id: int = 0
    counts: dict[tuple[int, str, str, str], list[int]] = field(default_factory=dict)

    def add(self, rows: list[records.TrafficCount]) -> None:
        for row in rows:
            key = (row.hour, row.direction, row.kind, row.decision)
            found = self.counts.setdefault(key, [0, 0])
            found[0] += row.count
            found[1] += row.fever


_KEPT: OrderedDict[tuple[object, ...], _Kept] = OrderedDict()
_GUARD = threading.Lock()


def clear() -> None:
    with _GUARD:
        _KEPT.clear()


def days(
    *, session: Session, actor: Actor, first_day: dt.date, count: int, now: dt.datetime
) -> list[f.DayTraffic]:
    """``count`` days of traffic from ``first_day`` in the actor's scope."""
    key = (
        str(session.get_bind().engine.url),
        actor.scope.level,
        actor.scope.node_id,
        first_day,
        count,
    )
    settled = records.settled_event_id(
        session=session, before=now - dt.timedelta(seconds=SETTLE_SECONDS)
    )
    with _GUARD:
        kept = _KEPT.get(key)
        base = _Kept(kept.upto_id, {k: list(v) for k, v in kept.counts.items()}) if kept else None
    if base is None or base.upto_id > settled:  # none kept, or the events were purged
        base = _Kept()
    if settled > base.upto_id:
        base.add(
            records.traffic(session=session, actor=actor, first_day=first_day, days=count,
                            above_id=base.upto_id, upto_id=settled)
        )  # fmt: skip
        base.upto_id = settled
    with _GUARD:
        _KEPT[key] = base
        _KEPT.move_to_end(key)
        while len(_KEPT) > _SIZE:
            _KEPT.popitem(last=False)
    fresh = records.traffic(
        session=session, actor=actor, first_day=first_day, days=count, above_id=settled
    )
    rows = [
        records.TrafficCount(hour, direction, kind, decision, n, fever)
        for (hour, direction, kind, decision), (n, fever) in base.counts.items()
    ]
    return f.split_days([*rows, *fresh], first_day, count)
