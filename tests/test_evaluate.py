"""``mobile-ml evaluate MODEL.tflite --eval FILE``: a .tflite in LiteRT on labelled data, without a run."""

import json
import shutil

import numpy as np
import pytest

from mobile_ml.errors import DataError
from mobile_ml.export import tflite_file
from mobile_ml.export.evaluate import evaluate_tflite
from tests.conftest import FIXTURES
from tests.test_cli import run as cli

EXPORT = FIXTURES / "digits_export"
DIGITS = FIXTURES.parent.parent / "mobile_ml" / "datasets" / "digits.npz"


@pytest.fixture
def digits_npz(tmp_path):
    """Every built-in digit as an .npz with x (N, 8, 8, 1) uint8 pixels 0..16 and y."""
    with np.load(DIGITS) as d:
        x, y = d["images"][..., None], d["labels"].astype(np.int64)
    np.savez(tmp_path / "digits.npz", x=x, y=y)
    return tmp_path / "digits.npz", x, y


def _json(*args):
    r = cli("evaluate", *args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_evaluate_without_a_run_reproduces_the_exports_figures(digits_dir, variant):
    """On the split the export was proven on, the figures are export.json's: same rows, same feeding."""
    report = json.loads((EXPORT / "export.json").read_text())
    row = next(v for v in report["variants"] if v["variant"] == variant)
    got = _json(EXPORT / variant / "model.tflite", "--eval", digits_dir / "test.npz")
    assert got["task"] == "classification" and got["examples"] == row["parity"]["examples"]
    assert got["accuracy"] == row["parity"]["accuracy"] and got["macro_f1"] == row["parity"]["macro_f1"]
    assert got["labels"] == [str(i) for i in range(10)]  # from the metadata.json beside the model
    assert got["metrics"]["confusion_matrix"] == row["metrics"]["confusion_matrix"]


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_int8_inputs_are_quantized_from_the_tflites_own_parameters(tmp_path, digits_npz, variant):
    """Alone (no metadata.json beside it), the model is fed as LiteRT's reference path feeds it."""
    path, x, y = digits_npz
    alone = tmp_path / "alone.tflite"
    shutil.copy(EXPORT / variant / "model.tflite", alone)
    got = _json(alone, "--eval", path)
    interpreter = tflite_file.load_interpreter(alone.read_bytes(), "alone")
    probs = tflite_file.predict(interpreter, x.astype(np.float32))
    assert got["accuracy"] == float((probs.argmax(1) == y).mean()) and got["examples"] == len(y) == 1797
    assert got["metadata"] is False and got["labels"] == [str(i) for i in range(10)]
    inp = got["inputs"][0]
    assert (inp["dtype"], inp["scale"] is not None) == (("int8", True) if variant == "int8" else ("float32", False))
    beside = _json(EXPORT / variant / "model.tflite", "--eval", path)
    assert beside["accuracy"] == got["accuracy"] and beside["metadata"] is True


def test_labels_file_names_the_classes_and_a_wrong_count_is_refused(tmp_path, digits_npz):
    path, _, _ = digits_npz
    (tmp_path / "labels.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    got = _json(EXPORT / "int8" / "model.tflite", "--eval", path, "--labels", tmp_path / "labels.txt")
    assert got["labels"][3] == "digit 3" and got["metrics"]["per_class"][3]["label"] == "digit 3"
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(DataError, match="has 3 labels but the model's output has 10 values a row"):
        evaluate_tflite(EXPORT / "int8" / "model.tflite", path, labels_path=tmp_path / "three.txt")


def test_regression_figures_on_the_same_outputs(tmp_path, digits_npz):
    """--task regression: MAE/RMSE of the outputs against float targets (here one-hot rows), as numpy says."""
    _, x, y = digits_npz
    target = np.eye(10)[y]
    np.savez(tmp_path / "reg.npz", x=x, y=target)
    got = _json(EXPORT / "fp32" / "model.tflite", "--eval", tmp_path / "reg.npz", "--task", "regression")
    probs = tflite_file.predict(tflite_file.load_interpreter((EXPORT / "fp32" / "model.tflite").read_bytes(), "m"), x)
    err = probs.astype(np.float64) - target
    assert got["task"] == "regression" and "accuracy" not in got
    assert got["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-9)
    assert got["rmse"] == pytest.approx(np.sqrt((err**2).mean()), rel=1e-9)
    assert got["max_abs_error"] == pytest.approx(np.abs(err).max(), rel=1e-9)


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    """A tiny tf_keras regression model (3 features → 1 value), saved and converted to fp32 and int8."""
    from mobile_ml import _tf
    from mobile_ml.export.convert import convert

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(inputs)))
    out = tmp_path_factory.mktemp("regression")
    model.save(out / "model.keras")
    x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    for variant in ("fp32", "int8"):
        (out / f"{variant}.tflite").write_bytes(convert(model, variant, representative=x))
    rows = "".join(f"{a},{b},{c},{t}\n" for (a, b, c), t in zip(x, x.sum(1) * 0.5, strict=True))
    (out / "eval.csv").write_text("a,b,c,y\n" + rows)
    return out, x, model.predict(x, verbose=0)


def test_a_regression_tflite_against_its_keras_model(regression_model):
    out, x, keras_pred = regression_model
    target = x.sum(1) * 0.5
    for variant in ("fp32", "int8"):
        got = _json(
            out / f"{variant}.tflite", "--eval", out / "eval.csv", "--target", "y", "--keras", out / "model.keras"
        )
        assert got["task"] == "regression"  # auto: one value a row
        assert got["keras_mae"] == pytest.approx(np.abs(keras_pred[:, 0] - target).mean(), rel=1e-5)
        assert 0 <= got["mean_abs_diff"] <= got["max_abs_diff"]
        if variant == "fp32":
            assert got["max_abs_diff"] < 1e-5 and got["mae"] == pytest.approx(got["keras_mae"], abs=1e-5)
        else:
            assert got["max_abs_diff"] > 0  # quantized: close, not equal
    r = cli("evaluate", out / "fp32.tflite", "--eval", out / "eval.csv", "--target", "y", "--task", "classification")
    assert r.exit_code == 2 and "classification needs one output with a value per class" in r.stderr
    assert "--task regression" in r.stderr


def test_parity_against_the_keras_model_matches_the_export(exported, digits_dir):
    """--keras MODEL adds the export's parity figures: the same as export.json's for the same rows."""
    run, result = exported
    for variant in ("fp32", "int8"):
        row = result.variant(variant).parity
        got = _json(
            run / "exports" / variant / "model.tflite",
            "--eval",
            digits_dir / "test.npz",
            "--keras",
            run / "model.keras",
        )
        assert got["accuracy"] == row.metrics.accuracy and got["keras_accuracy"] == result.keras.accuracy
        assert got["accuracy_drop_pp"] == row.accuracy_drop_pp and got["agreement"] == row.agreement
        assert got["max_abs_diff"] == pytest.approx(row.max_abs_diff, abs=1e-6)


def _refused(tmp_path, *args):
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("evaluate", *args)
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    return errors[0]


def test_every_refusal_exits_2_with_one_line(tmp_path, digits_npz):
    path, x, y = digits_npz
    model = EXPORT / "int8" / "model.tflite"
    np.savez(tmp_path / "flat.npz", x=x.reshape(len(x), -1), y=y)
    bad = x.astype(np.float32)
    bad[5, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad, y=y)
    np.savez(tmp_path / "nolabels.npz", x=x)
    np.savez(tmp_path / "range.npz", x=x, y=y + 5)
    (tmp_path / "eval.txt").write_text("x")
    (tmp_path / "four.txt").write_text("a\nb\nc\nd\n")
    cases = {
        "exactly one of --run RUNDIR and --eval FILE": (model,),
        "--eval x has rows of shape [64] but the model's input 'input' is [8, 8, 1]": (
            model, "--eval", tmp_path / "flat.npz"),
        "--eval x has NaN or infinite values (row 5)": (model, "--eval", tmp_path / "nan.npz"),
        "has no labels": (model, "--eval", tmp_path / "nolabels.npz"),
        "class index 14, outside 0..9": (model, "--eval", tmp_path / "range.npz"),
        "none of the accepted forms": (model, "--eval", tmp_path / "eval.txt"),
        "has 4 labels but the model's output has 10": (model, "--eval", path, "--labels", tmp_path / "four.txt"),
        "unknown --task 'ranking'": (model, "--eval", path, "--task", "ranking"),
        "--input-range '1,0' is not two numbers": (model, "--eval", path, "--input-range", "1,0"),
        "go with --eval, not --run": (model, "--run", tmp_path, "--labels", tmp_path / "four.txt"),
    }  # fmt: skip
    for message, args in cases.items():
        assert message in _refused(tmp_path, *args), message
