"""Where telemetry lives: a SQLite file (the default, one server) or PostgreSQL (a ``postgresql://`` URL, any
number of servers and hosts), behind one interface.

The statements are written once, in SQL both engines run, with ``?`` placeholders; the PostgreSQL adapter turns
them into psycopg's ``%s``. Only the DDL differs (types, defaults), so each migration carries both spellings. The
schema is versioned in a ``schema_version`` table (one row per applied migration) and migrated by whoever opens the
store for writing (``serve``), inside one transaction that also holds a lock, so two servers starting at once
migrate once. A database written before versioning has an ``events`` table and no ``schema_version``: migration 1
adopts that table as it is (``IF NOT EXISTS``) and the later ones bring it up to date. Readers never migrate.

Driver errors while serving become ``StorageError`` (the server answers 503 and the device retries later); a store
that cannot be opened at all is a ``UserError`` naming the file, or the host and database (never the password).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.errors import InputFileError, UserError

SCHEMA_VERSION = 4
AGGREGATES_SINCE = 3  # the schema version that added the aggregates table
CONNECT_TIMEOUT_S = 5  # a server that does not answer the connection in this long counts as unreachable
_LOCK_KEY = 0x6D6D6C74  # pg_advisory_xact_lock key for migrations ("mmlt")


@dataclass(frozen=True)
class Migration:
    version: int
    why: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_V2 = (
    "ALTER TABLE events ADD COLUMN event_id TEXT",
    # Per install: one device can never shadow another's events by reusing their ids. NULLs never conflict, so
    # events from clients that send no id are all kept, as before.
    "CREATE UNIQUE INDEX events_by_event_id ON events (install_id_hash, event_id)",
)
# The channel the device follows: `release status` and `telemetry summary` count a channel's devices. NULL for events
# stored before, and from clients that do not send it.
_V4 = ("ALTER TABLE events ADD COLUMN channel TEXT",)
# The devices' counts against the baseline (POST /v1/aggregates): the whole document as received, plus the columns
# readers select by. Per install a snapshot id is stored once, so a device that lost the 202 may upload again.
_V3_INDEXES = (
    "CREATE UNIQUE INDEX aggregates_by_snapshot ON aggregates (install_id_hash, snapshot_id)",
    "CREATE INDEX aggregates_by_model ON aggregates (model, channel, version)",
)
_V3_COLUMNS = """install_id_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, channel TEXT NOT NULL,
    window_start TEXT NOT NULL, window_end TEXT NOT NULL, observations INTEGER NOT NULL, snapshot_id TEXT,
    document TEXT NOT NULL"""
MIGRATIONS = (
    Migration(
        1,
        "the events table (as written by mobile-ml before the schema was versioned)",
        sqlite=(
            """CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    install_id_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, app_version TEXT NOT NULL,
    device_model TEXT NOT NULL, event TEXT NOT NULL, latency_ms REAL, error_code TEXT, time TEXT
)""",
            "CREATE INDEX IF NOT EXISTS events_by_model ON events (model, version, device_model)",
        ),
        postgres=(
            """CREATE TABLE IF NOT EXISTS events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    install_id_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, app_version TEXT NOT NULL,
    device_model TEXT NOT NULL, event TEXT NOT NULL, latency_ms DOUBLE PRECISION, error_code TEXT, time TEXT
)""",
            "CREATE INDEX IF NOT EXISTS events_by_model ON events (model, version, device_model)",
        ),
    ),
    Migration(2, "event_id: a retried upload stores each event once", sqlite=_V2, postgres=_V2),
    Migration(
        3,
        "aggregates: device counts against the baseline, one row per uploaded snapshot",
        sqlite=(
            f"""CREATE TABLE aggregates (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    {_V3_COLUMNS}
)""",
            *_V3_INDEXES,
        ),
        postgres=(
            f"""CREATE TABLE aggregates (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    {_V3_COLUMNS}
)""",
            *_V3_INDEXES,
        ),
    ),
    Migration(4, "channel: the channel each event's device follows", sqlite=_V4, postgres=_V4),
)
AGGREGATE_COLUMNS = (
    "install_id_hash",
    "model",
    "version",
    "channel",
    "window_start",
    "window_end",
    "observations",
    "snapshot_id",
    "document",
)
_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"


class StorageError(Exception):
    """The store failed while serving (disk full, connection lost): the batch was not stored; retry later."""


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.split("://", 1)[0].lower() in ("postgresql", "postgres")


def describe(target: str | Path) -> str:
    """``target`` fit to print: a path as it is, a URL without its password."""
    if not is_url(target):
        return str(target)
    info = _conninfo(str(target))
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host') or 'localhost'}{port}/{info.get('dbname') or ''}"


def _conninfo(url: str) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return dict(conninfo_to_dict(url))
    except Exception as e:  # psycopg.ProgrammingError; its text may quote the URL, password included
        raise UserError(
            "the telemetry database URL cannot be parsed", hint="write it as postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from e


class TelemetryStore:
    """One connection to a telemetry store; ``add`` is safe from several threads of one process."""

    dialect = ""

    def __init__(self, where: str) -> None:
        self.where = where  # printable: no password
        self._lock = threading.Lock()

    def add(self, rows: Sequence[dict[str, Any]]) -> int:
        """Store a validated batch in one transaction; an event whose (install, event_id) is already stored is
        skipped, so a retried upload changes nothing. Returns the number of events accepted (all of them)."""
        from mobile_ml.deliver.telemetry import FIELDS

        cols = [*FIELDS, "event_id", "channel"]
        sql = (
            f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            "ON CONFLICT (install_id_hash, event_id) DO NOTHING"
        )
        params = [tuple(r.get(c) for c in cols) for r in rows]
        with self._lock, self._transaction() as cur:
            cur.executemany(self._sql(sql), params)
        return len(rows)

    def add_aggregates(self, row: dict[str, Any]) -> bool:
        """Store one validated aggregates row (``AGGREGATE_COLUMNS``); False when this install's snapshot id was
        already stored (a retried upload: nothing changes)."""
        cols = AGGREGATE_COLUMNS
        sql = (
            f"INSERT INTO aggregates ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
            "ON CONFLICT (install_id_hash, snapshot_id) DO NOTHING"
        )
        with self._lock, self._transaction() as cur:
            cur.execute(self._sql(sql), tuple(row[c] for c in cols))
            return bool(cur.rowcount == 1)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one SELECT written with ``?`` placeholders, in SQL both engines run."""
        with self._lock, self._transaction() as cur:
            cur.execute(self._sql(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    def schema_version(self) -> int:
        with self._lock, self._transaction() as cur:
            return self._version(cur)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> TelemetryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what each engine supplies ------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql

    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _tables(self, cur: Any) -> set[str]:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------------------------

    def _version(self, cur: Any) -> int:
        if "schema_version" not in self._tables(cur):
            return 1 if "events" in self._tables(cur) else 0  # a database from before the schema was versioned
        cur.execute("SELECT MAX(version) FROM schema_version")
        return int(cur.fetchone()[0] or 0)

    def _migrate(self, cur: Any) -> None:
        """Bring the schema to SCHEMA_VERSION; the caller holds the transaction (and, on PostgreSQL, the lock)."""
        found = self._version(cur)
        self._check_version(found)
        cur.execute(_VERSION_TABLE)
        if found == 1 and not self._count(cur, "schema_version"):
            cur.execute(self._sql("INSERT INTO schema_version VALUES (?, ?)"), (1, "adopted"))
        for m in MIGRATIONS:
            if m.version > found:
                for statement in m.postgres if self.dialect == "postgresql" else m.sqlite:
                    cur.execute(statement)
                cur.execute(self._sql("INSERT INTO schema_version VALUES (?, ?)"), (m.version, _now()))

    def _check_version(self, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise UserError(
                f"telemetry store {self.where} has schema version {found}; this mobile-ml knows up to {SCHEMA_VERSION}",
                hint="upgrade mobile-ml (pip install -U mobile-ml) on this machine",
            )

    def _check_readable(self, cur: Any) -> None:
        if "events" not in self._tables(cur):
            raise InputFileError(
                f"{self.where} is not a telemetry database (no events table)",
                hint="pass the --telemetry-db of `mobile-ml serve`",
            )
        self._check_version(self._version(cur))

    @staticmethod
    def _count(cur: Any, table: str) -> int:
        cur.execute(f"SELECT COUNT(*) FROM {table}")  # our own table names, never input
        return int(cur.fetchone()[0])


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def open_store(target: str | Path, *, read_only: bool = False) -> TelemetryStore:
    """The store at ``target``: a ``postgresql://`` URL, or else a SQLite file path. For writing, the schema is
    created or migrated; for reading, it must exist and be no newer than this code."""
    if is_url(target):
        try:
            from mobile_ml.deliver.telemetry_pg import PostgresStore
        except ModuleNotFoundError as e:
            if e.name != "psycopg":
                raise
            raise UserError(
                "a postgresql:// telemetry store needs psycopg, which is not installed",
                hint="pip install 'mobile-ml[postgres]'",
            ) from None
        return PostgresStore(str(target), read_only=read_only)
    return SQLiteStore(Path(target), read_only=read_only)


class SQLiteStore(TelemetryStore):
    dialect = "sqlite"

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        path = Path(path)
        super().__init__(str(path))
        if read_only and not path.is_file():
            raise InputFileError(
                f"telemetry database {path} not found", hint="pass the --telemetry-db of `mobile-ml serve`"
            )
        try:
            self._open_for_reading(path) if read_only else self._open_for_writing(path)
        except (StorageError, sqlite3.Error, OSError) as e:
            raise InputFileError(
                f"{path} is not a usable telemetry database: {e}",
                hint="pass the --telemetry-db of `mobile-ml serve`, or a new file",
            ) from None

    def _open_for_reading(self, path: Path) -> None:
        # A URI, so that mode=ro holds (no file created, nothing migrated); as_uri() escapes "?" and "#" in names.
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._db.isolation_level = None
        with self._transaction() as cur:
            self._check_readable(cur)

    def _open_for_writing(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction(immediate=True) as cur:  # the write lock first: two openers migrate once
            self._migrate(cur)

    @contextlib.contextmanager
    def _transaction(self, immediate: bool = False) -> Iterator[sqlite3.Cursor]:
        cur = self._db.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                self._db.rollback()
                raise
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e
        finally:
            cur.close()

    def _tables(self, cur: Any) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in cur.fetchall()}

    def close(self) -> None:
        self._db.close()
