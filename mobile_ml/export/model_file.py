"""A model the user brings: detect who wrote it, load it with that Keras, and convert it the way TFLite supports.

Forms and how each is recognised (never by trying loaders until one works):
  - a run directory: ``run.json`` names its ``model.keras``;
  - ``.keras``: a zip whose ``metadata.json`` has ``keras_version`` 3.x (Keras 3) or 2.x (``tf_keras``);
  - ``.h5``: the HDF5 root attribute ``keras_version`` says which Keras wrote it;
  - a SavedModel directory: ``keras_metadata.pb`` (or tf_keras objects in the graph) means ``tf_keras``; a
    ``serve`` signature without Keras metadata is Keras 3's ``model.export()``; anything else is treated like
    ``tf.saved_model.save`` output.

Names (``IOSpec.name``) are the names the converted TFLite file's ``serving_default`` signature runner uses, and the
keys ``LoadedModel.predict`` takes. Inputs: the Keras ``Input`` layer names stored in the file (tf_keras
``model.input_names``; Keras 3 ``model.inputs[i].name``, which after loading is the InputLayer's name, e.g.
``input_layer`` when the Input was not named), or the SavedModel signature's input keys (sorted). Outputs: tf_keras
output layer names; Keras 3 ``output_0``, ``output_1``, ... in output order (what ``model.export()`` names them); a
SavedModel's signature output keys. LiteRT lists signature outputs sorted by name, so match by name, not position.
A QAT model (tfmot wraps layers) names its outputs ``quant_<name>``; a pruned one keeps ``<name>``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import re
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mobile_ml import _tf
from mobile_ml.errors import InputFileError, UserError
from mobile_ml.export.custom_objects import first_line, import_custom_objects, load_error, unknown_objects
from mobile_ml.export.keras_rebuild import FinetuneUnsupported, rebuild

__all__ = ["FinetuneUnsupported", "IOSpec", "LoadedModel", "ModelForm", "load_model"]

ACCEPTED = "a run directory, a .keras file (Keras 3 or tf_keras), an .h5 file or a SavedModel directory"
_MATCH_TOLERANCE = 1e-4  # max |Δ| between a Keras 3 model and its tf_keras rebuild (float32 rounding, not drift)


class ModelForm(str, enum.Enum):
    RUN = "run"  # a run directory (model.keras written by our tf_keras training)
    KERAS3 = "keras3"  # .keras zip written by Keras 3 (metadata.json keras_version 3.x)
    TF_KERAS = "tf_keras"  # .keras zip written by tf_keras (Keras 2.x)
    H5 = "h5"  # legacy HDF5 file (tf_keras, or Keras 3's legacy h5 writer)
    SAVED_MODEL = "saved_model"  # a SavedModel directory written by tf_keras / tf.saved_model.save
    KERAS3_EXPORT = "keras3_export"  # a SavedModel written by Keras 3's model.export() (no Keras metadata)


@dataclass(frozen=True)
class IOSpec:
    name: str  # the model's input/output name (the SavedModel signature key where there is one)
    shape: tuple[int | None, ...]  # without the batch dimension
    dtype: str  # numpy dtype name: "float32", "int32", ...


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    form: ModelForm
    sha256: str  # of the file; of a directory: sha256 over its files' relative paths and bytes, sorted
    inputs: tuple[IOSpec, ...]
    outputs: tuple[IOSpec, ...]
    keras_major: int | None = None  # 3: a Keras 3 model object; 2: tf_keras; None: a SavedModel signature only
    handle: Any = field(default=None, repr=False, compare=False)  # the Keras model, or the loaded SavedModel
    _scratch: dict = field(default_factory=dict, repr=False, compare=False)  # the Keras 3 export, made once

    def predict(self, x: Mapping[str, np.ndarray], batch_size: int = 256) -> list[np.ndarray]:
        """Outputs in ``self.outputs`` order, rows first, for inputs keyed by ``IOSpec.name``."""
        missing = [s.name for s in self.inputs if s.name not in x]
        if missing:
            raise UserError(
                f"no data for the model input(s) {', '.join(missing)}",
                hint=f"the model's inputs are {', '.join(s.name for s in self.inputs)}",
            )
        args = [np.asarray(x[s.name], dtype=s.dtype) for s in self.inputs]
        if self.keras_major is not None:
            with _tf.quiet():
                out = self.handle.predict(args if len(args) > 1 else args[0], batch_size=batch_size, verbose=0)
            out = out if isinstance(out, list | tuple) else [out]
            return [np.asarray(o) for o in out]
        return self._predict_signature(x, batch_size)

    def _predict_signature(self, x: Mapping[str, np.ndarray], batch_size: int) -> list[np.ndarray]:
        tf = _tf.tensorflow()
        fn = self.handle.signatures["serving_default"]
        n = len(next(iter(x.values())))
        parts: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for start in range(0, n, batch_size):
            feed = {
                s.name: tf.constant(np.asarray(x[s.name][start : start + batch_size], s.dtype)) for s in self.inputs
            }
            out = fn(**feed)
            for i, spec in enumerate(self.outputs):
                parts[i].append(out[spec.name].numpy())
        return [np.concatenate(p) for p in parts]

    def converter(self) -> Any:
        """A fresh ``tf.lite.TFLiteConverter`` on the route the converter supports for this form.

        tf_keras models: ``from_keras_model``. Keras 3 models: ``model.export()`` to a temporary SavedModel (made once
        per loaded model, removed when it is garbage-collected or at exit), then ``from_saved_model``, which is the
        route that names signature outputs ``output_N`` and keeps the Keras input names. SavedModels:
        ``from_saved_model`` on the directory itself.
        """
        tf = _tf.tensorflow()
        if self.keras_major == 2:
            return tf.lite.TFLiteConverter.from_keras_model(self.handle)
        if self.keras_major == 3:
            return tf.lite.TFLiteConverter.from_saved_model(str(self._keras3_export()))
        return tf.lite.TFLiteConverter.from_saved_model(str(self.path))

    def _keras3_export(self) -> Path:
        if "export" not in self._scratch:
            tmp = tempfile.TemporaryDirectory(prefix="mobile-ml-export-")  # its finalizer removes it
            with _tf.quiet():
                self.handle.export(tmp.name + "/sm", verbose=False)
            self._scratch["tmp"], self._scratch["export"] = tmp, Path(tmp.name) / "sm"
        return Path(self._scratch["export"])

    def float_weight_bytes(self) -> int:
        """4 bytes per weight: the size of an fp32 file's weights, for size ratios when fp32 is not exported."""
        if self.keras_major is not None:
            return 4 * int(self.handle.count_params())
        return 4 * _saved_model_weights(self.path)

    def finetunable(self, x: Mapping[str, np.ndarray]) -> Any:
        """A ``tf_keras`` model for tfmot: the model itself, or a Keras 3 model rebuilt in tf_keras and proven to
        match it on ``x``; ``FinetuneUnsupported`` names what prevents it."""
        if self.keras_major == 2:
            return self.handle
        if self.form == ModelForm.SAVED_MODEL and (self.path / "keras_metadata.pb").is_file():
            return _load_tf_keras(self.path, {})
        if self.keras_major is None:
            raise FinetuneUnsupported(
                f"{self.path.name} is a SavedModel without a Keras model inside, so qat-int8 and pruned-int8 "
                "cannot run",
                hint="export from the .keras file instead, or skip those variants (--variants fp32,fp16,dynamic,int8)",
            )
        with _tf.quiet():
            model = rebuild(self.handle, [s.name for s in self.inputs], [s.name for s in self.outputs])
            args = [np.asarray(x[s.name]) for s in self.inputs]
            got = model.predict(args if len(args) > 1 else args[0], verbose=0)
        got = got if isinstance(got, list | tuple) else [got]
        for spec, want, have in zip(self.outputs, self.predict(x), got, strict=True):
            delta = float(np.max(np.abs(np.asarray(want, np.float64) - np.asarray(have, np.float64))))
            if not delta <= _MATCH_TOLERANCE:
                raise FinetuneUnsupported(
                    f"the tf_keras rebuild of {self.path.name} differs from it on output {spec.name} "
                    f"(max |Δ| {delta:.3g} > {_MATCH_TOLERANCE})",
                    hint="skip qat-int8 and pruned-int8 (--variants fp32,fp16,dynamic,int8)",
                )
        return model


