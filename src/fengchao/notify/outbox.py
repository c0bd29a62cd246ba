"""The outbox: claiming due deliveries under each chat's rate limit, recording what came
of each post (retry with back-off, dead letter), "retry now", and what the outbox page
shows. Every function is one short transaction; none is open while a chat is posted to.

On PostgreSQL due deliveries are claimed with ``FOR UPDATE SKIP LOCKED`` and the chats'
rows are locked while their rate windows are counted, so workers side by side never claim
the same delivery nor together exceed a chat's limit. SQLite has one writer at a time
(and one worker, see ``worker.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, audit, require
from fengchao.db import begin_write
from fengchao.notify import channels as chans
from fengchao.notify import groups
from fengchao.notify.models import (
    Channel,
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    Notification,
    ScheduledJob,
    WorkerLease,
)
from fengchao.notify.render import ChatMessage
from fengchao.notify.service import WAKE, describe_recipient
from fengchao.registry import scope as grid
from fengchao.settings import NotifySettings, get_settings

PER_CHANNEL = 50  # deliveries of one chat claimed at a time (sent one after another)


@dataclass(frozen=True)
class Claim:
    """A delivery a worker owns until its lease runs out, with what it needs to send it
    (plain values: sent with no session open)."""

    delivery_id: int
    attempt_id: int
    attempts: int
    channel_id: int
    kind: str
    config: chans.RobotConfig
    message: ChatMessage
    next_id: int | None = None  # the chat's next claimed delivery, posted after this one


def backoff(attempts: int, key: str, settings: NotifySettings) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling from
    ``retry_base_seconds`` up to ``retry_max_seconds``, spread ±20 % by the key so that
    messages that failed together do not all come back together."""
    wait = min(settings.retry_base_seconds * 2 ** max(0, attempts - 1), settings.retry_max_seconds)
    spread = int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) / 0xFFFF  # 0..1
    return float(wait * (0.8 + 0.4 * spread))


def _due(now: dt.datetime) -> ColumnElement[bool]:
    return or_(
        and_(Delivery.state == DeliveryState.pending, Delivery.next_attempt_at <= now),
        # A worker stopped mid-send: its lease ran out.
        and_(Delivery.state == DeliveryState.sending, Delivery.lease_until < now),
    )


def _community_names(session: Session, ids: Collection[int]) -> dict[int, str]:
    return {i: groups.node_label(session, ScopeLevel.community, i) for i in ids}


