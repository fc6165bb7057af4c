"""Bad input to ``mobile-ml export MODEL`` (issue 14, item 5): each case exits 2 with a one-line error (and a hint),
no traceback, and nothing written, neither the exports directory nor anything else beside the inputs.

The models are tiny and untrained: every refusal happens before a variant is built.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mobile_ml.cli import app

CUSTOM = """
import keras


class Doubling(keras.layers.Layer):
    def call(self, x):
        return x * 2.0
"""


def _keras3():
    import keras

    assert keras.__version__.startswith("3")
    return keras


def _dense(path: Path, units: int, activation: str | None) -> Path:
    keras = _keras3()
    inp = keras.Input((4,), name="features")
    keras.Model(inp, keras.layers.Dense(units, activation=activation)(inp)).save(path)
    return path


def _custom(path: Path) -> Path:
    """A model with a layer class from a module that is gone when the model is loaded (not importable, not given)."""
    (path.parent / "user_layers_bad_input.py").write_text(CUSTOM)
    spec = importlib.util.spec_from_file_location("user_layers_bad_input", path.parent / "user_layers_bad_input.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    keras = _keras3()
    inp = keras.Input((4,), name="features")
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(module.Doubling(name="dbl")(inp))).save(path)
    sys.modules.pop("user_layers_bad_input", None)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    np.savez(root / "eval.npz", x=x, y=rng.integers(0, 3, 20))
    np.savez(root / "eval-reg.npz", x=x, y=rng.normal(size=20).astype(np.float32))
    np.savez(root / "eval-wide.npz", x=rng.normal(size=(20, 5)).astype(np.float32), y=rng.integers(0, 3, 20))
    np.savez(root / "eval-text.npz", x=np.full((20, 4), "a"), y=rng.integers(0, 3, 20))
    nan = x.copy()
    nan[3, 2] = np.nan
    np.savez(root / "calib-nan.npz", x=nan)
    (root / "two-labels.txt").write_text("a\nb\n")
    (root / "notes.txt").write_text("not a model\n")
    _dense(root / "clf.keras", 3, "softmax")
    _dense(root / "reg.keras", 1, None)
    _custom(root / "custom.keras")
    return root


CASES = {
    "no-model-form": (["notes.txt", "--eval", "eval.npz"], ["notes.txt is not a model form", ".keras"]),
    "custom-objects": (["custom.keras", "--eval", "eval.npz"], ["custom objects", "Doubling", "--custom-objects"]),
    "eval-shape": (["clf.keras", "--eval", "eval-wide.npz"], ["shape [5]", "is [4]"]),
    "eval-dtype": (["clf.keras", "--eval", "eval-text.npz"], ["<U1", "float32"]),
    "label-count": (["clf.keras", "--eval", "eval.npz", "--labels", "two-labels.txt"], ["2 labels", "3 classes"]),
    "regression-as-classification": (
        ["reg.keras", "--eval", "eval-reg.npz", "--task", "classification"],
        ["--task classification", "regression model"],
    ),
    "nan-calibration": (
        ["clf.keras", "--eval", "eval.npz", "--calibration", "calib-nan.npz"],
        ["NaN", "--calibration"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(world, case):
    args, says = CASES[case]
    before = sorted(p.name for p in world.iterdir())
    files = [str(world / a) if "." in a else a for a in args]  # file names → paths in world; options as they are
    r = CliRunner().invoke(app, ["export", *files, "--out", str(world / "out")])
    assert r.exit_code == 2, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.output and len(lines) <= 2, r.stderr
    assert lines[0].startswith("error: ") and (len(lines) == 1 or lines[1].startswith("hint: ")), r.stderr
    for text in says:
        assert text in r.stderr, (text, r.stderr)
    assert sorted(p.name for p in world.iterdir()) == before  # no out/, no notes_exports/, nothing else
