"""Group chats per node of the grid (群机器人设置): listed, added, changed and removed by
staff within their scope, with secrets encrypted at rest, and a test message that says at
once whether the robot answered and, if not, why."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import ScopeLevel
from fengchao.auth.service import Actor, NotFound, Permission, Refusal, audit, recent_acts, require
from fengchao.db import begin_write, utcnow
from fengchao.notify import channels as chans
from fengchao.notify.models import Channel, ChannelKind, DeliveryAttempt
from fengchao.notify.render import ChatMessage
from fengchao.notify.service import ADDRESSABLE, BadMessage
from fengchao.notify.urls import check_url, url_hint
from fengchao.registry import scope as grid
from fengchao.settings import get_settings
from fengchao.web.i18n import _


class TooManyTests(Refusal):
    status = 429


@dataclass(frozen=True)
class ChannelForm:
    """A channel as the settings form sends it. An empty ``secret`` keeps the stored one
    (pages never show a secret back); ``clear_secret`` removes it."""

    node: str
    name: str
    kind: str
    url: str = ""
    secret: str = ""
    keyword: str = ""
    rate_per_minute: int | None = None
    clear_secret: bool = False


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    node_label: str
    kind_label: str
    has_secret: bool


@dataclass(frozen=True)
class TestResult:
    ok: bool
    kind: str | None
    text: str


def kind_label(kind: str) -> str:
    return _(chans.notifier_for(kind).label)


def per_minute_limit(kind: str) -> int:
    """What the service allows one robot in a minute."""
    return min(int(n * 60 / s) for n, s in chans.notifier_for(kind).limits if s <= 60)


def node_label(session: Session, level: ScopeLevel, node_id: int) -> str:
    from fengchao.auth.service import GridScope

    return grid.scope_label(session=session, scope=GridScope(level, node_id))


def _in_scope(session: Session, actor: Actor, level: ScopeLevel, node_id: int) -> bool:
    return grid.node_in_scope(session=session, scope=actor.scope, level=level, node_id=node_id)


def list_channels(*, session: Session, actor: Actor) -> list[ChannelRow]:
    """The active chats of every node within the actor's scope."""
    require(actor, Permission.notify_manage)
    communities = [c.id for c in grid.communities_in_scope(session=session, scope=actor.scope)]
    rows = session.scalars(
        select(Channel).where(Channel.active.is_(True), Channel.community_id.in_(communities))
    )
    rank = {ScopeLevel.community: 0, ScopeLevel.compound: 1, ScopeLevel.building: 2}
    ordered = sorted(
        rows, key=lambda c: (c.community_id, rank.get(c.node_level, 3), c.node_id, c.id)
    )
    return [
        ChannelRow(
            channel,
            node_label(session, channel.node_level, channel.node_id),
            kind_label(channel.kind),
            channel.secret_enc is not None,
        )
        for channel in ordered
        if _in_scope(session, actor, channel.node_level, channel.node_id)
    ]


def get_channel(*, session: Session, actor: Actor, channel_id: int) -> Channel:
    require(actor, Permission.notify_manage)
    channel = session.get(Channel, channel_id)
    if (
        channel is None
        or not channel.active
        or not _in_scope(session, actor, channel.node_level, channel.node_id)
    ):
        raise NotFound(f"channel {channel_id}")
    return channel


def _parse_node(session: Session, actor: Actor, text: str) -> tuple[ScopeLevel, int, int]:
    level_text, _sep, id_text = text.partition(":")
    try:
        level, node_id = ScopeLevel(level_text), int(id_text)
    except ValueError:
        raise BadMessage(_("请选择群所属的网格节点"), field="node") from None
    if level not in ADDRESSABLE or not _in_scope(session, actor, level, node_id):
        raise BadMessage(_("这个网格节点不在您负责的范围内"), field="node")
    lineage = grid.node_lineage(session=session, level=level, node_id=node_id)
    community_id = next(i for lvl, i in lineage if lvl == ScopeLevel.community)
    return level, node_id, community_id


