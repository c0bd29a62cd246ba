"""Failed-login throttling kept in the database: a growing wait, then a lock.

Two counters are kept for every attempt: one for the typed account name and one for the
client address. A counter allows a few failures, then each further failure makes the next
attempt wait twice as long (2, 4, 8 … seconds, capped); the account name is locked after
``lock_after`` failures. Counters leak: one failure is forgiven per ``forgive_minutes``.

An attempt is counted *before* its password is checked (as if it failed) and committed by
the caller, so that guesses sent in parallel, to any web process, see it and are refused;
a right password then takes the count back (:func:`settle_success`). Nothing sleeps: a
refused attempt is answered at once with the time left to wait.

The account counter is kept by the name as typed (normalised), whether such an account
exists or not, so that waits and locks look the same for a wrong name and a wrong password
and do not reveal which names exist.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fengchao.auth.models import LoginThrottle, ThrottleKind
from fengchao.settings import LoginSettings

# Beyond this many failures above the free ones the wait is at its cap anyway (2**16 s is
# longer than any allowed cap); stopping the count there bounds how long a row lives.
_COUNT_ABOVE_FREE = 16


def account_key(name: str) -> str:
    """The counter key of an account name as typed: a keyed hash, not the name, since a
    phone or ID number typed into the username box must not be kept in clear."""
    from fengchao.auth.crypto import get_cipher

    return "a:" + get_cipher().lookup_hash("login-account:" + name)[:40]


def address_key(host: str | None) -> str:
    """The counter key of a client address: IPv4 as it is, IPv6 by its /64 network (one
    household or phone gets a whole /64, so single IPv6 addresses are free to change)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class Claim:
    """An attempt counted in advance, or refused because a wait is not over.

    ``wait_seconds`` is how long the *next* attempt must wait if this one fails (or, when
    refused, how long is left); ``locked`` says the wait is a lock of the account name.
    """

    refused: bool
    wait_seconds: int
    locked: bool
    address_limited: bool
    account_failures: int = 0
    # To take the count back after a right password.
    account_row: int | None = None
    address_row: int | None = None
    address_failures: int = 0
    address_before: tuple[int, dt.datetime, dt.datetime | None, bool] | None = None


def _left(row: LoginThrottle, now: dt.datetime) -> int:
    """Whole seconds until the row accepts an attempt again (0: now)."""
    if row.retry_at is None or row.retry_at <= now:
        return 0
    return max(1, math.ceil((row.retry_at - now).total_seconds()))


def _decayed(row: LoginThrottle, now: dt.datetime, settings: LoginSettings) -> int:
    """Failures still counted: one is forgiven per ``forgive_minutes`` since the last."""
    forgiven = int((now - row.last_failure_at) / dt.timedelta(minutes=settings.forgive_minutes))
    return max(0, row.failures - max(0, forgiven))


def wait_after(failures: int, free: int, cap: int) -> int:
    """Seconds before the next attempt after ``failures`` counted failures: none for the
    free ones, then 2, 4, 8 … up to ``cap``."""
    if failures <= free:
        return 0
    return min(cap, 1 << min(failures - free, _COUNT_ABOVE_FREE))


