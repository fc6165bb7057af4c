"""``mobile-ml evaluate``: figures of a .tflite file in LiteRT, against a run or against labelled data files.

Two routes, nothing written by either:
    evaluate_file(MODEL, RUNDIR)            parity against the run's Keras model on one of its splits
    evaluate_tflite(MODEL, EVAL, ...)       accuracy (classification) or MAE/RMSE (regression) on a data file, with
                                            parity against a Keras model when one is given; no run needed
Integer inputs are quantized from the model's own quantization parameters; when a ``metadata.json`` describing
these very bytes sits beside the model, the rows are first preprocessed as it asks (``metadata.as_exported``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.contracts.variants import TensorInfo
from mobile_ml.errors import ConfigError, DataError
from mobile_ml.export import metadata, tflite_file
from mobile_ml.export.eval_data import Examples, load_examples, load_labels
from mobile_ml.export.model_file import IOSpec
from mobile_ml.train.metrics import classification_metrics

__all__ = ["Task", "evaluate_file", "evaluate_tflite", "parse_range"]


class Task(str, enum.Enum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    AUTO = "auto"


def evaluate_file(
    model_path: str | Path, rundir: str | Path, *, data_dir: str | Path | None = None, split: str = "test"
) -> dict[str, Any]:
    """Parity figures of any .tflite file against ``rundir``'s Keras model on one split (nothing is written)."""
    from mobile_ml.export.parity import classification as parity
    from mobile_ml.outputs import to_jsonable
    from mobile_ml.train.rundir import load_run

    run = load_run(rundir, data_dir)
    data = tflite_file.read_model_bytes(model_path)
    interpreter = tflite_file.load_interpreter(data, str(model_path))  # verifies the flatbuffer first
    ops = tflite_file.ops_info(data)
    inputs, outputs = tflite_file.io_details(interpreter)
    x, y = run.split(split)
    probs = tflite_file.predict(interpreter, metadata.as_exported(model_path, data, x))
    model = run.load_model()
    keras_probs = model.predict(x, batch_size=256, verbose=0)
    keras_metrics = classification_metrics(y, keras_probs, run.spec.labels)
    par = parity(probs, y, run.spec.labels, keras_probs, keras_metrics)
    return {
        "schema": "mobile_ml.evaluation",
        "schema_version": 1,
        "model": str(model_path),
        "run_dir": str(run.dir),
        "split": split,
        "bytes": len(data),
        "keras_accuracy": keras_metrics.accuracy,
        **par.summary(),
        "ops": list(ops.ops),
        "builtin_only": ops.builtin_only,
        "inputs": [i.to_dict() for i in inputs],
        "outputs": [o.to_dict() for o in outputs],
        "metrics": to_jsonable(par.metrics),
    }


def parse_range(text: str | None) -> tuple[float, float] | None:
    """``--input-range A,B`` → (A, B), finite with A < B."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        lo = hi = float("nan")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ConfigError(f"--input-range {text!r} is not two numbers A,B with A < B", hint="e.g. --input-range 0,1")
    return lo, hi


def _signature_names(interpreter: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Tensor index → the signature's input/output name ('input' rather than 'serving_default_input:0')."""
    sigs = interpreter.get_signature_list()
    if len(sigs) != 1:
        return {}, {}
    runner = interpreter.get_signature_runner(next(iter(sigs)))
    ins = {d["index"]: name for name, d in runner.get_input_details().items()}
    outs = {d["index"]: name for name, d in runner.get_output_details().items()}
    return ins, outs


def _data_specs(interpreter: Any) -> tuple[list[IOSpec], list[int], list[TensorInfo]]:
    """What the data must look like: real values (quantizing is ours) in the input's shape without the batch."""
    ins, _ = _signature_names(interpreter)
    details = interpreter.get_input_details()
    infos = [TensorInfo.from_details(d) for d in details]
    specs = [
        IOSpec(
            ins.get(d["index"], info.name),
            tuple(None if v == -1 else int(v) for v in info.shape[1:]),
            "float32" if info.scale is not None or np.dtype(info.dtype).kind == "f" else info.dtype,
        )
        for d, info in zip(details, infos, strict=True)
    ]
    return specs, [d["index"] for d in details], infos