def load_model(path: str | Path, *, custom_objects: Path | None = None) -> LoadedModel:
    """Load the model at ``path`` with the Keras that wrote it; ``InputFileError`` for anything else."""
    path = Path(path)
    objects = import_custom_objects(Path(custom_objects)) if custom_objects else {}
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return _load_saved_model(path)
        if (path / "run.json").is_file():
            return _load_run(path, objects)
        raise InputFileError(
            f"{path} is neither a run directory (no run.json) nor a SavedModel (no saved_model.pb)",
            hint=f"pass {ACCEPTED}",
        )
    if not path.is_file():
        raise InputFileError(f"model {path} does not exist", hint=f"pass {ACCEPTED}")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        major = _keras_zip_major(path)
        form = ModelForm.KERAS3 if major == 3 else ModelForm.TF_KERAS
    elif suffix in (".h5", ".hdf5"):
        major, form = _h5_major(path), ModelForm.H5
    else:
        raise InputFileError(f"{path.name} is not a model form mobile-ml reads", hint=f"pass {ACCEPTED}")
    model = _load_keras3(path, objects) if major == 3 else _load_tf_keras(path, objects)
    return _from_keras(path, form, _sha256(path), model, major)


def _from_keras(path: Path, form: ModelForm, sha: str, model: Any, major: int) -> LoadedModel:
    inputs = tuple(
        IOSpec(name if major == 2 else t.name, _shape(t.shape), _dtype(t.dtype))
        for name, t in zip(_input_names(model, major), model.inputs, strict=True)
    )
    names = list(model.output_names) if major == 2 else [f"output_{i}" for i in range(len(model.outputs))]
    outputs = tuple(IOSpec(n, _shape(t.shape), _dtype(t.dtype)) for n, t in zip(names, model.outputs, strict=True))
    return LoadedModel(path, form, sha, inputs, outputs, major, model)


