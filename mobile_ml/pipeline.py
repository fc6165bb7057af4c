"""Whole-pipeline runs: ``quickstart`` on the built-in digits, ``pipeline CONFIG.toml`` on the user's data.

Output directory (profile → export written atomically, like every stage's):
    profile.json    the data profile
    data/           the prepared data directory (data.json + splits)
    run/            the training run directory (see mobile_ml.train.trainer)
    run/exports/    the exported TFLite variants (see mobile_ml.export.exporter)
    run/benchmark/  with a [benchmark] table: every variant measured (see mobile_ml.benchmark.runner)
With a ``[publish]`` table the recommended variant is then published, once the export gate passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mobile_ml.benchmark import report as benchmark_report
from mobile_ml.benchmark.runner import BenchmarkOptions, BenchmarkResult
from mobile_ml.benchmark.runner import run as run_benchmark
from mobile_ml.config import build, read_toml
from mobile_ml.contracts import document_dict
from mobile_ml.data.images import ImageOptions
from mobile_ml.data.prepare import BUILTIN_PREFIX, load_images, prepare, profile, source_type
from mobile_ml.data.spec import DataSpec
from mobile_ml.data.split import SplitOptions
from mobile_ml.data.tabular import TabularOptions
from mobile_ml.errors import ConfigError, GateError
from mobile_ml.export.exporter import export_run
from mobile_ml.export.options import ExportOptions
from mobile_ml.export.report import ExportResult, check_gate
from mobile_ml.outputs import atomic_dir, write_json
from mobile_ml.publish.publisher import ReleaseResult, publish_dev
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
class BenchmarkStage(BenchmarkOptions):
    """``[benchmark]``: the keys of `mobile-ml benchmark`, with quickstart's short phases as defaults.

    Every exported variant is measured on this machine once export recommends one; `mobile-ml benchmark RUNDIR`
    measures again with LiteRT's full defaults.
    """

    threads: tuple[int, ...] = (1,)
    warmup_seconds: float = 0.1  # seconds
    min_seconds: float = 0.3  # seconds


@dataclass(frozen=True)
class PublishStage:
    """``[publish]``: quickstart's publish step: the recommended variant, the next patch version, a signed manifest."""

    model: str  # model name in the publish root
    channel: str = "dev"
    root: str = "exports"  # a directory (relative to the TOML file) or s3://BUCKET/PREFIX
    key_dir: str = "keys/dev"  # signing key directory; a development key is created there if it has none


@dataclass(frozen=True)
class PipelineConfig:
    data: DataConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    export: ExportOptions = field(default_factory=ExportOptions)
    benchmark: BenchmarkStage | None = None  # no [benchmark] table: no benchmark
    publish: PublishStage | None = None  # no [publish] table: nothing is published
    out: str | None = None  # output directory; relative to the TOML file; --out overrides it


# profile → export on the built-in digits; `mobile-ml quickstart` adds BenchmarkStage() and PublishStage("digits").
QUICKSTART = PipelineConfig(
    data=DataConfig(source=f"{BUILTIN_PREFIX}digits"),
    train=TrainConfig(grid=replace(TrainConfig().grid, width=(16, 32))),
)


def _relative_to(base: Path, path: str) -> str:
    """A path from the TOML file, resolved against the file's directory (URLs such as s3:// stay as they are)."""
    return path if "://" in path or Path(path).is_absolute() else str(base / path)


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    config = build(PipelineConfig, read_toml(path), origin_file=str(path))
    base = path.resolve().parent
    source = config.data.source
    if not source.startswith(BUILTIN_PREFIX):
        source = _relative_to(base, source)
    out = None if config.out is None else _relative_to(base, config.out)
    publish = config.publish
    if publish is not None:
        publish = replace(publish, root=_relative_to(base, publish.root), key_dir=_relative_to(base, publish.key_dir))
    return replace(config, data=replace(config.data, source=source), out=out, publish=publish)


def load_train_config(path: str | Path) -> TrainConfig:
    """``[train]`` from a TOML file; a whole pipeline file is accepted too (its other sections are ignored)."""
    path = Path(path)
    raw = read_toml(path)
    unknown = set(raw) - {f.name for f in fields(PipelineConfig)}
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
    benchmark: BenchmarkResult | None = None  # when the config has [benchmark] and export recommends a variant
    release: ReleaseResult | None = None  # when the config has [publish] and the export gate passed

    def to_dict(self) -> dict[str, Any]:
        doc = {
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
        if self.benchmark is not None:
            doc["benchmark"] = document_dict(self.benchmark)
        if self.release is not None:
            doc["publish"] = self.release.to_dict()
        return doc


def run_pipeline(config: PipelineConfig, out: str | Path, *, force: bool = False, reporter=None) -> PipelineResult:
    """profile → prepare → train → export into ``out`` as one atomic unit, then benchmark and publish if configured.

    The export gate is not raised here: the caller decides (the CLI exits 3 after showing the evidence). It only
    decides whether there is anything to benchmark (a recommended variant) and to publish (the gate passed).
    """
    start = time.perf_counter()
    out = Path(out).absolute()
    stage = getattr(reporter, "stage", lambda name: None)
    report, spec, trained, exports = _build(config, out, force=force, reporter=reporter)
    bench = release = None
    if config.benchmark is not None and exports.recommended:
        stage("benchmark")
        run = PipelineLayout(out).run
        bench = run_benchmark(run.dir, config.benchmark, reporter=reporter)
        benchmark_report.write(bench, run.benchmark)
    if config.publish is not None and _gate_passes(exports):
        stage("publish")
        p = config.publish
        release = publish_dev(p.root, PipelineLayout(out).run.dir, model=p.model, channel=p.channel, key_dir=p.key_dir)
    return PipelineResult(out, report, spec, trained, exports, time.perf_counter() - start, bench, release)


def _gate_passes(exports: ExportResult) -> bool:
    try:
        check_gate(exports)
    except GateError:
        return False
    return True


def _build(
    config: PipelineConfig, out: Path, *, force: bool, reporter
) -> tuple[dict, DataSpec, TrainResult, ExportResult]:
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
    return report, spec, result, exports
