"""A generic JSON webhook: the message as JSON, signed with HMAC-SHA256 in a header, with
an idempotency key the receiver can use to drop a message it already has."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from typing import ClassVar

from fengchao.notify.channels import HttpPost, Notifier, Outcome, RobotConfig, judge_by_status
from fengchao.notify.render import ChatMessage, fit_body, more_note

SIGNATURE_HEADER = "X-Fengchao-Signature"
TIMESTAMP_HEADER = "X-Fengchao-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 keyed with the secret over ``timestamp + "." + body``
    (the timestamp is signed too, so a receiver can refuse replays of old requests)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class JsonWebhook(Notifier):
    """Any receiver of JSON: ``{"id", "notification_id", "kind", "urgency", "title",
    "body", "link", "more_link", "community", "created_at"}`` posted with headers
    ``X-Fengchao-Timestamp`` (Unix seconds), ``X-Fengchao-Signature`` and
    ``Idempotency-Key`` (= ``id``, the same for every retry of one delivery). Any 2xx is
    success; 401/403 mean the receiver refused the signature."""

    kind: ClassVar[str] = "webhook"
    label: ClassVar[str] = "通用 Webhook（JSON）"
    max_bytes: ClassVar[int] = 16000
    # No service limit: the receiver is ours. 60 a minute unless the chat says otherwise.
    limits: ClassVar[tuple[tuple[int, float], ...]] = ((6000, 60.0),)
    default_per_minute: ClassVar[int | None] = 60
    secret_required: ClassVar[bool] = True
    deduplicates: ClassVar[bool] = True

    def request(self, message: ChatMessage, config: RobotConfig, now: dt.datetime) -> HttpPost:
        body, cut = fit_body(
            message.body, room=self.max_bytes, more=more_note(message.more_link, False)
        )
        payload = {
            "id": message.key,
            "notification_id": message.notification_id,
            "kind": message.kind,
            "urgency": message.urgency,
            "title": message.title,
            "body": body,
            "truncated": cut,
            "link": message.link,
            "more_link": message.more_link,
            "community": message.community,
            "created_at": message.created_at.isoformat(),
        }
        raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(now.timestamp()))
        headers = {TIMESTAMP_HEADER: timestamp, IDEMPOTENCY_HEADER: message.key}
        if config.secret:
            headers[SIGNATURE_HEADER] = webhook_signature(config.secret, timestamp, raw)
        return HttpPost(config.url, raw, headers)

    def judge(self, status: int, body: bytes) -> Outcome:
        if 200 <= status < 300:
            return Outcome(True, status=status)
        return judge_by_status(status, body[:200].decode("utf-8", errors="replace"))
