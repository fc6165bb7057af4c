# stand-in: replaced by byom-models's module at merge
"""Minimal stand-in for byom-models' ``model_file``: IOSpec, and a tf_keras-only ``load_model`` (.keras/.h5)."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.errors import InputFileError


class ModelForm(str, enum.Enum):
    RUN = "run"
    KERAS3 = "keras3"
    TF_KERAS = "tf_keras"
    H5 = "h5"
    SAVED_MODEL = "saved_model"
    KERAS3_EXPORT = "keras3_export"


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
    keras_model: Any

    def predict(self, x: Mapping[str, np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
        rows = [x[i.name] for i in self.inputs]
        out = self.keras_model.predict(rows[0] if len(rows) == 1 else rows, batch_size=batch_size, verbose=0)
        return [np.asarray(o) for o in (out if isinstance(out, list) else [out])]


def _spec(t: Any) -> IOSpec:
    return IOSpec(t.name.split(":")[0], tuple(t.shape[1:]), t.dtype.name if hasattr(t.dtype, "name") else str(t.dtype))


def load_model(path: str | Path, *, custom_objects: Path | None = None) -> LoadedModel:
    from mobile_ml import _tf

    path = Path(path)
    if not path.is_file() or path.suffix not in (".keras", ".h5"):
        raise InputFileError(f"{path} is not a .keras or .h5 model file", hint="pass a model saved by tf_keras")
    with _tf.quiet_stderr():
        model = _tf.keras().models.load_model(path)
    form = ModelForm.H5 if path.suffix == ".h5" else ModelForm.TF_KERAS
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return LoadedModel(
        path, form, sha, tuple(_spec(t) for t in model.inputs), tuple(_spec(t) for t in model.outputs), model
    )
