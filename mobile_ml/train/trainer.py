"""Train every candidate, select the best on validation, evaluate it once on test, and write the run directory.

Run directory (``RUNDIR``), written atomically:
    run.json        lineage: config, seed, data hash, versions, timings, candidate scores, selection
    metrics.json    test-split metrics of the selected model
    data.json       copy of the data description (labels, input spec, normalization) for later stages
    history.csv     per-epoch loss/accuracy of every candidate
    history.png     curves of the selected candidate against the others
    model.keras     the selected model (tf_keras format)
    saved_model/    the same model as a TensorFlow SavedModel
Later stages add ``exports/`` and ``benchmark/`` beside these.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml import __version__, _tf
from mobile_ml.contracts import write_document
from mobile_ml.contracts.run import (
    CandidateScore,
    CapturedSource,
    EvaluationSummary,
    MetricsReport,
    ModelFiles,
    ModelRecord,
    RunData,
    RunRecord,
    Selection,
    SelectionMetric,
)
from mobile_ml.data.spec import DataSpec, load_spec, load_split
from mobile_ml.outputs import atomic_dir, sha256_file
from mobile_ml.progress import NullReporter, epoch_callback
from mobile_ml.train.config import Candidate, TrainConfig
from mobile_ml.train.inputs import TrainInput, fit_arguments, train_input
from mobile_ml.train.metrics import Metrics, classification_metrics
from mobile_ml.train.models import build_model, resolve_family
from mobile_ml.train.rundir import RunLayout

__all__ = [
    "CandidateResult",
    "NullReporter",
    "TrainData",
    "TrainReporter",
    "TrainResult",
    "fit_candidate",
    "fit_run",
    "train",
]

SCHEMA_VERSION = 1  # of the train_result document ``--json`` prints
Split = tuple[np.ndarray, np.ndarray]  # (x, y)


class TrainReporter(Protocol):
    """Progress events; the CLI draws bars from them, the library never prints."""

    def candidate_started(self, candidate: Candidate, total: int, max_epochs: int) -> None: ...
    def epoch_finished(self, candidate: Candidate, epoch: int, logs: dict[str, float]) -> None: ...
    def candidate_finished(self, result: CandidateResult) -> None: ...


@dataclass(frozen=True)
class CandidateResult:
    candidate: Candidate
    val_accuracy: float  # of the restored best-epoch weights
    val_loss: float
    best_epoch: int  # 1-based epoch whose weights were kept (lowest val_loss)
    epochs_run: int
    params: int
    seconds: float
    history: list[dict[str, float]] = field(repr=False)

    def score(self) -> CandidateScore:
        return CandidateScore(
            self.candidate,
            self.val_accuracy,
            self.val_loss,
            self.best_epoch,
            self.epochs_run,
            self.params,
            self.seconds,
        )

    def summary(self) -> dict[str, Any]:
        return self.score().to_dict()


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    family: str
    selected: CandidateResult
    candidates: list[CandidateResult]
    test: Metrics
    timings: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "mobile_ml.train_result",
            "schema_version": SCHEMA_VERSION,
            "run_dir": str(self.run_dir),
            "family": self.family,
            "selected": self.selected.candidate.name,
            "candidates": [c.summary() for c in self.candidates],
            "test": {
                "accuracy": self.test.accuracy,
                "macro_f1": self.test.macro_f1,
                "loss": self.test.loss,
                "examples": self.test.examples,
            },
            "timings": self.timings,
        }


def _selection_key(r: CandidateResult) -> tuple[float, float, int]:
    # Best validation accuracy; ties go to the lower validation loss, then to the smaller model.
    return (-r.val_accuracy, r.val_loss, r.params)


def fit_candidate(
    spec: DataSpec,
    candidate: Candidate,
    config: TrainConfig,
    train: TrainInput,
    val: Split,
    keras: Any,
    on_epoch=None,
) -> tuple[Any, CandidateResult]:
    """Build and fit one candidate with early stopping on ``val``; return ``(model, CandidateResult)``.

    ``train`` is ``(x, y)`` in memory or a ``StreamedSplit`` read from Parquet in batches.
    """
    keras.utils.set_random_seed(config.seed)  # every candidate starts from the same seed: comparable and repeatable
    model = build_model(spec, candidate, keras)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    start = time.perf_counter()
    args, kwargs = fit_arguments(train, config.batch_size, config.seed)
    hist = model.fit(
        *args,
        **kwargs,
        validation_data=val,
        epochs=config.epochs,
        verbose=0,
        callbacks=[stop, epoch_callback(keras, on_epoch)],
    )
    seconds = time.perf_counter() - start
    val_loss, val_acc = model.evaluate(*val, batch_size=256, verbose=0)
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    history = [{"epoch": i + 1, **{k: float(hist.history[k][i]) for k in keys}} for i in range(len(hist.epoch))]
    result = CandidateResult(
        candidate,
        float(val_acc),
        float(val_loss),
        int(stop.best_epoch) + 1,
        len(history),
        int(model.count_params()),
        seconds,
        history,
    )
    return model, result


def environment() -> dict[str, Any]:
    import pandas

    return {
        "mobile_ml": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        **_tf.versions(),
    }


@dataclass(frozen=True)
class TrainData:
    """What one run trains and is tested on.

    ``datadir`` is the prepared data directory the run records (its data.json is byte-copied into the run, so the
    later stages find the splits and check the lineage); ``spec`` builds the model (input shape, normalization).
    ``captured`` is set by ``mobile-ml retrain``, whose train and validation sets also hold captured samples.
    """

    datadir: Path
    spec: DataSpec
    train: TrainInput
    validation: Split
    test: Split  # looked at once, for the selected model only
    captured: CapturedSource | None = None

    @classmethod
    def of(cls, datadir: Path) -> TrainData:
        spec = load_spec(datadir)
        return cls(
            datadir,
            spec,
            train_input(datadir, spec),  # streamed from Parquet: it may not fit in memory
            load_split(datadir, spec, "validation"),
            load_split(datadir, spec, "test"),
        )


# Called inside the half-written run directory with the selected model, its candidate name and its test metrics, so
# that what it writes (retrain.json) appears together with the run or not at all.
Finish = Callable[[Path, Any, str, Metrics], None]


def train(
    datadir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    force: bool = False,
    reporter: TrainReporter | None = None,
) -> TrainResult:
    """Train ``config``'s candidate grid on ``datadir`` and write the run directory ``out``."""
    t0 = time.perf_counter()
    return fit_run(TrainData.of(Path(datadir)), out, config, force=force, reporter=reporter, started=t0)


