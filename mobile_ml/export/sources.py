"""What an export takes: a model, its data (evaluation, calibration, fine-tuning) and its labels.

A training run is one way to provide them (``from_run``: its test split evaluates, a train sample calibrates, its
train and validation splits fine-tune, its data.json says what preprocessing is outside the model); a model file
plus data files is another (``from_files``). Nothing the exporter does after this needs a run.

Choices made here, and why:
- Calibration of a model file comes from ``--calibration``, or a sample of ``--data``'s train split. Never from the
  evaluation rows: calibrating on the rows parity is measured on flatters integer variants. With neither, the
  integer variants are skipped with a line that names ``--calibration`` (the float variants still prove the model;
  refusing the whole export would hide them).
- ``--input-range`` is what the app feeds: calibration gets two rows at its ends (``_spanning``), so an integer
  input's scale covers it, and metadata.json states the range and the quantize formula.
- ``--task auto`` reads the Keras outputs on the evaluation rows: one output whose rows are probability
  distributions over two or more classes (non-negative, summing to 1) is a classifier; anything else, a one-unit
  sigmoid included (its probability is then compared as a number), is a regression model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mobile_ml.contracts.export import ModelSource, SourceKind, Task
from mobile_ml.contracts.variants import ExportOptions, Variant
from mobile_ml.errors import ConfigError, DataError, InputFileError
from mobile_ml.export.eval_data import Examples, load_examples, load_labels
from mobile_ml.export.model_file import IOSpec, LoadedModel, ModelForm, load_model
from mobile_ml.export.options import FINETUNED_VARIANTS, INTEGER_VARIANTS

if TYPE_CHECKING:
    from mobile_ml.data.spec import DataSpec
    from mobile_ml.train.rundir import Run

__all__ = ["Exportable", "RunModel", "conversion_source", "from_files", "from_run", "parse_range"]

FINETUNE_VALIDATION = 0.1  # share of --finetune-data held out to report the fine-tuned model's validation figure


@dataclass(frozen=True)
class RunModel:
    """A run's trained ``tf_keras`` model behind ``LoadedModel``'s interface (one input, one output)."""

    path: Path
    sha256: str
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    keras: Any = field(repr=False)
    form: ModelForm = ModelForm.RUN

    @classmethod
    def of(cls, run: Run) -> RunModel:
        from mobile_ml.outputs import sha256_file

        model = run.load_model()  # today's error for a damaged model.keras
        spec = [IOSpec(t.name.split(":")[0].split("/")[0], tuple(t.shape[1:]), "float32") for t in model.inputs]
        out = [IOSpec(t.name.split(":")[0].split("/")[0], tuple(t.shape[1:]), "float32") for t in model.outputs]
        return cls(run.model_path, sha256_file(run.model_path), tuple(spec), tuple(out), model)

    def predict(self, x: Mapping[str, np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
        return [self.keras.predict(x[self.inputs[0].name], batch_size=batch_size, verbose=0)]

    def float_weight_bytes(self) -> int:
        return sum(w.size * 4 for w in self.keras.get_weights())

    def finetunable(self, x: Mapping[str, np.ndarray]) -> Any:
        return self.keras


SourceModelT = LoadedModel | RunModel


def conversion_source(model: SourceModelT) -> Any:
    """What ``convert`` takes for ``model``: a run's tf_keras model as today, a loaded file on its own route."""
    return model.keras if isinstance(model, RunModel) else model


@dataclass(frozen=True)
class Exportable:
    """A model with everything exporting it needs; built by ``from_run`` or ``from_files``."""

    model: SourceModelT
    task: Task
    labels: tuple[str, ...]  # classification: one per output unit; regression: ()
    target: str | None  # the name of what is predicted, for metadata.json
    eval: Examples  # labelled rows parity is measured on
    keras_outputs: list[np.ndarray]  # the source model's outputs on ``eval``, in ``model.outputs`` order
    calibration: Examples | None  # rows that calibrate integer variants; None: they are skipped
    finetune: tuple[Examples, Examples] | None  # (train, validation) for QAT and pruning; None: they are skipped
    spec: DataSpec | None  # a run's (or --data's) data.json: preprocessing outside the model
    input_range: tuple[float, float] | None  # --input-range: the values the app feeds (file models)
    source: ModelSource
    batch_size: int
    out: Path  # the exports directory
    run: Run | None = None
    skipped: dict[Variant, str] = field(default_factory=dict)  # variants that cannot be built here, and why

    @property
    def run_keras(self) -> Any:
        """A run's tf_keras model (the normalization split is made from it)."""
        if not isinstance(self.model, RunModel):
            raise TypeError("only a run's model is a tf_keras model here")
        return self.model.keras

    @property
    def single(self) -> bool:
        return len(self.model.inputs) == 1 and len(self.model.outputs) == 1


