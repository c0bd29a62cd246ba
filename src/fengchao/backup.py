"""Backup and restore of the whole database as one portable file: rows as JSON lines,
compressed, sealed in chunks with AES-GCM under a key derived from the data key, streamed
so that memory stays flat however large the community.

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    types,
    update,
)
from sqlalchemy.pool import NullPool

from fengchao import __version__
from fengchao.auth.crypto import derive_key
from fengchao.db import Base, utcnow
from fengchao.migrate import alembic_config, upgrade
from fengchao.models import load_all_models
from fengchao.web.i18n import _

FORMAT = 1
MAGIC = b"FENGCHAO-BACKUP\n"
CHUNK_BYTES = 1 << 20  # compressed bytes per sealed chunk: memory per step, not per file
ROWS_PER_BATCH = 1000
_LENGTH = struct.Struct(">I")
_TAG_BYTES = 16
_MAX_HEADER_BYTES = 1 << 20
_TEXT_BATCH_BYTES = 256 * 1024
_INFLATE_STEP = 4 << 20

# Login sessions are not carried over: a restore signs everyone out, as it should after an
# incident, and a backup then holds no live session tokens' hashes or CSRF tokens.
NOT_BACKED_UP = frozenset({"login_session"})

Progress = Callable[[str, int, int], None]
"""Called with (table, rows done, rows in all) while a backup or restore runs."""


class BackupError(Exception):
    """A refused backup or restore, with a message fit for the operator. A refused restore
    has written nothing."""


class NotABackup(BackupError):
    """The file is not a Fengchao backup, or one of a format this version cannot read."""


class WrongKey(BackupError):
    """The backup was sealed with another data key."""


class Damaged(BackupError):
    """The file is cut short, corrupted or altered."""


class SchemaMismatch(BackupError):
    """The backup or the database is of another schema revision than this version's."""


class TargetNotEmpty(BackupError):
    """A restore into a database that already holds rows."""

    def __init__(self, message: str, tables: dict[str, int]) -> None:
        super().__init__(message)
        self.tables = tables


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


# --- schema --------------------------------------------------------------------------


def backup_tables() -> list[Table]:
    """Every table a backup holds, parents before children."""
    load_all_models()
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_BACKED_UP]


