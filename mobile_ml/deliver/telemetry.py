"""Device telemetry: strict validation, the optional ingest token, SQLite (WAL) storage, and the summary that feeds
the next training round.

Every value is bound as an SQL parameter, never formatted into SQL text; strings are stored verbatim. A batch is
validated whole before anything is written, and written in one transaction: a rejected batch stores nothing.
"""

from __future__ import annotations

import enum
import hmac
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.contracts import ContractError, Fields, StrictJSONError, loads
from mobile_ml.errors import ConfigError

MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 100
# Columns of the events table, in order; each event may carry exactly these fields.
FIELDS = (
    "install_id_hash",
    "model",
    "version",
    "app_version",
    "device_model",
    "event",
    "latency_ms",
    "error_code",
    "time",
)
_STRINGS = {"model": 64, "version": 32, "app_version": 32, "device_model": 128}  # required text: max length
_HEX = r"[0-9a-f]{16,128}"  # a hash of the install id, never the id itself
_TOKEN = r"[A-Za-z0-9._~+/-]{16,256}=*"  # RFC 6750 b64token, long enough not to be guessed


class EventType(str, enum.Enum):
    UPDATE_CHECK = "update_check"
    UPDATE_APPLIED = "update_applied"
    UPDATE_FAILED = "update_failed"
    INFERENCE = "inference"


EVENT_TYPES = tuple(e.value for e in EventType)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    install_id_hash TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, app_version TEXT NOT NULL,
    device_model TEXT NOT NULL, event TEXT NOT NULL, latency_ms REAL, error_code TEXT, time TEXT
);
CREATE INDEX IF NOT EXISTS events_by_model ON events (model, version, device_model);
"""


class Invalid(ValueError):
    """A telemetry body the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def validate(body: bytes) -> list[dict[str, Any]]:
    """The rows of a ``{"events": [...]}`` body, or ``Invalid``: strict JSON, closed objects, typed fields."""
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(f"body over {MAX_BODY_BYTES} bytes", 413)
    try:
        doc = loads(body)  # refuses deep nesting, huge numbers, duplicate keys, lone surrogates
    except StrictJSONError as e:
        raise Invalid(f"body is not accepted JSON: {e}") from None
    try:
        f = Fields(doc, "body")
        events = f.array("events")
        f.done()
        if not events:
            raise Invalid("no events")
        if len(events) > MAX_EVENTS:
            raise Invalid(f"{len(events)} events; at most {MAX_EVENTS} per request", 413)
        return [_event(Fields(e, f"events[{i}]")) for i, e in enumerate(events)]
    except ContractError as e:
        raise Invalid(e.message) from None


def _event(f: Fields) -> dict[str, Any]:
    row: dict[str, Any] = {"install_id_hash": f.string("install_id_hash", pattern=_HEX)}
    for name, limit in _STRINGS.items():
        row[name] = f.string(name, max_len=limit)
    row["event"] = f.choice("event", EventType).value
    row["latency_ms"] = f.opt_number("latency_ms", lo=0)
    row["error_code"] = f.opt_string("error_code", max_len=64)
    row["time"] = f.opt_string("time", max_len=40)
    f.done()
    for name, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            raise f.error(name, "contains a NUL character")
    return row


def check_token(token: str) -> str:
    """An ingest token the operator chose: printable, unguessable length (it travels as ``Bearer <token>``)."""
    if not re.fullmatch(_TOKEN, token):
        raise ConfigError(
            "the telemetry token must be 16-256 characters of A-Z a-z 0-9 . _ ~ + / - (then optional '=')",
            hint="generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return token


def token_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA_SQL)

    def add(self, rows: list[dict[str, Any]]) -> int:
        cols = list(FIELDS)
        sql = f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(rows)

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True)
class SummaryRow:
    model: str
    version: str
    device_model: str
    devices: int  # distinct install ids that reported this version on this device model
    adoption: float  # share of the model's devices (any version) that applied this version
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    inferences: int
    updates_applied: int
    updates_failed: int
    failure_rate: float | None  # failed / (applied + failed)


def _read_events(path: Path) -> list[tuple[Any, ...]]:
    from mobile_ml.errors import InputFileError

    if not path.is_file():
        raise InputFileError(
            f"telemetry database {path} not found", hint="pass the --telemetry-db of `mobile-ml serve`"
        )
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT model, version, device_model, install_id_hash, event, latency_ms FROM events"
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise InputFileError(f"{path} is not a telemetry database: {e}", hint="pass the --telemetry-db of serve") from e
    finally:
        db.close()
    return rows


def summary(path: str | Path) -> list[SummaryRow]:
    from mobile_ml.benchmark.stats import percentile

    rows = _read_events(Path(path))
    model_devices: dict[str, set[str]] = {}
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for model, version, device, install, event, latency in rows:
        model_devices.setdefault(model, set()).add(install)
        g = groups.setdefault(
            (model, version, device),
            {"devices": set(), "applied_devices": set(), "lat": [], "applied": 0, "failed": 0, "inferences": 0},
        )
        g["devices"].add(install)
        if event == "update_applied":
            g["applied"] += 1
            g["applied_devices"].add(install)
        elif event == "update_failed":
            g["failed"] += 1
        elif event == "inference":
            g["inferences"] += 1
            if latency is not None:
                g["lat"].append(latency)
    out = []
    for (model, version, device), g in sorted(groups.items()):
        lat = sorted(g["lat"])
        attempts = g["applied"] + g["failed"]
        out.append(
            SummaryRow(
                model,
                version,
                device,
                len(g["devices"]),
                len(g["applied_devices"]) / len(model_devices[model]),
                percentile(lat, 50) if lat else None,
                percentile(lat, 90) if lat else None,
                g["inferences"],
                g["applied"],
                g["failed"],
                g["failed"] / attempts if attempts else None,
            )
        )
    return out
