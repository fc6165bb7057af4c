"""Device telemetry: strict validation, SQLite (WAL) storage, and the summary that feeds the next training round.

Every value is bound as an SQL parameter, never formatted into SQL text; strings are stored verbatim. A batch is
validated whole before anything is written, and written in one transaction: a rejected batch stores nothing.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 64 * 1024
MAX_EVENTS = 100
EVENT_TYPES = ("update_check", "update_applied", "update_failed", "inference")
# field → (type, required, max length for strings)
FIELDS: dict[str, tuple[type, bool, int]] = {
    "install_id_hash": (str, True, 128),
    "model": (str, True, 64),
    "version": (str, True, 32),
    "app_version": (str, True, 32),
    "device_model": (str, True, 128),
    "event": (str, True, 32),
    "latency_ms": (float, False, 0),
    "error_code": (str, False, 64),
    "time": (str, False, 40),
}
_HEX = re.compile(r"^[0-9a-f]{16,128}$")

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
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(f"body over {MAX_BODY_BYTES} bytes", 413)
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"events"} or not isinstance(doc["events"], list):
        raise Invalid('body must be {"events": [...]}')
    events = doc["events"]
    if not events:
        raise Invalid("no events")
    if len(events) > MAX_EVENTS:
        raise Invalid(f"{len(events)} events; at most {MAX_EVENTS} per request", 413)
    out = []
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise Invalid(f"events[{i}] is not an object")
        unknown = set(e) - set(FIELDS)
        if unknown:
            raise Invalid(f"events[{i}] has unknown field '{sorted(unknown)[0]}'")
        row: dict[str, Any] = {}
        for name, (kind, required, limit) in FIELDS.items():
            if name not in e or e[name] is None:
                if required:
                    raise Invalid(f"events[{i}].{name} is missing")
                row[name] = None
                continue
            v = e[name]
            if kind is float:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise Invalid(f"events[{i}].{name} must be a non-negative number")
                v = float(v)
            elif not isinstance(v, str) or len(v) > limit or "\x00" in v:
                raise Invalid(f"events[{i}].{name} must be a string of at most {limit} characters")
            row[name] = v
        if row["event"] not in EVENT_TYPES:
            raise Invalid(f"events[{i}].event must be one of {', '.join(EVENT_TYPES)}")
        if not _HEX.match(row["install_id_hash"]):
            raise Invalid(f"events[{i}].install_id_hash must be a lowercase hex hash (never the raw install id)")
        out.append(row)
    return out


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

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

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


def summary(path: str | Path) -> list[SummaryRow]:
    from mobile_ml.benchmark.stats import percentile
    from mobile_ml.errors import InputFileError

    path = Path(path)
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