def save_channel(
    *,
    session: Session,
    actor: Actor,
    form: ChannelForm,
    channel_id: int | None = None,
    own_origins: Sequence[str] = (),
) -> Channel:
    """Add a chat (``channel_id`` None) or change one; refusals name the field."""
    require(actor, Permission.notify_manage)
    begin_write(session)
    existing = (
        None
        if channel_id is None
        else get_channel(session=session, actor=actor, channel_id=channel_id)
    )
    level, node_id, community_id = _parse_node(session, actor, form.node)
    name = form.name.strip()
    if not name or len(name) > 64:
        raise BadMessage(_("请填写群名称（最多 64 个字符）"), field="name")
    if form.kind not in chans.NOTIFIERS:
        raise BadMessage(_("请选择机器人类型"), field="kind")
    notifier = chans.notifier_for(form.kind)
    settings = get_settings().notify
    url = form.url.strip()
    if url or existing is None:
        url = check_url(
            url,
            allow_private=settings.allow_private_networks,
            own_origins=[settings.public_url, *own_origins],
        )
    secret = form.secret.strip()
    if len(secret) > 200:
        raise BadMessage(_("密钥太长（最多 200 个字符）"), field="secret")
    if secret and not notifier.uses_secret:
        raise BadMessage(_("这种机器人没有加签密钥：地址里的 key 就是它的凭据"), field="secret")
    keeps_secret = (
        existing is not None and existing.secret_enc is not None and not form.clear_secret
    )
    if notifier.secret_required and not secret and not keeps_secret:
        raise BadMessage(_("通用 Webhook 必须设置签名密钥"), field="secret")
    keyword = form.keyword.strip()
    if len(keyword) > 32:
        raise BadMessage(_("关键词太长（最多 32 个字符）"), field="keyword")
    if keyword and not notifier.uses_keyword:
        raise BadMessage(_("这种机器人不用关键词"), field="keyword")
    limit = per_minute_limit(form.kind)
    rate = form.rate_per_minute or notifier.default_per_minute or limit
    if not 1 <= rate <= limit:
        raise BadMessage(
            _("每分钟条数应在 1 到 {n} 之间（这是该服务对一个机器人的上限）").format(n=limit),
            field="rate_per_minute",
        )
    cipher = get_cipher()
    channel = existing or Channel(created_at=utcnow())
    channel.community_id = community_id
    channel.node_level, channel.node_id = level, node_id
    channel.name, channel.kind = name, ChannelKind(form.kind)
    if url:
        channel.url_enc, channel.url_hint = cipher.encrypt(url), url_hint(url)
    if secret:
        channel.secret_enc = cipher.encrypt(secret)
    elif form.clear_secret or not notifier.uses_secret:
        channel.secret_enc = None
    channel.keyword = keyword or None
    channel.rate_per_minute = rate
    channel.updated_at = utcnow()
    if existing is None:
        session.add(channel)
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="notify_channel_add" if existing is None else "notify_channel_change",
        object_type="notify_channel",
        object_id=channel.id,
        community_id=community_id,
        node=f"{level}:{node_id}",
        kind=form.kind,
        secret_changed=bool(secret) or form.clear_secret,
        url_changed=bool(url),
    )
    return channel


def remove_channel(*, session: Session, actor: Actor, channel_id: int) -> None:
    """Stop using a chat. Its row stays (deliveries and attempts refer to it); deliveries
    still waiting for it are dead-lettered by the worker with the reason."""
    begin_write(session)
    channel = get_channel(session=session, actor=actor, channel_id=channel_id)
    channel.active = False
    channel.updated_at = utcnow()
    audit(
        session=session,
        actor=actor,
        action="notify_channel_remove",
        object_type="notify_channel",
        object_id=channel.id,
        community_id=channel.community_id,
    )


def robot_config(channel: Channel) -> chans.RobotConfig:
    cipher = get_cipher()
    secret = cipher.decrypt(channel.secret_enc) if channel.secret_enc else None
    return chans.RobotConfig(
        url=cipher.decrypt(channel.url_enc), secret=secret, keyword=channel.keyword
    )


