"""`mobile-ml export MODEL` for a model brought as a file: the same variants, evidence and gate as for a run.

Tiny models trained here in a second or two on synthetic rows (a few hundred), so every test runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import run as cli

FAST = ("--finetune-epochs", "1", "--calibration-samples", "64")


def _blobs(n: int, seed: int, features: int = 6, classes: int = 3):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(0, 3, (classes, features))
    y = rng.integers(0, classes, n)
    return (centers[y] + rng.normal(0, 1, (n, features))).astype(np.float32), y.astype(np.int64)


def _tf_keras():
    from mobile_ml import _tf

    return _tf.keras()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    x, y = _blobs(300, 1)
    np.savez(d / "train.npz", x=x, y=y)
    np.savez(d / "eval.npz", x=_blobs(200, 2)[0], y=_blobs(200, 2)[1])
    np.savez(d / "cal.npz", x=_blobs(100, 3)[0])
    (d / "labels.txt").write_text("ant\nbee\ncat\n")
    (d / "two-labels.txt").write_text("ant\nbee\n")
    return d


@pytest.fixture(scope="module")
def tf_keras_classifier(data):
    keras = _tf_keras()
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    m.add(keras.layers.Softmax())
    m.compile("adam", "sparse_categorical_crossentropy")
    with np.load(data / "train.npz") as z:
        m.fit(z["x"], z["y"], epochs=15, verbose=0)
    path = data / "tfk.keras"
    m.save(path)
    return path


@pytest.fixture(scope="module")
def keras3_classifier(data):
    from mobile_ml import _tf

    _tf.tensorflow()
    import keras  # Keras 3, as TensorFlow 2.21 ships it

    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu")])
    m.add(keras.layers.Dense(3, activation="softmax"))
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with np.load(data / "train.npz") as z:
        m.fit(z["x"], z["y"], epochs=15, verbose=0)
    path = data / "k3.keras"
    m.save(path)
    return path


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("reg")
    rng = np.random.default_rng(4)
    w = np.array([3.0, -2.0, 0.5, 1.0], np.float32)
    x = rng.normal(0, 1, (400, 4)).astype(np.float32)
    y = (x @ w * 10 + 50).astype(np.float32)[:, None]  # on a scale of tens: the gate is in these units
    np.savez(d / "eval.npz", x=x[300:], y=y[300:])
    np.savez(d / "cal.npz", x=x[:100])
    np.savez(d / "train.npz", x=x[:300], y=y[:300])
    keras = _tf_keras()
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    m.compile(keras.optimizers.Adam(0.05), "mse")
    m.fit(x[:300], y[:300], epochs=40, verbose=0)
    m.save(d / "reg.keras")
    return d


@pytest.fixture(scope="module")
def two_input_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("two")
    keras = _tf_keras()
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    m = keras.Model([a, b], keras.layers.Dense(3, activation="softmax", name="probs")(h))
    x, y = _blobs(200, 5, features=7)
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit([x[:, :4], x[:, 4:]], y, epochs=10, verbose=0)
    np.savez(d / "eval.npz", x_a=x[:, :4], x_b=x[:, 4:], y=y)
    m.save(d / "two.keras")
    return d


def _independent_accuracy(model: Path, x: np.ndarray, y: np.ndarray) -> float:
    """LiteRT run by hand, without any of the exporter's code: the figure export.json must report."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], [len(x), x.shape[1]])
    it.allocate_tensors()
    scale, zero = inp["quantization"]
    feed = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8) if scale else x
    it.set_tensor(inp["index"], feed)
    it.invoke()
    return float((it.get_tensor(out["index"]).argmax(1) == y).mean())


def _check_evidence(exports: Path, variants: list[str]) -> dict:
    from mobile_ml.contracts.export import read_export
    from mobile_ml.export import metadata

    report = json.loads((exports / "export.json").read_text())
    assert [v["variant"] for v in report["variants"]] == variants
    for name in ("export.csv", "export.png"):
        assert (exports / name).stat().st_size > 0
    read = read_export(exports)  # through the contract, as publish and benchmark read it
    assert read.run_dir is None and read.source is not None and read.source.kind.value == "file"
    for v in variants:
        meta = metadata.read(exports / v / "metadata.json")
        health = metadata.health_check((exports / v / "model.tflite").read_bytes(), meta)
        assert health.ok, (v, health.detail)
    return report


