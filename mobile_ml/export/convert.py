"""Keras model → .tflite bytes for one variant, with the converter's failures turned into errors a user can act on."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np

from mobile_ml import _tf
from mobile_ml.errors import DataError, MobileMLError, UserError
from mobile_ml.export.options import INTEGER_VARIANTS


class ConversionError(UserError):
    """The model cannot be expressed in TFLite builtin ops (exit code 2: the model must change)."""


def representative_sample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` rows of ``x`` drawn without replacement, in a fixed order for a given seed."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[: min(n, len(x))]
    return np.asarray(x[np.sort(idx)], dtype=np.float32)


def check_representative(sample: np.ndarray, model) -> None:
    expected = [int(d) for d in model.input_shape[1:]]
    got = [int(d) for d in sample.shape[1:]]
    if got != expected:
        raise DataError(
            f"representative data has rows of shape {got} but the model's input is {expected}",
            hint="calibrate with rows of the data the model was trained on",
        )
    if len(sample) == 0:
        raise DataError("representative data is empty", hint="calibration needs at least one row of train data")
    if not np.isfinite(sample).all():
        raise DataError(
            "representative data contains NaN or infinite values",
            hint="calibrate with cleaned data (`mobile-ml data prepare` imputes missing values)",
        )


def convert(
    model,
    variant: str,
    *,
    representative: np.ndarray | None = None,
    int8_io: str = "int8",
    allow_flex: bool = False,
    per_channel: bool = True,
) -> bytes:
    """Convert a ``tf_keras`` model; integer variants calibrate on ``representative`` (real-valued input rows).

    ``per_channel=False`` quantizes each weight tensor with one scale instead of one per output channel. The file
    is smaller (the schema stores a float32 scale and an int64 zero point per channel, 12 bytes, for weights and
    biases alike: 28 % of a MobileNetV2-0.35 int8 file), some accelerators need it, and accuracy may suffer,
    most in depthwise convolutions. The parity figures say whether it did.
    """
    tf = _tf.tensorflow()
    # stand-in for byom-models' LoadedModel route (their convert.py replaces this at merge)
    loaded = hasattr(model, "converter")
    converter = model.converter() if loaded else tf.lite.TFLiteConverter.from_keras_model(model)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant in INTEGER_VARIANTS:
        if representative is None:
            raise ValueError(f"{variant} needs representative data")
        if not loaded:
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
        raise _explain(e, model, variant, allow_flex) from e


def _rows(sample: np.ndarray) -> Callable[[], Iterable[list[np.ndarray]]]:
    def gen():
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
