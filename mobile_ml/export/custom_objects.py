"""Custom objects: import the user's module of Keras layers and functions, and name what a model still lacks.

A model with custom layers or activations loads only when its classes are given to the loader. ``--custom-objects
module.py`` names a Python file; every Keras layer, model and function it defines is handed to whichever Keras
loads the model. When a load fails, the model's own config says which names neither Keras nor the module provides
(tf_keras reports an unknown layer only as "'str' object is not callable").
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

from mobile_ml.errors import InputFileError, UserError


def import_custom_objects(module_path: Path) -> dict[str, Any]:
    """Every Keras layer, model and function that ``module_path`` defines, keyed by name, for either Keras."""
    if not module_path.is_file() or module_path.suffix != ".py":
        raise InputFileError(f"--custom-objects {module_path} is not a Python file", hint="pass the module.py path")
    name = f"mobile_ml_custom_{hashlib.sha256(str(module_path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, module_path)
    if spec is None or spec.loader is None:
        raise InputFileError(f"cannot import {module_path}", hint="pass a Python source file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise UserError(f"importing {module_path} failed: {first_line(e)}", hint="fix the module") from e
    found: dict[str, Any] = {}
    for attr, value in vars(module).items():
        if getattr(value, "__module__", None) != name or attr.startswith("_"):
            continue
        if isinstance(value, type) and _is_keras_class(value) or callable(value) and not isinstance(value, type):
            found[attr] = value
    if not found:
        raise UserError(f"{module_path} defines no Keras layer, model or function", hint="pass the module that does")
    return found


def _is_keras_class(cls: type) -> bool:
    return any(
        base.__module__.split(".")[0] in ("keras", "tf_keras") and base.__name__ in ("Layer", "Model", "Operation")
        for base in cls.__mro__
    )


_MISSING = (
    re.compile(r"Could not locate (?:class|function) '([\w.>]+)'"),
    re.compile(
        r"Unknown (?:layer|object|activation|loss|metric|initializer|regularizer|constraint)[^'\"]*['\"]([\w.>]+)"
    ),
)


def load_error(path: Path, e: Exception, who: str, objects: dict, unknown: set[str]) -> UserError:
    # tf_keras reports an unknown layer as "'str' object is not callable", so the config is the first witness.
    said = {m for pattern in _MISSING for m in pattern.findall(str(e))} - set(objects) - {"function"}
    missing = sorted(unknown or said)
    if missing:
        return UserError(
            f"{path.name} needs custom objects that are not loaded: {', '.join(missing)}",
            hint="pass --custom-objects module.py, the Python file that defines them",
        )
    return InputFileError(
        f"cannot load {path.name} with {who}: {first_line(e)}",
        hint="the file is damaged or uses what this Keras cannot read back; save the model again as .keras",
    )


def unknown_objects(path: Path, keras: ModuleType, objects: dict) -> set[str]:
    """Names of the classes and functions in the model's config that neither Keras nor ``objects`` provides."""
    try:
        if path.suffix.lower() == ".keras":
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs["model_config"]
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # unreadable config: the load error itself is the better message
        return set()
    unknown: set[str] = set()
    _walk_config(config, keras, objects, unknown, in_layers=False)
    return unknown


def _walk_config(value: Any, keras: ModuleType, objects: dict, unknown: set[str], *, in_layers: bool) -> None:
    if isinstance(value, list):
        for item in value:
            _walk_config(item, keras, objects, unknown, in_layers=in_layers)
        return
    if not isinstance(value, dict):
        return
    name, module = value.get("class_name"), value.get("module")
    registered = value.get("registered_name") or name
    if isinstance(name, str) and "config" in value:
        known = name in objects or registered in objects or keras.saving.get_registered_object(registered) is not None
        if name == "function":  # a plain Python function (an activation) saved by name
            fn = value["config"]
            known = not isinstance(fn, str) or fn in objects or hasattr(keras.activations, fn)
            name = fn
        elif module is not None:
            known = known or str(module).split(".")[0] in ("keras", "tf_keras")
        elif in_layers:  # legacy format (h5): a layer is known when Keras has a class of that name
            known = known or hasattr(keras.layers, name) or name in ("Functional", "Sequential", "Model")
        else:
            known = True
        if not known:
            unknown.add(str(name))
    for key, item in value.items():
        _walk_config(item, keras, objects, unknown, in_layers=key == "layers" or (in_layers and key == "config"))


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
