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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mobile_ml import __version__, _tf
from mobile_ml.data.spec import DataSpec, load_spec, load_split
from mobile_ml.outputs import atomic_dir, sha256_file, to_jsonable, write_json
from mobile_ml.train.config import Candidate, TrainConfig
from mobile_ml.train.metrics import Metrics, classification_metrics
from mobile_ml.train.models import build_model, resolve_family

RUN_SCHEMA = "mobile_ml.run"
METRICS_SCHEMA = "mobile_ml.metrics"
SCHEMA_VERSION = 1
SELECTION_METRIC = "val_accuracy"


class TrainReporter(Protocol):
    """Progress events; the CLI draws bars from them, the library never prints."""

    def candidate_started(self, candidate: Candidate, total: int, max_epochs: int) -> None: ...
    def epoch_finished(self, candidate: Candidate, epoch: int, logs: dict[str, float]) -> None: ...
    def candidate_finished(self, result: CandidateResult) -> None: ...


class NullReporter:
    def candidate_started(self, candidate, total, max_epochs):
        pass

    def epoch_finished(self, candidate, epoch, logs):
        pass

    def candidate_finished(self, result):
        pass


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

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.candidate.name,
            **to_jsonable(self.candidate),
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "params": self.params,
            "seconds": round(self.seconds, 3),
        }


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


def _selection_key(r: CandidateResult):
    # Best validation accuracy; ties go to the lower validation loss, then to the smaller model.
    return (-r.val_accuracy, r.val_loss, r.params)


def fit_candidate(spec: DataSpec, candidate: Candidate, config: TrainConfig, train, val, keras, on_epoch=None):
    """Build and fit one candidate with early stopping; return ``(model, CandidateResult)``."""
    keras.utils.set_random_seed(config.seed)  # every candidate starts from the same seed: comparable and repeatable
    model = build_model(spec, candidate, keras)

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if on_epoch:
                on_epoch(epoch + 1, dict(logs or {}))

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    start = time.perf_counter()
    hist = model.fit(
        *train,
        validation_data=val,
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[stop, _Progress()],
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


def train(
    datadir: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    force: bool = False,
    reporter: TrainReporter | None = None,
) -> TrainResult:
    """Train ``config``'s candidate grid on ``datadir`` and write the run directory ``out``."""
    config = config or TrainConfig()
    reporter = reporter or NullReporter()
    t0 = time.perf_counter()
    datadir = Path(datadir)
    spec = load_spec(datadir)
    family = resolve_family(config.family, spec)
    candidates = config.candidates(family)
    splits = {name: load_split(datadir, spec, name) for name in ("train", "validation", "test")}
    with atomic_dir(out, force=force) as tmp:
        tf, keras = _tf.tensorflow(), _tf.keras()
        if config.deterministic:  # same seed on the same machine → same weights and metrics
            tf.config.experimental.enable_op_determinism()
        timings = {"load_s": time.perf_counter() - t0}
        results, best_model, best = [], None, None
        with _frozen_heap():
            for cand in candidates:
                reporter.candidate_started(cand, len(candidates), config.epochs)
                model, result = fit_candidate(
                    spec,
                    cand,
                    config,
                    splits["train"],
                    splits["validation"],
                    keras,
                    on_epoch=lambda e, logs, c=cand: reporter.epoch_finished(c, e, logs),
                )
                results.append(result)
                reporter.candidate_finished(result)
                if best is None or _selection_key(result) < _selection_key(best):
                    best, best_model = result, model
        timings["train_s"] = sum(r.seconds for r in results)

        t = time.perf_counter()
        x_test, y_test = splits["test"]
        probs = best_model.predict(x_test, batch_size=256, verbose=0)
        test = classification_metrics(y_test, probs, spec.labels)
        timings["evaluate_s"] = time.perf_counter() - t

        t = time.perf_counter()
        with _tf.quiet_stderr():
            best_model.save(tmp / "model.keras")
            best_model.save(tmp / "saved_model", save_format="tf")
        timings["save_s"] = time.perf_counter() - t
        _write_history(tmp, results, best)
        shutil.copy2(datadir / "data.json", tmp / "data.json")
        write_json(
            tmp / "metrics.json",
            {
                "schema": METRICS_SCHEMA,
                "schema_version": SCHEMA_VERSION,
                "split": "test",
                "model": best.candidate.name,
                **to_jsonable(test),
            },
        )
        timings["total_s"] = time.perf_counter() - t0
        timings = {k: round(v, 3) for k, v in timings.items()}
        write_json(
            tmp / "run.json",
            {
                "schema": RUN_SCHEMA,
                "schema_version": SCHEMA_VERSION,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                # Relative, so a pipeline output directory (data/ beside run/) can be moved as a whole.
                "data": {
                    "dir": os.path.relpath(datadir.absolute(), Path(out).absolute()),
                    "data_json_sha256": sha256_file(datadir / "data.json"),
                    "source": spec.source,
                    "counts": spec.counts,
                },
                "config": to_jsonable(config),
                "seed": config.seed,
                "model": {
                    "family": family,
                    "name": best.candidate.name,
                    "params": best.params,
                    "input_shape": list(spec.input_shape),
                    "num_classes": spec.num_classes,
                    "files": {"keras": "model.keras", "saved_model": "saved_model"},
                    "sha256": {"model.keras": sha256_file(tmp / "model.keras")},
                },
                "selection": {
                    "metric": SELECTION_METRIC,
                    "selected": best.candidate.name,
                    "candidates": [r.summary() for r in results],
                },
                "test": {"accuracy": test.accuracy, "macro_f1": test.macro_f1, "loss": test.loss},
                "timings": timings,
                "environment": environment(),
            },
        )
    return TrainResult(Path(out).absolute(), family, best, results, test, timings)


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


def _write_history(run_dir: Path, results: list[CandidateResult], best: CandidateResult) -> None:
    from mobile_ml.train.plots import plot_history

    with open(run_dir / "history.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["candidate", "epoch", "loss", "accuracy", "val_loss", "val_accuracy"])
        for r in results:
            for row in r.history:
                w.writerow(
                    [r.candidate.name, row["epoch"], row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"]]
                )
    plot_history(
        {r.candidate.name: r.history for r in results}, best.candidate.name, best.best_epoch, run_dir / "history.png"
    )