def from_run(run: Run, options: ExportOptions, representative: np.ndarray | None = None) -> Exportable:
    """A run's model and data, exactly as the exporter has always read them."""
    from mobile_ml.export.convert import representative_sample

    model = RunModel.of(run)
    name = model.inputs[0].name
    train, val, (x_test, y_test) = run.split("train"), run.split("validation"), run.split("test")
    sample = (
        representative
        if representative is not None
        else representative_sample(train[0], options.calibration_samples, options.seed)
    )
    where = str(run.dir)
    test = Examples({name: x_test}, y_test, where)
    return Exportable(
        model,
        Task.CLASSIFICATION,
        tuple(run.spec.labels),
        run.spec.target,
        test,
        model.predict(test.x),
        Examples({name: sample}, None, where),
        (Examples({name: train[0]}, train[1], where), Examples({name: val[0]}, val[1], where)),
        run.spec,
        None,
        ModelSource(SourceKind.RUN, run.dir, ModelForm.RUN.value, model.sha256),
        run.info.config.batch_size,
        run.exports_dir,
        run,
    )


def from_files(
    model_path: str | Path,
    options: ExportOptions,
    *,
    eval: str | Path | None,
    calibration: str | Path | None = None,
    labels: str | Path | None = None,
    task: str = "auto",
    input_range: tuple[float, float] | None = None,
    finetune_data: str | Path | None = None,
    target: str | None = None,
    custom_objects: Path | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
) -> Exportable:
    """A model file (or SavedModel directory) with data files. Every check is made here, before anything is
    written: a refused export leaves no directory behind."""
    if eval is None:
        raise ConfigError(
            f"{model_path} is a model file: parity needs labelled evaluation data",
            hint="pass --eval FILE (.npz with x and y, a folder of class sub-folders, or a CSV with --target COL)",
        )
    model = load_model(model_path, custom_objects=custom_objects)
    names = load_labels(labels) if labels is not None else None
    if names is not None and task != "regression":
        _check_label_count(names, model)  # before the eval data: its class indices are judged against these names
    spec = _data_spec(data_dir)
    if names is None and spec is not None:
        names = tuple(spec.labels)
    common: dict[str, Any] = {"target": target, "labels": names, "input_range": input_range}
    ev = load_examples(eval, model.inputs, option="--eval", labelled=True, **common)
    keras_outputs = model.predict(ev.x)
    resolved = _task(task, keras_outputs, model)
    labels_t = _labels(resolved, names, keras_outputs, model) if resolved is Task.CLASSIFICATION else ()
    if resolved is Task.REGRESSION:
        _check_targets(ev, keras_outputs)
    skipped: dict[Variant, str] = {}
    cal = _calibration(calibration, model, spec, data_dir, options, common)
    if cal is None:
        for v in INTEGER_VARIANTS:
            skipped[v] = "skipped: integer variants need calibration rows; pass --calibration FILE or --data DATADIR"
    tune = _finetune(finetune_data, model, spec, data_dir, options, common)
    if tune is None:
        for v in FINETUNED_VARIANTS:
            skipped.setdefault(v, "skipped: fine-tuning needs labelled training rows; pass --finetune-data FILE")
    path = Path(model_path)
    dest = Path(out) if out is not None else path.absolute().parent / f"{path.name.split('.')[0]}_exports"
    source = ModelSource(SourceKind.FILE, model.path.absolute(), model.form.value, model.sha256)
    return Exportable(
        model,
        resolved,
        labels_t,
        target or (spec.target if spec is not None else None),
        ev,
        keras_outputs,
        cal,
        tune,
        spec,
        input_range,
        source,
        32,
        dest,
        None,
        skipped,
    )


def _data_spec(data_dir: str | Path | None) -> DataSpec | None:
    if data_dir is None:
        return None
    from mobile_ml.data.spec import load_spec

    if not (Path(data_dir) / "data.json").is_file():
        raise InputFileError(f"{data_dir} has no data.json", hint="pass --data with a `mobile-ml data prepare` output")
    return load_spec(data_dir)


def _split(data_dir: str | Path, spec: DataSpec, name: str, model: SourceModelT) -> Examples:
    from mobile_ml.data.spec import load_split

    if len(model.inputs) != 1:
        raise ConfigError("--data feeds models with one input", hint="pass --calibration / --finetune-data files")
    x, y = load_split(data_dir, spec, name)
    return Examples({model.inputs[0].name: x.astype(model.inputs[0].dtype)}, y, f"{data_dir} ({name})")


def _calibration(path, model, spec, data_dir, options: ExportOptions, common) -> Examples | None:
    if path is not None:
        rows = load_examples(path, model.inputs, option="--calibration", labelled=False, **common)
    elif spec is not None and data_dir is not None:
        rows = _split(data_dir, spec, "train", model)
    else:
        return None
    if len(rows) == 0:
        raise DataError(f"--calibration {rows.source} has no rows", hint="calibration needs at least one row")
    for name, x in rows.x.items():
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise DataError(
                f"--calibration {rows.source}: input {name} contains NaN or infinite values",
                hint="calibrate with cleaned rows",
            )
    return _spanning(rows.take(options.calibration_samples, options.seed), common["input_range"])