def claim(
    *,
    session: Session,
    owner: str,
    now: dt.datetime,
    public_url: str = "",
    skip_channels: Collection[int] = (),
    limit: int = 200,
) -> list[Claim]:
    """Claim the deliveries due now (most urgent first), as many per chat as its rate
    allows; those over the rate are moved to when a slot frees (queued, never dropped),
    those of a removed chat are dead-lettered. The caller commits."""
    settings = get_settings().notify
    query = select(Delivery.id).where(_due(now))
    if skip_channels:
        query = query.where(Delivery.channel_id.not_in(list(skip_channels)))
    # A look without the write lock first: an idle worker polling every second must not
    # take SQLite's one write lock each time.
    if session.scalar(query.limit(1)) is None:
        return []
    begin_write(session)
    query = select(Delivery.id).where(_due(now))
    if skip_channels:
        query = query.where(Delivery.channel_id.not_in(list(skip_channels)))
    ids = list(
        session.scalars(
            query.order_by(Delivery.priority.desc(), Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    deliveries = list(
        session.scalars(
            select(Delivery)
            .options(joinedload(Delivery.notification))
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.priority.desc(), Delivery.next_attempt_at, Delivery.id)
        )
    )
    by_channel: dict[int, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_channel[delivery.channel_id].append(delivery)
    # Locked in id order: the rate windows below are counted by one worker at a time.
    locked = session.scalars(
        select(Channel)
        .where(Channel.id.in_(list(by_channel)))
        .order_by(Channel.id)
        .with_for_update()
    )
    chats = {channel.id: channel for channel in locked}
    names = _community_names(session, {d.community_id for d in deliveries})
    timezone = get_settings().timezone
    base = public_url.rstrip("/")
    claims: list[Claim] = []
    for channel_id, waiting in by_channel.items():
        channel = chats[channel_id]
        if not channel.active:
            for delivery in waiting:
                _dead(delivery, "channel_removed", "", None)
            continue
        notifier = chans.notifier_for(channel.kind)
        free = _free_slots(session, channel, notifier, now)
        config = groups.robot_config(channel) if free else None
        for position, delivery in enumerate(waiting):
            if position >= min(free, PER_CHANNEL) or config is None:
                wait = groups.window_wait(
                    session, channel.id, channel.kind, channel.rate_per_minute, now
                )
                delivery.state = DeliveryState.pending
                delivery.lease_owner = delivery.lease_until = None
                delivery.next_attempt_at = now + dt.timedelta(seconds=max(wait, 1.0))
                continue
            if delivery.uncertain:
                delivery.redelivered += 1  # the last post's outcome is unknown: maybe a duplicate
            # A chat's claimed deliveries are posted one after another: only the one in line
            # may be in flight when a worker dies. The first is in line now; recording each
            # outcome puts the next in line (see record()).
            delivery.uncertain = position == 0
            delivery.state = DeliveryState.sending
            delivery.lease_owner = owner
            # One after another: each later delivery may wait for those before it.
            delivery.lease_until = now + dt.timedelta(
                seconds=settings.lease_seconds + position * settings.timeout_seconds
            )
            delivery.attempts += 1
            delivery.sends += 1
            attempt = DeliveryAttempt(channel_id=channel.id, delivery_id=delivery.id, at=now)
            session.add(attempt)
            session.flush()
            note = delivery.notification
            claims.append(
                Claim(
                    delivery_id=delivery.id,
                    attempt_id=attempt.id,
                    attempts=delivery.attempts,
                    channel_id=channel.id,
                    kind=channel.kind,
                    config=config,
                    message=ChatMessage(
                        key=delivery.key,
                        notification_id=note.id,
                        kind=note.kind,
                        urgency=note.urgency,
                        title=note.title,
                        body=note.body,
                        link=f"{base}{note.link}" if base and note.link else None,
                        more_link=f"{base}/notify/messages/{note.id}" if base else None,
                        community=names.get(delivery.community_id, ""),
                        created_at=note.created_at,
                        timezone=timezone,
                    ),
                )
            )
    session.flush()
    for i in range(len(claims) - 1):
        if claims[i + 1].channel_id == claims[i].channel_id:
            claims[i] = replace(claims[i], next_id=claims[i + 1].delivery_id)
    return claims


def _free_slots(
    session: Session, channel: Channel, notifier: chans.Notifier, now: dt.datetime
) -> int:
    """How many more requests the chat may be sent now under every window."""
    windows = [(n, s) for n, s in notifier.limits if s < 60]
    windows.append((channel.rate_per_minute, 60.0))
    free = PER_CHANNEL
    for allowed, seconds in windows:
        since = now - dt.timedelta(seconds=seconds)
        used = (
            session.scalar(
                select(func.count())
                .select_from(DeliveryAttempt)
                .where(DeliveryAttempt.channel_id == channel.id, DeliveryAttempt.at > since)
            )
            or 0
        )
        free = min(free, allowed - used)
    return max(free, 0)


def _dead(delivery: Delivery, kind: str, detail: str, status: int | None) -> None:
    delivery.state = DeliveryState.dead
    delivery.lease_owner = delivery.lease_until = None
    delivery.last_error_kind, delivery.last_error = kind, detail[:300] or None
    delivery.last_status = status


def record(
    *,
    session: Session,
    claim: Claim,
    owner: str,
    outcome: chans.Outcome,
    started_at: dt.datetime,
    duration_ms: float,
    now: dt.datetime,
) -> DeliveryState | None:
    """Record what came of a claimed delivery's post; returns its new state, or None when
    the lease had run out and another worker owns the delivery now (its attempt is still
    recorded). The caller commits."""
    settings = get_settings().notify
    begin_write(session)
    attempt = session.get(DeliveryAttempt, claim.attempt_id)
    if attempt is not None:
        attempt.at, attempt.duration_ms = started_at, duration_ms
        attempt.ok, attempt.status = outcome.ok, outcome.status
        attempt.error_kind = None if outcome.kind is None else str(outcome.kind)
    if claim.next_id is not None:
        session.execute(
            update(Delivery)
            .where(
                Delivery.id == claim.next_id,
                Delivery.state == DeliveryState.sending,
                Delivery.lease_owner == owner,
            )
            .values(uncertain=True)
        )
    delivery = session.get(Delivery, claim.delivery_id, with_for_update=True)
    if (
        delivery is None
        or delivery.state != DeliveryState.sending
        or delivery.lease_owner != owner
        or delivery.attempts != claim.attempts
    ):
        return None
    delivery.lease_owner = delivery.lease_until = None
    delivery.last_status = outcome.status
    if outcome.ok:
        delivery.state = DeliveryState.sent
        delivery.sent_at = now
        delivery.uncertain = False
        return delivery.state
    delivery.last_error_kind = None if outcome.kind is None else str(outcome.kind)
    delivery.last_error = outcome.detail[:300] or None
    delivery.uncertain = outcome.maybe_sent
    if outcome.kind == chans.FailureKind.rate_limited:
        # The service asked us to slow down: not the message's fault, not an attempt.
        delivery.attempts -= 1
        delivery.state = DeliveryState.pending
        delivery.next_attempt_at = now + dt.timedelta(seconds=max(outcome.retry_after or 60.0, 1.0))
    elif outcome.permanent or delivery.attempts >= settings.max_attempts:
        delivery.state = DeliveryState.dead
    else:
        delivery.state = DeliveryState.pending
        wait = backoff(delivery.attempts, delivery.key, settings)
        delivery.next_attempt_at = now + dt.timedelta(seconds=wait)
    return delivery.state


# --- the outbox page -----------------------------------------------------------------------


def _communities(session: Session, actor: Actor) -> list[int]:
    require(actor, Permission.notify_manage)
    return [c.id for c in grid.communities_in_scope(session=session, scope=actor.scope)]


def retry_now(*, session: Session, actor: Actor, delivery_id: int, now: dt.datetime) -> Delivery:
    """Send a dead (or waiting) delivery again at once, with its attempts counted afresh;
    audited. Not found outside the actor's scope."""
    begin_write(session)
    communities = _communities(session, actor)
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.community_id not in communities:
        raise NotFound(f"delivery {delivery_id}")
    channel = session.get(Channel, delivery.channel_id)
    assert channel is not None
    if not grid.node_in_scope(
        session=session, scope=actor.scope, level=channel.node_level, node_id=channel.node_id
    ):
        raise NotFound(f"delivery {delivery_id}")
    if delivery.state in (DeliveryState.dead, DeliveryState.pending):
        delivery.state = DeliveryState.pending
        delivery.attempts = 0
        delivery.next_attempt_at = now
        WAKE.set()
    audit(
        session=session,
        actor=actor,
        action="notify_retry",
        object_type="notify_delivery",
        object_id=delivery.id,
        community_id=delivery.community_id,
        channel_id=channel.id,
    )
    session.flush()
    return delivery


@dataclass(frozen=True)
class DeliveryRow:
    delivery: Delivery
    channel_name: str
    node_label: str
    error_text: str


@dataclass(frozen=True)
class NobodyRow:
    notification: Notification
    recipients: list[tuple[str, str]]  # (how it reads, its code)


@dataclass(frozen=True)
class OutboxView:
    counts: dict[str, int]
    redelivered: int
    attention: list[DeliveryRow]  # dead first, then waiting and in flight
    nobody: list[NobodyRow]
    jobs: list[ScheduledJob]
    workers: list[WorkerLease]


def outbox_view(
    *, session: Session, actor: Actor, now: dt.datetime, limit: int = 100
) -> OutboxView:
    """The outbox within the actor's communities: deliveries by state, those that need
    attention, messages that reached nobody, the scheduled jobs and the running workers."""
    communities = _communities(session, actor)
    in_scope = Delivery.community_id.in_(communities)
    counts = {
        str(state): count
        for state, count in session.execute(
            select(Delivery.state, func.count()).where(in_scope).group_by(Delivery.state)
        )
    }
    redelivered = (
        session.scalar(select(func.coalesce(func.sum(Delivery.redelivered), 0)).where(in_scope))
        or 0
    )
    order = (
        (Delivery.state == DeliveryState.dead).desc(),
        Delivery.next_attempt_at,
        Delivery.id.desc(),
    )
    rows = session.scalars(
        select(Delivery)
        .options(joinedload(Delivery.notification), joinedload(Delivery.channel))
        .where(in_scope, Delivery.state != DeliveryState.sent)
        .order_by(*order)
        .limit(limit)
    )
    attention = [
        DeliveryRow(
            d,
            d.channel.name,
            groups.node_label(session, d.channel.node_level, d.channel.node_id),
            ""
            if d.last_error_kind is None
            else chans.failure_text(d.last_error_kind, d.last_error or "", d.last_status),
        )
        for d in rows
    ]
    lonely = session.scalars(
        select(Notification)
        .options(joinedload(Notification.recipients))
        .where(Notification.community_id.in_(communities), Notification.reached_nobody.is_(True))
        .order_by(Notification.id.desc())
        .limit(50)
    ).unique()
    nobody = [
        NobodyRow(n, [describe_recipient(session, r) for r in n.recipients if r.reached == 0])
        for n in lonely
    ]
    jobs = list(session.scalars(select(ScheduledJob).order_by(ScheduledJob.name)))
    workers = list(
        session.scalars(
            select(WorkerLease).where(WorkerLease.expires_at > now).order_by(WorkerLease.name)
        )
    )
    return OutboxView(counts, int(redelivered), attention, nobody, jobs, workers)
