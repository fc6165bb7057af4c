"""Whole-pipeline runs: ``quickstart`` on the built-in digits, ``pipeline CONFIG.toml`` on the user's data.

Output directory (written atomically, like every stage's):
    profile.json    the data profile
    data/           the prepared data directory (data.json + splits)
    run/            the training run directory (see mobile_ml.train.trainer)
    run/exports/    the exported TFLite variants (see mobile_ml.export.exporter)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mobile_ml.config import build, read_toml
from mobile_ml.contracts import document_dict
from mobile_ml.data.images import ImageOptions
from mobile_ml.data.prepare import BUILTIN_PREFIX, load_images, prepare, profile, source_type
from mobile_ml.data.spec import DataSpec
from mobile_ml.data.split import SplitOptions
from mobile_ml.data.tabular import TabularOptions
from mobile_ml.errors import ConfigError
from mobile_ml.export.exporter import export_run
from mobile_ml.export.options import ExportOptions
from mobile_ml.export.report import ExportResult
from mobile_ml.outputs import atomic_dir, write_json
from mobile_ml.train.config import TrainConfig
from mobile_ml.train.rundir import PipelineLayout, load_run
from mobile_ml.train.trainer import TrainResult, train

PIPELINE_SCHEMA = "mobile_ml.pipeline_result"


@dataclass(frozen=True)
class DataConfig:
    source: str  # CSV path, image folder, or "builtin:digits"; relative paths are relative to the TOML file
    target: str | None = None  # target column (CSV only)
    clean: TabularOptions = field(default_factory=TabularOptions)
    split: SplitOptions = field(default_factory=SplitOptions)
    image: ImageOptions = field(default_factory=ImageOptions)


@dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportOptions = field(default_factory=ExportOptions)
    out: str | None = None  # output directory; relative to the TOML file; --out overrides it


QUICKSTART = PipelineConfig(
    data=DataConfig(source=f"{BUILTIN_PREFIX}digits"),
    train=TrainConfig(grid=replace(TrainConfig().grid, width=(16, 32))),
)


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    config = build(PipelineConfig, read_toml(path), origin_file=str(path))
    base = path.resolve().parent
    source = config.data.source
    if not source.startswith(BUILTIN_PREFIX) and not Path(source).is_absolute():
        source = str(base / source)
    out = config.out if config.out is None or Path(config.out).is_absolute() else str(base / config.out)
    return replace(config, data=replace(config.data, source=source), out=out)


def load_train_config(path: str | Path) -> TrainConfig:
    """``[train]`` from a TOML file; a whole pipeline file is accepted too (its other sections are ignored)."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - {"train", "data", "export", "out"}
    if unknown:
        raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}'", hint="a training config has a [train] table")
    section = raw.get("train", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: train must be a table ([train])", hint="see README.md")
    return build(TrainConfig, section, "train", str(path))


@dataclass(frozen=True)
class PipelineResult:
    out: Path
    profile: dict[str, Any]
    data: DataSpec
    train: TrainResult
    export: ExportResult
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PIPELINE_SCHEMA,
            "schema_version": 1,
            "out": str(self.out),
            "data": {
                "dir": str(PipelineLayout(self.out).data),
                "kind": self.data.kind,
                "counts": self.data.counts,
                "labels": self.data.labels,
                "dropped_columns": self.data.dropped_columns,
            },
            "train": self.train.to_dict(),
            "export": document_dict(self.export),
            "seconds": round(self.seconds, 3),
        }


def run_pipeline(config: PipelineConfig, out: str | Path, *, force: bool = False, reporter=None) -> PipelineResult:
    """profile → prepare → train → export, into ``out`` as one atomic unit.

    The export gate is not checked here: the caller decides (the CLI exits 3 after showing the evidence).
    """
    start = time.perf_counter()
    out = Path(out).absolute()
    stage = getattr(reporter, "stage", lambda name: None)
    with atomic_dir(out, force=force) as tmp:
        layout = PipelineLayout(tmp)
        d = config.data
        stage("profile")
        # Images are decoded once for both steps; a CSV is cheap to read twice.
        loaded = None if source_type(d.source) == "csv" else load_images(d.source, d.image)
        report = profile(d.source, target=d.target, image=d.image, loaded=loaded)
        write_json(layout.profile_json, report)
        stage("prepare")
        spec = prepare(
            d.source, layout.data, target=d.target, clean=d.clean, image=d.image, split=d.split, loaded=loaded
        )
        stage("train")
        result = train(layout.data, layout.run.dir, config.train, reporter=reporter)
        stage("export")
        exports = export_run(load_run(layout.run.dir), layout.run.exports, config.export, reporter=reporter)
    run = PipelineLayout(out).run
    result = replace(result, run_dir=run.dir)
    exports = replace(exports, run_dir=run.dir, exports_dir=run.exports)
    return PipelineResult(out, report, spec, result, exports, time.perf_counter() - start)