def window_wait(
    session: Session, channel_id: int, kind: str, rate_per_minute: int, now: dt.datetime
) -> float:
    """Seconds until the channel may be sent another request under the service's limits
    and the channel's own rate (0: now). Counts every attempt, tests included."""
    limits = [(n, s) for n, s in chans.notifier_for(kind).limits if s < 60]
    limits.append((rate_per_minute, 60.0))
    wait = 0.0
    for allowed, seconds in limits:
        since = now - dt.timedelta(seconds=seconds)
        recent = list(
            session.scalars(
                select(DeliveryAttempt.at)
                .where(DeliveryAttempt.channel_id == channel_id, DeliveryAttempt.at > since)
                .order_by(DeliveryAttempt.at.desc())
                .limit(allowed)
            )
        )
        if len(recent) >= allowed:
            wait = max(wait, (recent[-1] - since).total_seconds())
    return wait


def test_channel(*, session: Session, actor: Actor, channel_id: int, public_url: str) -> TestResult:
    """Send a test message to the chat now and say what came of it. Refused
    (:class:`TooManyTests`) past ``notify.tests_per_hour`` tests by one account."""
    channel = get_channel(session=session, actor=actor, channel_id=channel_id)
    settings = get_settings().notify
    now = utcnow()
    hour_ago = now - dt.timedelta(hours=1)
    tests = recent_acts(
        session=session, actor=actor, actions=("notify_channel_test",), since=hour_ago
    )
    if tests >= settings.tests_per_hour:
        raise TooManyTests(_("一小时内测试太多次了，请稍后再试"))
    if window_wait(session, channel.id, channel.kind, channel.rate_per_minute, now) > 0:
        return TestResult(
            False,
            chans.FailureKind.rate_limited,
            _("这个群的发送额度暂时用完了（正在发送排队的消息），请一分钟后再试"),
        )
    label = node_label(session, channel.node_level, channel.node_id)
    communities = grid.communities_in_scope(session=session, scope=actor.scope)
    community = next((c.name for c in communities if c.id == channel.community_id), "")
    message = ChatMessage(
        key=uuid.uuid4().hex,
        notification_id=0,
        kind="test",
        urgency="info",
        title=_("测试消息"),
        body=_("这是蜂巢平台发出的测试消息：{node}的群机器人「{name}」设置正确。").format(
            node=label, name=channel.name
        ),
        link=f"{public_url.rstrip('/')}/notify/channels" if public_url else None,
        more_link=None,
        community=community,
        created_at=now,
        timezone=get_settings().timezone,
    )
    config, kind, channel_row_id = robot_config(channel), channel.kind, channel.id
    # Nothing is written yet: end the read transaction, so none is open while the robot
    # takes its time to answer.
    session.commit()
    with chans.http_client(settings.timeout_seconds) as client:
        started = time.perf_counter()
        outcome = chans.notifier_for(kind).send(
            client, message, config, now=now, allow_private=settings.allow_private_networks
        )
        took = chans.elapsed_ms(started)
    begin_write(session)
    session.add(
        DeliveryAttempt(
            channel_id=channel_row_id,
            at=now,
            duration_ms=took,
            ok=outcome.ok,
            status=outcome.status,
            error_kind=None if outcome.kind is None else str(outcome.kind),
        )
    )
    stored = session.get(Channel, channel_row_id)
    assert stored is not None
    stored.last_test_at = now
    stored.last_test_ok = outcome.ok
    stored.last_test_error = None if outcome.kind is None else str(outcome.kind)
    audit(
        session=session,
        actor=actor,
        action="notify_channel_test",
        object_type="notify_channel",
        object_id=channel_row_id,
        community_id=stored.community_id,
        ok=outcome.ok,
        error=None if outcome.kind is None else str(outcome.kind),
        status=outcome.status,
    )
    session.flush()
    text = chans.failure_text(outcome.kind, outcome.detail, outcome.status)
    return TestResult(outcome.ok, None if outcome.kind is None else str(outcome.kind), text)


def channel_count(*, session: Session, community_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Channel)
            .where(Channel.community_id == community_id, Channel.active.is_(True))
        )
        or 0
    )
