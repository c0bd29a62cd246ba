"""Backup and restore of the whole database: every table read in one snapshot and written
as one portable file (``backup_format.py``), and restored into an empty database in one
transaction, in dependency order, after checking the key and the schema revision.

A SQLite backup restores into PostgreSQL and the other way round; memory stays flat
whatever the size of the community. ``fengchao backup`` and ``fengchao restore`` call this.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    literal,
    select,
    text,
    update,
)

from fengchao import __version__

# The errors, the header and read_header are part of this module's interface too.
from fengchao.backup_format import CHUNK_BYTES, codec, open_backup, start_backup
from fengchao.backup_format import BackupError as BackupError
from fengchao.backup_format import BackupHeader as BackupHeader
from fengchao.backup_format import Damaged as Damaged
from fengchao.backup_format import NotABackup as NotABackup
from fengchao.backup_format import WrongKey as WrongKey
from fengchao.backup_format import read_header as read_header
from fengchao.db import WRITE_OPTION, Base, utcnow
from fengchao.migrate import alembic_config, upgrade
from fengchao.models import load_all_models
from fengchao.web.i18n import _

ROWS_PER_BATCH = 1000

# Login sessions are not carried over: a restore signs everyone out, as it should after an
# incident, and a backup then holds no live session tokens' hashes or CSRF tokens. Nor are
# the counts of failed logins: typed names and client addresses kept for minutes to hours.
# Nor the leases of running workers: state of processes, not of the community.
NOT_BACKED_UP = frozenset({"login_session", "login_throttle", "worker_lease"})

Progress = Callable[[str, int, int], None]
"""Called with (table, rows done, rows in all) while a backup or restore runs."""


class SchemaMismatch(BackupError):
    """The backup or the database is of another schema revision than this version's."""


class TargetNotEmpty(BackupError):
    """A restore into a database that already holds rows."""

    def __init__(self, message: str, tables: dict[str, int]) -> None:
        super().__init__(message)
        self.tables = tables


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


# --- backup ------------------------------------------------------------------------------


@contextmanager
def _read_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction, so that every table is read at the same instant. On
    SQLite a deferred transaction (the engine's default) reads one WAL snapshot while the
    server goes on writing."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            with connection.begin():
                yield connection
            return
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
        writer = start_backup(out, header, data_key)
        done = 0
        for table in tables:
            encoders = [codec(c)[0] for c in table.columns]
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
        self.decoders = [codec(by_name[name])[1] for name in columns]
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
    header, records = open_backup(src, data_key)
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
    header, records = open_backup(src, data_key)
    expected = head_revision()
    if header.schema_revision != expected:
        raise SchemaMismatch(_restore_with_matching_version(header.schema_revision, expected))
    _prepare_target(engine, expected, replace)
    # A writing transaction from the start (BEGIN IMMEDIATE on SQLite): it reads, then
    # deletes and inserts, and must not fail halfway because the server wrote meanwhile.
    writing = engine.connect().execution_options(**{WRITE_OPTION: True})
    with writing as connection, connection.begin():
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
