"""Inference latency reports, kept in the state directory by ``device run`` until ``device sync`` sends them.

Why: the app reports each inference's latency (its InferenceTelemetry batches them and sends them after each update
check), but the reference client's ``device run`` never reported any, so `telemetry summary` had no latency from
it. A shell command has no server to talk to, so the reports wait in ``pending-inferences.json`` and go with the
next check's own report; they are removed only once the server accepted them. Best effort, like the app: at most
``MAX_PENDING`` wait (the oldest go first), and a damaged or unwritable file never fails a run or a check.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from mobile_ml.contracts import ContractError, read_document, write_document
from mobile_ml.contracts.inference_queue import MAX_PENDING, PendingInference, PendingInferences

PENDING = "pending-inferences.json"


def pending(state_dir: Path) -> PendingInferences:
    """What waits to be sent; a missing or damaged file is nothing (it is rewritten by the next record)."""
    path = state_dir / PENDING
    if not path.is_file():
        return PendingInferences()
    try:
        return read_document(PendingInferences, path)
    except ContractError:
        return PendingInferences()


def record(state_dir: Path, version: str, latency_ms: float, now: datetime | None = None) -> None:
    """Queue one inference report (never raises for a state directory it cannot write)."""
    record_many(state_dir, version, [latency_ms], now)


def record_many(state_dir: Path, version: str, latencies_ms: Sequence[float], now: datetime | None = None) -> None:
    """Queue a report per inference of one batch (``device run --input`` with many rows): one write for all."""
    when = now or datetime.now(timezone.utc)
    new = tuple(PendingInference(uuid.uuid4().hex, version, ms, when) for ms in latencies_ms)
    queue = pending(state_dir)
    _save(state_dir, replace(queue, events=(*queue.events, *new)[-MAX_PENDING:]))


def forget(state_dir: Path, sent: PendingInferences) -> None:
    """Remove the reports the server accepted (reports recorded since stay)."""
    ids = {e.event_id for e in sent.events}
    queue = pending(state_dir)
    _save(state_dir, replace(queue, events=tuple(e for e in queue.events if e.event_id not in ids)))


def _save(state_dir: Path, queue: PendingInferences) -> None:
    with contextlib.suppress(OSError):  # best effort: a read-only or full state directory still runs the model
        write_document(state_dir / PENDING, queue)
