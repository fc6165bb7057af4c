""".tflite files: load them with LiteRT behind clear errors, and read what a model needs at run time.

Everything here reads the flatbuffer (``ai_edge_litert``'s generated schema) or asks the LiteRT interpreter; nothing
imports TensorFlow, so inspecting or evaluating a model costs milliseconds, not seconds of import.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml import _tf
from mobile_ml.contracts.variants import OpsInfo, TensorInfo
from mobile_ml.errors import InputFileError

__all__ = [
    "OpsInfo",
    "TensorInfo",
    "builtin_op_names",
    "check_model_bytes",
    "dequantize",
    "io_details",
    "load_interpreter",
    "op_name",
    "ops_info",
    "predict",
    "predict_named",
    "quantize",
    "read_model_bytes",
]

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite


def read_model_bytes(path: str | Path) -> bytes:
    """The bytes of a .tflite file, after the cheap checks that catch the wrong file before LiteRT sees it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path} not found", hint="pass the path of a .tflite file") from None
    except IsADirectoryError:
        raise InputFileError(f"{path} is a directory, not a .tflite file", hint="pass the model file itself") from None
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror}", hint="check the path and its permissions") from e
    check_model_bytes(data, str(path))
    return data


def check_model_bytes(data: bytes, where: str) -> None:
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        what = "empty" if not data else "not a TFLite model (no TFL3 identifier)"
        raise InputFileError(f"{where} is {what}", hint="pass a .tflite file written by `mobile-ml export`")


