"""The resident code (通行码): a personal QR code for the gate, the sampling site and duty
check-in, for residents who do not use face recognition (the law requires a way in
without the face).

The text is ``FC1-`` and 32 base32 characters (QR alphanumeric mode, a small version-2
symbol). It carries the person id, the community id and the code's version, sealed so that
nothing is readable without the server's key and nothing can be altered or made up:

    tag     = HMAC(k_mac, "FC1" ‖ payload)[:10]
    masked  = payload XOR HMAC(k_mask, tag)[:10]
    text    = "FC1-" + base32(tag ‖ masked)

(a synthetic-IV construction: deterministic, so a printed card and the phone show the same
code, and the tag both authenticates and hides the payload). Rotating the person's version
(``rotate_code``) voids every code shown or printed before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from functools import lru_cache

import segno
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql.elements import Label

from fengchao.access.models import ResidentCode
from fengchao.auth.crypto import derive_key
from fengchao.auth.service import (
    SYSTEM_ACTOR,
    Actor,
    NotFound,
    Permission,
    Refusal,
    audit,
    require,
)
from fengchao.db import begin_write, utcnow
from fengchao.registry import service as registry
from fengchao.settings import get_settings
from fengchao.web.i18n import _

PREFIX = "FC1-"
_PAYLOAD = struct.Struct(">IIH")  # person id, community id, version
_TAG_BYTES = 10
_TEXT_LENGTH = len(PREFIX) + 32
_SHAPE = re.compile(r"^FC1-[A-Z2-7]{32}$")


@dataclass(frozen=True)
class ResolvedCode:
    """Whose code it is, once its seal and version have been checked."""

    person_id: int
    community_id: int
    version: int


class CodeRefused(Refusal):
    """A code that does not let anyone in; ``code`` says why for machines (and tests):
    ``malformed``, ``forged``, ``other_community``, ``rotated`` or ``unknown_person``."""

    status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="code")
        self.code = code


@lru_cache(maxsize=4)
def _keys(data_key: bytes) -> tuple[bytes, bytes]:
    return (
        derive_key(data_key, b"fengchao/resident-code/mac"),
        derive_key(data_key, b"fengchao/resident-code/mask"),
    )


def _current_keys() -> tuple[bytes, bytes]:
    return _keys(get_settings().security.data_key_bytes())


def _mask(mask_key: bytes, tag: bytes) -> bytes:
    return hmac.new(mask_key, tag, hashlib.sha256).digest()[: _PAYLOAD.size]


def seal(person_id: int, community_id: int, version: int) -> str:
    """The code text for these values (pure; ``personal_code`` reads the version)."""
    mac_key, mask_key = _current_keys()
    payload = _PAYLOAD.pack(person_id, community_id, version)
    tag = hmac.new(mac_key, b"FC1" + payload, hashlib.sha256).digest()[:_TAG_BYTES]
    masked = bytes(a ^ b for a, b in zip(payload, _mask(mask_key, tag), strict=True))
    return PREFIX + base64.b32encode(tag + masked).decode()


def _normalise(text: str) -> str:
    # Scanners that type like a keyboard may add a newline or send lower case (Caps Lock).
    return text.strip().upper()


def looks_like_code(text: str) -> bool:
    """True when ``text`` has the shape of a resident code (nothing is verified): lets a
    scanner field tell a code from an ID number or a tube barcode."""
    return bool(_SHAPE.match(_normalise(text)))


def unseal(text: str) -> ResolvedCode:
    """The values sealed in ``text``; ``CodeRefused`` when it is not a code or was altered."""
    cleaned = _normalise(text)
    if len(cleaned) > 4 * _TEXT_LENGTH or not _SHAPE.match(cleaned):
        raise CodeRefused("malformed", _("这不是蜂巢通行码，请出示本人的通行码"))
    try:
        raw = base64.b32decode(cleaned[len(PREFIX) :])
    except (binascii.Error, ValueError) as error:
        raise CodeRefused("malformed", _("这不是蜂巢通行码，请出示本人的通行码")) from error
    tag, masked = raw[:_TAG_BYTES], raw[_TAG_BYTES:]
    mac_key, mask_key = _current_keys()
    payload = bytes(a ^ b for a, b in zip(masked, _mask(mask_key, tag), strict=True))
    expected = hmac.new(mac_key, b"FC1" + payload, hashlib.sha256).digest()[:_TAG_BYTES]
    if not hmac.compare_digest(tag, expected):
        raise CodeRefused("forged", _("通行码无效（可能被改动过），请到物业核实"))
    person_id, community_id, version = _PAYLOAD.unpack(payload)
    return ResolvedCode(person_id, community_id, version)


def current_version(session: Session, person_id: int) -> int:
    version = session.scalar(
        select(ResidentCode.version).where(ResidentCode.person_id == person_id)
    )
    return version or 1


def current_version_column(
    person_id: ColumnElement[int] | QueryableAttribute[int],
) -> Label[int]:
    """``current_version`` as a column of another slice's query about people: the sampling
    site reads it in the query that finds the person a code names (one round trip, not
    three). Check it with :func:`check_registered`."""
    return func.coalesce(
        select(ResidentCode.version).where(ResidentCode.person_id == person_id).scalar_subquery(),
        1,
    ).label("code_version")


def personal_code(session: Session, person_id: int) -> str:
    """The code text of a registered person (what their QR carries); ``LookupError`` when
    there is no such person. Callers check the reader's role and scope themselves."""
    community_id = registry.person_community(session=session, person_id=person_id)
    if community_id is None:
        raise LookupError(f"person {person_id}")
    return seal(person_id, community_id, current_version(session, person_id))


