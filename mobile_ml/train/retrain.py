"""Retrain a run on captured samples and decide whether the challenger replaces the champion.

The captured directory is a prepared-data directory with the run's schema (what ``mobile-ml capture export`` writes).
Its labelled rows are pooled and split by seed into train, validation and a captured test split (``CAPTURED_SPLIT``).
The challenger is trained with the run's own config on the original train split plus the captured train rows,
selected on the original plus captured validation rows, and written as a normal run directory beside a
``retrain.json``. Both models are then scored on the original test split and on the captured test split:

    the challenger wins  ⇔  it is better on the captured test split (accuracy, ties broken by macro F1)
                            and loses at most ``budget_pp`` points of accuracy on the original test split.

The run's normalization (data.json) is kept: the challenger is the same model fed the same way, so an app that
runs the champion runs the challenger unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobile_ml.contracts import write_document
from mobile_ml.contracts._fields import ContractError
from mobile_ml.contracts.retrain import ModelScores, RetrainReport, Score, Verdict
from mobile_ml.contracts.run import CapturedSource, Metrics
from mobile_ml.data.spec import SPLITS, DataSpec, load_spec, load_split
from mobile_ml.data.split import SplitOptions, stratified_split
from mobile_ml.errors import ConfigError, DataError
from mobile_ml.outputs import check_destination, sha256_file
from mobile_ml.train.inputs import StreamedSplit, TrainInput, train_input
from mobile_ml.train.metrics import classification_metrics
from mobile_ml.train.rundir import Run, load_run
from mobile_ml.train.trainer import TrainData, TrainReporter, TrainResult, fit_run

if TYPE_CHECKING:
    from mobile_ml.train.trainer import Split

__all__ = ["CAPTURED_SPLIT", "RETRAIN_FILE", "RetrainResult", "check_schema", "decide", "load_captured", "retrain"]

RETRAIN_FILE = "retrain.json"
DEFAULT_BUDGET_PP = 1.0  # accuracy points the challenger may lose on the original test split
# Of the captured rows: train, validation, captured test. A fifth for each held-out set keeps the captured test
# split large enough to compare two models on while most captured rows still teach the challenger.
CAPTURED_SPLIT = (0.6, 0.2, 0.2)
_HINT = "pass a directory written by `mobile-ml capture export` for this run's model"


@dataclass(frozen=True)
class CapturedSet:
    """The labelled rows of a captured data directory, in the run's schema."""

    dir: Path
    spec: DataSpec
    x: np.ndarray
    y: np.ndarray  # label indices into the run's labels

    def take(self, rows: np.ndarray) -> Split:
        return self.x[rows], self.y[rows]


@dataclass(frozen=True)
class RetrainResult:
    run: TrainResult  # the challenger's run
    report: RetrainReport

    def to_dict(self) -> dict[str, Any]:
        from mobile_ml.contracts import document_dict

        return {**document_dict(self.report), "run_dir": str(self.run.run_dir)}