@functools.cache
def builtin_op_names() -> dict[int, str]:
    """TFLite builtin operator codes → names (CONV_2D, ...), from LiteRT's generated flatbuffer schema."""
    from ai_edge_litert import schema_py_generated as fb

    return {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(opcode: Any) -> str:
    """The name of one ``OperatorCode`` of a model: builtin name, custom code, or ``BUILTIN_<n>`` if unknown here."""
    from ai_edge_litert import schema_py_generated as fb

    # Codes above 127 live only in builtin_code; older files keep small codes in deprecated_builtin_code.
    code = max(opcode.BuiltinCode(), opcode.DeprecatedBuiltinCode())
    custom = opcode.CustomCode()
    if code == fb.BuiltinOperator.CUSTOM and custom:
        return str(custom.decode())
    return builtin_op_names().get(code, f"BUILTIN_{code}")


def ops_info(data: bytes) -> OpsInfo:
    """Distinct operators in every subgraph, with Select-TF (Flex) and other custom ops singled out."""
    from ai_edge_litert import schema_py_generated as fb

    try:
        model = fb.Model.GetRootAs(data, 0)
        codes = [op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
        used = set()
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            for o in range(sg.OperatorsLength()):
                used.add(codes[sg.Operators(o).OpcodeIndex()])
    except Exception as e:  # a damaged flatbuffer surfaces as struct/index errors from the generated reader
        raise InputFileError(
            f"the model's operator table cannot be read: {e or type(e).__name__}",
            hint="the file is truncated or damaged; export it again",
        ) from e
    builtin = set(builtin_op_names().values())
    flex = tuple(sorted(op for op in used if op.startswith("Flex")))
    custom = tuple(
        sorted(op for op in used if op not in builtin and not op.startswith("Flex") and not op.startswith("BUILTIN_"))
    )
    return OpsInfo(tuple(sorted(used)), flex, custom)


def load_interpreter(data: bytes, where: str, *, num_threads: int | None = None):
    """A LiteRT ``Interpreter`` with tensors allocated, or an ``InputFileError`` that says what is wrong."""
    from ai_edge_litert.interpreter import Interpreter

    check_model_bytes(data, where)
    try:
        # LiteRT logs "Created TensorFlow Lite XNNPACK delegate" on fd 2; our output stays ours.
        with _tf.quiet_stderr():
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Flex" in str(e) or "Select TensorFlow" in str(e):
            raise InputFileError(
                f"{where} needs Select-TF (Flex) ops, which the LiteRT runtime here does not have",
                hint="re-export without --allow-flex, replacing the layer that needs them",
            ) from e
        raise InputFileError(
            f"LiteRT cannot load {where}: {first}", hint="the file is truncated or damaged; export it again"
        ) from e
    return interpreter


def io_details(interpreter) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    return (
        tuple(TensorInfo.from_details(d) for d in interpreter.get_input_details()),
        tuple(TensorInfo.from_details(d) for d in interpreter.get_output_details()),
    )


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Real values → the tensor's dtype (round to nearest, saturate), as an app must do for integer inputs."""
    if info.scale is None:
        return np.asarray(x, dtype=info.dtype)
    lim = np.iinfo(info.dtype)
    q = np.round(np.asarray(x, dtype=np.float64) / info.scale) + (info.zero_point or 0)
    return np.clip(q, lim.min, lim.max).astype(info.dtype)


def dequantize(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.scale is None:
        return np.asarray(q, dtype=np.float32)
    return ((q.astype(np.float32) - (info.zero_point or 0)) * info.scale).astype(np.float32)


def predict(interpreter, x: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Run every row of ``x`` (real values) through a single-input, single-output model; return real outputs.

    Batches are used when the model's batch dimension is dynamic (Keras exports are), one row at a time otherwise.
    """
    (inp,), outs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(outs) != 1:
        raise InputFileError(
            f"the model has {len(outs)} outputs; evaluation handles one", hint="export a single-output classifier"
        )
    in_info, out_info = TensorInfo.from_details(inp), TensorInfo.from_details(outs[0])
    expected = [int(v) for v in in_info.shape[1:]]
    if list(x.shape[1:]) != expected:
        raise InputFileError(
            f"the model expects inputs of shape {expected} but the data has {list(x.shape[1:])}",
            hint="evaluate the model with the data it was trained on",
        )
    step = batch if in_info.shape[0] == -1 else 1
    results, current = [], None
    for start in range(0, len(x), step):
        chunk = x[start : start + step]
        if len(chunk) != current:
            if step > 1:
                interpreter.resize_tensor_input(inp["index"], [len(chunk), *expected])
                interpreter.allocate_tensors()
            current = len(chunk)
        interpreter.set_tensor(inp["index"], quantize(chunk, in_info))
        interpreter.invoke()
        results.append(dequantize(interpreter.get_tensor(outs[0]["index"]), out_info).copy())
    return np.concatenate(results) if results else np.zeros((0, *out_info.shape[1:]), np.float32)


def predict_named(
    interpreter, x: Mapping[str, np.ndarray], outputs: Sequence[str], *, batch: int = 256
) -> list[np.ndarray]:
    """Run a model with any number of inputs and outputs through its signature, feeding each input by name.

    ``x`` maps the model's input names (the signature's keys) to rows of real values; integer inputs are quantized
    from their own tensor's scale. The outputs come back dequantized, in the order of ``outputs`` (the source
    model's output names; when the signature names them differently, e.g. ``output_0``, in signature order).
    """
    runner = interpreter.get_signature_runner()
    ins, outs = runner.get_input_details(), runner.get_output_details()
    missing = sorted(set(ins) - set(x))
    if missing:
        raise InputFileError(
            f"the model's inputs {', '.join(missing)} have no data (given: {', '.join(sorted(x))})",
            hint="name each input's array after the model's input (x_<input name> in an .npz)",
        )
    order = list(outputs) if set(outputs) <= set(outs) else sorted(outs)
    infos = {k: TensorInfo.from_details(d) for k, d in ins.items()}
    out_infos = {k: TensorInfo.from_details(d) for k, d in outs.items()}
    n = len(next(iter(x.values())))
    step = batch if all(i.shape[:1] == (-1,) for i in infos.values()) else 1
    parts: dict[str, list[np.ndarray]] = {k: [] for k in order}
    for start in range(0, n, step):
        feed = {k: quantize(np.asarray(x[k][start : start + step]), infos[k]) for k in ins}
        got = runner(**feed)
        for k in order:
            parts[k].append(dequantize(np.asarray(got[k]), out_infos[k]).copy())
    return [np.concatenate(parts[k]) for k in order]