def _run(interpreter: Any, rows: Sequence[np.ndarray], indices: Sequence[int], infos: Sequence[TensorInfo]):
    """Every row through the model (batches when the batch dimension is dynamic); real-valued outputs."""
    outs = interpreter.get_output_details()
    out_infos = [TensorInfo.from_details(d) for d in outs]
    dynamic = all(info.shape[:1] == (-1,) for info in infos)
    step, n, current = (256 if dynamic else 1), len(rows[0]), None
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for start in range(0, n, step):
        chunk = [r[start : start + step] for r in rows]
        if dynamic and len(chunk[0]) != current:
            for index, c in zip(indices, chunk, strict=True):
                interpreter.resize_tensor_input(index, list(c.shape))
            interpreter.allocate_tensors()
            current = len(chunk[0])
        for index, c, info in zip(indices, chunk, infos, strict=True):
            interpreter.set_tensor(index, tflite_file.quantize(c, info))
        interpreter.invoke()
        for i, (d, info) in enumerate(zip(outs, out_infos, strict=True)):
            results[i].append(tflite_file.dequantize(interpreter.get_tensor(d["index"]), info).copy())
    return [np.concatenate(r) for r in results]


def _task_of(task: Task, outputs: list[np.ndarray], ex: Examples) -> Task:
    width = int(np.prod(outputs[0].shape[1:])) if outputs else 0
    if task is Task.AUTO:
        return Task.CLASSIFICATION if width > 1 and ex.y is not None and ex.y.dtype.kind == "i" else Task.REGRESSION
    if task is Task.CLASSIFICATION and (len(outputs) != 1 or width < 2):
        raise DataError(
            f"the model has {len(outputs)} output(s) of {width} value(s) a row; classification needs one output "
            "with a value per class",
            hint="pass --task regression",
        )
    return task


