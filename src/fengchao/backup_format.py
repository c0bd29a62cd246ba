"""The backup file: rows as JSON lines, compressed, sealed in chunks with AES-GCM under a
key derived from the data key, written and read as a stream so that memory stays flat
however large the community. It reads and writes no database (``backup.py`` does).

The file::

    MAGIC | u32 header length | header (JSON) | SHA-256 of the header | chunk | chunk | ...
    chunk = u32 length | AES-GCM(key, nonce = 11-byte counter ‖ last-flag, data, aad = header)

The header is readable without the key (format, schema revision, time, source database,
row counts: no personal data) and is bound to every chunk as associated data. The nonce
numbers the chunks and marks the last one (the STREAM construction), so a chunk that is
altered, dropped, reordered or cut off fails its authentication. Inside, after
decompression, one JSON value per line: ``{"table": name, "columns": [...]}``, then one array
per row, then ``{"end": name, "rows": n}``; the stream closes with ``{"end_of_backup": true}``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import hashlib
import hmac
import json
import os
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, types

from fengchao.auth.crypto import derive_key
from fengchao.web.i18n import _

FORMAT = 1
MAGIC = b"FENGCHAO-BACKUP\n"
CHUNK_BYTES = 1 << 20  # compressed bytes per sealed chunk: memory per step, not per file
_LENGTH = struct.Struct(">I")
_TAG_BYTES = 16
_MAX_HEADER_BYTES = 1 << 20
_TEXT_BATCH_BYTES = 256 * 1024
_INFLATE_STEP = 4 << 20


class BackupError(Exception):
    """A refused backup or restore, with a message fit for the operator. A refused restore
    has written nothing."""


class NotABackup(BackupError):
    """The file is not a Fengchao backup, or one of a format this version cannot read."""


class WrongKey(BackupError):
    """The backup was sealed with another data key."""


class Damaged(BackupError):
    """The file is cut short, corrupted or altered."""


@dataclass(frozen=True)
class BackupHeader:
    """What a backup file says about itself, readable without the key."""

    schema_revision: str
    created_at: dt.datetime
    dialect: str
    fengchao_version: str
    tables: dict[str, int]
    chunk_bytes: int = CHUNK_BYTES
    format: int = FORMAT

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


# --- portable values ---------------------------------------------------------------------

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


def _unless_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _same(value: Any) -> Any:
    return value


def codec(column: Column[Any]) -> tuple[Encode, Decode]:
    """How a column's values become JSON and come back, whatever the database."""
    kind: Any = column.type
    if isinstance(kind, types.TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, types.Enum):  # before String: an Enum is a String
        enum_class = kind.enum_class
        encode = _unless_none(lambda v: v.value if isinstance(v, enum.Enum) else v)
        return encode, _unless_none(enum_class) if enum_class is not None else _same
    if isinstance(kind, types.DateTime):
        return _unless_none(dt.datetime.isoformat), _unless_none(dt.datetime.fromisoformat)
    if isinstance(kind, types.Date):
        return _unless_none(dt.date.isoformat), _unless_none(dt.date.fromisoformat)
    if isinstance(kind, types.Time):
        return _unless_none(dt.time.isoformat), _unless_none(dt.time.fromisoformat)
    if isinstance(kind, types.Interval):
        return (
            _unless_none(dt.timedelta.total_seconds),
            _unless_none(lambda s: dt.timedelta(seconds=s)),
        )
    if isinstance(kind, types.LargeBinary):
        return (
            _unless_none(lambda b: base64.b64encode(b).decode("ascii")),
            _unless_none(base64.b64decode),
        )
    if isinstance(kind, types.Uuid):
        return _unless_none(str), _unless_none(uuid.UUID) if kind.as_uuid else _same
    if isinstance(kind, types.Numeric) and kind.asdecimal:
        return _unless_none(str), _unless_none(decimal.Decimal)
    if isinstance(kind, types.JSON | types.String | types.Integer | types.Boolean | types.Float):
        return _same, _same
    raise TypeError(f"{column.table}.{column.name}: no portable form for {kind!r} in backups")


# --- sealing ---------------------------------------------------------------------------


