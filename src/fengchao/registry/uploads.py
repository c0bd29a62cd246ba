"""The upload wizard's stored sheets: sealed with the data key, refused once expired, and
purged on a schedule (``jobs.py``, ``fengchao purge``) rather than whenever somebody
happens to upload again. A sheet is a whole community's personal data."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Actor
from fengchao.db import utcnow
from fengchao.registry.models import ImportUpload
from fengchao.settings import get_settings

# An imported upload holds no sheet any more; its row only refuses a replayed confirm.
IMPORTED_KEEP = dt.timedelta(days=1)


class UploadExpired(LookupError):
    """The upload is gone (purged, expired, or never this user's): upload again."""


def keep() -> dt.timedelta:
    """How long an unconfirmed upload may wait for its confirmation."""
    return dt.timedelta(minutes=get_settings().imports.upload_keep_minutes)


def _context(token: str) -> bytes:
    return b"import_upload:" + token.encode()


def store_upload(
    *,
    session: Session,
    actor: Actor,
    community_id: int,
    kind: str,
    filename: str,
    content: bytes,
    options: dict[str, Any],
) -> ImportUpload:
    """Keep a checked sheet until its confirmation, encrypted and bound to its token."""
    token = secrets.token_urlsafe(24)
    upload = ImportUpload(
        token=token,
        community_id=community_id,
        user_id=actor.user_id,
        kind=kind,
        filename=filename[:255],
        content=get_cipher().encrypt_bytes(content, context=_context(token)),
        options=options,
    )
    session.add(upload)
    session.flush()
    return upload


def find_upload(*, session: Session, actor: Actor, token: str) -> ImportUpload:
    """The actor's upload; :class:`UploadExpired` when it is gone, someone else's (which is
    not told apart), or waited longer than :func:`keep` without confirmation."""
    upload = session.scalar(
        select(ImportUpload).where(
            ImportUpload.token == token, ImportUpload.user_id == actor.user_id
        )
    )
    if upload is None:
        raise UploadExpired(token)
    if upload.imported_at is None and upload.created_at < utcnow() - keep():
        raise UploadExpired(token)
    return upload


def upload_content(upload: ImportUpload) -> bytes:
    """The sheet as uploaded; :class:`UploadExpired` when it cannot be opened (stored before
    encryption, or the data key changed since)."""
    try:
        return get_cipher().decrypt_bytes(upload.content, context=_context(upload.token))
    except (InvalidTag, ValueError):
        raise UploadExpired(upload.token) from None


def mark_upload_imported(upload: ImportUpload) -> None:
    """Once imported, the sheet itself is no longer kept; the row stays to refuse replays."""
    upload.imported_at = utcnow()
    upload.content = b""


def purge_expired_uploads(*, session: Session, now: dt.datetime | None = None) -> int:
    """Delete unconfirmed uploads older than :func:`keep` and imported ones older than a
    day; returns how many rows went."""
    now = now or utcnow()
    result = session.execute(
        delete(ImportUpload).where(
            or_(
                and_(ImportUpload.imported_at.is_(None), ImportUpload.created_at < now - keep()),
                ImportUpload.created_at < now - IMPORTED_KEEP,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