def unseal_for(text: str, *, community_id: int | None = None) -> ResolvedCode:
    """``unseal``, refused also when the code is of another community than the one given
    (no database read: what ``resolve_code`` checks before it reads the person)."""
    resolved = unseal(text)
    if community_id is not None and resolved.community_id != community_id:
        raise CodeRefused("other_community", _("这是其他社区的通行码，本社区不能使用"))
    return resolved


def check_registered(
    resolved: ResolvedCode, *, registered_community: int | None, version: int
) -> None:
    """What ``resolve_code`` checks once it has read the person: ``CodeRefused`` when the
    person is no longer registered (``registered_community`` None) or elsewhere, or when the
    code's version is not the person's current one (``current_version_column``)."""
    if registered_community is None or registered_community != resolved.community_id:
        raise CodeRefused("unknown_person", _("通行码对应的人员已不在登记中，请到物业核实"))
    if resolved.version != version:
        raise CodeRefused("rotated", _("此通行码已作废（已换发新码），请出示最新的通行码"))


def resolve_code(session: Session, text: str, *, community_id: int | None = None) -> ResolvedCode:
    """Whose code this is, checked against the seal, the community (when given) and the
    person's current version; ``CodeRefused`` otherwise."""
    resolved = unseal_for(text, community_id=community_id)
    registered = registry.person_community(session=session, person_id=resolved.person_id)
    if registered is None:
        check_registered(resolved, registered_community=None, version=0)
    check_registered(
        resolved,
        registered_community=registered,
        version=current_version(session, resolved.person_id),
    )
    return resolved


def rotate_code(session: Session, actor: Actor, person_id: int) -> str:
    """Issue the person a new code: every code shown or printed before stops working.
    Needs ``codes.issue`` and the person in the actor's scope."""
    require(actor, Permission.codes_issue)
    begin_write(session)
    if actor == SYSTEM_ACTOR:  # the command line: the whole database, no grid scope
        found = registry.person_community(session=session, person_id=person_id)
        if found is None:
            raise NotFound(f"person {person_id}")
        community_id = found
    else:
        view = registry.get_person(session=session, actor=actor, person_id=person_id)
        community_id = view.person.community_id
    row = session.get(ResidentCode, person_id)
    if row is None:
        row = ResidentCode(person_id=person_id, community_id=community_id, version=1)
        session.add(row)
    row.version += 1
    row.rotated_at = utcnow()
    session.flush()
    audit(
        session=session,
        actor=actor,
        action="rotate",
        object_type="resident_code",
        object_id=person_id,
        community_id=community_id,
        version=row.version,
    )
    return seal(person_id, community_id, row.version)


def qr_svg(text: str, *, scale: int = 4) -> str:
    """The QR of ``text`` as inline SVG (no style attributes, so it keeps to the CSP)."""
    return str(segno.make(text, error="m").svg_inline(scale=scale, omitsize=True))