def _insert_missing(
    session: Session, keys: list[tuple[ThrottleKind, str]], now: dt.datetime
) -> None:
    """Make sure both counters exist; a write first, so that on SQLite the transaction
    takes the write lock before it reads the counters it is about to change."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for kind, key in keys:
        session.execute(
            insert(LoginThrottle)
            .values(kind=kind, key=key, failures=0, last_failure_at=now, locked=False)
            .on_conflict_do_nothing(index_elements=["kind", "key"])
        )


def claim_attempt(
    *, session: Session, account: str, address: str, now: dt.datetime, settings: LoginSettings
) -> Claim:
    """Count one attempt for ``account`` and ``address`` as a failure, or refuse it when
    either is still waiting. The caller commits before checking the password."""
    keys = sorted([(ThrottleKind.account, account_key(account)), (ThrottleKind.address, address)])
    # Rows locked in one order (kind, key), so two attempts never wait on each other in a
    # circle on PostgreSQL; SQLite already holds its single write lock. A successful login
    # elsewhere may delete a row between our insert and our lock (PostgreSQL): insert again.
    rows: dict[ThrottleKind, LoginThrottle] = {}
    for _attempt in range(5):
        _insert_missing(session, keys, now)
        rows = {
            row.kind: row
            for row in session.scalars(
                select(LoginThrottle)
                .where(
                    or_(*(and_(LoginThrottle.kind == k, LoginThrottle.key == v) for k, v in keys))
                )
                .order_by(LoginThrottle.kind, LoginThrottle.key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        if len(rows) == len(keys):
            break
    else:
        raise RuntimeError("login throttle rows vanished five times in a row")
    account_row, address_row = rows[ThrottleKind.account], rows[ThrottleKind.address]

    account_left = _left(account_row, now)
    address_left = _left(address_row, now)
    if account_left or address_left:
        account_locked = bool(account_left) and account_row.locked
        return Claim(
            refused=True,
            wait_seconds=max(account_left, address_left),
            locked=account_locked,
            address_limited=not account_locked and address_left > account_left,
        )

    address_before = (
        address_row.failures,
        address_row.last_failure_at,
        address_row.retry_at,
        address_row.locked,
    )
    cap = settings.max_wait_seconds

    failures = min(_decayed(account_row, now, settings) + 1, settings.lock_after)
    account_row.failures, account_row.last_failure_at = failures, now
    locked = failures >= settings.lock_after
    account_wait = (
        settings.lock_minutes * 60 if locked else wait_after(failures, settings.free_failures, cap)
    )
    account_row.retry_at = now + dt.timedelta(seconds=account_wait) if account_wait else None
    account_row.locked = locked

    free = settings.address_free_failures
    address_failures = min(_decayed(address_row, now, settings) + 1, free + _COUNT_ABOVE_FREE)
    address_row.failures, address_row.last_failure_at = address_failures, now
    address_wait = wait_after(address_failures, free, cap)
    address_row.retry_at = now + dt.timedelta(seconds=address_wait) if address_wait else None
    address_row.locked = False
    session.flush()
    return Claim(
        refused=False,
        wait_seconds=max(account_wait, address_wait),
        locked=locked,
        address_limited=address_wait > account_wait,
        account_failures=failures,
        account_row=account_row.id,
        address_row=address_row.id,
        address_failures=address_failures,
        address_before=address_before,
    )


def settle_success(*, session: Session, claim: Claim, now: dt.datetime) -> None:
    """A right password: the account name's count is cleared, the address's attempt taken
    back. The address keeps its earlier failures (else one good account could wipe out
    the count of a whole spray from the same address)."""
    if claim.account_row is not None:
        session.execute(delete(LoginThrottle).where(LoginThrottle.id == claim.account_row))
    if claim.address_row is None or claim.address_before is None:
        return
    failures, last_failure_at, retry_at, locked = claim.address_before
    restored = session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.id == claim.address_row,
            LoginThrottle.failures == claim.address_failures,
            LoginThrottle.last_failure_at == now,
        )
        .values(
            failures=failures, last_failure_at=last_failure_at, retry_at=retry_at, locked=locked
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(restored, "rowcount", 0) == 0:
        # Another attempt from the address was counted meanwhile: take back ours only.
        session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.id == claim.address_row, LoginThrottle.failures > 0)
            .values(failures=LoginThrottle.failures - 1)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        delete(LoginThrottle)
        .where(
            LoginThrottle.id == claim.address_row,
            LoginThrottle.failures == 0,
            or_(LoginThrottle.retry_at.is_(None), LoginThrottle.retry_at <= now),
        )
        .execution_options(synchronize_session=False)
    )


def purge_forgotten(*, session: Session, now: dt.datetime, settings: LoginSettings) -> int:
    """Delete counters that have leaked to nothing and wait for nothing; they hold typed
    names and client addresses, which are kept no longer than they are needed."""
    most = max(settings.lock_after, settings.address_free_failures + _COUNT_ABOVE_FREE)
    horizon = now - dt.timedelta(minutes=settings.forgive_minutes * most)
    result = session.execute(
        delete(LoginThrottle)
        .where(
            LoginThrottle.last_failure_at < horizon,
            or_(LoginThrottle.retry_at.is_(None), LoginThrottle.retry_at <= now),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def unlock(*, session: Session, account: str, now: dt.datetime) -> bool:
    """Forget the failures of an account name; True if it was locked or waiting."""
    row = session.scalar(
        select(LoginThrottle).where(
            LoginThrottle.kind == ThrottleKind.account,
            LoginThrottle.key == account_key(account),
        )
    )
    if row is None:
        return False
    waiting = row.retry_at is not None and row.retry_at > now
    session.delete(row)
    session.flush()
    return waiting


def locks(*, session: Session, accounts: list[str], now: dt.datetime) -> dict[str, dt.datetime]:
    """The account names among ``accounts`` that are locked now, with the lock's end."""
    name_of = {account_key(name): name for name in accounts}
    rows = session.scalars(
        select(LoginThrottle).where(
            LoginThrottle.kind == ThrottleKind.account,
            LoginThrottle.key.in_(name_of),
            LoginThrottle.locked.is_(True),
            LoginThrottle.retry_at > now,
        )
    )
    return {name_of[row.key]: row.retry_at for row in rows if row.retry_at is not None}