def retrain(
    rundir: str | Path,
    captured: str | Path,
    out: str | Path,
    *,
    budget_pp: float = DEFAULT_BUDGET_PP,
    seed: int | None = None,
    force: bool = False,
    reporter: TrainReporter | None = None,
) -> RetrainResult:
    """Train the challenger into ``out`` and compare it with ``rundir``'s model; nothing is written on bad input."""
    if not 0 <= budget_pp <= 100:
        raise ConfigError(f"--budget {budget_pp:g} must be between 0 and 100 percentage points", hint="e.g. --budget 1")
    if seed is not None and seed < 0:
        raise ConfigError(f"--seed {seed} must be ≥ 0", hint="e.g. --seed 42")
    run = load_run(rundir)
    out = Path(out).absolute()
    if out.resolve() in (run.dir.resolve(), Path(captured).resolve()):
        raise ConfigError(f"--out {out} would replace an input of the retraining", hint="choose a new directory")
    check_destination(out, force)  # refuse before loading anything heavy
    cap = load_captured(captured, run.spec)
    seed = run.info.config.seed if seed is None else seed
    parts = dict(zip(SPLITS, _split_rows(cap, seed), strict=True))
    captured_test = cap.take(parts["test"])
    champion = _scores(run, run.load_model(), run.split("test"), captured_test)
    data = TrainData(
        datadir=run.data_dir,
        spec=run.spec,
        train=_with_rows(train_input(run.data_dir, run.spec), cap.take(parts["train"])),
        validation=_concat(run.split("validation"), cap.take(parts["validation"])),
        test=run.split("test"),
        captured=CapturedSource(
            dir=os.path.relpath(cap.dir.absolute(), out),
            data_json_sha256=sha256_file(cap.dir / "data.json"),
            source=cap.spec.source,
            rows=len(cap.y),
            counts={k: int(len(v)) for k, v in parts.items()},
            seed=seed,
        ),
    )
    reports: list[RetrainReport] = []

    def finish(tmp: Path, model: Any, name: str, test: Metrics) -> None:
        challenger = ModelScores(str(out), name, _score(test), _score(_metrics(run, model, captured_test)))
        reports.append(decide(champion, challenger, budget_pp, seed))
        write_document(tmp / RETRAIN_FILE, reports[0])

    result = fit_run(data, out, run.info.config, force=force, reporter=reporter, finish=finish)
    return RetrainResult(result, reports[0])


def decide(champion: ModelScores, challenger: ModelScores, budget_pp: float, seed: int) -> RetrainReport:
    """The verdict: better on captured data (accuracy, then macro F1) and within ``budget_pp`` on the original."""
    gain = 100 * (challenger.captured.accuracy - champion.captured.accuracy)
    loss = 100 * (champion.original.accuracy - challenger.original.accuracy)
    better = gain > 1e-9 or (abs(gain) <= 1e-9 and challenger.captured.macro_f1 > champion.captured.macro_f1 + 1e-9)
    n = challenger.captured.examples
    if not better:
        verdict = Verdict.NOT_BETTER
        reason = (
            f"the challenger is not better on the captured test split ({n} rows): accuracy "
            f"{challenger.captured.accuracy:.1%} against the champion's {champion.captured.accuracy:.1%}"
        )
    elif loss > budget_pp + 1e-9:
        verdict = Verdict.OVER_BUDGET
        reason = (
            f"the challenger loses {loss:.1f} pp accuracy on the original test split, more than the budget of "
            f"{budget_pp:g} pp (it gains {gain:+.1f} pp on the captured test split)"
        )
    else:
        verdict = Verdict.WINS
        reason = (
            f"the challenger wins: {gain:+.1f} pp accuracy on the captured test split ({n} rows), "
            f"{-loss:+.1f} pp on the original test split (budget {budget_pp:g} pp)"
        )
    return RetrainReport(champion, challenger, budget_pp, seed, round(gain, 4), round(loss, 4), verdict, reason)


# ---------------------------------------------------------------------------------------------------- captured data