def _keys(data_key: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """The file's sealing key and a check value that tells a wrong key from damage."""
    key = derive_key(data_key, b"fengchao/backup", salt=salt)
    check = derive_key(data_key, b"fengchao/backup/key-check", salt=salt, length=16)
    return key, check


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealedWriter:
    """JSON lines → zlib → AES-GCM chunks of at most ``chunk_bytes``."""

    def __init__(self, out: BinaryIO, key: bytes, aad: bytes, chunk_bytes: int) -> None:
        self._out = out
        self._aead = AESGCM(key)
        self._aad = aad
        self._chunk_bytes = chunk_bytes
        self._zip = zlib.compressobj(6)
        self._text: list[bytes] = []
        self._text_bytes = 0
        self._sealable = bytearray()
        self._counter = 0

    def line(self, value: Any) -> None:
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        self._text.append(data)
        self._text_bytes += len(data)
        if self._text_bytes >= _TEXT_BATCH_BYTES:
            self._compress()

    def _compress(self) -> None:
        self._sealable += self._zip.compress(b"".join(self._text))
        self._text.clear()
        self._text_bytes = 0
        self._seal_full_chunks()

    def _seal_full_chunks(self) -> None:
        while len(self._sealable) > self._chunk_bytes:
            self._seal(bytes(self._sealable[: self._chunk_bytes]), last=False)
            del self._sealable[: self._chunk_bytes]

    def close(self) -> None:
        """Seal what is left as the last chunk (possibly empty: the end is always marked)."""
        self._compress()
        self._sealable += self._zip.flush()
        self._seal_full_chunks()
        self._seal(bytes(self._sealable), last=True)

    def _seal(self, plain: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), plain, self._aad)
        self._out.write(_LENGTH.pack(len(sealed)) + sealed)
        self._counter += 1


def _cut_short(at: int) -> Damaged:
    return Damaged(_("备份文件不完整：在第 {at} 字节处中断（复制或写入没有完成？）").format(at=at))


def _opened_chunks(
    src: BinaryIO, key: bytes, aad: bytes, chunk_bytes: int, offset: int
) -> Iterator[bytes]:
    """The chunks' plaintexts in order; raises :class:`Damaged` at the first bad one."""
    aead = AESGCM(key)
    counter = 0
    prefix = src.read(_LENGTH.size)
    while True:
        if len(prefix) < _LENGTH.size:
            raise _cut_short(offset + len(prefix))
        (size,) = _LENGTH.unpack(prefix)
        if not _TAG_BYTES <= size <= chunk_bytes + _TAG_BYTES:
            raise Damaged(
                _("备份文件已损坏或被改动：第 {n} 段（字节 {at}）的长度不对").format(
                    n=counter + 1, at=offset
                )
            )
        body = src.read(size)
        if len(body) < size:
            raise _cut_short(offset + _LENGTH.size + len(body))
        following = src.read(_LENGTH.size)
        last = not following
        try:
            plain = aead.decrypt(_nonce(counter, last), body, aad)
        except InvalidTag:
            if last:
                try:
                    aead.decrypt(_nonce(counter, False), body, aad)
                except InvalidTag:
                    pass
                else:  # a sound chunk that was not sealed as the last one
                    raise _cut_short(offset + _LENGTH.size + size) from None
            raise Damaged(
                _("备份文件已损坏或被改动：第 {n} 段（字节 {start}–{end}）未通过校验").format(
                    n=counter + 1, start=offset, end=offset + _LENGTH.size + size - 1
                )
            ) from None
        yield plain
        if last:
            return
        offset += _LENGTH.size + size
        counter += 1
        prefix = following


def _records(chunks: Iterable[bytes]) -> Iterator[Any]:
    """Decompressed JSON lines, parsed, without holding more than a step of text."""
    unzip = zlib.decompressobj()
    pending = b""

    def lines(data: bytes) -> Iterator[Any]:
        nonlocal pending
        *complete, pending = (pending + data).split(b"\n")
        for line in complete:
            yield json.loads(line)

    try:
        for chunk in chunks:
            data = unzip.decompress(chunk, _INFLATE_STEP)
            yield from lines(data)
            while unzip.unconsumed_tail:
                yield from lines(unzip.decompress(unzip.unconsumed_tail, _INFLATE_STEP))
        yield from lines(unzip.flush())
    except (zlib.error, ValueError) as exc:  # json's errors are ValueErrors
        raise Damaged(_("备份内容无法读取：{e}").format(e=exc)) from None
    if not unzip.eof or unzip.unused_data or pending:
        raise Damaged(_("备份内容不完整"))


