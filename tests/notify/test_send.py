"""Sending: rows written in the caller's transaction, who a message reaches, idempotency
keys, and every message that cannot be sent as given refused by field."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.notify import groups, service
from fengchao.notify.models import Delivery, InboxItem, Notification, NotificationRecipient
from fengchao.notify.service import BadMessage, Recipient
from tests.conftest import Grid, Persona, make_persona

DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"


def inbox_users(session: Session, notification_id: int) -> set[int]:
    return set(
        session.scalars(
            select(InboxItem.user_id).where(InboxItem.notification_id == notification_id)
        )
    )


def add_chat(session: Session, worker: Persona, node: str, name: str = "居民群") -> int:
    channel = groups.save_channel(
        session=session,
        actor=worker.actor,
        form=groups.ChannelForm(node=node, name=name, kind="dingtalk", url=DINGTALK, secret="SECx"),
    )
    return channel.id


def test_building_lead_message_reaches_only_that_building(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    lead6 = make_persona(
        session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id)
    )
    sent = service.send(
        session=session,
        community_id=grid.community.id,
        kind="visitor",
        title="访客等待审批",
        to=[f"building_lead@building:{grid.b5.id}"],
    )
    assert inbox_users(session, sent.notification_id) == {lead5.user.id}
    assert lead6.user.id not in inbox_users(session, sent.notification_id)
    assert sent.reached_nobody == ()


def test_compound_message_reaches_the_leads_of_its_buildings(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    lead6 = make_persona(
        session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id)
    )
    elsewhere = make_persona(
        session,
        "lead-new-village",
        Role.building_lead,
        GridScope(ScopeLevel.compound, grid.other.id),
    )
    sent = service.send(
        session=session,
        community_id=grid.community.id,
        kind="positive",
        title="华润中央公园有阳性混管",
        to=[Recipient.at(Role.building_lead, ScopeLevel.compound, grid.park.id)],
    )
    assert inbox_users(session, sent.notification_id) == {lead5.user.id, lead6.user.id}
    assert elsewhere.user.id not in inbox_users(session, sent.notification_id)


def test_role_at_a_building_reaches_staff_responsible_from_above(
    session: Session, grid: Grid, worker: Persona, guard: Persona
) -> None:
    sent = service.send(
        session=session,
        community_id=grid.community.id,
        kind="help",
        title="求助无人接单",
        to=[f"community_worker@building:{grid.b5.id}"],
    )
    assert inbox_users(session, sent.notification_id) == {worker.user.id}  # not the guard


def test_role_with_nobody_there_is_kept_and_marked(session: Session, grid: Grid) -> None:
    sent = service.send(
        session=session,
        community_id=grid.community.id,
        kind="fever",
        title="东门测温异常",
        to=[f"property_staff@building:{grid.b6.id}", f"group@building:{grid.b6.id}"],
    )
    assert sent.inboxes == 0 and sent.deliveries == 0
    assert set(sent.reached_nobody) == {
        f"property_staff@building:{grid.b6.id}",
        f"group@building:{grid.b6.id}",
    }
    notification = session.get(Notification, sent.notification_id)
    assert notification is not None and notification.reached_nobody
    reached = session.scalars(
        select(NotificationRecipient.reached).where(
            NotificationRecipient.notification_id == sent.notification_id
        )
    ).all()
    assert reached == [0, 0]


def test_group_message_queues_one_delivery_per_chat(
    session: Session, grid: Grid, worker: Persona
) -> None:
    at5 = add_chat(session, worker, f"building:{grid.b5.id}")
    at_park = add_chat(session, worker, f"compound:{grid.park.id}", "小区群")
    add_chat(session, worker, f"building:{grid.b6.id}", "6号楼群")
    sent = service.send(
        session=session,
        community_id=grid.community.id,
        kind="alert",
        title="预警等级调整",
        urgency="urgent",
        to=[
            f"group@building:{grid.b5.id}",
            f"group@compound:{grid.park.id}",
            f"group@building:{grid.b5.id}",
        ],
    )
    deliveries = session.scalars(
        select(Delivery).where(Delivery.notification_id == sent.notification_id)
    ).all()
    assert {d.channel_id for d in deliveries} == {at5, at_park}  # the repeat counted once
    assert all(d.state == "pending" and d.priority == 2 and len(d.key) == 32 for d in deliveries)
    everywhere = service.send(
        session=session,
        community_id=grid.community.id,
        kind="alert",
        title="全社区",
        to=[Recipient.group(ScopeLevel.community, grid.community.id, below=True)],
    )
    assert everywhere.deliveries == 3


def test_nothing_is_written_when_the_caller_rolls_back(
    session: Session, grid: Grid, lead5: Persona
) -> None:
    before = session.scalar(select(func.count()).select_from(Notification))
    savepoint = session.begin_nested()
    service.send(
        session=session,
        community_id=grid.community.id,
        kind="fever",
        title="东门测温异常",
        to=[f"building_lead@building:{grid.b5.id}"],
    )
    savepoint.rollback()
    assert session.scalar(select(func.count()).select_from(Notification)) == before
    assert session.scalar(select(func.count()).select_from(InboxItem)) == 0


def test_same_key_sends_once(session: Session, grid: Grid, lead5: Persona) -> None:
    first = service.send(
        session=session,
        community_id=grid.community.id,
        kind="fever",
        title="东门测温异常",
        to=[f"building_lead@building:{grid.b5.id}"],
        key="gate-7:event-123",
    )
    again = service.send(
        session=session,
        community_id=grid.community.id,
        kind="fever",
        title="东门测温异常（重试）",
        to=[f"building_lead@building:{grid.b5.id}"],
        key="gate-7:event-123",
    )
    assert again.duplicate and again.notification_id == first.notification_id
    assert again.inboxes == first.inboxes == 1
    assert (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.key == "gate-7:event-123")
        )
        == 1
    )


def test_recipient_text_round_trips() -> None:
    for text in (
        "user:12",
        "building_lead@building:5",
        "group@compound:3",
        "group@community:1+below",
    ):
        assert str(Recipient.parse(text)) == text


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"title": "  "}, "title", "标题不能为空"),
        ({"title": "长" * 201}, "title", "标题太长"),
        ({"link": "https://evil.example/x"}, "link", "本平台内的路径"),
        ({"link": "//evil.example/x"}, "link", "本平台内的路径"),
        ({"urgency": "panic"}, "urgency", "紧急程度"),
        ({"to": []}, "to", "至少要有一个收件人"),
        ({"to": ["everyone"]}, "to", "写法不对"),
        ({"to": ["mayor@building:1"]}, "to", "没有 mayor 这个角色"),
        ({"to": ["guard@planet:1"]}, "to", "没有 planet 这一级网格"),
        ({"to": ["building_lead@building:999999"]}, "to", "不存在，或不属于本社区"),
        ({"to": ["user:999999"]}, "to", "没有这个在用的账号"),
        ({"community_id": 999999}, "community_id", "没有编号为 999999 的社区"),
        ({"kind": ""}, "kind", "消息类别"),
    ],
)
def test_bad_messages_are_refused_by_field(
    session: Session, grid: Grid, changes: dict[str, object], field: str, words: str
) -> None:
    arguments: dict[str, object] = {
        "community_id": grid.community.id,
        "kind": "fever",
        "title": "东门测温异常",
        "to": [f"building_lead@building:{grid.b5.id}"],
        **changes,
    }
    with pytest.raises(BadMessage) as refused:
        service.send(session=session, **arguments)  # type: ignore[arg-type]
    assert refused.value.field == field and words in refused.value.message


def test_node_of_another_community_is_refused(session: Session, grid: Grid) -> None:
    from tests.conftest import build_grid

    other = build_grid(session)
    with pytest.raises(BadMessage, match="不属于本社区"):
        service.send(
            session=session,
            community_id=grid.community.id,
            kind="fever",
            title="x",
            to=[f"building_lead@building:{other.b5.id}"],
        )
    outsider = make_persona(
        session, "outsider", Role.building_lead, GridScope(ScopeLevel.building, other.b5.id)
    )
    with pytest.raises(BadMessage, match="不负责本社区"):
        service.send(
            session=session,
            community_id=grid.community.id,
            kind="x",
            title="x",
            to=[f"user:{outsider.user.id}"],
        )