def fit_run(
    data: TrainData,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    force: bool = False,
    reporter: TrainReporter | None = None,
    finish: Finish | None = None,
    started: float | None = None,
) -> TrainResult:
    """Search the grid on ``data``, evaluate the kept model on its test split and write the run directory ``out``."""
    config = config or TrainConfig()
    t0 = time.perf_counter() if started is None else started
    spec, datadir = data.spec, data.datadir
    family = resolve_family(config.family, spec)
    with atomic_dir(out, force=force) as tmp:
        run = RunLayout(tmp)
        timings = {"load_s": time.perf_counter() - t0}
        results, best, best_model = _search(
            spec, config.candidates(family), config, data.train, data.validation, reporter or NullReporter()
        )
        timings["train_s"] = sum(r.seconds for r in results)

        t = time.perf_counter()
        x_test, y_test = data.test
        test = classification_metrics(y_test, best_model.predict(x_test, batch_size=256, verbose=0), spec.labels)
        timings["evaluate_s"] = time.perf_counter() - t

        t = time.perf_counter()
        files = ModelFiles()
        with _tf.quiet_stderr():
            best_model.save(run.dir / files.keras)
            best_model.save(run.dir / files.saved_model, save_format="tf")
        timings["save_s"] = time.perf_counter() - t
        _write_history(run, results, best)
        shutil.copy2(datadir / "data.json", run.data_json)  # a byte copy: its hash is the lineage check
        write_document(run.metrics_json, MetricsReport("test", best.candidate.name, test))
        if finish is not None:
            finish(tmp, best_model, best.candidate.name, test)
        timings["total_s"] = time.perf_counter() - t0
        timings = {k: round(v, 3) for k, v in timings.items()}
        record = RunData(
            # Relative, so a pipeline output directory (data/ beside run/) can be moved as a whole.
            dir=os.path.relpath(datadir.absolute(), Path(out).absolute()),
            data_json_sha256=sha256_file(datadir / "data.json"),
            source=spec.source,
            counts=spec.counts,
        )
        model = ModelRecord(
            family=family,
            name=best.candidate.name,
            params=best.params,
            input_shape=list(spec.input_shape),
            num_classes=spec.num_classes,
            files=files,
            sha256={files.keras: sha256_file(run.dir / files.keras)},
        )
        doc = _record(record, config, model, results, best, test, timings)
        write_document(run.run_json, replace(doc, captured=data.captured))
    return TrainResult(Path(out).absolute(), family, best, results, test, timings)


