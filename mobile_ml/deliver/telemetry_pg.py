"""The PostgreSQL adapter of the telemetry store (psycopg 3), imported only for a ``postgresql://`` target.

One connection per process, in autocommit mode with explicit transactions, reopened after it breaks: a server that
restarts under us costs the batches in flight (503, the device retries), not the serving process.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from mobile_ml.deliver.telemetry_store import (
    _LOCK_KEY,
    CONNECT_TIMEOUT_S,
    StorageError,
    TelemetryStore,
    _conninfo,
    describe,
)
from mobile_ml.errors import UserError


class PostgresStore(TelemetryStore):
    dialect = "postgresql"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        super().__init__(describe(url))
        self._url = url
        self._conn: psycopg.Connection[Any] | None = self._connect()
        try:
            with self._transaction() as cur:
                if read_only:
                    self._check_readable(cur)
                else:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))  # until commit: one migrator
                    self._migrate(cur)
        except StorageError as e:  # e.g. no right to create tables: the operator's to fix, before serving
            self.close()
            raise UserError(
                f"telemetry store {self.where} cannot be prepared: {e}", hint="check the database user's rights"
            ) from None

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="mobile-ml"
            )
        except psycopg.Error as e:
            raise unreachable(self._url, e) from None

    def add(self, rows: Sequence[dict[str, Any]]) -> int:
        try:
            return super().add(rows)
        except StorageError:
            if self._conn is None or not self._conn.broken:
                raise
            # The connection died while idle (the server restarted, a proxy's idle timeout): once more, on a new
            # one. Should it have died in COMMIT after all, events with an event_id are still stored once.
            return super().add(rows)

    def add_aggregates(self, row: dict[str, Any]) -> bool:
        try:
            return super().add_aggregates(row)
        except StorageError:
            if self._conn is None or not self._conn.broken:
                raise
            return super().add_aggregates(row)  # as in add; the snapshot id keeps a retried commit stored once

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="mobile-ml"
                )
            with self._conn.transaction(), self._conn.cursor() as cur:
                yield cur
        except psycopg.Error as e:
            raise StorageError(_scrub(" ".join(str(e).split()), self._url)) from None

    def _tables(self, cur: Any) -> set[str]:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in cur.fetchall()}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def unreachable(url: str, e: Exception) -> UserError:
    """One line naming host and database and what libpq said, without the password."""
    info = _conninfo(url)
    host, port, db = info.get("host") or "localhost", info.get("port") or "5432", info.get("dbname") or "(default)"
    reason = _scrub(" ".join(str(e).split()), url)
    reason = re.sub(r"^connection failed: ", "", reason)
    return UserError(
        f"cannot connect to PostgreSQL database {db} on host {host} port {port}: {reason}"[:400],
        hint="check that the server runs there, and the URL's user, password and database name",
    )


def _scrub(text: str, url: str) -> str:
    password = _conninfo(url).get("password")
    return text.replace(password, "***") if password else text