# --- the header --------------------------------------------------------------------------


def start_backup(out: BinaryIO, header: BackupHeader, data_key: bytes) -> SealedWriter:
    """Write the header of a backup; the writer returned takes its records."""
    salt = os.urandom(16)
    key, key_check = _keys(data_key, salt)
    header_bytes = json.dumps(
        {
            "format": FORMAT,
            "fengchao_version": header.fengchao_version,
            "schema_revision": header.schema_revision,
            "created_at": header.created_at.isoformat(),
            "dialect": header.dialect,
            "tables": header.tables,
            "compression": "zlib",
            "cipher": "AES-256-GCM, HKDF-SHA256 of the data key",
            "chunk_bytes": header.chunk_bytes,
            "salt": base64.b64encode(salt).decode(),
            "key_check": base64.b64encode(key_check).decode(),
        },
        ensure_ascii=False,
    ).encode()
    out.write(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes)
    out.write(hashlib.sha256(header_bytes).digest())
    return SealedWriter(out, key, header_bytes, header.chunk_bytes)


@dataclass(frozen=True)
class _Sealing:
    header: BackupHeader
    salt: bytes
    key_check: bytes
    header_bytes: bytes  # bound to every chunk
    offset: int  # where the first chunk starts


def _read_header(src: BinaryIO) -> _Sealing:
    if src.read(len(MAGIC)) != MAGIC:
        raise NotABackup(_("这不是蜂巢的备份文件（由 fengchao backup 生成）"))
    prefix = src.read(_LENGTH.size)
    (size,) = _LENGTH.unpack(prefix) if len(prefix) == _LENGTH.size else (-1,)
    if not 0 < size <= _MAX_HEADER_BYTES:
        raise Damaged(_("备份文件头已损坏"))
    header_bytes = src.read(size)
    digest = src.read(32)
    if len(header_bytes) < size or len(digest) < 32:
        raise _cut_short(len(MAGIC) + _LENGTH.size + len(header_bytes) + len(digest))
    if not hmac.compare_digest(hashlib.sha256(header_bytes).digest(), digest):
        raise Damaged(_("备份文件头已损坏"))
    try:
        fields = json.loads(header_bytes)
        found_format = int(fields["format"])
        if found_format != FORMAT:
            raise NotABackup(
                _("该备份的格式是 {found}，本版本的蜂巢只能读取格式 {known}").format(
                    found=found_format, known=FORMAT
                )
            )
        header = BackupHeader(
            schema_revision=str(fields["schema_revision"]),
            created_at=dt.datetime.fromisoformat(fields["created_at"]),
            dialect=str(fields["dialect"]),
            fengchao_version=str(fields["fengchao_version"]),
            tables={str(k): int(v) for k, v in fields["tables"].items()},
            chunk_bytes=int(fields["chunk_bytes"]),
        )
        salt = base64.b64decode(fields["salt"])
        key_check = base64.b64decode(fields["key_check"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise Damaged(_("备份文件头已损坏")) from None
    offset = len(MAGIC) + _LENGTH.size + size + 32
    return _Sealing(header, salt, key_check, header_bytes, offset)


def read_header(src: BinaryIO) -> BackupHeader:
    """What the backup says about itself (no key needed, nothing decrypted)."""
    return _read_header(src).header


def open_backup(src: BinaryIO, data_key: bytes) -> tuple[BackupHeader, Iterator[Any]]:
    """The header, and the records of a backup as they are authenticated and decoded; raises
    :class:`WrongKey` at once, :class:`Damaged` at the first bad byte."""
    sealing = _read_header(src)
    key, check = _keys(data_key, sealing.salt)
    if not hmac.compare_digest(check, sealing.key_check):
        raise WrongKey(
            _("该备份是用另一个数据密钥加密的：请用生成备份时的 FENGCHAO_SECURITY__DATA_KEY 恢复")
        )
    chunks = _opened_chunks(
        src, key, sealing.header_bytes, sealing.header.chunk_bytes, sealing.offset
    )
    return sealing.header, _records(chunks)
