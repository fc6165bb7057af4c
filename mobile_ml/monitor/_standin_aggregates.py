# stand-in: replaced by loop-upload's module at merge (mobile_ml.deliver.telemetry.read_aggregates)
"""The stored aggregates, as ``read_aggregates`` will return them (docs: /work/brief/loop-interfaces.md).

Until loop-upload's table lands this reads a table ``aggregates (id, received_at, model, version, channel,
document)`` that tests fill through ``tests/monitor_fleet.py``; a store without the table has no aggregates.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mobile_ml.contracts import parse_document
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.manifest import format_time
from mobile_ml.deliver.telemetry_store import open_store


def read_aggregates(
    target: str | Path,
    *,
    model: str,
    channel: str | None = None,
    version: str | None = None,
    since: datetime | None = None,
) -> list[Aggregates]:
    sql = "SELECT document FROM aggregates WHERE model = ?"
    params: list[str] = [model]
    for column, value in (("channel", channel), ("version", version)):
        if value is not None:
            sql += f" AND {column} = ?"
            params.append(value)
    if since is not None:
        sql += " AND received_at >= ?"
        params.append(format_time(since))
    with open_store(target, read_only=True) as store:
        tables = store.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'aggregates'"
            if store.dialect == "sqlite"
            else "SELECT table_name FROM information_schema.tables WHERE table_name = 'aggregates'"
        )
        if not tables:
            return []
        rows = store.query(sql + " ORDER BY id", params)
    return [parse_document(Aggregates, text, where=f"{target}: aggregates") for (text,) in rows]
