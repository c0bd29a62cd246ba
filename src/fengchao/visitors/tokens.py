"""The visitor pass token (访客通行证): what the pass's QR carries.

``FV1-`` and base32 (QR alphanumeric mode) of ``payload ‖ tag``, where the payload holds
the pass id, the community, the validity window (minutes since the epoch, UTC), the
entries allowed and the gate ids, and ``tag = HMAC-SHA256(k, "FV1" ‖ payload)[:12]`` with
``k`` derived from the data key for this one purpose. Verified by its tag alone, without a
database read; revocation, used entries and a rotated poster are then read from the row.
Nothing in it is secret (the holder sees their own pass), but nothing can be altered.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

from fengchao.auth.crypto import derive_key
from fengchao.settings import get_settings

PREFIX = "FV1-"
_HEAD = struct.Struct(">IIIIHB")  # pass id, community, from, until (minutes), entries, gates
_TAG = 12
MAX_GATES = 16
MAX_TEXT = 200
_SHAPE = re.compile(r"^FV1-[A-Z2-7]{20,190}$")


class TokenRefused(ValueError):
    """Not a pass, or an altered one: ``code`` is ``malformed`` or ``forged``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class PassClaims:
    """What a verified token says."""

    pass_id: int
    community_id: int
    valid_from: dt.datetime
    valid_until: dt.datetime
    entries: int
    gate_ids: tuple[int, ...]


@lru_cache(maxsize=4)
def _key(data_key: bytes) -> bytes:
    return derive_key(data_key, b"fengchao/visitor-pass/mac")


def _current_key() -> bytes:
    return _key(get_settings().security.data_key_bytes())


def _minutes(moment: dt.datetime) -> int:
    return int(moment.timestamp() // 60)


def _moment(minutes: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(minutes * 60, dt.UTC)


def seal(claims: PassClaims) -> str:
    """The token text of these claims (pure)."""
    gates = claims.gate_ids[:MAX_GATES]
    payload = _HEAD.pack(
        claims.pass_id,
        claims.community_id,
        _minutes(claims.valid_from),
        _minutes(claims.valid_until),
        min(claims.entries, 65535),
        len(gates),
    ) + b"".join(struct.pack(">I", g) for g in gates)
    tag = hmac.new(_current_key(), b"FV1" + payload, hashlib.sha256).digest()[:_TAG]
    return PREFIX + base64.b32encode(payload + tag).decode().rstrip("=")


def looks_like_pass(text: str | None) -> bool:
    """True when ``text`` starts like a visitor pass (nothing verified)."""
    return bool(text) and text.strip().upper().startswith(PREFIX)  # type: ignore[union-attr]


def unseal(text: str) -> PassClaims:
    """The claims of ``text``; :class:`TokenRefused` when it is no pass or was altered."""
    cleaned = text.strip().upper()
    if len(cleaned) > MAX_TEXT or not _SHAPE.match(cleaned):
        raise TokenRefused("malformed")
    body = cleaned[len(PREFIX) :]
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise TokenRefused("malformed") from None
    if len(raw) < _HEAD.size + _TAG:
        raise TokenRefused("malformed")
    payload, tag = raw[:-_TAG], raw[-_TAG:]
    expected = hmac.new(_current_key(), b"FV1" + payload, hashlib.sha256).digest()[:_TAG]
    if not hmac.compare_digest(tag, expected):
        raise TokenRefused("forged")
    pass_id, community_id, start, end, entries, count = _HEAD.unpack(payload[: _HEAD.size])
    rest = payload[_HEAD.size :]
    if len(rest) != 4 * count:
        raise TokenRefused("malformed")
    gates = tuple(struct.unpack(f">{count}I", rest)) if count else ()
    return PassClaims(pass_id, community_id, _moment(start), _moment(end), entries, gates)