def evaluate_tflite(
    model_path: str | Path,
    eval_path: str | Path,
    *,
    labels_path: str | Path | None = None,
    target: str | None = None,
    input_range: tuple[float, float] | None = None,
    task: Task = Task.AUTO,
    keras_path: str | Path | None = None,
) -> dict[str, Any]:
    """Figures of the .tflite at ``model_path`` on the labelled data at ``eval_path`` (nothing is written)."""
    data = tflite_file.read_model_bytes(model_path)
    interpreter = tflite_file.load_interpreter(data, str(model_path))
    ops = tflite_file.ops_info(data)
    meta = _metadata_beside(Path(model_path), data)
    labels = tuple(load_labels(labels_path)) if labels_path else (tuple(meta.labels) if meta else None)
    specs, indices, infos = _data_specs(interpreter)
    if labels is not None and task is not Task.REGRESSION:
        _check_label_count(labels, interpreter, labels_path or "metadata.json beside the model")
    classes = None if task is Task.REGRESSION else labels  # regression targets are numbers, not class names
    ex = load_examples(eval_path, specs, option="--eval", labelled=True, target=target, labels=classes,
                       input_range=input_range)  # fmt: skip
    fed = [ex.x[s.name] for s in specs]
    if meta is not None and len(fed) == 1:
        fed = [metadata.model_input(meta, fed[0])]  # integer tabular variants take rows the app normalized
    outputs = _run(interpreter, fed, indices, infos)
    task = _task_of(task, outputs, ex)
    keras = _keras_outputs(keras_path, ex, outputs) if keras_path else None
    inputs, outs = tflite_file.io_details(interpreter)
    result: dict[str, Any] = {
        "schema": "mobile_ml.evaluation",
        "schema_version": 1,
        "model": str(model_path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "eval": str(eval_path),
        "task": task.value,
        "bytes": len(data),
        "examples": len(ex),
        "ops": list(ops.ops),
        "builtin_only": ops.builtin_only,
        "inputs": [i.to_dict() for i in inputs],
        "outputs": [o.to_dict() for o in outs],
        "metadata": meta is not None,
    }
    if ex.y is None:  # load_examples(labelled=True) refuses data without labels; this narrows the type
        raise DataError(f"--eval {eval_path} has no labels", hint="pass labelled data")
    if task is Task.CLASSIFICATION:
        result |= _classification(outputs[0], ex.y, labels, keras)
    else:
        result |= _regression(outputs, ex.y, keras)
    return result


def _check_label_count(labels: Sequence[str], interpreter: Any, where: str | Path) -> None:
    """Refused before the data is read: a class list that does not match the output cannot label it."""
    out = TensorInfo.from_details(interpreter.get_output_details()[0])
    width = int(np.prod([d for d in out.shape[1:] if d > 0]))
    if len(interpreter.get_output_details()) == 1 and width != len(labels):
        raise DataError(
            f"{where} has {len(labels)} labels but the model's output has {width} values a row",
            hint="pass --labels with one class name per output value, in output order",
        )


def _metadata_beside(model_path: Path, data: bytes) -> metadata.ModelMetadata | None:
    beside = model_path.parent / "metadata.json"
    if not beside.is_file():
        return None
    meta = metadata.read(beside)
    return meta if meta.model.sha256 == hashlib.sha256(data).hexdigest() else None


def _keras_outputs(keras_path: str | Path, ex: Examples, outputs: list[np.ndarray]) -> list[np.ndarray]:
    from mobile_ml.export.model_file import load_model

    model = load_model(keras_path)
    if len(model.inputs) != len(ex.x):
        raise DataError(
            f"--keras {keras_path} has {len(model.inputs)} input(s); the .tflite has {len(ex.x)}",
            hint="pass the Keras model the .tflite was exported from",
        )
    rows = list(ex.x.values())
    by_name = {s.name: ex.x.get(s.name, rows[i]) for i, s in enumerate(model.inputs)}
    keras = model.predict(by_name)
    if [k.shape for k in keras] != [o.shape for o in outputs]:
        raise DataError(
            f"--keras {keras_path} gives outputs of shape {[list(k.shape[1:]) for k in keras]}, the .tflite "
            f"{[list(o.shape[1:]) for o in outputs]}",
            hint="pass the Keras model the .tflite was exported from",
        )
    return keras


def _classification(
    probs: np.ndarray, y: np.ndarray, labels: Sequence[str] | None, keras: list[np.ndarray] | None
) -> dict[str, Any]:
    from mobile_ml.outputs import to_jsonable

    probs = probs.reshape(len(probs), -1)
    names = list(labels) if labels is not None else [str(i) for i in range(probs.shape[1])]
    if len(names) != probs.shape[1]:
        raise DataError(
            f"{len(names)} labels but the model has {probs.shape[1]} output values a row",
            hint="pass --labels with one class name per output, in output order",
        )
    if y.dtype.kind != "i":
        raise DataError("--eval labels are not class indices", hint="pass --task regression for numeric targets")
    if y.min() < 0 or y.max() >= len(names):
        bad = int(y.min() if y.min() < 0 else y.max())
        raise DataError(f"--eval has class index {bad}, outside 0..{len(names) - 1}", hint="check --labels")
    m = classification_metrics(y, probs, names)
    out: dict[str, Any] = {"accuracy": m.accuracy, "macro_f1": m.macro_f1, "loss": m.loss, "labels": names}
    if keras is not None:
        from mobile_ml.export.parity import classification as parity

        kp = keras[0].reshape(len(probs), -1)
        km = classification_metrics(y, kp, names)
        p = parity(probs, y, names, kp, km)
        out |= {"keras_accuracy": km.accuracy, **p.summary()}
    return out | {"metrics": to_jsonable(m)}


def _regression(outputs: list[np.ndarray], y: np.ndarray, keras: list[np.ndarray] | None) -> dict[str, Any]:
    pred = outputs[0].astype(np.float64).reshape(len(y), -1)
    target = y.astype(np.float64).reshape(len(y), -1)
    if pred.shape != target.shape:
        raise DataError(
            f"--eval targets have {target.shape[1]} value(s) a row but the model's first output {pred.shape[1]}",
            hint="give y one column per output value",
        )
    err = pred - target
    out: dict[str, Any] = {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "max_abs_error": float(np.abs(err).max()),
    }
    if keras is not None:
        k = keras[0].astype(np.float64).reshape(pred.shape)
        out |= {"keras_mae": float(np.abs(k - target).mean()), "keras_rmse": float(np.sqrt(((k - target) ** 2).mean()))}
    if keras is not None:
        deltas = [np.abs(o.astype(np.float64) - kk.astype(np.float64)) for o, kk in zip(outputs, keras, strict=True)]
        out["max_abs_diff"] = max(float(d.max()) for d in deltas)
        out["mean_abs_diff"] = float(np.mean([d.mean() for d in deltas]))
    return out