def _spanning(rows: Examples, value_range: tuple[float, float] | None) -> Examples:
    """With ``--input-range LOW,HIGH``, two more calibration rows, all LOW and all HIGH, for every float input.

    The converter sets an integer input's scale from the values calibration showed it. Rows that never reach the
    declared range's ends would give a scale that clamps what the app may legitimately feed; these two rows make
    the input's quantization cover exactly the range metadata.json tells the app to feed.
    """
    if value_range is None:
        return rows
    x = {}
    for name, v in rows.x.items():
        if not np.issubdtype(v.dtype, np.floating):
            x[name] = np.concatenate([v, v[:1], v[:1]])
            continue
        ends = np.stack([np.full(v.shape[1:], value_range[0], v.dtype), np.full(v.shape[1:], value_range[1], v.dtype)])
        x[name] = np.concatenate([v, ends])
    return Examples(x, None, rows.source)


def _finetune(path, model, spec, data_dir, options: ExportOptions, common) -> tuple[Examples, Examples] | None:
    if path is not None:
        rows = load_examples(path, model.inputs, option="--finetune-data", labelled=True, **common)
        n_val = max(1, int(len(rows) * FINETUNE_VALIDATION))
        order = np.random.default_rng(options.seed).permutation(len(rows))
        return _subset(rows, np.sort(order[n_val:])), _subset(rows, np.sort(order[:n_val]))
    if spec is not None and data_dir is not None:
        return _split(data_dir, spec, "train", model), _split(data_dir, spec, "validation", model)
    return None


def _subset(rows: Examples, idx: np.ndarray) -> Examples:
    y = rows.y[idx] if rows.y is not None else None
    return Examples({k: v[idx] for k, v in rows.x.items()}, y, rows.source)


def _check_targets(ev: Examples, outputs: list[np.ndarray]) -> None:
    width = sum(int(np.prod(o.shape[1:])) for o in outputs)
    got = int(np.prod(np.shape(ev.y)[1:])) if ev.y is not None else 0
    if ev.y is None or max(got, 1) != width:
        raise DataError(
            f"--eval {ev.source}: y has {max(got, 1)} target value(s) per row, the model predicts {width}",
            hint="give one target per output value (several outputs: side by side, in output order)",
        )


def _is_distribution(out: np.ndarray) -> bool:
    rows = np.asarray(out, np.float64).reshape(len(out), -1)
    return rows.shape[1] >= 2 and bool((rows >= -1e-6).all()) and bool(np.allclose(rows.sum(1), 1.0, atol=1e-3))


def _task(task: str, outputs: list[np.ndarray], model: SourceModelT) -> Task:
    softmax = len(outputs) == 1 and len(outputs[0]) > 0 and _is_distribution(outputs[0])
    if task == "auto":
        return Task.CLASSIFICATION if softmax else Task.REGRESSION
    try:
        chosen = Task(task)
    except ValueError:
        raise ConfigError(f"unknown task '{task}'", hint="use --task classification, regression or auto") from None
    if chosen is Task.CLASSIFICATION and not softmax:
        shapes = ", ".join(f"{o.name} {list(o.shape)}" for o in model.outputs)
        raise ConfigError(
            f"--task classification, but the model's output ({shapes}) is not a probability over classes "
            "(rows are not non-negative and summing to 1): it is a regression model",
            hint="pass --task regression (or auto), or export a classifier ending in softmax",
        )
    return chosen


def _labels(task: Task, names: Sequence[str] | None, outputs: list[np.ndarray], model: SourceModelT) -> tuple[str, ...]:
    units = int(np.prod(outputs[0].shape[1:]))
    if names is None:
        return tuple(str(i) for i in range(units))  # class indices name themselves
    if len(names) != units:
        raise ConfigError(
            f"--labels lists {len(names)} labels but the model's output {model.outputs[0].name} has {units} classes",
            hint="pass one label per output unit, in output order",
        )
    return tuple(names)


def _check_label_count(names: Sequence[str], model: SourceModelT) -> None:
    """A label list whose length differs from a single output's declared width is refused from the shapes alone."""
    if len(model.outputs) != 1 or any(d is None for d in model.outputs[0].shape):
        return  # several or dynamic outputs: _labels judges on the predicted widths
    units = int(np.prod([int(d) for d in model.outputs[0].shape if d is not None]))
    if len(names) != units:
        raise ConfigError(
            f"--labels lists {len(names)} labels but the model's output {model.outputs[0].name} has {units} classes",
            hint="pass one label per output unit, in output order",
        )


def parse_range(text: str) -> tuple[float, float]:
    """``"0,255"`` → (0.0, 255.0): the value range the app feeds the model (--input-range)."""
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--input-range {text!r} is not LOW,HIGH", hint="e.g. --input-range 0,255") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"--input-range {text!r}: LOW must be below HIGH", hint="e.g. --input-range -1,1")
    return lo, hi
