# stand-in: replaced by byom-models's module at merge
"""Minimal stand-in of the model-file loader (tf_keras .keras/.h5, Keras 3 .keras) with the interface's signature."""

from __future__ import annotations

import enum
import hashlib
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml import _tf
from mobile_ml.errors import InputFileError, UserError


class ModelForm(str, enum.Enum):
    RUN = "run"
    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"
    H5 = "h5"
    SAVED_MODEL = "saved_model"
    KERAS3_EXPORT = "keras3_export"


class FinetuneUnsupported(UserError):
    """The model cannot be fine-tuned with tfmot."""


@dataclass(frozen=True)
class IOSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    form: ModelForm
    sha256: str
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    _model: Any = field(default=None, repr=False, compare=False)

    def predict(self, x: Mapping[str, np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
        feed = [np.asarray(x[i.name]) for i in self.inputs]
        out = self._model.predict(feed if len(feed) > 1 else feed[0], batch_size=batch_size, verbose=0)
        return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]

    def converter(self) -> Any:
        tf = _tf.tensorflow()
        if self.form is ModelForm.KERAS3:
            import tempfile

            d = tempfile.mkdtemp(prefix="mobile-ml-k3-")
            with _tf.quiet():
                self._model.export(d, verbose=False)
            return tf.lite.TFLiteConverter.from_saved_model(d)
        return tf.lite.TFLiteConverter.from_keras_model(self._model)

    def float_weight_bytes(self) -> int:
        return int(sum(np.asarray(w).size * 4 for w in self._model.get_weights()))

    def finetunable(self, x: Mapping[str, np.ndarray]) -> Any:
        if self.form is ModelForm.KERAS3:
            raise FinetuneUnsupported(
                "this Keras 3 model cannot be rebuilt in tf_keras (stand-in: no rebuilding)",
                hint="export fp32, fp16, dynamic or int8",
            )
        return self._model


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _specs(tensors) -> tuple[IOSpec, ...]:
    return tuple(
        IOSpec(t.name.split(":")[0].split("/")[0], tuple(t.shape[1:]), np.dtype(getattr(t.dtype, "name", t.dtype)).name)
        for t in tensors
    )


def load_model(path: str | Path, *, custom_objects: Path | None = None) -> LoadedModel:
    path = Path(path)
    if not path.is_file() or path.suffix not in (".keras", ".h5"):
        raise InputFileError(f"{path} is not a model file", hint="pass a .keras or .h5 file (stand-in loader)")
    keras3 = False
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            keras3 = json.loads(z.read("metadata.json")).get("keras_version", "2").startswith("3")
    if keras3:
        _tf.tensorflow()
        import keras

        with _tf.quiet():
            model = keras.saving.load_model(path)
        form = ModelForm.KERAS3
    else:
        with _tf.quiet():
            model = _tf.keras().models.load_model(path)
        form = ModelForm.TF_KERAS if path.suffix == ".keras" else ModelForm.H5
    return LoadedModel(path, form, _sha256(path), _specs(model.inputs), _specs(model.outputs), model)