def test_tf_keras_model_file_exports_fp32_int8_and_qat_with_the_full_evidence(tf_keras_classifier, data):
    r = cli(
        "export", tf_keras_classifier, "--eval", data / "eval.npz", "--calibration", data / "cal.npz",
        "--finetune-data", data / "train.npz", "--labels", data / "labels.txt",
        "--variants", "fp32,int8,qat-int8", "--max-accuracy-drop", "5", *FAST,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    exports = data / "tfk_exports"
    report = _check_evidence(exports, ["fp32", "int8", "qat-int8"])
    assert report["source"]["form"] == "tf_keras" and report["task"] == "classification"
    assert report["source"]["sha256"] == hashlib.sha256(tf_keras_classifier.read_bytes()).hexdigest()
    with np.load(data / "eval.npz") as z:
        x, y = z["x"], z["y"]
    for v in report["variants"]:
        assert v["parity"]["accuracy"] == pytest.approx(_independent_accuracy(exports / v["file"], x, y), abs=1e-9)
        assert v["output_diffs"][0]["max_abs_diff"] == pytest.approx(v["parity"]["max_abs_diff"])
    assert report["variants"][2]["finetune"]["epochs"] == 1
    meta = json.loads((exports / "int8" / "metadata.json").read_text())
    assert meta["labels"] == ["ant", "bee", "cat"] and "inputs" not in meta  # single input: the format apps read
    assert report["recommended"] is not None


def test_keras3_model_file_exports_fp32_and_int8(keras3_classifier, data, tmp_path):
    out = tmp_path / "k3"
    r = cli(
        "export", keras3_classifier, "--eval", data / "eval.npz", "--calibration", data / "cal.npz",
        "--variants", "fp32,int8", "--max-accuracy-drop", "5", "--out", out, "--input-range", "-40,40", *FAST,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = _check_evidence(out, ["fp32", "int8"])
    assert report["source"]["form"] == "keras3"
    assert report["keras"]["accuracy"] > 0.8  # the Keras 3 model itself was run for the reference figures

    # --input-range: metadata says what to feed, and the int8 input's scale covers the whole declared range
    # (the calibration rows only reach about ±15: without the range's ends in calibration, 40 would clamp).
    meta = json.loads((out / "int8" / "metadata.json").read_text())
    assert meta["input"]["value_range"] == [-40, 40]
    tensor = meta["input"]["tensor"]
    edge = [round(v / tensor["scale"]) + tensor["zero_point"] for v in (-40, 40)]
    assert -129 <= edge[0] <= -127 and 126 <= edge[1] <= 128, edge
    assert any(
        f"[-40, 40] → [{max(edge[0], -128)}, {min(edge[1], 127)}]" in line for line in meta["preprocessing"]["app_must"]
    )


def test_integer_variants_without_calibration_are_skipped_with_a_line(tf_keras_classifier, data, tmp_path):
    """Never calibrated on the eval rows silently: no --calibration, no --data → int8 is skipped, and it says so."""
    out = tmp_path / "nocal"
    r = cli("export", tf_keras_classifier, "--eval", data / "eval.npz", "--variants", "fp32,int8", "--out", out)
    assert r.exit_code == 0, r.output
    assert "int8: skipped: integer variants need calibration rows; pass --calibration FILE" in r.output
    report = json.loads((out / "export.json").read_text())
    assert [v["variant"] for v in report["variants"]] == ["fp32"] and "--calibration" in report["notes"][0]


def test_a_model_that_cannot_be_fine_tuned_skips_qat_with_one_line(tf_keras_classifier, data, tmp_path, monkeypatch):
    from mobile_ml.export import model_file

    def unsupported(self, x):
        raise model_file.FinetuneUnsupported("layer 'odd' has no tf_keras equivalent", hint="export int8 instead")

    monkeypatch.setattr(model_file.LoadedModel, "finetunable", unsupported)
    out = tmp_path / "noqat"
    r = cli(
        "export", tf_keras_classifier, "--eval", data / "eval.npz", "--calibration", data / "cal.npz",
        "--finetune-data", data / "train.npz", "--variants", "int8,qat-int8", "--out", out,
        "--max-accuracy-drop", "5", *FAST,
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "qat-int8: skipped: layer 'odd' has no tf_keras equivalent" in r.output
    assert [v["variant"] for v in json.loads((out / "export.json").read_text())["variants"]] == ["int8"]


def _independent_regression(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for row in x:
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        rows.append(it.get_tensor(out["index"])[0].copy())
    return np.asarray(rows, np.float64)


def test_regression_parity_is_error_against_keras_and_max_error_gates(regression_model, tmp_path):
    from mobile_ml import _tf

    d = regression_model
    args = ("export", d / "reg.keras", "--eval", d / "eval.npz", "--calibration", d / "cal.npz")
    r = cli(
        *args, "--variants", "fp32,int8,qat-int8", "--max-error", "5", "--out", tmp_path / "ok", *FAST,
        "--finetune-data", d / "train.npz",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "ok" / "export.json").read_text())
    assert report["task"] == "regression" and report["keras"] is None
    with np.load(d / "eval.npz") as z:
        x, y = z["x"], z["y"]
    keras_pred = _tf.keras().models.load_model(d / "reg.keras").predict(x, verbose=0).astype(np.float64)
    assert report["keras_regression"]["mae"] == pytest.approx(float(np.abs(keras_pred - y).mean()), rel=1e-5)
    fp32 = report["variants"][0]
    mine = _independent_regression(tmp_path / "ok" / fp32["file"], x)
    assert fp32["regression"]["mae"] == pytest.approx(float(np.abs(mine - keras_pred).mean()), abs=1e-5)
    assert fp32["parity"] is None and fp32["passed"]
    int8 = report["variants"][1]["regression"]
    assert 0 < int8["mae"] <= int8["max_abs_diff"] and int8["mae"] < 5  # int8 moved the outputs, within budget
    qat = report["variants"][2]  # fine-tuned on squared error: a regression has no accuracy to report
    assert qat["finetune"]["val_accuracy"] is None and qat["regression"]["mae"] < 5
    meta = json.loads((tmp_path / "ok" / "int8" / "metadata.json").read_text())
    assert meta["task"] == "regression" and meta["parity"]["max_error"] == 5 and meta["labels"] == []

    # The gate, on the target's scale: a budget below what int8 moved fails with exit 3, evidence kept.
    r = cli(*args, "--variants", "int8", "--max-error", f"{int8['mae'] / 2}", "--out", tmp_path / "tight", *FAST)
    assert r.exit_code == 3, r.output
    assert "no variant is within --max-error" in r.stderr
    assert (tmp_path / "tight" / "export.json").is_file()


def test_two_input_model_is_evaluated_by_input_name(two_input_model, tmp_path):
    from mobile_ml.export import metadata

    d = two_input_model
    out = tmp_path / "two"
    r = cli("export", d / "two.keras", "--eval", d / "eval.npz", "--variants", "fp32,dynamic", "--out", out)
    assert r.exit_code == 0, r.output
    report = json.loads((out / "export.json").read_text())
    assert report["variants"][0]["parity"]["agreement"] == 1.0
    assert [o["name"] for o in report["variants"][0]["output_diffs"]] == ["probs"]
    meta = json.loads((out / "fp32" / "metadata.json").read_text())
    assert sorted(i["name"] for i in meta["inputs"]) == ["a", "b"]
    assert sorted(meta["health_check"]["inputs"]) == ["a", "b"]
    for v in ("fp32", "dynamic"):
        health = metadata.health_check(
            (out / v / "model.tflite").read_bytes(), metadata.read(out / v / "metadata.json")
        )
        assert health.ok, health.detail


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--task", "classification"), "it is a regression model"),
        ((), "parity needs labelled evaluation data"),
    ],
    ids=["regression-as-classification", "no-eval"],
)
def test_bad_regression_inputs_exit_2_and_write_nothing(regression_model, extra, message):
    d = regression_model
    eval_args = ("--eval", d / "eval.npz") if extra else ()
    r = cli("export", d / "reg.keras", *eval_args, *extra)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and len(r.stderr.strip().splitlines()) <= 2  # one line, and its hint
    assert not (d / "reg_exports").exists()


def test_labels_that_do_not_match_the_output_exit_2(tf_keras_classifier, data, tmp_path):
    out = tmp_path / "never"
    r = cli(
        "export", tf_keras_classifier, "--eval", data / "eval.npz", "--labels", data / "two-labels.txt", "--out", out
    )
    assert r.exit_code == 2, r.output
    assert "--labels lists 2 labels but the model's output" in r.stderr and "has 3 classes" in r.stderr
    assert not out.exists()


def test_file_options_are_refused_for_a_run(tiny_run, data):
    r = cli("export", tiny_run[0], "--eval", data / "eval.npz")
    assert r.exit_code == 2, r.output
    assert "--eval applies to a model file" in r.stderr


def test_a_run_export_records_its_source_and_old_files_read_as_runs(exported, digits_export):
    from mobile_ml.contracts.export import read_export

    run, result = exported
    assert result.source.kind.value == "run" and result.task.value == "classification"
    assert result.source.sha256 == hashlib.sha256((Path(run) / "model.keras").read_bytes()).hexdigest()
    raw = json.loads((result.exports_dir / "export.json").read_text())
    assert raw["source"]["path"] == ".." and raw["variants"][0]["output_diffs"][0]["max_abs_diff"] >= 0
    old = read_export(digits_export.run / "exports")  # written before sources were recorded
    assert old.source.kind.value == "run" and old.source.sha256 == "" and old.task.value == "classification"


def test_a_model_file_with_prepared_data_calibrates_on_its_train_split(tiny_run, digits_dir, tmp_path, monkeypatch):
    """--data DATADIR: calibration rows come from its train split (never the --eval rows), metadata from data.json."""
    import shutil

    from mobile_ml.data.spec import load_spec, load_split
    from mobile_ml.export import sources

    spec = load_spec(digits_dir)
    x_test, y_test = load_split(digits_dir, spec, "test")
    np.savez(tmp_path / "eval.npz", x=x_test, y=y_test)
    model = tmp_path / "digits.keras"
    shutil.copy(tiny_run[0] / "model.keras", model)
    seen = []
    real = sources._spanning

    def spy(rows, value_range):
        seen.append(rows)
        return real(rows, value_range)

    monkeypatch.setattr(sources, "_spanning", spy)
    r = cli("export", model, "--eval", tmp_path / "eval.npz", "--data", digits_dir, "--variants", "int8", *FAST)
    assert r.exit_code == 0, r.output
    x_train = load_split(digits_dir, spec, "train")[0]
    (cal,) = seen
    rows = next(iter(cal.x.values()))
    assert len(rows) == 64 and all((x_train == row).all(axis=tuple(range(1, x_train.ndim))).any() for row in rows)
    meta = json.loads((tmp_path / "digits_exports" / "int8" / "metadata.json").read_text())
    assert meta["labels"] == list(spec.labels) and meta["input"]["kind"] == "image"


def test_two_output_regression_model_reports_each_output(tmp_path):
    from mobile_ml.export import metadata

    keras = _tf_keras()
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(6).normal(0, 1, (200, 4)).astype(np.float32)
    y = np.concatenate([x[:, :1] * 2, x[:, 1:3] - x[:, 3:]], axis=1).astype(np.float32)
    inp = keras.Input((4,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inp)
    m = keras.Model(inp, [keras.layers.Dense(1, name="first")(h), keras.layers.Dense(2, name="second")(h)])
    m.compile("adam", "mse")
    m.fit(x, [y[:, :1], y[:, 1:]], epochs=5, verbose=0)
    m.save(tmp_path / "two_out.keras")
    np.savez(tmp_path / "eval.npz", x=x, y=y)
    r = cli("export", tmp_path / "two_out.keras", "--eval", tmp_path / "eval.npz", "--variants", "fp32,fp16")
    assert r.exit_code == 0, r.output
    out = tmp_path / "two_out_exports"
    report = json.loads((out / "export.json").read_text())
    assert report["task"] == "regression"  # --task auto: these outputs are not probabilities
    fp16 = report["variants"][1]
    assert [d["name"] for d in fp16["output_diffs"]] == ["first", "second"]
    assert fp16["regression"]["max_abs_diff"] == pytest.approx(max(d["max_abs_diff"] for d in fp16["output_diffs"]))
    meta = metadata.read(out / "fp16" / "metadata.json")
    assert [o.name for o in meta.outputs] == ["first", "second"]
    assert metadata.health_check((out / "fp16" / "model.tflite").read_bytes(), meta).ok


def test_nan_in_calibration_rows_exits_2_and_writes_nothing(tf_keras_classifier, data, tmp_path):
    x = _blobs(50, 7)[0]
    x[3, 2] = np.nan
    np.savez(tmp_path / "cal.npz", x=x)
    out = tmp_path / "never"
    r = cli(
        "export", tf_keras_classifier, "--eval", data / "eval.npz", "--calibration", tmp_path / "cal.npz",
        "--variants", "int8", "--out", out,
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "NaN or infinite values" in r.stderr and "--calibration" in r.stderr
    assert not out.exists()
