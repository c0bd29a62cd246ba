"""The outbox as a worker runs it: delivery, retries with back-off, dead letter, "retry
now", each chat's rate limit (queued, never dropped), the idempotency key on every retry."""

from __future__ import annotations

import datetime as dt

from fengchao.db import begin_write
from fengchao.notify import outbox, service
from fengchao.notify.models import DeliveryAttempt, DeliveryState
from fengchao.notify.receiver import ChatReceiver
from fengchao.settings import NotifySettings
from tests.notify.conftest import World


def notify(world: World, n: int = 1, **kw: object) -> list[int]:
    ids = []
    with world.session() as s:
        for i in range(n):
            sent = service.send(
                session=s,
                community_id=world.grid.community.id,
                kind="fever",
                title=kw.get("title", f"东门测温异常 {i}"),  # type: ignore[arg-type]
                body="请跟进",
                link="/registry",
                to=[f"group@building:{world.grid.b5.id}"],
                now=world.clock(),
            )
            ids.append(sent.notification_id)
        s.commit()
    return ids


def states(world: World) -> list[str]:
    return [d.state for d in world.deliveries()]


def test_delivered_once_with_link_back(world: World, receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk", secret="SECabc")
    world.add_channel(url, "dingtalk", secret="SECabc")
    notify(world)
    stats = world.worker().run(once=True)
    assert stats.sent == 1 and states(world) == ["sent"]
    [got] = receiver.of(url)
    assert got.verdict == "ok"
    assert "https://fengchao.example.org/registry" in got.json["markdown"]["text"]
    [delivery] = world.deliveries()
    assert delivery.attempts == 1 and delivery.sends == 1 and delivery.redelivered == 0


def test_server_error_retried_with_back_off_then_sent(
    world: World, receiver: ChatReceiver, notify_settings: NotifySettings
) -> None:
    url = receiver.add("webhook", secret="k", script=["500", "500"])
    world.add_channel(url, "webhook", secret="k")
    notify(world)
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "pending" and delivery.attempts == 1
    assert delivery.last_error_kind == "server_error" and delivery.last_status == 500
    first_wait = (delivery.next_attempt_at - world.clock()).total_seconds()
    assert 8 <= first_wait <= 12  # retry_base_seconds 10, ±20 %
    world.worker().run(once=True)  # not due yet: nothing sent
    assert len(receiver.of(url)) == 1
    world.clock.advance(first_wait + 0.1)
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    second_wait = (delivery.next_attempt_at - world.clock()).total_seconds()
    assert delivery.attempts == 2 and 16 <= second_wait <= 24  # doubled
    world.clock.advance(second_wait + 0.1)
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "sent" and delivery.attempts == 3
    keys = {r.headers["idempotency-key"] for r in receiver.of(url)}
    assert keys == {delivery.key}  # the same key on every retry


def test_dead_letter_after_the_last_retry_and_retry_now(
    world: World, receiver: ChatReceiver, notify_settings: NotifySettings
) -> None:
    url = receiver.add("wecom", script=["500", "busy", "slow:1.5"])
    world.add_channel(url, "wecom")
    notify(world)
    for _ in range(3):  # max_attempts is 3 in these tests
        world.worker().run(once=True)
        world.clock.advance(3600)
    [delivery] = world.deliveries()
    assert delivery.state == "dead" and delivery.attempts == 3
    assert delivery.last_error_kind == "timeout"
    assert delivery.uncertain  # a timeout may have reached the chat
    with world.session() as s:
        view = outbox.outbox_view(
            session=s, actor=world.personas["worker"].actor, now=world.clock()
        )
        assert view.counts["dead"] == 1
        assert "超时" in view.attention[0].error_text
        outbox.retry_now(
            session=s,
            actor=world.personas["worker"].actor,
            delivery_id=delivery.id,
            now=world.clock(),
        )
        s.commit()
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "sent" and delivery.attempts == 1
    assert delivery.redelivered == 1  # counted: the timed-out post may have arrived
    assert len(receiver.of(url)) == 4


def test_wrong_secret_is_dead_at_once_with_the_reason(world: World, receiver: ChatReceiver) -> None:
    url = receiver.add("feishu", secret="right")
    world.add_channel(url, "feishu", secret="wrong")
    notify(world)
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "dead" and delivery.attempts == 1
    assert delivery.last_error_kind == "wrong_secret" and "19021" in (delivery.last_error or "")


def test_rate_limit_queues_and_never_drops(world: World, receiver: ChatReceiver) -> None:
    url = receiver.add("dingtalk")
    world.add_channel(url, "dingtalk", rate_per_minute=3)
    notify(world, 7)
    world.worker().run(once=True)
    assert states(world).count("sent") == 3
    waiting = [d for d in world.deliveries() if d.state == "pending"]
    assert len(waiting) == 4
    assert all(d.attempts == 0 for d in waiting)  # waiting for the rate is not an attempt
    assert all((d.next_attempt_at - world.clock()).total_seconds() >= 59 for d in waiting)
    world.clock.advance(61)
    world.worker().run(once=True)
    assert states(world).count("sent") == 6
    world.clock.advance(61)
    world.worker().run(once=True)
    assert states(world) == ["sent"] * 7
    titles = [r.json["markdown"]["title"] for r in receiver.of(url)]
    assert titles == [f"【通知】东门测温异常 {i}" for i in range(7)]  # in order
    with world.session() as s:
        times = sorted(
            s.scalars(DeliveryAttempt.__table__.select().with_only_columns(DeliveryAttempt.at))
        )
    for i in range(len(times) - 3):  # never more than 3 in any minute
        assert times[i + 3] - times[i] >= dt.timedelta(seconds=60)


def test_the_services_own_rate_limit_answer_waits_without_using_an_attempt(
    world: World, receiver: ChatReceiver
) -> None:
    url = receiver.add("wecom", script=["rate"])
    world.add_channel(url, "wecom")
    notify(world)
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "pending" and delivery.attempts == 0
    assert (delivery.next_attempt_at - world.clock()).total_seconds() >= 59
    world.clock.advance(61)
    world.worker().run(once=True)
    assert states(world) == ["sent"]


def test_urgent_messages_go_first(world: World, receiver: ChatReceiver) -> None:
    url = receiver.add("webhook", secret="k")
    world.add_channel(url, "webhook", secret="k", rate_per_minute=1)
    notify(world, 2, title="日常通知")
    with world.session() as s:
        service.send(
            session=s,
            community_id=world.grid.community.id,
            kind="alert",
            title="紧急：封控",
            urgency="urgent",
            to=[f"group@building:{world.grid.b5.id}"],
            now=world.clock(),
        )
        s.commit()
    world.worker().run(once=True)
    [got] = receiver.of(url)
    assert got.json["title"] == "紧急：封控"


def test_removed_chat_dead_letters_what_waits_for_it(world: World, receiver: ChatReceiver) -> None:
    from fengchao.notify import groups

    url = receiver.add("wecom")
    channel_id = world.add_channel(url, "wecom")
    notify(world)
    with world.session() as s:
        groups.remove_channel(
            session=s, actor=world.personas["worker"].actor, channel_id=channel_id
        )
        s.commit()
    world.worker().run(once=True)
    [delivery] = world.deliveries()
    assert delivery.state == "dead" and delivery.last_error_kind == "channel_removed"
    assert receiver.of(url) == []


def test_two_chats_are_sent_side_by_side(world: World, receiver: ChatReceiver) -> None:
    slow = receiver.add("wecom", script=["slow:0.8"])
    fast = receiver.add("wecom")
    world.add_channel(slow, "wecom", name="慢群")
    world.add_channel(fast, "wecom", name="快群")
    notify(world)
    world.worker().run(once=True)
    assert states(world) == ["sent", "sent"]
    # The fast chat was not kept waiting behind the slow one.
    assert receiver.of(fast)[0].at < receiver.of(slow)[0].at + 0.5


def test_a_lost_lease_does_not_overwrite_the_new_owner(
    world: World, receiver: ChatReceiver
) -> None:
    from fengchao.notify import channels as chans

    url = receiver.add("wecom")
    world.add_channel(url, "wecom")
    notify(world)
    with world.session() as s:
        [first] = outbox.claim(session=s, owner="A", now=world.clock())
        s.commit()
    world.clock.advance(30)  # A's lease ran out; B takes the delivery over
    with world.session() as s:
        [second] = outbox.claim(session=s, owner="B", now=world.clock())
        s.commit()
    with world.session() as s:
        state = outbox.record(
            session=s, claim=first, owner="A", outcome=chans.Outcome(True, status=200),
            started_at=world.clock(), duration_ms=5, now=world.clock(),
        )  # fmt: skip
        s.commit()
    assert state is None
    [delivery] = world.deliveries()
    assert delivery.state == "sending" and delivery.lease_owner == "B"
    assert delivery.redelivered == 1 and second.attempts == 2


def test_idle_claim_takes_no_write_lock_and_a_real_one_does(
    world: World, receiver: ChatReceiver
) -> None:
    from fengchao.db import WRITE_OPTION

    def writing(s: object) -> bool:
        return bool(s.connection().get_execution_options().get(WRITE_OPTION))  # type: ignore[attr-defined]

    sqlite = world.engine.dialect.name == "sqlite"
    with world.session() as s:
        assert outbox.claim(session=s, owner="A", now=world.clock()) == []
        assert not writing(s)  # an idle poll leaves SQLite's one write lock alone
    world.add_channel(receiver.add("wecom"), "wecom")
    notify(world)
    with world.session() as s:
        assert len(outbox.claim(session=s, owner="A", now=world.clock())) == 1
        assert writing(s) == sqlite  # BEGIN IMMEDIATE before changing rows
        begin_write(s)  # a no-op now
        s.commit()


def test_state_names_are_the_enum(world: World) -> None:
    assert {s.value for s in DeliveryState} == {"pending", "sending", "sent", "dead"}