def _input_names(model: Any, major: int) -> list[str]:
    return list(model.input_names) if major == 2 else [t.name for t in model.inputs]


def _load_run(path: Path, objects: dict) -> LoadedModel:
    from mobile_ml.contracts import read_document
    from mobile_ml.contracts.run import RunRecord

    info = read_document(RunRecord, path / "run.json")
    file = path / info.model.files.keras
    if not file.is_file():
        raise InputFileError(f"{path} has no model: {file.name} is missing", hint="train the run again")
    major = _keras_zip_major(file)
    model = _load_keras3(file, objects) if major == 3 else _load_tf_keras(file, objects)
    return _from_keras(path, ModelForm.RUN if major == 2 else ModelForm.KERAS3, _sha256(file), model, major)


def _keras_zip_major(path: Path) -> int:
    try:
        with zipfile.ZipFile(path) as z:
            meta = json.loads(z.read("metadata.json"))
        version = str(meta["keras_version"])
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise InputFileError(
            f"{path.name} is not a readable .keras file ({first_line(e)})",
            hint="a .keras file is the zip `model.save('x.keras')` writes; save the model again",
        ) from e
    return _major(path, version)


def _h5_major(path: Path) -> int:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version")
            if "model_config" not in f.attrs:
                raise InputFileError(
                    f"{path.name} holds weights only, not a model (no model_config)",
                    hint="save the whole model with model.save('x.h5'), or use .keras",
                )
    except OSError as e:
        raise InputFileError(
            f"{path.name} is not a readable HDF5 file ({first_line(e)})", hint="save the model again"
        ) from e
    if version is None:
        return 2  # Keras before 2.1 wrote no version; only tf_keras can still read such files
    return _major(path, version.decode() if isinstance(version, bytes) else str(version))


def _major(path: Path, version: str) -> int:
    major = version.split(".")[0]
    if major not in ("2", "3"):
        raise InputFileError(
            f"{path.name} was written by Keras {version}; mobile-ml reads Keras 2 (tf_keras) and Keras 3 models",
            hint="save the model again with Keras 3 or tf_keras",
        )
    return int(major)


