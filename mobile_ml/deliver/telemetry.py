"""Device telemetry: strict validation, the optional ingest token, and the summary that feeds the next training
round. Storage (SQLite by default, PostgreSQL for many servers) is ``telemetry_store``.

Every value is bound as an SQL parameter, never formatted into SQL text; strings are stored verbatim. A batch is
validated whole before anything is written, and written in one transaction: a rejected batch stores nothing. An
event may carry an ``event_id`` (the client's, random per event): a batch uploaded again after a lost reply is then
stored once.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts import ContractError, Fields, StrictJSONError, loads, parse_document
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.manifest import NAME
from mobile_ml.deliver.telemetry_store import (
    AGGREGATES_SINCE,
    SQLiteStore,
    StorageError,
    TelemetryStore,
    describe,
    is_url,
    open_store,
)
from mobile_ml.errors import ConfigError

__all__ = [  # the storage names are re-exported: the server and readers need only this module
    "EVENT_TYPES",
    "FIELDS",
    "MAX_BODY_BYTES",
    "MAX_EVENTS",
    "EventType",
    "Invalid",
    "StorageError",
    "Store",
    "SUMMARY_SCHEMA",
    "SUMMARY_SCHEMA_VERSION",
    "SummaryRow",
    "TelemetryStore",
    "check_token",
    "describe",
    "is_url",
    "open_store",
    "read_aggregates",
    "read_events",
    "summary",
    "token_matches",
    "validate",
]

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
_EVENT_ID = r"[A-Za-z0-9_-]{16,64}"  # e.g. a random UUID, hex or with dashes


class EventType(str, enum.Enum):
    UPDATE_CHECK = "update_check"
    UPDATE_APPLIED = "update_applied"
    UPDATE_FAILED = "update_failed"
    INFERENCE = "inference"


EVENT_TYPES = tuple(e.value for e in EventType)


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
    row["event_id"] = f.opt_string("event_id", pattern=_EVENT_ID)
    row["channel"] = f.opt_string("channel", pattern=NAME)  # optional: older clients do not send it
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


# Before PostgreSQL, the only store: code that constructs one from a path keeps working.
Store = SQLiteStore


# Version 2: devices counted once, at their latest report; a channel per row.
SUMMARY_SCHEMA, SUMMARY_SCHEMA_VERSION = "mobile_ml.telemetry_summary", 2


@dataclass(frozen=True)
class SummaryRow:
    model: str
    channel: str | None  # None: events from clients that do not send their channel
    version: str
    device_model: str
    devices: int  # installs whose latest report (``fleet.latest``) is this channel, version and device model
    adoption: float  # those installs' share of all the model's installs: the rows of a model add up to 1
    latency_p50_ms: float | None  # over every inference report of this group
    latency_p90_ms: float | None
    inferences: int
    updates_applied: int
    updates_failed: int
    failure_rate: float | None  # failed / (applied + failed)


def read_events(target: str | Path) -> list[tuple[Any, ...]]:
    """(model, version, device_model, install_id_hash, event, latency_ms) of every stored event."""
    with open_store(target, read_only=True) as store:
        return store.query("SELECT model, version, device_model, install_id_hash, event, latency_ms FROM events")


def read_aggregates(
    target: str | Path,
    *,
    model: str,
    channel: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
) -> list[Aggregates]:
    """Every stored aggregates document of ``model`` (optionally one channel, one version, and windows that end at
    or after ``since``), in the order the server received them. A store from before aggregates has none."""
    from mobile_ml.contracts.manifest import format_time

    where, params = ["model = ?"], [model]
    for column, value in (("channel", channel), ("version", version)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:  # stored as YYYY-MM-DDTHH:MM:SSZ, so text order is time order
        where.append("window_end >= ?")
        params.append(format_time(since if since.tzinfo else since.replace(tzinfo=timezone.utc)))
    with open_store(target, read_only=True) as store:
        if store.schema_version() < AGGREGATES_SINCE:
            return []
        rows = store.query(f"SELECT id, document FROM aggregates WHERE {' AND '.join(where)} ORDER BY id", params)
    return [parse_document(Aggregates, text, where=f"{describe(target)}: aggregates row {i}") for i, text in rows]


def summary(target: str | Path) -> list[SummaryRow]:
    """Per (model, channel, version, device model); ``target`` is a SQLite path or a ``postgresql://`` URL."""
    from mobile_ml.benchmark.stats import percentile
    from mobile_ml.deliver import fleet

    reports = fleet.read_reports(target)
    now = fleet.latest(reports)
    installs = Counter(model for model, _ in now)
    running = Counter((r.model, r.channel, r.version, r.device_model) for r in now.values())
    events: dict[tuple[str, str | None, str, str], Counter[str]] = {}
    latencies: dict[tuple[str, str | None, str, str], list[float]] = {}
    for r in reports:
        key = (r.model, r.channel, r.version, r.device_model)
        events.setdefault(key, Counter())[r.event] += 1
        if r.event == EventType.INFERENCE.value and r.latency_ms is not None:
            latencies.setdefault(key, []).append(r.latency_ms)
    out = []
    for key, n in sorted(events.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", *kv[0][2:])):
        lat = sorted(latencies.get(key, []))
        applied, failed = n[EventType.UPDATE_APPLIED.value], n[EventType.UPDATE_FAILED.value]
        model, channel, version, device = key
        out.append(
            SummaryRow(
                model,
                channel,
                version,
                device,
                running[key],
                running[key] / installs[model],
                percentile(lat, 50) if lat else None,
                percentile(lat, 90) if lat else None,
                n[EventType.INFERENCE.value],
                applied,
                failed,
                failed / (applied + failed) if applied + failed else None,
            )
        )
    return out
