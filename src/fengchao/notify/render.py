"""How a notification reads in a group chat: the same Chinese words for every service,
cut to the service's size limit with a link to the whole message (pure, no database)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from fengchao.web.i18n import _

URGENCY_LABELS = {"info": "提示", "normal": "通知", "urgent": "紧急"}


@dataclass(frozen=True)
class ChatMessage:
    """One notification as a chat receives it. ``link`` is the absolute address of the
    page the message is about, ``more_link`` that of the whole message in the platform
    (either may be None when no public address is configured). ``key`` is the
    delivery's idempotency key."""

    key: str
    notification_id: int
    kind: str
    urgency: str
    title: str
    body: str
    link: str | None
    more_link: str | None
    community: str
    created_at: dt.datetime
    timezone: str = "Asia/Shanghai"

    @property
    def urgency_label(self) -> str:
        return _(URGENCY_LABELS.get(self.urgency, "通知"))

    @property
    def time_text(self) -> str:
        return self.created_at.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M")

    @property
    def headline(self) -> str:
        """【紧急】Title: what a phone's notification banner shows."""
        return f"【{self.urgency_label}】{self.title}"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that takes at most ``max_bytes`` in UTF-8 (never half a
    character)."""
    if max_bytes <= 0:
        return ""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def fit_body(body: str, *, room: int, more: str) -> tuple[str, bool]:
    """``body`` when it fits in ``room`` UTF-8 bytes; otherwise its start followed by
    ``more`` (the note and link to the whole message), the two together within ``room``.
    Returns the text and whether it was cut. A message is cut, never refused."""
    if utf8_len(body) <= room:
        return body, False
    kept = cut_utf8(body, room - utf8_len(more)).rstrip()
    return kept + more, True


def more_note(more_link: str | None, markdown: bool) -> str:
    """The note that ends a cut message, with the link to the whole of it."""
    text = _("……（内容过长，已截断）")
    if more_link is None:
        return "\n" + text
    label = _("查看全文")
    return f"\n{text}[{label}]({more_link})" if markdown else f"\n{text}{label}：{more_link}"