def _keras3() -> ModuleType:
    """Keras 3. ``import keras`` is Keras 3 even with TF_USE_LEGACY_KERAS=1: that switch only redirects tf.keras."""
    _tf.tensorflow()
    with _tf.quiet():
        import keras
    if not keras.__version__.startswith("3."):
        raise UserError(f"the installed keras is {keras.__version__}, not Keras 3", hint="pip install 'keras>=3'")
    return keras


def _load_keras3(path: Path, objects: dict) -> Any:
    keras = _keras3()
    try:
        with _tf.quiet():
            return keras.saving.load_model(path, custom_objects=objects or None, compile=False)
    except Exception as e:
        raise load_error(path, e, "Keras 3", objects, unknown_objects(path, keras, objects)) from e


def _load_tf_keras(path: Path, objects: dict) -> Any:
    tk = _tf.keras()
    try:
        with _tf.quiet():
            return tk.models.load_model(path, custom_objects=objects or None, compile=False)
    except Exception as e:
        raise load_error(path, e, "tf_keras", objects, unknown_objects(path, tk, objects)) from e


def _load_saved_model(path: Path) -> LoadedModel:
    from tensorflow.core.protobuf import saved_model_pb2

    tf = _tf.tensorflow()
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
        graph = proto.meta_graphs[0]
        signature = graph.signature_def["serving_default"]
    except Exception as e:  # DecodeError, IndexError (no graph), KeyError (no serving signature)
        raise InputFileError(
            f"{path.name} is not a usable SavedModel ({type(e).__name__}: {first_line(e)})",
            hint="it needs a serving_default signature; save or export the model again",
        ) from e
    ids = {n.user_object.identifier for n in graph.object_graph_def.nodes if n.WhichOneof("kind") == "user_object"}
    keras2 = (path / "keras_metadata.pb").is_file() or any(i.startswith("_tf_keras") for i in ids)
    form = ModelForm.KERAS3_EXPORT if "serve" in graph.signature_def and not keras2 else ModelForm.SAVED_MODEL
    inputs = tuple(_spec(tf, k, v) for k, v in sorted(signature.inputs.items()))
    outputs = tuple(_spec(tf, k, v) for k, v in sorted(signature.outputs.items(), key=lambda kv: _natural(kv[0])))
    try:
        with _tf.quiet():
            loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise InputFileError(f"cannot load the SavedModel {path.name}: {first_line(e)}", hint="export it again") from e
    return LoadedModel(path, form, _sha256(path), inputs, outputs, None, loaded)


def _saved_model_weights(path: Path) -> int:
    """Weights in a SavedModel's object graph: each variable node once (a checkpoint lists one variable under every
    path that reaches it), without the optimizer's or Keras 3's duplicates."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((path / "saved_model.pb").read_bytes())
    nodes = proto.meta_graphs[0].object_graph_def.nodes
    seen, todo, total = {0}, [0], 0
    while todo:
        node = nodes[todo.pop()]
        if node.WhichOneof("kind") == "variable":
            total += int(np.prod([d.size for d in node.variable.shape.dim]))
        for child in node.children:
            # Keras 3's export keeps a second copy of every variable under _all_variables
            if child.local_name not in ("optimizer", "_all_variables") and child.node_id not in seen:
                seen.add(child.node_id)
                todo.append(child.node_id)
    return total


def _spec(tf: Any, name: str, info: Any) -> IOSpec:
    dims = [d.size for d in info.tensor_shape.dim][1:]
    return IOSpec(name, tuple(None if d < 0 else int(d) for d in dims), tf.dtypes.as_dtype(info.dtype).name)


def _natural(name: str) -> tuple:
    """``output_2`` before ``output_10``: Keras 3's export numbers outputs in model order."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(file.relative_to(path).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def _shape(shape: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tuple(shape)[1:])


def _dtype(dtype: Any) -> str:
    with contextlib.suppress(AttributeError):
        return str(dtype.name)
    return str(np.dtype(dtype))