def load_captured(path: str | Path, run_spec: DataSpec) -> CapturedSet:
    """Every labelled row of the captured directory ``path``, after checking it has the run's schema.

    A row whose label index is negative is an unlabelled sample and is skipped; a directory without labelled rows is
    refused (a ``DataError``), as is one whose data.json describes other inputs or labels.
    """
    path = Path(path)
    spec = _captured_spec(path)
    check_schema(run_spec, spec, where=str(path))
    xs, ys = zip(*(load_split(path, spec, name) for name in SPLITS), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(y) and int(y.max()) >= run_spec.num_classes:
        raise DataError(
            f"{path}: label index {int(y.max())} is outside the run's {run_spec.num_classes} labels", hint=_HINT
        )
    labelled = y >= 0
    if not labelled.any():
        raise DataError(f"{path} has no labelled samples: there is nothing to retrain on", hint=_LABEL_HINT)
    return CapturedSet(path, spec, x[labelled], y[labelled])


_LABEL_HINT = 'capture samples with a label (`device run --label Y`, "was this right?" in the app), then export again'


def _captured_spec(path: Path) -> DataSpec:
    """data.json of the captured directory; one whose every split is empty is "no labelled samples", not damage."""
    try:
        return load_spec(path)
    except ContractError:
        try:
            counts = json.loads((path / "data.json").read_text(encoding="utf-8")).get("counts")
        except (OSError, ValueError, AttributeError):
            counts = None
        if isinstance(counts, dict) and counts and not any(counts.values()):
            raise DataError(f"{path} has no labelled samples: every split is empty", hint=_LABEL_HINT) from None
        raise


def check_schema(run: DataSpec, captured: DataSpec, *, where: str) -> None:
    """A ``DataError`` naming the first label, feature, column or image property where ``captured`` differs."""
    if captured.kind != run.kind:
        raise DataError(f"{where} holds {captured.kind} data, the run was trained on {run.kind} data", hint=_HINT)
    _same_list("label", run.labels, captured.labels, where)
    if run.target != captured.target:
        raise DataError(f"{where}: target column {captured.target!r}, the run has {run.target!r}", hint=_HINT)
    if run.image is not None and captured.image is not None:
        for prop in ("height", "width", "channels", "value_range"):
            theirs, ours = getattr(captured.image, prop), getattr(run.image, prop)
            if tuple(np.atleast_1d(theirs)) != tuple(np.atleast_1d(ours)):
                raise DataError(f"{where}: image {prop} is {theirs}, the run's is {ours}", hint=_HINT)
    _same_list("feature", run.features, captured.features, where)
    kinds = {c.name: c.kind for c in captured.columns}
    for col in run.columns:
        if col.name not in kinds:
            raise DataError(f"{where} has no column {col.name!r}", hint=_HINT)
        if kinds[col.name] != col.kind:
            raise DataError(f"{where}: column {col.name!r} is {kinds[col.name]}, the run's is {col.kind}", hint=_HINT)


def _same_list(what: str, ours: list[str], theirs: list[str], where: str) -> None:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        if a != b:
            raise DataError(f"{where}: {what} {i + 1} is {b!r} where the run has {a!r}", hint=_HINT)
    if len(theirs) < len(ours):
        raise DataError(f"{where} has no {what} {ours[len(theirs)]!r} (the run's {what} {len(theirs) + 1})", hint=_HINT)
    if len(theirs) > len(ours):
        raise DataError(f"{where} has an extra {what} {theirs[len(ours)]!r} the run does not have", hint=_HINT)


def _split_rows(cap: CapturedSet, seed: int) -> tuple[np.ndarray, ...]:
    """Row indices of the captured train, validation and test splits: stratified when every class allows it."""
    train, validation, test = CAPTURED_SPLIT
    for stratify in (True, False):
        try:
            return tuple(stratified_split(cap.y, SplitOptions(train, validation, test, seed, stratify)))
        except DataError:
            continue  # a class with fewer than three rows: split the pool as a whole
    raise DataError(
        f"{cap.dir} has {len(cap.y)} labelled sample(s); retraining needs at least 3 "
        "(train, validation and a captured test split)",
        hint=_LABEL_HINT,
    )


# ---------------------------------------------------------------------------------------------------- scoring


def _with_rows(train: TrainInput, rows: Split) -> TrainInput:
    """The run's train input plus the captured train rows; a streamed (Parquet) split stays streamed."""
    if isinstance(train, StreamedSplit):
        return train.with_rows(rows[0].astype(np.float32), rows[1].astype(np.int64))
    return _concat(train, rows)


def _concat(a: Split, b: Split) -> Split:
    return np.concatenate([a[0], b[0].astype(a[0].dtype)]), np.concatenate([a[1], b[1].astype(a[1].dtype)])


def _metrics(run: Run, model: Any, split: Split) -> Metrics:
    return classification_metrics(split[1], model.predict(split[0], batch_size=256, verbose=0), run.spec.labels)


def _score(m: Metrics) -> Score:
    return Score(accuracy=m.accuracy, macro_f1=m.macro_f1, loss=m.loss, examples=m.examples)


def _scores(run: Run, model: Any, original: Split, captured: Split) -> ModelScores:
    return ModelScores(
        str(run.dir),
        run.info.model.name,
        _score(_metrics(run, model, original)),
        _score(_metrics(run, model, captured)),
    )