def _search(
    spec: DataSpec,
    candidates: list[Candidate],
    config: TrainConfig,
    train: TrainInput,
    validation: Split,
    reporter: TrainReporter,
) -> tuple[list[CandidateResult], CandidateResult, Any]:
    """Fit every candidate and keep the best on the validation split: ``(results, best, best model)``."""
    tf, keras = _tf.tensorflow(), _tf.keras()
    if config.deterministic:  # same seed on the same machine → same weights and metrics
        tf.config.experimental.enable_op_determinism()
    results: list[CandidateResult] = []
    best: CandidateResult | None = None
    best_model = None
    with _frozen_heap():
        for cand in candidates:
            reporter.candidate_started(cand, len(candidates), config.epochs)
            model, result = fit_candidate(
                spec,
                cand,
                config,
                train,
                validation,
                keras,
                on_epoch=lambda e, logs, c=cand: reporter.epoch_finished(c, e, logs),
            )
            results.append(result)
            reporter.candidate_finished(result)
            if best is None or _selection_key(result) < _selection_key(best):
                best, best_model = result, model
    assert best is not None  # TrainConfig refuses an empty grid
    return results, best, best_model


def _record(
    data: RunData,
    config: TrainConfig,
    model: ModelRecord,
    results: list[CandidateResult],
    best: CandidateResult,
    test: Metrics,
    timings: dict[str, float],
) -> RunRecord:
    return RunRecord(
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        data=data,
        config=config,
        seed=config.seed,
        model=model,
        selection=Selection(SelectionMetric.VAL_ACCURACY, best.candidate.name, [r.score() for r in results]),
        test=EvaluationSummary(accuracy=test.accuracy, macro_f1=test.macro_f1, loss=test.loss),
        timings=timings,
        environment=environment(),
    )


@contextlib.contextmanager
def _frozen_heap():
    """Keep the garbage collector off the ~330k long-lived objects TensorFlow creates at import.

    Keras's training loop allocates steadily, and every full collection would walk that whole heap again. Objects
    made while training are still collected; the freeze ends with training.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _write_history(run: RunLayout, results: list[CandidateResult], best: CandidateResult) -> None:
    from mobile_ml.train.plots import plot_history

    with open(run.history_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["candidate", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"])
        for r in results:
            for row in r.history:
                w.writerow(
                    [r.candidate.name, row["epoch"], row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"]]
                )
    plot_history({r.candidate.name: r.history for r in results}, best.candidate.name, best.best_epoch, run.history_png)
