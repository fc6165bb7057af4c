"""What ``mobile-ml benchmark TARGET`` measures: a .tflite file, a directory of them, an export directory
(``export.json`` beside variant folders) or a run / quickstart directory (all its exported variants)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.contracts import document_dict
from mobile_ml.contracts.export import read_export
from mobile_ml.errors import InputFileError
from mobile_ml.export import tflite_file
from mobile_ml.train.rundir import RunLayout


@dataclass(frozen=True)
class Target:
    name: str  # variant name, or the file's stem
    path: Path
    size_bytes: int
    export: dict[str, Any] | None = None  # the variant's row of export.json, when there is one


@dataclass(frozen=True)
class Resolved:
    """TARGET, resolved once: the models, the run's export.json when there is one, and the run directory when
    TARGET is a run (its test split is the input; --compare-keras times its Keras model)."""

    targets: tuple[Target, ...]
    export: dict[str, Any] | None
    run_dir: Path | None


def resolve(target: str | Path) -> Resolved:
    path = Path(target)
    if path.is_file():
        data = tflite_file.read_model_bytes(path)
        return Resolved((Target(path.stem, path, len(data)),), None, None)
    if not path.is_dir():
        raise InputFileError(f"{path} does not exist", hint="pass a .tflite file, an export directory or a run")
    run_dir = None
    for candidate in (path, RunLayout.of(path).exports):
        if (candidate / "export.json").is_file():
            if candidate != path:
                run_dir = candidate.parent
            path = candidate
            break
    else:
        models = sorted(path.glob("*.tflite"))
        if not models:
            raise InputFileError(
                f"{path} holds no .tflite files and no export.json",
                hint="export first (`mobile-ml export RUNDIR`) or pass a .tflite file",
            )
        return Resolved(tuple(Target(m.stem, m, m.stat().st_size) for m in models), None, None)
    report = read_export(path / "export.json")
    rows = [(v, path / v.file) for v in report.variants]
    targets = tuple(Target(v.variant.value, file, v.bytes, v.to_dict()) for v, file in rows if file.is_file())
    if not targets:
        raise InputFileError(f"{path} lists variants but none of their files exist", hint="export the run again")
    return Resolved(targets, document_dict(report), run_dir)


def default_out(target: str | Path) -> Path:
    """RUNDIR/benchmark for a run or its exports; NAME-benchmark/ beside a single .tflite file."""
    path = Path(target)
    if path.is_file():
        return path.with_name(f"{path.stem}-benchmark")
    if (path / "export.json").is_file():  # an exports directory: beside it, in its run
        return path.parent / "benchmark"
    return RunLayout.of(path).benchmark
