"""Bring your own model, end to end: every model form a user ships, through export → evaluate → publish → a device
sync on loopback, the way a user runs it (the CLI), with no run directory anywhere.

The models are real and small: trained here for a few epochs on the built-in 8×8 digits (classifiers), on a
synthetic linear target (regression) and on digits split into two inputs (two-input model).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mobile_ml.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def cli(*args):
    r = runner.invoke(app, [str(a) for a in args])
    return r


def _digits(n: int = 600):
    from importlib import resources

    with resources.files("mobile_ml.datasets").joinpath("digits.npz").open("rb") as fh:
        d = np.load(fh)
        x = (d["images"][:n].astype(np.float32) / 16.0)[..., None]
        y = d["labels"][:n].astype(np.int64)
    return x, y


def _keras3():
    import keras  # Keras 3, whatever TF_USE_LEGACY_KERAS says (that switch only redirects tf.keras)

    assert keras.__version__.startswith("3"), keras.__version__
    return keras


def _tf_keras():
    from mobile_ml import _tf

    return _tf.keras()


def _cnn(keras):
    m = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _digits()
    m.fit(x, y, epochs=8, batch_size=32, verbose=0)
    return m


def _save(form: str, path: Path) -> Path:
    """A small digits CNN saved in ``form``; returns what the user passes to ``mobile-ml export``."""
    if form == "keras3.keras":
        _cnn(_keras3()).save(path / "model.keras")
        return path / "model.keras"
    if form == "keras3.export":
        _cnn(_keras3()).export(str(path / "exported"))
        return path / "exported"
    m = _cnn(_tf_keras())
    if form == "tf_keras.keras":
        m.save(path / "model.keras")
        return path / "model.keras"
    if form == "tf_keras.h5":
        m.save(path / "model.h5")
        return path / "model.h5"
    if form == "tf_keras.savedmodel":
        m.save(path / "saved", save_format="tf")
        return path / "saved"
    raise AssertionError(form)


@pytest.fixture()
def world(tmp_path):
    from mobile_ml.publish import keys

    keys.generate(tmp_path / "keys")
    x, y = _digits()
    np.savez(tmp_path / "eval.npz", x=x[-200:], y=y[-200:])
    np.savez(tmp_path / "calib.npz", x=x[:100])
    (tmp_path / "labels.txt").write_text("".join(f"{i}\n" for i in range(10)))
    return tmp_path


def _serve_and_sync(root: Path, key_dir: Path, tmp: Path, model: str):
    """``root`` under a real server on loopback; one device syncs and must run a verified model."""
    from mobile_ml.client import sync as client
    from mobile_ml.deliver.server import create_app
    from mobile_ml.export.metadata import health_check
    from mobile_ml.publish import keys
    from tests.test_client import serving

    with serving(create_app(root, tmp / "telemetry.db")) as url:
        cfg = client.DeviceConfig(
            server=url,
            model=model,
            channel="beta",
            public_key=keys.load_public(key_dir),
            state_dir=tmp / "device",
            install_id="d1",
            app_version="1.0.0",
            timeout=5.0,
        )
        r = client.sync(cfg)
    assert r.outcome == "installed", r
    vdir, meta = client.current_model(cfg.state_dir)
    assert health_check((vdir / "model.tflite").read_bytes(), meta).ok
    return meta


def _device_run(world: Path) -> list[dict]:
    """``mobile-ml device run`` on the synced device: the app's path from metadata.json to a prediction."""
    r = cli("device", "run", "--state", world / "device", "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["top"]


def _export_publish_sync(world: Path, model_path: Path, name: str, *extra: str, variant: str = "int8"):
    out = world / f"{name}_exports"
    r = cli(
        "export",
        model_path,
        "--eval",
        world / "eval.npz",
        "--calibration",
        world / "calib.npz",
        "--variants",
        "fp32,int8",
        "--out",
        out,
        *extra,
        "--json",
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert {v["variant"] for v in report["variants"]} == {"fp32", "int8"}
    assert report["source"]["kind"] == "file"
    for v in report["variants"]:
        assert (out / v["variant"] / "model.tflite").is_file()
        assert (out / v["variant"] / "metadata.json").is_file()
    assert (out / "export.csv").is_file() and (out / "export.png").is_file()

    r = cli("evaluate", out / variant / "model.tflite", "--eval", world / "eval.npz", *extra, "--json")
    assert r.exit_code == 0, r.output

    root = world / f"{name}_root"
    r = cli(
        "publish",
        out,
        "--model",
        name,
        "--version",
        "1.0.0",
        "--channel",
        "beta",
        "--key",
        world / "keys",
        "--root",
        root,
        "--variant",
        variant,
        "--force",
        "--json",
    )
    assert r.exit_code == 0, r.output
    release = json.loads((root / name / "releases" / "1.0.0.json").read_text())
    return report, release, _serve_and_sync(root, world / "keys", world, name)


@pytest.mark.parametrize(
    "form", ["keras3.keras", "keras3.export", "tf_keras.keras", "tf_keras.h5", "tf_keras.savedmodel"]
)
def test_every_model_form_exports_evaluates_publishes_and_syncs(world, form):
    model_path = _save(form, world)
    report, release, meta = _export_publish_sync(world, model_path, "digits", "--labels", world / "labels.txt")
    fp32, int8 = (next(v for v in report["variants"] if v["variant"] == n) for n in ("fp32", "int8"))
    assert fp32["parity"]["agreement"] >= 0.99  # fp32 is the same function as Keras
    assert int8["parity"]["accuracy_drop_pp"] <= 3.0  # 200 rows: a few rows' worth of budget
    digest = report["source"]["sha256"]
    assert len(digest) == 64
    assert digest in json.dumps(release)  # the bundle's lineage names the file it came from
    assert list(meta.labels) == [str(i) for i in range(10)]
    top = _device_run(world)
    assert top[0]["label"] == meta.labels[meta.health_check.expected_top1]


def test_regression_model_end_to_end(world):
    keras = _keras3()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = (x @ np.arange(1, 7, dtype=np.float32) + 0.5).astype(np.float32)
    m = keras.Sequential(
        [keras.Input((6,), name="features"), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    m.compile("adam", "mse")
    m.fit(x[:400], y[:400], epochs=30, verbose=0)
    m.save(world / "reg.keras")
    np.savez(world / "eval.npz", x=x[400:], y=y[400:])
    np.savez(world / "calib.npz", x=x[:100])
    report, _, meta = _export_publish_sync(world, world / "reg.keras", "reg", "--task", "regression")
    assert report["task"] == "regression"
    fp32, int8 = (next(v for v in report["variants"] if v["variant"] == n) for n in ("fp32", "int8"))
    # export.json keeps regression figures under "regression" ("parity" is classification's, null here)
    assert fp32["parity"] is None and int8["parity"] is None
    assert fp32["regression"]["max_abs_diff"] < 1e-3  # fp32 is the same function as Keras
    assert 0.0 < int8["regression"]["mae"] <= int8["regression"]["max_abs_diff"]
    assert int8["passed"], int8["regression"]  # within the default --max-error budget
    (value,) = _device_run(world)  # a regression model predicts a number, not labels
    assert value["label"] == "value"
    assert value["probability"] == pytest.approx(
        meta.health_check.expected_probabilities[0], abs=meta.health_check.atol
    )

    r = cli(
        "export",
        world / "reg.keras",
        "--eval",
        world / "eval.npz",
        "--task",
        "classification",
        "--out",
        world / "refused",
    )
    assert r.exit_code == 2 and not (world / "refused").exists()


def test_two_input_model_end_to_end(world):
    keras = _keras3()
    x, y = _digits()
    top, bottom = x[:, :4].reshape(len(x), -1), x[:, 4:].reshape(len(x), -1)
    a, b = keras.Input((32,), name="top"), keras.Input((32,), name="bottom")
    h = keras.layers.Concatenate()(
        [keras.layers.Dense(16, activation="relu")(a), keras.layers.Dense(16, activation="relu")(b)]
    )
    m = keras.Model([a, b], keras.layers.Dense(10, activation="softmax")(h))
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit([top[:400], bottom[:400]], y[:400], epochs=10, verbose=0)
    m.save(world / "two.keras")
    np.savez(world / "eval.npz", x_top=top[400:], x_bottom=bottom[400:], y=y[400:])
    np.savez(world / "calib.npz", x_top=top[:100], x_bottom=bottom[:100])
    report, _, meta = _export_publish_sync(world, world / "two.keras", "two")
    fp32 = next(v for v in report["variants"] if v["variant"] == "fp32")
    assert len(fp32["inputs"]) == 2
    assert fp32["parity"]["agreement"] >= 0.99
    assert sorted(i.name for i in meta.inputs) == ["bottom", "top"]  # metadata describes each input
    top_label = _device_run(world)[0]["label"]  # fed by name from the health case's rows
    assert top_label == meta.labels[meta.health_check.expected_top1]


def test_bad_model_path_is_one_line_exit_2(world):
    (world / "notes.txt").write_text("not a model")
    for path in (world / "notes.txt", world / "missing.keras"):
        r = cli("export", path, "--eval", world / "eval.npz")
        assert r.exit_code == 2, r.output
        assert "Traceback" not in r.output
    assert not os.path.exists(world / "notes_exports")
