"""A Keras model or a loaded model file → .tflite bytes for one variant, with the converter's failures turned into
errors a user can act on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import overload

import numpy as np

from mobile_ml import _tf
from mobile_ml.errors import DataError, MobileMLError, UserError
from mobile_ml.export.model_file import LoadedModel
from mobile_ml.export.options import INTEGER_VARIANTS


class ConversionError(UserError):
    """The model cannot be expressed in TFLite builtin ops (exit code 2: the model must change)."""


Representative = np.ndarray | Mapping[str, np.ndarray]  # one input's rows, or input name → rows


@overload
def representative_sample(x: np.ndarray, n: int, seed: int) -> np.ndarray: ...
@overload
def representative_sample(x: Mapping[str, np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]: ...
def representative_sample(x: Representative, n: int, seed: int) -> Representative:
    """Up to ``n`` rows of ``x`` drawn without replacement, in a fixed order for a given seed; for several inputs the
    same rows of each."""
    if isinstance(x, Mapping):
        rows = len(next(iter(x.values())))
        idx = np.sort(np.random.default_rng(seed).permutation(rows)[: min(n, rows)])
        return {k: _real(np.asarray(v)[idx]) for k, v in x.items()}
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[: min(n, len(x))]
    return np.asarray(x[np.sort(idx)], dtype=np.float32)


def _real(rows: np.ndarray) -> np.ndarray:
    return rows if np.issubdtype(rows.dtype, np.integer) else rows.astype(np.float32)


def _input_shapes(model) -> dict[str, list[int]]:
    """Input name → row shape, for a LoadedModel or a tf_keras model (None dimensions as -1)."""
    if isinstance(model, LoadedModel):
        return {s.name: [-1 if d is None else int(d) for d in s.shape] for s in model.inputs}
    return {
        name: [-1 if d is None else int(d) for d in t.shape[1:]]
        for name, t in zip(model.input_names, model.inputs, strict=True)
    }


def check_representative(sample: Representative, model) -> None:
    """Refuse calibration rows that do not fit the model's inputs, are empty or are not finite."""
    shapes = _input_shapes(model)
    if not isinstance(sample, Mapping):
        if len(shapes) != 1:
            raise DataError(
                f"the model has {len(shapes)} inputs ({', '.join(shapes)}) but the representative data is one array",
                hint="pass calibration data for every input (an .npz with x_<input name> arrays)",
            )
        sample = {next(iter(shapes)): sample}
    missing = [name for name in shapes if name not in sample]
    if missing or len(sample) != len(shapes):
        raise DataError(
            f"representative data has inputs {', '.join(sample) or 'none'} but the model's are {', '.join(shapes)}",
            hint="name calibration arrays after the model's inputs (x_<input name> in an .npz)",
        )
    for name, expected in shapes.items():
        rows = np.asarray(sample[name])
        got = [int(d) for d in rows.shape[1:]]
        if len(got) != len(expected) or any(e not in (-1, g) for e, g in zip(expected, got, strict=True)):
            where = f" for input {name}" if len(shapes) > 1 else ""
            raise DataError(
                f"representative data{where} has rows of shape {got} but the model's input is {expected}",
                hint="calibrate with rows of the data the model was trained on",
            )
        if len(rows) == 0:
            raise DataError("representative data is empty", hint="calibration needs at least one row of train data")
        if not np.isfinite(rows).all():
            raise DataError(
                "representative data contains NaN or infinite values",
                hint="calibrate with cleaned data (`mobile-ml data prepare` imputes missing values)",
            )
    if len({len(np.asarray(v)) for v in sample.values()}) > 1:
        raise DataError("representative data has a different number of rows per input", hint="pass aligned rows")


