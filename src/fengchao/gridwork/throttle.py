"""Slowing down the public form (no account needed to ask for help or report a problem):
a count of submissions per client address and per phone number in fixed windows, kept in
the database so that every web process sees it. Keys are keyed hashes, never the address
or the number itself."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Refusal
from fengchao.auth.throttle import address_key
from fengchao.db import begin_write
from fengchao.gridwork.models import SubmitCounter
from fengchao.web.i18n import _

WINDOW = dt.timedelta(hours=1)
PER_ADDRESS = 20  # a household's wifi, a volunteer's phone helping several neighbours
PER_PHONE = 6


class TooMany(Refusal):
    status = 429


def key_for(kind: str, value: str) -> str:
    return kind + ":" + get_cipher().lookup_hash(f"gridwork-throttle:{kind}:{value}")[:48]


def _window(now: dt.datetime) -> dt.datetime:
    return now.replace(minute=0, second=0, microsecond=0)


def count(*, session: Session, host: str | None, phone: str | None, now: dt.datetime) -> None:
    """Count one submission for the client's address (and phone); raise :class:`TooMany`
    when either has had its share of this window. Takes the write lock first (the caller
    is about to write anyway)."""
    begin_write(session)
    window = _window(now)
    keys = [(key_for("ip", address_key(host)), PER_ADDRESS)]
    if phone:
        keys.append((key_for("phone", phone), PER_PHONE))
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for key, limit in keys:
        session.execute(
            insert(SubmitCounter)
            .values(key=key, window_start=window, count=0)
            .on_conflict_do_nothing(index_elements=["key", "window_start"])
        )
        session.execute(
            update(SubmitCounter)
            .where(SubmitCounter.key == key, SubmitCounter.window_start == window)
            .values(count=SubmitCounter.count + 1)
            .execution_options(synchronize_session=False)
        )
        seen = session.scalar(
            select(SubmitCounter.count).where(
                SubmitCounter.key == key, SubmitCounter.window_start == window
            )
        )
        if (seen or 0) > limit:
            raise TooMany(_("提交太频繁了，请一小时后再试；急事请直接打电话给楼栋长或社区"))


def purge(*, session: Session, now: dt.datetime) -> int:
    """Forget windows that are over (run with the escalation job); takes the write lock
    only when there is something to forget."""
    over = SubmitCounter.window_start < _window(now) - WINDOW
    if session.scalar(select(SubmitCounter.id).where(over).limit(1)) is None:
        return 0
    begin_write(session)
    result = session.execute(
        delete(SubmitCounter).where(over).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
