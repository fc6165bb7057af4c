"""Integer variants of tabular models take normalized features: the app normalizes, the integer graph does not.

A full-integer model quantizes its input tensor with one scale for every feature. Our tabular models start with a
``Normalization`` layer, so that input is the raw row, and on a table whose columns differ by orders of magnitude
(grams next to ratios) the small columns all round to the same integer: int8 fell to majority-class accuracy.
Normalized features share one range (about ±3), so one scale fits them all.

So for int8, qat-int8 and pruned-int8 of a tabular model the exporter converts the *body*: the trained model minus
its leading ``Normalization`` layer, weights copied, proven equal to the model on normalized rows before anything
is converted. Calibration, fine-tuning and parity see normalized rows; ``metadata.json`` carries the per-feature mean
and std (``preprocessing.normalize``) that the app applies before quantizing. Float variants and image models keep
normalization inside (an image's normalization is one scale for all pixels, which int8's input scale absorbs).
A model file (Keras 3 or tf_keras) whose first layer is a ``Normalization`` over a row of features is split the
same way (``split_file_model``); its metadata.json then asks the app to normalize exactly as a run's does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mobile_ml import _tf
from mobile_ml.contracts.model_metadata import FeatureNormalization
from mobile_ml.export.convert import ConversionError

if TYPE_CHECKING:
    from mobile_ml.export.model_file import LoadedModel

__all__ = ["FeatureNormalization", "SplitModel", "normalize", "split_file_model", "split_normalization"]

# body(normalize(x)) and model(x) differ only by float rounding in a different order of operations.
PROOF_ATOL = 1e-5


def normalize(x: np.ndarray, norm: FeatureNormalization) -> np.ndarray:
    """(x − mean) / std per feature, in float32, exactly as the Normalization layer computes it."""
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class SplitModel:
    """A model's leading normalization as numbers, and the rest of the model that takes normalized rows."""

    norm: FeatureNormalization
    body: Any  # a tf_keras model: the trained layers after Normalization, weights copied

    def rows(self, x: np.ndarray) -> np.ndarray:
        return normalize(x, self.norm)


def split_normalization(model, x_check: np.ndarray, input_name: str | None = None) -> SplitModel | None:
    """``model`` minus its leading ``Normalization`` layer, or None when it has none or is not a plain chain.

    ``model`` is a tf_keras model, functional (a run's) or Sequential (a user's file). ``x_check`` (raw rows, e.g.
    the test split) proves the split: the body on normalized rows must give the model's outputs on raw rows, or a
    ``ConversionError`` says so before any variant is built from it. ``input_name`` names the body's input (a model
    file's input name, so the integer file's signature matches the float ones); default: the model's.
    """
    keras = _tf.keras()
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) < 2:
        return None
    first = layers[0]
    if not isinstance(first, keras.layers.Normalization) or getattr(first, "invert", False):
        return None
    if len(model.input_shape) != 2 or tuple(first.axis) not in ((-1,), (1,)):
        return None  # one value per feature along the last axis: the only form the app's formula covers
    pairs = zip(layers, layers[1:], strict=False)  # each layer with the next one
    chain = first.input is model.inputs[0] and all(b.input is a.output for a, b in pairs)
    if not chain or model.outputs[0] is not layers[-1].output:
        return None
    mean = np.asarray(first.mean, dtype=np.float32).reshape(-1)
    std = np.maximum(
        np.sqrt(np.asarray(first.variance, dtype=np.float32).reshape(-1)), np.float32(keras.backend.epsilon())
    )
    norm = FeatureNormalization(tuple(float(v) for v in mean), tuple(float(v) for v in std))
    body = _body(model, layers[1:], keras, input_name or model.inputs[0].name.split(":")[0])
    split = SplitModel(norm, body)
    check_split(model, split, x_check)
    return split


def split_file_model(model: LoadedModel, x: Mapping[str, np.ndarray]) -> SplitModel | None:
    """A model file's leading ``Normalization`` split off as for runs, or None when it has none.

    tf_keras files are split as they are. A Keras 3 model goes through its tf_keras rebuild (the one QAT uses,
    proven equal to the original on ``x``); when it cannot be rebuilt, or the file is a SavedModel without a Keras
    model inside, the integer variants keep normalization in the graph, as before.
    """
    from mobile_ml.export.model_file import FinetuneUnsupported, ModelForm

    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.inputs[0].shape) != 1:
        return None  # one row of features: the only input the app's per-feature formula covers
    keras_file = model.form is ModelForm.SAVED_MODEL and (model.path / "keras_metadata.pb").is_file()
    if model.keras_major is None and not keras_file:
        return None
    if model.keras_major is not None and not _leads_with_normalization(model.handle):
        return None  # checked on the loaded model first: no rebuild for models that do not need it
    try:
        tf_keras_model = model.finetunable(x)
    except FinetuneUnsupported:
        return None
    name = model.inputs[0].name
    return split_normalization(tf_keras_model, np.asarray(x[name]), input_name=name)


def _leads_with_normalization(model: Any) -> bool:
    """Whether a Keras 3 or tf_keras model's first layer after its input is a ``Normalization``."""
    layers = [layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"]
    return bool(layers) and type(layers[0]).__name__ == "Normalization"


def _body(model, rest: list, keras, name: str):
    inputs = keras.Input(shape=model.input_shape[1:], name=name)
    x = inputs
    for layer in rest:
        clone = layer.__class__.from_config(layer.get_config())
        x = clone(x)
        clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{model.name}_body")


def check_split(model, split: SplitModel, x: np.ndarray) -> None:
    """Raise ``ConversionError`` unless ``split.body(normalize(x))`` equals ``model(x)`` within float rounding."""
    if len(x) == 0:
        raise ConversionError(
            "no rows to prove the normalization split on", hint="the test split is empty; prepare the data again"
        )
    want = model.predict(x, batch_size=256, verbose=0)
    got = split.body.predict(split.rows(x), batch_size=256, verbose=0)
    diff = float(np.max(np.abs(np.asarray(want, np.float64) - np.asarray(got, np.float64))))
    if not diff <= PROOF_ATOL:
        raise ConversionError(
            f"the model without its Normalization layer differs from the model by {diff:.3g} on the test rows "
            f"(allowed {PROOF_ATOL:g}): integer variants cannot be built from it",
            hint="report this with the run directory; float variants are unaffected",
        )
