"""The one place TensorFlow and Keras are imported.

The whole project uses legacy Keras 2 (``tf_keras``): tensorflow-model-optimization (QAT, pruning) does not work
with the Keras 3 that TensorFlow 2.16+ ships, and mixing the two flavours in one process produces models that the
other half cannot read. ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first imported, so
``configure_environment`` runs when ``mobile_ml`` itself is imported (it only touches ``os.environ``).

Importing TensorFlow costs seconds, so light modules never import this at module level: call ``keras()`` inside the
function that needs it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

_DEBUG = False
_SET_LOG_LEVEL = False  # whether TF_CPP_MIN_LOG_LEVEL is ours (then --debug may take it back) or the user's


def configure_environment(debug: bool = False) -> None:
    """Set the environment TensorFlow reads at import time. Cheap; safe to call more than once."""
    global _DEBUG, _SET_LOG_LEVEL
    _DEBUG = debug or _DEBUG
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if _DEBUG:
        if _SET_LOG_LEVEL and "tensorflow" not in sys.modules:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
            _SET_LOG_LEVEL = False
    elif "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        # 3 = hide INFO, WARNING and ERROR lines from TensorFlow's C++ logging. At 2, every first fit() still prints
        # "failed call to cuInit" and "NodeDef mentions attribute ..." on CPU-only machines; real failures still
        # surface as Python exceptions.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        _SET_LOG_LEVEL = True


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while native code runs.

    Abseil prints "All log messages before absl::InitializeLog()..." and CUDA probing lines straight to fd 2 during
    ``import tensorflow``; no environment variable stops them. Python exceptions still propagate, so real failures
    are not hidden. With ``--debug`` nothing is silenced.
    """
    if _DEBUG:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some test runners)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """``quiet_stderr`` with Python warnings ignored too: TensorFlow, Keras and tfmot chatter on both channels
    (deprecation notices, "input statistics not needed" from the converter); exceptions still propagate."""
    with quiet_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def tensorflow() -> ModuleType:
    """Import TensorFlow quietly, with legacy Keras selected."""
    if "tensorflow" not in sys.modules:
        configure_environment()
        with quiet():
            import tensorflow as tf  # noqa: F401  (imported for its side effect on sys.modules)
        if not _DEBUG:
            tf.get_logger().setLevel(logging.ERROR)
            with contextlib.suppress(Exception):
                import absl.logging

                absl.logging.set_verbosity(absl.logging.ERROR)
    import tensorflow as tf

    return tf


def keras() -> ModuleType:
    """Return ``tf_keras``, the Keras 2 the project uses everywhere."""
    tensorflow()
    with quiet():
        import tf_keras
    return tf_keras


def versions() -> dict[str, str]:
    """Versions of the ML runtime, for lineage records. Imports TensorFlow."""
    tf = tensorflow()
    out = {"tensorflow": tf.__version__, "tf_keras": keras().__version__}
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        out["ai_edge_litert"] = version("ai-edge-litert")
        out["tensorflow_model_optimization"] = version("tensorflow-model-optimization")
    return out
