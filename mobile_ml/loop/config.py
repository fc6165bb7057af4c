"""The ``mobile-ml cycle`` TOML file: one typed, frozen table per step (unknown keys refused, as every config is).

Relative paths are relative to the TOML file; URLs (``s3://``, ``postgresql://``) stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from mobile_ml.config import build, read_toml
from mobile_ml.contracts.variants import ExportOptions
from mobile_ml.errors import ConfigError
from mobile_ml.monitor.stats import Thresholds
from mobile_ml.pipeline import BenchmarkStage
from mobile_ml.train.retrain import DEFAULT_BUDGET_PP

NEXT_PATCH = "next patch"


@dataclass(frozen=True)
class CycleSection:
    run: str  # the champion's run directory (the published model came from it)
    root: str  # the publish root: a directory or s3://BUCKET/PREFIX
    model: str  # the published model name
    channel: str = "beta"  # where a winning challenger is published
    out: str = "cycles"  # each cycle writes its evidence into OUT/<UTC timestamp>/


@dataclass(frozen=True)
class MonitorSection:
    db: str  # the server's --telemetry-db: a SQLite file or postgresql:// URL
    channel: str | None = None  # only this channel's aggregates (default: the whole fleet)
    psi_drift: float = Thresholds.drift_psi
    psi_warn: float = Thresholds.warn_psi
    min_count: int = Thresholds.min_count  # fleet samples below which there is no verdict

    def __post_init__(self) -> None:
        self.thresholds()  # refused when the file is read, not minutes into a cycle

    def thresholds(self) -> Thresholds:
        try:
            return Thresholds(warn_psi=self.psi_warn, drift_psi=self.psi_drift, min_count=self.min_count)
        except ValueError as e:
            raise ConfigError(str(e), hint="e.g. psi_warn = 0.1, psi_drift = 0.2, min_count = 500") from None


@dataclass(frozen=True)
class CaptureSection:
    store: str  # the server's --capture-store: a directory or s3://BUCKET/PREFIX
    min_labelled: int = 200  # labelled samples that are reason enough to retrain, drift or not
    since: str | None = None  # only batches received on or after this UTC day (e.g. the last cycle's)

    def __post_init__(self) -> None:
        if self.min_labelled < 3:
            raise ConfigError(f"min_labelled {self.min_labelled} is below 3", hint="a captured split needs 3 rows")
        self.since_time()

    def since_time(self) -> datetime | None:
        if self.since is None:
            return None
        try:
            ts = datetime.fromisoformat(self.since)
        except ValueError:
            raise ConfigError(f"since {self.since!r} is not a date", hint='e.g. since = "2026-11-20"') from None
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RetrainSection:
    budget: float = DEFAULT_BUDGET_PP  # accuracy points the challenger may lose on the original test split
    seed: int | None = None  # of the captured split; default: the run's training seed


@dataclass(frozen=True)
class PublishSection:
    key: str  # the signing key directory (private.pem), as for `mobile-ml publish --key`
    rollout: float = 10.0  # percent of the channel's devices offered the challenger
    version: str = NEXT_PATCH  # or an explicit version such as "1.1.0"

    def __post_init__(self) -> None:
        from mobile_ml.publish import manifest as mf

        mf.check_percent(self.rollout)
        if self.version != NEXT_PATCH:
            mf.parse_version(self.version)


@dataclass(frozen=True)
class CycleConfig:
    cycle: CycleSection
    monitor: MonitorSection
    capture: CaptureSection
    publish: PublishSection
    retrain: RetrainSection = field(default_factory=RetrainSection)
    export: ExportOptions = field(default_factory=ExportOptions)
    benchmark: BenchmarkStage | None = None  # no [benchmark] table: the challenger is not measured


def _rel(base: Path, path: str) -> str:
    return path if "://" in path or Path(path).is_absolute() else str(base / path)


def load_cycle_config(path: str | Path) -> CycleConfig:
    path = Path(path)
    config = build(CycleConfig, read_toml(path), origin_file=str(path))
    base = path.resolve().parent
    c = config.cycle
    return replace(
        config,
        cycle=replace(c, run=_rel(base, c.run), root=_rel(base, c.root), out=_rel(base, c.out)),
        monitor=replace(config.monitor, db=_rel(base, config.monitor.db)),
        capture=replace(config.capture, store=_rel(base, config.capture.store)),
        publish=replace(config.publish, key=_rel(base, config.publish.key)),
    )
