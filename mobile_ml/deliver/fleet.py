"""What the fleet runs now, read from telemetry: each install counted once, at the version of its latest report.

Every update check ends with a report of the version the device runs after it (``update_check``,
``update_applied``, ``update_failed``), and every inference report names the version that ran. Counting every install
that *ever* reported a version overstates the old version after an update and the new one after a rollback (once
1.0.0 showed 100 % and 1.1.0 23 %). So an install counts once, at its latest report.

Which report is latest: update reports outrank inference reports, then store order. A version changes only at a
check, so the latest check report is authoritative; inference events, though, are batched on the device and sent
after the next check (the app's InferenceTelemetry, ``device run`` then ``device sync``), so the last one received
may still name the version that check replaced. Inference reports decide only for an install whose check reports
never arrived (telemetry was off during checks, or an older client).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mobile_ml.deliver.telemetry_store import open_store

UPDATE_EVENTS = frozenset({"update_check", "update_applied", "update_failed"})
CHANNEL_SINCE = 4  # the store's schema version that added events.channel


@dataclass(frozen=True)
class Report:
    """One stored telemetry event, as the fleet views read it."""

    seq: int  # the store's id: a later report has a higher number
    received_at: str  # server time, "YYYY-MM-DDTHH:MM:SSZ" (the device's own clock is not trusted for order)
    model: str
    channel: str | None  # None: stored before the channel was recorded, or sent by a client that does not send it
    version: str
    device_model: str
    install: str  # the install id's hash
    event: str
    latency_ms: float | None

    @property
    def day(self) -> str:
        return self.received_at[:10]


def read_reports(target: str | Path, *, model: str | None = None) -> list[Report]:
    """Every stored event (of ``model``), in store order; ``target`` is a SQLite path or a ``postgresql://`` URL."""
    with open_store(target, read_only=True) as store:
        # A store that `serve` has not migrated yet has no channel column: readers never migrate.
        channel = "channel" if store.schema_version() >= CHANNEL_SINCE else "NULL"
        sql = (
            f"SELECT id, received_at, model, {channel}, version, device_model, install_id_hash, event, latency_ms "
            "FROM events"
        )
        params: tuple[str, ...] = ()
        if model is not None:
            sql, params = sql + " WHERE model = ?", (model,)
        rows = store.query(sql + " ORDER BY id", params)
    return [
        Report(int(i), str(at), m, c, v, d, inst, e, None if lat is None else float(lat))
        for i, at, m, c, v, d, inst, e, lat in rows
    ]


def _rank(r: Report) -> tuple[bool, int]:
    return (r.event in UPDATE_EVENTS, r.seq)


def latest(reports: Iterable[Report]) -> dict[tuple[str, str], Report]:
    """(model, install) → the report that says what that install runs now."""
    best: dict[tuple[str, str], Report] = {}
    for r in reports:
        key = (r.model, r.install)
        if key not in best or _rank(r) > _rank(best[key]):
            best[key] = r
    return best


def versions_now(reports: Iterable[Report]) -> Counter[str]:
    """Installs per version they run now."""
    return Counter(r.version for r in latest(reports).values())


def by_day(reports: Iterable[Report]) -> list[tuple[str, Counter[str]]]:
    """Per UTC day, oldest first: the installs that reported that day, counted at the version of their last report
    of the day."""
    days: dict[str, list[Report]] = {}
    for r in reports:
        days.setdefault(r.day, []).append(r)
    return [(day, versions_now(rs)) for day, rs in sorted(days.items())]
