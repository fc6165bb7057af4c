"""Run the device's current model on one input or many, as the app would: the model current.json names, with LiteRT.

Each inference is also counted against the installed version's monitoring baseline (``baseline.json``, installed
beside metadata.json from the signed release): per feature bin, predicted class, confidence and latency, in the
version's aggregates file (``monitor.aggregate.state_file``) that ``device sync`` uploads. Only those counts are
kept; no input is stored. A model without a baseline still runs; it is just not counted (``RunResult.note``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobile_ml.client import inference_reports
from mobile_ml.client import state as device_state
from mobile_ml.client.bundled import bundled_model
from mobile_ml.client.inputs import read_inputs
from mobile_ml.client.upload import locked
from mobile_ml.contracts import ContractError, StrictJSONError, loads, parse_document, read_document
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.contracts.manifest import Release
from mobile_ml.contracts.state import read_state
from mobile_ml.errors import InputFileError
from mobile_ml.monitor.aggregate import Aggregator, state_file
from mobile_ml.monitor.baseline import BASELINE_FILE


@dataclass(frozen=True)
class Prediction:
    version: str
    top: tuple[tuple[str, float], ...]  # (label, probability), most likely first
    latency_ms: float
    raw_input: Any = field(default=None, repr=False, compare=False)  # the input as given, for capture (client/capture)
    labels: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the model's labels, to check --label

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "top": [{"label": label, "probability": p} for label, p in self.top],
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class RunResult:
    predictions: tuple[Prediction, ...]  # one per input, in the file's order
    aggregates: Path | None  # the aggregates file the inferences were counted in; None: not counted
    note: str = ""  # why they were not counted


def run_model(
    state_dir: Path, input_path: Path | None = None, *, top: int = 3, bundled: Path | None = None
) -> Prediction:
    """Predict on the one input in ``input_path`` (default: the model's own health-check input); see ``run_inputs``."""
    result = run_inputs(state_dir, input_path, top=top, bundled=bundled)
    if len(result.predictions) != 1:
        raise InputFileError(f"input {input_path} holds {len(result.predictions)} inputs", hint="pass one input")
    return result.predictions[0]


def run_inputs(
    state_dir: Path, input_path: Path | None = None, *, top: int = 3, bundled: Path | None = None
) -> RunResult:
    """Predict on every input of ``input_path`` (``client.inputs``: .json, .npz or .csv; default: the model's own
    health-check input) with the device's current model, or the ``bundled`` one when no downloaded model is whole,
    one inference per input, each counted in the installed version's aggregates."""

    from mobile_ml.export import tflite_file

    found = device_state.current_model(state_dir)
    if found is not None:
        vdir, meta = found
        version = vdir.name
    else:
        bundle = bundled_model(bundled) if bundled else None
        if bundle is None:
            hint = "run `mobile-ml device sync` first" + ("" if bundled else ", or pass --bundled DIR")
            raise InputFileError(
                f"{state_dir} has no current model" + (f" and {bundled} no valid bundle" if bundled else ""), hint=hint
            )
        vdir, meta, version = bundle
    if meta.inputs:  # several inputs (a model file): fed by name, as the health check does; not monitored
        named = _run_named(vdir, meta, version, input_path, top)
        inference_reports.record(state_dir, version, named.latency_ms)  # sent with the next `device sync`
        return RunResult((named,), None, _SEVERAL)
    rows = read_inputs(input_path, meta)
    shape = [1, *(int(d) for d in meta.input.tensor.shape[1:])]
    model = vdir / "model.tflite"
    interpreter = tflite_file.load_interpreter(model.read_bytes(), str(model))
    with contextlib.ExitStack() as hold:
        counter, note = _aggregator(state_dir, vdir, version, hold) if found is not None else (None, _BUNDLED)
        predictions = _predict_rows(meta, interpreter, rows, shape, counter, version, top, input_path)
        if counter is not None:
            counter.save()  # once per run: one atomic write, the counts of every input or none
    inference_reports.record_many(state_dir, version, [p.latency_ms for p in predictions])  # for `device sync`
    return RunResult(tuple(predictions), counter.path if counter is not None else None, note)


def _predict_rows(meta, interpreter, rows, shape, counter, version, top, input_path) -> list[Prediction]:
    import numpy as np

    from mobile_ml.export import tflite_file
    from mobile_ml.export.metadata import model_input

    labels = tuple(str(lab) for lab in meta.labels)
    predictions = []
    for row in rows:
        try:
            x = model_input(meta, row.reshape(shape))
        except ValueError as e:
            raise InputFileError(f"input {input_path} does not fit the model: {e}", hint="see metadata.json") from e
        t0 = time.perf_counter()
        probs = tflite_file.predict(interpreter, x)[0].reshape(-1)
        ms = (time.perf_counter() - t0) * 1e3
        if counter is not None:
            counter.observe(row, probs, ms)  # the raw row: the baseline's units, before normalization
        predictions.append(Prediction(version, _top(meta, probs, top), ms, np.asarray(row).tolist(), labels))
    return predictions


_SEVERAL = "a model with several inputs is not monitored: its inferences are not counted"


_BUNDLED = "the bundled model is not monitored: its inferences are not counted"


def _aggregator(state_dir: Path, vdir: Path, version: str, hold: contextlib.ExitStack) -> tuple[Aggregator | None, str]:
    """The installed version's aggregator, or None and why there is none. Files here were verified against the
    release when ``current_model`` found the version whole, so the baseline is the signed one."""
    if not (vdir / BASELINE_FILE).is_file():
        return None, f"model {version} was published without {BASELINE_FILE}: its inferences are not counted"
    try:
        baseline = read_document(Baseline, vdir / BASELINE_FILE)
        release = parse_document(Release, (vdir / device_state.RELEASE).read_bytes(), where=str(vdir))
        channel = _channel(state_dir, release.model, version)
    except (ContractError, OSError) as e:
        return None, f"{BASELINE_FILE} of {version} cannot be used ({getattr(e, 'message', e)}): not counted"
    if channel is None:
        return None, f"no channel of state.json chose {release.model} {version}: its inferences are not counted"
    model, path = release.model, state_file(state_dir, release.model, channel, version)
    hold.enter_context(locked(path))  # `device sync` snapshots this file: one of us at a time, until the save
    try:
        return Aggregator.open(path, baseline, model=model, version=version, channel=channel), ""
    except ContractError as e:  # counts are worth less than the app: set the damaged file aside, count anew
        device_state.set_aside(path)
        fresh = Aggregator(baseline, model=model, version=version, channel=channel, path=path)
        return fresh, f"{path.name} was damaged ({e.message}): counting anew"


def _channel(state_dir: Path, model: str, version: str) -> str | None:
    """The channel whose manifest chose the running version (the first by name if several did)."""
    state = read_state(state_dir / device_state.STATE)
    if state is None:
        return None
    chosen = sorted(key for key, seen in state.channels.items() if seen.current == version)
    return next((key.split("/", 1)[1] for key in chosen if key.split("/", 1)[0] == model), None)


def _run_named(vdir: Path, meta: Any, version: str, input_path: Path | None, top: int) -> Prediction:
    import numpy as np

    from mobile_ml.export import tflite_file

    model = vdir / "model.tflite"
    interpreter = tflite_file.load_interpreter(model.read_bytes(), str(model))
    rows = _named_rows(meta, _read_input(input_path) if input_path else None)
    names = [o.name for o in meta.outputs] or [meta.output.name]
    t0 = time.perf_counter()
    got = tflite_file.predict_named(interpreter, rows, names)
    ms = (time.perf_counter() - t0) * 1e3
    return Prediction(version, _top(meta, np.concatenate([g.reshape(-1) for g in got]), top), ms)


def _top(meta: Any, values: Any, top: int) -> tuple[tuple[str, float], ...]:
    """Classification: the ``top`` most likely labels. Regression (no labels): every predicted value, in output
    order, named after the target (``price``, or ``price[1]`` ... when the model predicts several values)."""
    import numpy as np

    from mobile_ml.contracts.export import Task

    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if meta.task is Task.REGRESSION:
        name = meta.target or "value"
        return tuple((name if values.size == 1 else f"{name}[{i}]", float(v)) for i, v in enumerate(values))
    return tuple((str(meta.labels[i]), float(values[i])) for i in np.argsort(-values)[:top])


def _named_rows(meta: Any, given: Any) -> dict[str, Any]:
    """One row per input of a several-input model: ``given`` is a JSON object of input name → values (default:
    the health-check case's rows)."""
    import numpy as np

    named = given if given is not None else meta.health_check.inputs
    want = {spec.name: spec for spec in meta.inputs}
    if not isinstance(named, dict) or set(named) != set(want):
        raise InputFileError(
            f"the model has inputs {', '.join(sorted(want))}: the input must be a JSON object with one array each",
            hint='e.g. {"' + '": [...], "'.join(sorted(want)) + '": [...]}',
        )
    rows = {}
    for name, spec in want.items():
        shape = [1, *spec.tensor.shape[1:]]
        try:
            rows[name] = np.asarray(named[name], dtype=np.float32).reshape(shape)
        except (ValueError, TypeError) as e:
            raise InputFileError(f"input {name} does not fit the model's shape {shape[1:]}: {e}", hint=_HINT) from e
    return rows


_HINT = "a JSON array shaped like the model input"


def _read_input(path: Path) -> Any:
    hint = _HINT
    try:
        return loads(path.read_bytes())
    except OSError as e:
        raise InputFileError(f"cannot read input {path}: {e.strerror}", hint=hint) from e
    except StrictJSONError as e:
        raise InputFileError(f"input {path} is not valid JSON: {e}", hint=hint) from e