def convert(
    model,
    variant: str,
    *,
    representative: Representative | None = None,
    int8_io: str = "int8",
    allow_flex: bool = False,
    per_channel: bool = True,
) -> bytes:
    """Convert a ``tf_keras`` model or a ``LoadedModel``; integer variants calibrate on ``representative``
    (real-valued input rows: an array for a one-input model, input name → rows for any model).

    ``per_channel=False`` quantizes each weight tensor with one scale instead of one per output channel. The file
    is smaller (the schema stores a float32 scale and an int64 zero point per channel, 12 bytes, for weights and
    biases alike: 28 % of a MobileNetV2-0.35 int8 file), some accelerators need it, and accuracy may suffer,
    most in depthwise convolutions. The parity figures say whether it did.
    """
    tf = _tf.tensorflow()
    if isinstance(model, LoadedModel):
        with _tf.quiet():
            converter = model.converter()
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in INTEGER_VARIANTS:
        if representative is None:
            raise ValueError(f"{variant} needs representative data")
        check_representative(representative, model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _rows(representative)
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    elif variant != "fp32":
        raise ValueError(f"unknown variant {variant}")
    if not per_channel and variant != "fp32" and variant != "fp16":
        converter._experimental_disable_per_channel = True  # no public switch; stable since TF 2.4
    if allow_flex:
        ops = [*ops, tf.lite.OpsSet.SELECT_TF_OPS]
    converter.target_spec.supported_ops = ops
    try:
        # The converter warns about input statistics it does not need when a representative dataset is given.
        with _tf.quiet():
            return bytes(converter.convert())
    except MobileMLError:
        raise
    except Exception as e:
        keras_model = model.handle if isinstance(model, LoadedModel) and model.keras_major else model
        raise _explain(e, keras_model, variant, allow_flex) from e


def _rows(sample: Representative) -> Callable[[], Iterable[list[np.ndarray] | dict[str, np.ndarray]]]:
    """Calibration batches of one row. Several inputs are fed as a dict keyed by signature input name: every route
    (from_keras_model, from_saved_model) accepts that, while a list is matched against the converted graph's own
    input order, which is not the model's (measured: a two-input list fails with a shape mismatch)."""

    def gen():
        if isinstance(sample, Mapping):
            for i in range(len(next(iter(sample.values())))):
                yield {name: np.asarray(rows)[i : i + 1] for name, rows in sample.items()}
        else:
            for i in range(len(sample)):
                yield [sample[i : i + 1]]

    return gen


_OP = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")


def _explain(error: Exception, model, variant: str, allow_flex: bool) -> MobileMLError:
    text = str(error)
    ops = sorted(set(_OP.findall(text)))
    if not ops:
        first = next((line.strip() for line in text.splitlines() if "error:" in line), text.strip()[:200])
        return ConversionError(
            f"the TFLite converter failed on the {variant} variant: {first[:300]}",
            hint="rerun with --debug for the converter's full log",
        )
    where = []
    for op in ops:
        layer = find_layer_with_op(model, op)
        where.append(f"{op} (layer '{layer}')" if layer else op)
    if "ERROR_NEEDS_FLEX_OPS" in text and not allow_flex:
        hint = (
            "replace that layer with TFLite builtin ops, or pass --allow-flex to use Select-TF ops "
            "(the app then needs the Flex delegate, about 6 MB per ABI)"
        )
    else:
        hint = "replace that layer with ops TFLite supports: https://ai.google.dev/edge/litert/models/ops_compatibility"
    return ConversionError(f"TensorFlow op {', '.join(where)} has no TFLite builtin kernel", hint=hint)


def find_layer_with_op(model, op_type: str) -> str | None:
    """The name of the first layer whose traced graph contains a TensorFlow op of ``op_type``, if any."""
    tf = _tf.tensorflow()
    for layer in getattr(model, "layers", []):
        shape = getattr(layer, "input_shape", None)
        if type(layer).__name__ == "InputLayer" or not isinstance(shape, tuple):
            continue
        try:
            spec = tf.TensorSpec(shape, tf.float32)
            graph = tf.function(layer.call).get_concrete_function(spec).graph
        except Exception:  # layers with several inputs or special call signatures: skip, the op name still helps
            continue
        if any(o.type == op_type for o in graph.get_operations()):
            return layer.name
    return None