def head_revision() -> str:
    """The schema revision this version of the code expects (the newest migration)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def _known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def database_revision(connection: Connection) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def _restore_with_matching_version(found: str, expected: str) -> str:
    return _(
        "备份的数据库结构版本是 {found}，本版本的蜂巢需要 {expected}：请用生成该备份的"
        "蜂巢版本恢复，再升级到本版本（fengchao migrate）"
    ).format(found=found, expected=expected)


# --- portable values ---------------------------------------------------------------------

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


def _unless_none(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _same(value: Any) -> Any:
    return value


def _codec(column: Column[Any]) -> tuple[Encode, Decode]:
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


class _SealedWriter:
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
        while len(self._sealable) > self._chunk_bytes:
            self._seal(bytes(self._sealable[: self._chunk_bytes]), last=False)
            del self._sealable[: self._chunk_bytes]

    def close(self) -> None:
        self._compress()
        self._sealable += self._zip.flush()
        while len(self._sealable) > self._chunk_bytes:
            self._seal(bytes(self._sealable[: self._chunk_bytes]), last=False)
            del self._sealable[: self._chunk_bytes]
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


def _unseal(src: BinaryIO, data_key: bytes) -> tuple[BackupHeader, Iterator[Any]]:
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


# --- backup ------------------------------------------------------------------------------


def _deferred_sqlite(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN below, not pysqlite's
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


@contextmanager
def _read_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction, so that every table is read at the same instant."""
    if engine.dialect.name == "sqlite":
        # The application's engine begins every transaction IMMEDIATE, a write lock held for
        # the whole backup. A deferred transaction in WAL mode reads one snapshot while the
        # server goes on writing.
        reader = create_engine(engine.url, poolclass=NullPool)
        event.listen(reader, "connect", _deferred_sqlite)
        event.listen(reader, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        try:
            with reader.connect() as connection, connection.begin():
                yield connection
        finally:
            reader.dispose()
        return
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield connection


def write_backup(
    engine: Engine,
    out: BinaryIO,
    *,
    data_key: bytes,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> BackupHeader:
    """Write every table of the database at ``engine`` to ``out`` as one sealed stream."""
    tables = backup_tables()
    expected = head_revision()
    with _read_snapshot(engine) as connection:
        revision = database_revision(connection)
        if revision is None:
            raise SchemaMismatch(_("数据库还没有建表，没有可备份的内容"))
        if revision != expected:
            raise SchemaMismatch(
                _(
                    "数据库的结构版本是 {found}，本版本的蜂巢需要 {expected}：请先运行 "
                    "fengchao migrate，或用与数据库相同版本的蜂巢备份"
                ).format(found=revision, expected=expected)
            )
        counts = {
            t.name: int(connection.scalar(select(func.count()).select_from(t)) or 0) for t in tables
        }
        header = BackupHeader(
            schema_revision=revision,
            created_at=utcnow().replace(microsecond=0),
            dialect=engine.dialect.name,
            fengchao_version=__version__,
            tables=counts,
            chunk_bytes=chunk_bytes,
        )
        salt = os.urandom(16)
        key, key_check = _keys(data_key, salt)
        header_bytes = json.dumps(
            {
                "format": FORMAT,
                "fengchao_version": header.fengchao_version,
                "schema_revision": header.schema_revision,
                "created_at": header.created_at.isoformat(),
                "dialect": header.dialect,
                "tables": counts,
                "compression": "zlib",
                "cipher": "AES-256-GCM, HKDF-SHA256 of the data key",
                "chunk_bytes": chunk_bytes,
                "salt": base64.b64encode(salt).decode(),
                "key_check": base64.b64encode(key_check).decode(),
            },
            ensure_ascii=False,
        ).encode()
        out.write(MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes)
        out.write(hashlib.sha256(header_bytes).digest())
        writer = _SealedWriter(out, key, header_bytes, chunk_bytes)
        done = 0
        for table in tables:
            encoders = [_codec(c)[0] for c in table.columns]
            writer.line({"table": table.name, "columns": [c.name for c in table.columns]})
            rows = 0
            result = connection.execution_options(
                stream_results=True, yield_per=ROWS_PER_BATCH
            ).execute(select(table).order_by(*table.primary_key.columns))
            for part in result.partitions():
                for row in part:
                    writer.line([encode(v) for encode, v in zip(encoders, row, strict=True)])
                rows += len(part)
                done += len(part)
                if progress:
                    progress(table.name, done, header.rows)
            if rows != counts[table.name]:  # cannot happen inside one snapshot
                raise BackupError(f"{table.name}: counted {counts[table.name]}, read {rows}")
            writer.line({"end": table.name, "rows": rows})
        writer.line({"end_of_backup": True, "tables": len(tables)})
        writer.close()
    return header


def backup_to_file(
    engine: Engine,
    path: Path,
    *,
    data_key: bytes,
    overwrite: bool = False,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> BackupHeader:
    """Write a backup to ``path``, readable by its owner only (0600). The file appears only
    when complete: a failed backup leaves no partial file and an older one in place."""
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with open(fd, "wb", buffering=1 << 20) as out:
            header = write_backup(
                engine, out, data_key=data_key, progress=progress, chunk_bytes=chunk_bytes
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return header


# --- restore -----------------------------------------------------------------------------

Sink = Callable[[Table, list[dict[str, Any]]], None]


class _TableLoad:
    """The rows of one table on their way in, with self-references set afterwards (a row may
    point at a row of its own table that comes later)."""

    def __init__(self, table: Table, columns: list[str], sink: Sink | None) -> None:
        by_name = {c.name: c for c in table.columns}
        if columns != list(by_name):
            raise SchemaMismatch(_("备份中表 {table} 的列与本版本不同").format(table=table.name))
        self.table = table
        self.columns = columns
        self.decoders = [_codec(by_name[name])[1] for name in columns]
        self.sink = sink
        self.rows = 0
        self.batch: list[dict[str, Any]] = []
        self.deferred_columns = [
            fk.parent.name
            for fk in table.foreign_keys
            if fk.column.table is table and fk.parent.nullable
        ]
        self.key_columns = [c.name for c in table.primary_key.columns]
        self.deferred: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def add(self, values: list[Any]) -> None:
        if len(values) != len(self.columns):
            raise Damaged(_("备份内容不完整"))
        row = {
            name: decode(v)
            for name, decode, v in zip(self.columns, self.decoders, values, strict=True)
        }
        later = {c: row[c] for c in self.deferred_columns if row[c] is not None}
        if later:
            self.deferred.append(({k: row[k] for k in self.key_columns}, later))
            row.update(dict.fromkeys(later))
        self.batch.append(row)
        self.rows += 1
        if len(self.batch) >= ROWS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch and self.sink is not None:
            self.sink(self.table, self.batch)
        self.batch = []

    def finish(self, connection: Connection | None) -> None:
        self.flush()
        if connection is None:
            return
        where = [self.table.c[k] == bindparam(f"fc_key_{k}") for k in self.key_columns]
        for column in self.deferred_columns:
            params = [
                {**{f"fc_key_{k}": v for k, v in key.items()}, "fc_value": later[column]}
                for key, later in self.deferred
                if column in later
            ]
            if params:
                statement = update(self.table).where(*where).values({column: bindparam("fc_value")})
                connection.execute(statement, params)


def _load(
    records: Iterator[Any],
    header: BackupHeader,
    connection: Connection | None,
    progress: Progress | None,
) -> None:
    """Check every record against the header and hand the rows on (to the database, or to
    nowhere when only verifying)."""
    tables = {t.name: t for t in backup_tables()}
    if set(header.tables) != set(tables):
        raise SchemaMismatch(_("备份中的表与本版本不同"))

    def sink(table: Table, rows: list[dict[str, Any]]) -> None:
        assert connection is not None
        connection.execute(insert(table), rows)

    order: list[str] = []
    current: _TableLoad | None = None
    done = 0
    finished = False
    try:
        for record in records:
            if finished:
                raise Damaged(_("备份内容在结尾之后还有数据"))
            if isinstance(record, list) and current is not None:
                current.add(record)
                done += 1
                if progress and done % ROWS_PER_BATCH == 0:
                    progress(current.table.name, done, header.rows)
            elif isinstance(record, dict) and "table" in record and current is None:
                name = record["table"]
                if name not in tables or name in order:
                    raise Damaged(_("备份内容不完整"))
                current = _TableLoad(
                    tables[name], record["columns"], sink if connection is not None else None
                )
            elif isinstance(record, dict) and "end" in record and current is not None:
                name = current.table.name
                if (
                    record["end"] != name
                    or not record["rows"] == current.rows == header.tables[name]
                ):
                    raise Damaged(_("备份中表 {table} 的行数不对").format(table=name))
                current.finish(connection)
                order.append(name)
                current = None
                if progress:
                    progress(name, done, header.rows)
            elif isinstance(record, dict) and record.get("end_of_backup") and current is None:
                if sorted(order) != sorted(header.tables):
                    raise Damaged(_("备份内容不完整"))
                finished = True
            else:
                raise Damaged(_("备份内容不完整"))
    except (KeyError, TypeError, ValueError) as exc:  # a value that does not decode
        raise Damaged(_("备份内容无法读取：{e}").format(e=exc)) from None
    if not finished:
        raise Damaged(_("备份内容不完整"))


def verify_backup(
    src: BinaryIO, *, data_key: bytes, progress: Progress | None = None
) -> BackupHeader:
    """Read and authenticate the whole backup and check it against this version's schema,
    without any database."""
    header, records = _unseal(src, data_key)
    expected = head_revision()
    if header.schema_revision != expected:
        raise SchemaMismatch(_restore_with_matching_version(header.schema_revision, expected))
    _load(records, header, None, progress)
    return header


def rows_held(connection: Connection) -> dict[str, int]:
    """Tables of the metadata that exist and hold rows, with their counts (a database not
    yet migrated may lack some)."""
    load_all_models()
    present = set(inspect(connection).get_table_names())
    held = {}
    for table in Base.metadata.sorted_tables:
        if table.name not in present:
            continue
        if connection.execute(select(literal(1)).select_from(table).limit(1)).first():
            held[table.name] = int(connection.scalar(select(func.count()).select_from(table)) or 0)
    return held


def _refuse_rows(held: dict[str, int]) -> TargetNotEmpty:
    listed = "、".join(f"{name}（{n}）" for name, n in held.items())
    return TargetNotEmpty(
        _(
            "目标数据库不是空的，这些表已有数据：{tables}。请恢复到新建的空数据库，"
            "或加 --replace 用备份替换其中全部数据"
        ).format(tables=listed),
        held,
    )


def _reset_sequences(connection: Connection) -> None:
    """After rows came in with their ids, PostgreSQL's sequences must continue after them
    (SQLite's next rowid is already max + 1)."""
    if connection.dialect.name != "postgresql":
        return
    preparer = connection.dialect.identifier_preparer
    for table in Base.metadata.sorted_tables:
        column = table.autoincrement_column
        if column is None:
            continue
        name = preparer.format_table(table)
        connection.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE(MAX({preparer.quote(column.name)}), 0) + 1, false) FROM {name}"
            ),
            {"table": name, "column": column.name},
        )


def _prepare_target(engine: Engine, expected: str, replace: bool) -> None:
    """Refuse a target of a version unknown here, or one holding rows (before migrating
    it, so that a refusal changes nothing); then bring it to this version's schema."""
    with engine.connect() as connection:
        current = database_revision(connection)
        if current is not None and current not in _known_revisions():
            raise SchemaMismatch(
                _(
                    "目标数据库的结构版本 {found} 不是本版本的蜂巢所知的版本（本版本为 "
                    "{expected}）：它来自更新的版本，请用那个版本恢复"
                ).format(found=current, expected=expected)
            )
        held = rows_held(connection)
    if held and not replace:
        raise _refuse_rows(held)
    upgrade(engine)


def restore_backup(
    engine: Engine,
    src: BinaryIO,
    *,
    data_key: bytes,
    replace: bool = False,
    progress: Progress | None = None,
) -> BackupHeader:
    """Restore a backup into the database at ``engine`` in one transaction.

    The database is first migrated to this version's schema, which must be the backup's.
    It must hold no rows, unless ``replace``: then every row goes, in the same transaction,
    so that a failed restore leaves the database as it was.
    """
    header, records = _unseal(src, data_key)
    expected = head_revision()
    if header.schema_revision != expected:
        raise SchemaMismatch(_restore_with_matching_version(header.schema_revision, expected))
    _prepare_target(engine, expected, replace)
    with engine.begin() as connection:
        held = rows_held(connection)  # again: rows may have come in meanwhile
        if held and not replace:
            raise _refuse_rows(held)
        for table in reversed(Base.metadata.sorted_tables):
            if table.name in held:
                connection.execute(delete(table))
        _load(records, header, connection, progress)
        _reset_sequences(connection)
    return header


def restore_from_file(
    engine: Engine,
    path: Path,
    *,
    data_key: bytes,
    replace: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> BackupHeader:
    """Restore (or with ``dry_run`` only verify) the backup at ``path``."""
    with path.open("rb", buffering=1 << 20) as src:
        if dry_run:
            return verify_backup(src, data_key=data_key, progress=progress)
        return restore_backup(engine, src, data_key=data_key, replace=replace, progress=progress)
