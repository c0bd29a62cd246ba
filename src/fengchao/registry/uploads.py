"""The upload wizard's stored sheets: sealed with the data key, refused once expired, and
purged on a schedule (``jobs.py``, ``fengchao purge``) rather than whenever somebody
happens to upload again. A sheet is a whole community's personal data.

Once imported, the sheet goes; what stays, sealed the same way and for as long as an
unconfirmed sheet may wait, is the error file of the rows the import skipped — the rows
the user still has to fix."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from fengchao.auth.crypto import get_cipher
from fengchao.auth.service import Actor, audit
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


def _errors_context(token: str) -> bytes:
    return b"import_errors:" + token.encode()


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


def mark_upload_imported(upload: ImportUpload, error_file: bytes | None = None) -> None:
    """Once imported, the sheet itself is no longer kept; the row stays to refuse replays,
    with the error file of the skipped rows (if any), sealed, for :func:`keep`."""
    upload.imported_at = utcnow()
    upload.content = b""
    upload.error_file = (
        get_cipher().encrypt_bytes(error_file, context=_errors_context(upload.token))
        if error_file
        else None
    )


def kept_error_file(upload: ImportUpload, now: dt.datetime | None = None) -> bytes:
    """The error file of an imported upload's skipped rows; :class:`UploadExpired` when it
    had none, is older than :func:`keep`, or cannot be opened."""
    now = now or utcnow()
    imported = upload.imported_at
    if not upload.error_file or imported is None or imported < now - keep():
        raise UploadExpired(upload.token)
    try:
        return get_cipher().decrypt_bytes(upload.error_file, context=_errors_context(upload.token))
    except (InvalidTag, ValueError):
        raise UploadExpired(upload.token) from None


def has_error_file(upload: ImportUpload) -> bool:
    """Whether :func:`kept_error_file` would give the file now."""
    imported = upload.imported_at
    return bool(upload.error_file) and imported is not None and imported >= utcnow() - keep()


def purge_expired_uploads(*, session: Session, now: dt.datetime | None = None) -> int:
    """Delete unconfirmed uploads older than :func:`keep` and imported ones older than a
    day, and empty error files kept longer than :func:`keep`; returns how many rows went
    or were emptied."""
    now = now or utcnow()
    result = session.execute(
        delete(ImportUpload).where(
            or_(
                and_(ImportUpload.imported_at.is_(None), ImportUpload.created_at < now - keep()),
                ImportUpload.created_at < now - IMPORTED_KEEP,
            )
        )
    )
    emptied = session.execute(
        update(ImportUpload)
        .where(ImportUpload.error_file.is_not(None), ImportUpload.imported_at < now - keep())
        .values(error_file=None)
    )
    return sum(int(getattr(r, "rowcount", 0) or 0) for r in (result, emptied))


def audit_error_file(*, session: Session, actor: Actor, upload: ImportUpload) -> None:
    """The error file holds the sheet's own rows (names, numbers): its download is a read."""
    audit(
        session=session,
        actor=actor,
        action="export",
        object_type="import_errors",
        object_id=upload.id,
        community_id=upload.community_id,
        filename=upload.filename,
    )
