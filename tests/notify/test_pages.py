"""The pages: the bell and the inbox within each account's own messages, a message opened
only by those it reached (or staff of its community), group-chat settings with secrets
kept out of sight and the test button's answer, the outbox page with "retry now"."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.models import Role, ScopeLevel
from fengchao.auth.service import GridScope
from fengchao.notify import service
from fengchao.notify.models import Channel, Delivery, DeliveryState, InboxItem
from fengchao.notify.receiver import ChatReceiver
from fengchao.settings import NotifySettings
from tests.conftest import Browser, Grid, Live, Persona, build_grid, make_persona


def send_to(session: Session, grid: Grid, recipient: str, title: str, **kw: object) -> int:
    return service.send(
        session=session,
        community_id=grid.community.id,
        kind="visitor",
        title=title,
        body="访客在东门等待",
        to=[recipient],
        **kw,  # type: ignore[arg-type]
    ).notification_id


def bell_count(browser: Browser) -> int:
    page = browser.get("/notify/bell")
    assert page.status_code == 200  # type: ignore[attr-defined]
    found = re.search(r'class="count">(\d+)<', page.text)  # type: ignore[attr-defined]
    return int(found[1]) if found else 0


def csrf_of(html: str) -> str:
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def test_lead_sees_only_messages_of_their_building(
    session: Session, grid: Grid, lead5: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    make_persona(session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id))
    send_to(session, grid, f"building_lead@building:{grid.b5.id}", "5号楼访客待审批")
    send_to(session, grid, f"building_lead@building:{grid.b6.id}", "6号楼访客待审批")
    send_to(session, grid, f"building_lead@compound:{grid.park.id}", "小区通知")
    browser = login_as(lead5)
    assert bell_count(browser) == 2
    page = browser.get("/notify/inbox")
    assert "5号楼访客待审批" in page.text and "小区通知" in page.text
    assert "6号楼访客待审批" not in page.text
    api = browser.get("/api/notify/inbox").json()
    assert {item["title"] for item in api} == {"5号楼访客待审批", "小区通知"}
    assert browser.get("/api/notify/unread").json() == {"unread": 2}


def test_mark_read_updates_the_bell(session: Session, grid: Grid, lead5: Persona, login_as) -> None:  # type: ignore[no-untyped-def]
    send_to(session, grid, f"building_lead@building:{grid.b5.id}", "访客待审批")
    send_to(session, grid, f"building_lead@building:{grid.b5.id}", "第二条")
    browser = login_as(lead5)
    item = session.scalars(select(InboxItem).where(InboxItem.user_id == lead5.user.id)).first()
    assert item is not None
    marked = browser.post(f"/notify/inbox/{item.id}/read", headers={"HX-Request": "true"})
    assert marked.status_code == 200 and marked.headers["HX-Trigger"] == "notify-read"
    assert "标为已读" not in marked.text and "已读" in marked.text
    assert bell_count(browser) == 1
    everything = browser.post("/notify/inbox/read-all")
    assert everything.status_code == 303
    assert bell_count(browser) == 0


def test_bell_is_in_the_top_bar_for_every_role(session: Session, guard: Persona, login_as) -> None:  # type: ignore[no-untyped-def]
    page = login_as(guard).get("/", follow_redirects=True)  # the guard's room check
    assert 'hx-get="/notify/bell"' in page.text and 'href="/notify/inbox"' in page.text
    assert "<script>" not in page.text and "style=" not in page.text


def test_another_accounts_item_and_message_are_not_found(
    session: Session, grid: Grid, lead5: Persona, guard: Persona, worker: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    lead6 = make_persona(
        session, "lead6", Role.building_lead, GridScope(ScopeLevel.building, grid.b6.id)
    )
    note = send_to(
        session, grid, f"building_lead@building:{grid.b5.id}", "5号楼访客", detail="林国平 5-1-101"
    )
    item = session.scalars(select(InboxItem).where(InboxItem.notification_id == note)).one()
    other = login_as(lead6)
    assert other.post(f"/notify/inbox/{item.id}/read").status_code == 404
    assert other.get(f"/notify/messages/{note}").status_code == 404
    assert login_as(guard).get(f"/notify/messages/{note}").status_code == 404
    own = login_as(lead5).get(f"/notify/messages/{note}")
    assert own.status_code == 200 and "林国平 5-1-101" in own.text
    assert session.get(InboxItem, item.id).read_at is not None  # type: ignore[union-attr]
    staff = login_as(worker).get(f"/notify/messages/{note}")
    assert staff.status_code == 200 and f"building_lead@building:{grid.b5.id}" in staff.text


@pytest.mark.parametrize("persona", ["lead5", "guard"])
def test_staff_pages_refuse_other_roles(
    persona: str, request: pytest.FixtureRequest, login_as
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(request.getfixturevalue(persona))
    for path in ("/notify/channels", "/notify/outbox", "/notify/compose"):
        assert browser.get(path).status_code == 403


def add_form(browser: Browser, **fields: str) -> object:
    page = browser.get("/notify/channels")
    data = {"csrf_token": csrf_of(page.text), "name": "5号楼居民群", "kind": "dingtalk", **fields}  # type: ignore[attr-defined]
    return browser.post("/notify/channels", data=data)


def test_channel_form_refuses_bad_input_by_field(
    session: Session, grid: Grid, worker: Persona, login_as, notify_settings: NotifySettings
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    node = f"building:{grid.b5.id}"
    cases = [
        ({"node": node, "url": "ftp://robot.example/x"}, "http:// 或 https://"),
        ({"node": node, "url": "http://169.254.169.254/x"}, "链路本地"),
        ({"node": node, "url": "http://testserver/registry"}, "本平台自己"),
        (
            {
                "node": node,
                "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
                "kind": "webhook",
            },
            "必须设置签名密钥",
        ),
        (
            {
                "node": node,
                "url": "https://qyapi.weixin.qq.com/x?key=1",
                "kind": "wecom",
                "secret": "s",
            },
            "没有加签密钥",
        ),
        (
            {
                "node": node,
                "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
                "rate_per_minute": "50",
            },
            "1 到 20",
        ),
        (
            {
                "node": "building:999999",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
            },
            "不在您负责的范围内",
        ),
    ]
    for fields, words in cases:
        answer = add_form(browser, **fields)
        assert answer.status_code == 422, fields  # type: ignore[attr-defined]
        assert words in answer.text, (fields, words)  # type: ignore[attr-defined]
    assert session.scalars(select(Channel)).all() == []
    notify_settings.allow_private_networks = False
    answer = add_form(browser, node=node, url="http://127.0.0.1:9/hook")
    assert "本机或内网" in answer.text  # type: ignore[attr-defined]


def test_channel_secret_is_encrypted_and_never_shown(
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    token_url = "https://oapi.dingtalk.com/robot/send?access_token=feedface0123456789"
    answer = add_form(
        browser, node=f"building:{grid.b5.id}", url=token_url, secret="SECtopsecret", keyword="防疫"
    )
    assert answer.status_code == 303  # type: ignore[attr-defined]
    channel = session.scalars(select(Channel)).one()
    assert channel.secret_enc and channel.secret_enc.startswith("v1:")
    assert get_cipher().decrypt(channel.secret_enc) == "SECtopsecret"
    assert get_cipher().decrypt(channel.url_enc) == token_url
    for path in ("/notify/channels", f"/notify/channels/{channel.id}"):
        page = browser.get(path).text  # type: ignore[attr-defined]
        assert "SECtopsecret" not in page and "feedface0123" not in page
        assert "oapi.dingtalk.com/…6789" in page
    # Saving without a new secret or address keeps both.
    page = browser.get(f"/notify/channels/{channel.id}")
    changed = browser.post(
        f"/notify/channels/{channel.id}",
        data={
            "csrf_token": csrf_of(page.text),
            "node": f"building:{grid.b5.id}",
            "name": "改名",
            "kind": "dingtalk",
        },  # type: ignore[attr-defined]
    )
    assert changed.status_code == 303  # type: ignore[attr-defined]
    session.refresh(channel)
    assert (
        channel.name == "改名" and get_cipher().decrypt(channel.secret_enc or "") == "SECtopsecret"
    )
    assert get_cipher().decrypt(channel.url_enc) == token_url


def test_test_button_says_at_once_what_the_robot_answered(
    session: Session,
    grid: Grid,
    worker: Persona,
    login_as,
    receiver: ChatReceiver,
    notify_settings: NotifySettings,
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    node = f"building:{grid.b5.id}"
    url = receiver.add("dingtalk", secret="SECright")
    add_form(browser, node=node, url=url, secret="SECright", name="对的")
    add_form(browser, node=node, url=url, secret="SECwrong", name="错的")
    add_form(browser, node=node, url="http://127.0.0.1:1/robot/send?access_token=x", name="连不上")
    slow = receiver.add("wecom", script=["slow:2"])
    add_form(browser, node=node, url=slow, kind="wecom", name="超时")
    limited = receiver.add("feishu", script=["rate"])
    add_form(browser, node=node, url=limited, kind="feishu", name="限流")
    answers = {}
    for channel in session.scalars(select(Channel).order_by(Channel.id)):
        result = browser.post(f"/notify/channels/{channel.id}/test", headers={"HX-Request": "true"})
        assert result.status_code == 200  # type: ignore[attr-defined]
        answers[channel.name] = result.text  # type: ignore[attr-defined]
    assert "机器人已应答" in answers["对的"] and 'class="test-result ok"' in answers["对的"]
    assert "签名校验失败" in answers["错的"] and 'class="test-result bad"' in answers["错的"]
    assert "连不上机器人服务器" in answers["连不上"]
    assert "超时" in answers["超时"]
    assert "发送太频繁" in answers["限流"]
    [good] = [r for r in receiver.of(url) if r.verdict == "ok"]
    assert "测试消息" in good.json["markdown"]["title"]
    channel = session.scalars(select(Channel).where(Channel.name == "错的")).one()
    assert channel.last_test_ok is False and channel.last_test_error == "wrong_secret"
    listing = browser.get("/notify/channels").text  # type: ignore[attr-defined]
    assert "签名校验失败" in listing  # the last test's outcome stays on the page


def test_outbox_page_shows_dead_letters_and_retries_now(
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    add_form(
        browser,
        node=f"building:{grid.b5.id}",
        url="https://oapi.dingtalk.com/robot/send?access_token=x",
    )
    note = send_to(session, grid, f"group@building:{grid.b5.id}", "封控通知")
    send_to(session, grid, f"property_staff@building:{grid.b6.id}", "没人收的消息")
    delivery = session.scalars(select(Delivery).where(Delivery.notification_id == note)).one()
    delivery.state, delivery.attempts = DeliveryState.dead, 8
    delivery.last_error_kind, delivery.last_error = "wrong_secret", "errcode 310000: sign not match"
    session.flush()
    page = browser.get("/notify/outbox")
    assert page.status_code == 200
    assert "封控通知" in page.text and "签名校验失败" in page.text and "立即重试" in page.text
    assert "没人收的消息" in page.text and f"property_staff@building:{grid.b6.id}" in page.text
    assert "没有运行中的后台进程" in page.text
    retried = browser.post(
        f"/notify/deliveries/{delivery.id}/retry", data={"csrf_token": csrf_of(page.text)}
    )
    assert retried.status_code == 303
    session.refresh(delivery)
    assert delivery.state == "pending" and delivery.attempts == 0


def test_outbox_of_another_community_is_out_of_reach(
    session: Session, grid: Grid, worker: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    other = build_grid(session)
    outsider = make_persona(
        session,
        "outsider",
        Role.community_worker,
        GridScope(ScopeLevel.community, other.community.id),
    )
    browser = login_as(worker)
    add_form(
        browser,
        node=f"building:{grid.b5.id}",
        url="https://oapi.dingtalk.com/robot/send?access_token=x",
    )
    note = send_to(session, grid, f"group@building:{grid.b5.id}", "本社区的消息")
    delivery = session.scalars(select(Delivery).where(Delivery.notification_id == note)).one()
    foreign = login_as(outsider)
    assert "本社区的消息" not in foreign.get("/notify/outbox").text  # type: ignore[attr-defined]
    assert foreign.post(f"/notify/deliveries/{delivery.id}/retry").status_code == 404  # type: ignore[attr-defined]
    channel = session.scalars(select(Channel)).one()
    assert foreign.get(f"/notify/channels/{channel.id}").status_code == 404  # type: ignore[attr-defined]
    assert foreign.post(f"/notify/channels/{channel.id}/test").status_code == 404  # type: ignore[attr-defined]


def test_compose_sends_to_roles_and_groups_and_shows_who_was_reached(
    session: Session, grid: Grid, worker: Persona, lead5: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    page = browser.get("/notify/compose")
    refused = browser.post(
        "/notify/compose",
        data={"csrf_token": csrf_of(page.text), "node": f"building:{grid.b5.id}", "title": "x"},
    )
    assert refused.status_code == 422 and "至少选择一类收件人" in refused.text
    sent = browser.post(
        "/notify/compose",
        data={
            "csrf_token": csrf_of(page.text),
            "node": f"compound:{grid.park.id}",
            "roles": ["building_lead", "property_staff"],
            "groups": "true",
            "title": "明早 7:30 核酸",
            "body": "请通知到户",
        },
    )
    assert sent.status_code == 303
    message = browser.get(sent.headers["location"])
    assert "明早 7:30 核酸" in message.text and "没有送达任何人" in message.text
    assert bell_count(login_as(lead5)) == 1


def test_api_sends_a_notice_once_per_key(
    session: Session, grid: Grid, worker: Persona, lead5: Persona, login_as
) -> None:  # type: ignore[no-untyped-def]
    browser = login_as(worker)
    body = {
        "community_id": grid.community.id,
        "title": "预警调整",
        "to": [f"building_lead@building:{grid.b5.id}"],
        "key": "alert-2026-03-01",
    }
    first = browser.post("/api/notify/messages", json=body)
    again = browser.post("/api/notify/messages", json=body)
    assert first.status_code == again.status_code == 201  # type: ignore[attr-defined]
    assert (
        again.json()["duplicate"]
        and again.json()["notification_id"] == first.json()["notification_id"]
    )  # type: ignore[attr-defined]
    bad = browser.post("/api/notify/messages", json={**body, "to": ["nobody"], "key": None})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"  # type: ignore[attr-defined]
    lead = login_as(lead5)
    assert lead.post("/api/notify/messages", json=body).status_code == 403  # type: ignore[attr-defined]


# --- as production runs it --------------------------------------------------------------------


def live_csrf(client: TestClient, path: str) -> str:
    return csrf_of(client.get(path).text)


def test_live_channel_test_and_inbox(
    live: Live, receiver: ChatReceiver, notify_settings: NotifySettings
) -> None:
    worker = live.client("worker")
    url = receiver.add("webhook", secret="live-secret")
    added = worker.post(
        "/notify/channels",
        data={
            "csrf_token": live_csrf(worker, "/notify/channels"),
            "node": f"community:{live.grid.community.id}",
            "name": "社区工作群",
            "kind": "webhook",
            "url": url,
            "secret": "live-secret",
        },
    )
    assert added.status_code == 303, added.text
    with Session(live.engine) as s:
        channel_id = s.scalars(select(Channel.id).where(Channel.name == "社区工作群")).one()
    tested = worker.post(
        f"/notify/channels/{channel_id}/test",
        headers={"HX-Request": "true", "X-CSRF-Token": live_csrf(worker, "/notify/channels")},
    )
    assert tested.status_code == 200 and "机器人已应答" in tested.text
    assert worker.get("/audit").status_code == 403  # a worker; the test is audited below
    with Session(live.engine) as s:
        from fengchao.auth.models import AuditEvent

        actions = s.scalars(
            select(AuditEvent.action).where(AuditEvent.object_type == "notify_channel")
        ).all()
        assert "notify_channel_add" in actions and "notify_channel_test" in actions
    sent = worker.post(
        "/notify/compose",
        data={
            "csrf_token": live_csrf(worker, "/notify/compose"),
            "node": f"building:{live.grid.b5.id}",
            "roles": ["building_lead"],
            "title": "5号楼今晚消杀",
            "urgency": "urgent",
        },
    )
    assert sent.status_code == 303
    lead = live.client("lead5")
    assert 'class="count">1<' in lead.get("/notify/bell").text
    inbox = lead.get("/notify/inbox")
    assert "5号楼今晚消杀" in inbox.text and "紧急" in inbox.text
    assert 'class="count"' not in live.client("guard").get("/notify/bell").text


def test_served_app_and_a_worker_process_deliver_a_notice(
    receiver: ChatReceiver,
    tmp_path_factory: pytest.TempPathFactory,
    notify_settings: NotifySettings,
) -> None:
    """As production runs it: `uvicorn` serving the app, `fengchao worker` beside it."""
    from contextlib import contextmanager

    import httpx

    from fengchao.testing import served_app
    from tests.conftest import PASSWORD
    from tests.notify.conftest import make_world
    from tests.notify.test_worker import wait_for, worker_process

    folder = tmp_path_factory.mktemp("served-notify")
    with contextmanager(make_world)(folder) as world:
        url = receiver.add("feishu", secret="fs-secret", keyword="防疫")
        world.add_channel(url, "feishu", secret="fs-secret", keyword="防疫")
        database = world.engine.url.render_as_string(hide_password=False)
        with served_app(database, folder) as base, worker_process(world, folder):

            def login(persona: str) -> httpx.Client:
                client = httpx.Client(base_url=base, timeout=30)
                client.get("/login")
                client.post(
                    "/login",
                    data={
                        "username": world.personas[persona].user.username,
                        "password": PASSWORD,
                        "csrf_token": client.cookies.get("fc_csrf") or "",
                    },
                )
                return client

            staff, lead = login("worker"), login("lead5")
            try:
                page = staff.get("/notify/compose")
                sent = staff.post(
                    "/notify/compose",
                    data={
                        "csrf_token": csrf_of(page.text),
                        "node": f"building:{world.grid.b5.id}",
                        "roles": ["building_lead"],
                        "groups": "true",
                        "title": "5号楼明早核酸",
                        "body": "7:30 在小区南门",
                    },
                )
                assert sent.status_code == 303
                assert 'class="count">1<' in lead.get("/notify/bell").text
                wait_for(lambda: len(receiver.of(url)) == 1, 30)
                # The chat has it; the worker records that once the chat has answered (on a
                # busy machine a moment later, after its scheduled jobs' writes).
                wait_for(lambda: [d.state for d in world.deliveries()] == ["sent"], 30)
                outbox = staff.get("/notify/outbox").text
                assert "后台进程运行中" in outbox
            finally:
                staff.close()
                lead.close()
        [got] = receiver.of(url)
        assert got.verdict == "ok" and "5号楼明早核酸" in got.text and "防疫" in got.text
        assert "https://fengchao.example.org/notify/messages/" not in got.text  # not cut
        assert [d.state for d in world.deliveries()] == ["sent"]
