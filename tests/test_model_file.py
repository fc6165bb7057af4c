"""Every model form a user brings: loaded with the Keras that wrote it, converted, and run in LiteRT."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from mobile_ml import _tf
from mobile_ml.errors import DataError, InputFileError, UserError
from mobile_ml.export.convert import convert, representative_sample
from mobile_ml.export.model_file import FinetuneUnsupported, LoadedModel, ModelForm, load_model

RNG = np.random.default_rng(7)
IMAGES = RNG.uniform(0, 1, size=(40, 8, 8, 1)).astype(np.float32)


def keras3():
    _tf.tensorflow()
    import keras

    assert keras.__version__.startswith("3."), "`import keras` must be Keras 3 even with TF_USE_LEGACY_KERAS=1"
    return keras


def k3_cnn():
    k = keras3()
    k.utils.set_random_seed(1)
    inp = k.Input((8, 8, 1), name="image")
    x = k.layers.Conv2D(4, 3, activation="relu")(inp)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(3, activation="softmax", name="probs")(x)
    return k.Model(inp, out)


def tk_cnn():
    tk = _tf.keras()
    tk.utils.set_random_seed(1)
    inp = tk.Input((8, 8, 1), name="image")
    x = tk.layers.Conv2D(4, 3, activation="relu")(inp)
    x = tk.layers.GlobalAveragePooling2D()(x)
    out = tk.layers.Dense(3, activation="softmax", name="probs")(x)
    return tk.Model(inp, out)


def save(model, path: Path, how: str) -> Path:
    with _tf.quiet():
        if how == "export":
            model.export(str(path), verbose=False)
        elif how == "tf":
            model.save(str(path), save_format="tf")
        else:
            model.save(str(path))
    return path


def dir_sha256(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def litert(data: bytes, x: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """Run the signature runner row by row, quantizing integer inputs and dequantizing integer outputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    names = it.get_signature_list()["serving_default"]
    runner = it.get_signature_runner("serving_default")
    ins, outs = runner.get_input_details(), runner.get_output_details()
    rows: dict[str, list] = {n: [] for n in names["outputs"]}
    for i in range(len(next(iter(x.values())))):
        feed = {}
        for name, d in ins.items():
            v = x[name][i : i + 1]
            if d["dtype"] != np.float32:
                scale, zero = d["quantization"]
                v = np.clip(np.round(v / scale + zero), -128, 127)
            feed[name] = v.astype(d["dtype"])
        for name, v in runner(**feed).items():
            if outs[name]["dtype"] != np.float32:
                scale, zero = outs[name]["quantization"]
                v = (v.astype(np.float32) - zero) * scale
            rows[name].append(v)
    return names, {n: np.concatenate(v) for n, v in rows.items()}


FORMS = {
    "keras3.keras": (k3_cnn, "model.keras", "save", ModelForm.KERAS3),
    "keras3.h5": (k3_cnn, "model.h5", "save", ModelForm.H5),
    "keras3-export": (k3_cnn, "exported", "export", ModelForm.KERAS3_EXPORT),
    "tf_keras.keras": (tk_cnn, "model.keras", "save", ModelForm.TF_KERAS),
    "tf_keras.h5": (tk_cnn, "model.h5", "save", ModelForm.H5),
    "tf_keras-savedmodel": (tk_cnn, "saved", "tf", ModelForm.SAVED_MODEL),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_loads_predicts_and_converts_like_the_original(form, tmp_path):
    build, name, how, expected = FORMS[form]
    original = build()
    path = save(original, tmp_path / name, how)
    model = load_model(path)
    assert model.form == expected
    assert model.sha256 == (dir_sha256(path) if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest())
    # The input keeps the Keras Input name; the output name is the one LiteRT's signature uses (output_0 in Keras 3).
    assert [(s.name, s.shape, s.dtype) for s in model.inputs] == [("image", (8, 8, 1), "float32")]
    out_name = "probs" if build is tk_cnn else "output_0"
    assert [(s.name, s.shape, s.dtype) for s in model.outputs] == [(out_name, (3,), "float32")]
    want = np.asarray(original(IMAGES[:10]))
    (got,) = model.predict({"image": IMAGES[:10]}, batch_size=4)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert model.float_weight_bytes() == 4 * original.count_params()

    names, fp32 = litert(convert(model, "fp32"), {"image": IMAGES[:10]})
    assert names == {"inputs": ["image"], "outputs": [out_name]}
    np.testing.assert_allclose(fp32[out_name], want, atol=1e-5)
    rep = representative_sample(IMAGES, 30, seed=0)
    _, int8 = litert(convert(model, "int8", representative=rep, int8_io="int8"), {"image": IMAGES[:10]})
    assert np.abs(int8[out_name] - want).max() < 0.03  # softmax probabilities, 1/256 steps
    assert (int8[out_name].argmax(1) == want.argmax(1)).mean() >= 0.9


def two_input_model():
    k = keras3()
    k.utils.set_random_seed(2)
    a, b = k.Input((3,), name="alpha"), k.Input((2,), name="beta")
    small = k.initializers.RandomNormal(stddev=0.02)  # alpha's rows are ~50× beta's; keep the softmax unsaturated
    x = k.layers.Concatenate()([k.layers.Dense(4, activation="relu", kernel_initializer=small)(a), b])
    return k.Model([a, b], k.layers.Dense(2, activation="softmax")(x))


def test_a_two_input_keras3_model_calibrates_on_named_inputs(tmp_path):
    original = two_input_model()
    model = load_model(save(original, tmp_path / "two.keras", "save"))
    assert [s.name for s in model.inputs] == ["alpha", "beta"]
    # Different scales per input: a dict keyed by the wrong order would calibrate each input on the other's range.
    x = {"alpha": RNG.normal(0, 50, (60, 3)).astype(np.float32), "beta": RNG.uniform(0, 1, (60, 2)).astype(np.float32)}
    want = np.asarray(original([x["alpha"], x["beta"]]))
    np.testing.assert_allclose(model.predict(x)[0], want, atol=1e-6)
    for io in ("int8", "float"):
        names, got = litert(convert(model, "int8", representative=representative_sample(x, 50, 0), int8_io=io), x)
        assert names == {"inputs": ["alpha", "beta"], "outputs": ["output_0"]}
        assert np.abs(got["output_0"] - want).max() < 0.05
    with pytest.raises(DataError, match="one array"):
        convert(model, "int8", representative=x["alpha"])
    with pytest.raises(DataError, match="alpha, gamma"):
        convert(model, "int8", representative={"alpha": x["alpha"], "gamma": x["beta"]})
    with pytest.raises(DataError, match="for input beta has rows of shape \\[3\\]"):
        convert(model, "int8", representative={"alpha": x["alpha"], "beta": x["alpha"]})


def test_a_regression_model_with_one_linear_output(tmp_path):
    k = keras3()
    k.utils.set_random_seed(3)
    original = k.Sequential([k.Input((5,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(1)])
    x = RNG.normal(0, 1, (50, 5)).astype(np.float32)
    model = load_model(save(original, tmp_path / "reg.keras", "save"))
    # An unnamed Sequential input keeps its saved InputLayer name through the export into LiteRT's signature.
    (spec,) = model.inputs
    want = np.asarray(original(x))
    names, fp32 = litert(convert(model, "fp32"), {spec.name: x})
    assert names["inputs"] == [spec.name] and names["outputs"] == ["output_0"]
    np.testing.assert_allclose(fp32["output_0"], want, atol=1e-5)
    _, int8 = litert(convert(model, "int8", representative=x, int8_io="int8"), {spec.name: x})
    assert np.abs(int8["output_0"] - want).max() < 0.05 * np.ptp(want)


def test_outputs_keep_the_model_order_while_litert_sorts_them_by_name(tmp_path):
    tk, k = _tf.keras(), keras3()
    inp = tk.Input((4,), name="x")
    two = tk.Model(inp, [tk.layers.Dense(2, name="zeta")(inp), tk.layers.Dense(1, name="aaa")(inp)])
    model = load_model(save(two, tmp_path / "two.keras", "save"))
    assert [s.name for s in model.outputs] == ["zeta", "aaa"]
    x = RNG.normal(0, 1, (4, 4)).astype(np.float32)
    names, got = litert(convert(model, "fp32"), {"x": x})
    assert names["outputs"] == ["aaa", "zeta"]
    for spec, want in zip(model.outputs, model.predict({"x": x}), strict=True):
        np.testing.assert_allclose(got[spec.name], want, atol=1e-5)
    # An unnamed Keras 3 Input is saved as layer "input_layer": the name survives the file, unlike tensor names.
    unnamed = k.Input((4,))
    k3 = k.Model(unnamed, [k.layers.Dense(2)(unnamed), k.layers.Dense(1)(unnamed)])
    model = load_model(save(k3, tmp_path / "k3.keras", "save"))
    assert [s.name for s in model.inputs] == [unnamed._keras_history[0].name]
    assert [(s.name, s.shape) for s in model.outputs] == [("output_0", (2,)), ("output_1", (1,))]
    names, got = litert(convert(model, "fp32"), {model.inputs[0].name: x})
    assert names == {"inputs": [model.inputs[0].name], "outputs": ["output_0", "output_1"]}
    for spec, want in zip(model.outputs, model.predict({model.inputs[0].name: x}), strict=True):
        np.testing.assert_allclose(got[spec.name], want, atol=1e-5)


def test_keras3_models_are_rebuilt_in_tf_keras_for_finetuning(tmp_path):
    tk = _tf.keras()
    for original in (k3_cnn(), two_input_model()):
        model = load_model(save(original, tmp_path / f"{original.name}.keras", "save"))
        x = {s.name: RNG.normal(0, 1, (20, *s.shape)).astype(np.float32) for s in model.inputs}
        rebuilt = model.finetunable(x)
        assert isinstance(rebuilt, tk.Model)
        assert rebuilt.input_names == [s.name for s in model.inputs]
        assert rebuilt.output_names == [s.name for s in model.outputs]  # same signature names after conversion
        args = [x[s.name] for s in model.inputs]
        np.testing.assert_allclose(rebuilt.predict(args, verbose=0), model.predict(x)[0], atol=1e-5)
    seq = keras3().Sequential([keras3().Input((4,)), keras3().layers.Dense(3), keras3().layers.Dropout(0.2)])
    model = load_model(save(seq, tmp_path / "seq.keras", "save"))
    rebuilt = model.finetunable({model.inputs[0].name: x["alpha"][:, :1].repeat(4, 1)})
    assert [type(layer).__name__ for layer in rebuilt.layers] == ["InputLayer", "Dense", "Dropout"]
    tk_model = load_model(save(tk_cnn(), tmp_path / "tk.keras", "save"))
    assert tk_model.finetunable({}) is tk_model.handle


def test_a_keras3_only_layer_prevents_the_rebuild_and_is_named(tmp_path):
    k = keras3()
    inp = k.Input((6,), name="features")
    out = k.layers.Dense(2)(k.layers.RMSNormalization(name="rms")(inp))
    model = load_model(save(k.Model(inp, out), tmp_path / "rms.keras", "save"))
    with pytest.raises(FinetuneUnsupported, match="layer 'rms' \\(RMSNormalization\\) has no tf_keras equivalent"):
        model.finetunable({"features": np.ones((2, 6), np.float32)})
    inner = k.Sequential([k.Input((6,)), k.layers.Dense(3)], name="backbone")
    nested = load_model(save(k.Model(inp, k.layers.Dense(2)(inner(inp))), tmp_path / "nested.keras", "save"))
    with pytest.raises(FinetuneUnsupported, match="layer 'backbone' is a nested Sequential model"):
        nested.finetunable({"features": np.ones((2, 6), np.float32)})
    exported = load_model(save(k.Model(inp, out), tmp_path / "rms-export", "export"))
    with pytest.raises(FinetuneUnsupported, match="without a Keras model"):
        exported.finetunable({"features": np.ones((2, 6), np.float32)})


def test_paths_that_are_no_model_form_are_refused_naming_the_forms(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="neither a run directory .* nor a SavedModel") as e:
        load_model(tmp_path / "empty")
    assert ".keras" in (e.value.hint or "") and "SavedModel" in (e.value.hint or "")
    (tmp_path / "notes.keras").write_text("not a zip\n")
    with pytest.raises(InputFileError, match="notes.keras is not a readable .keras file"):
        load_model(tmp_path / "notes.keras")
    (tmp_path / "notes.h5").write_text("not hdf5\n")
    with pytest.raises(InputFileError, match="notes.h5 is not a readable HDF5 file"):
        load_model(tmp_path / "notes.h5")
    (tmp_path / "model.onnx").write_bytes(b"\0")
    with pytest.raises(InputFileError, match="not a model form"):
        load_model(tmp_path / "model.onnx")
    with pytest.raises(InputFileError, match="does not exist"):
        load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad-sm"
    bad.mkdir()
    (bad / "saved_model.pb").write_bytes(b"\x01\x02garbage")
    with pytest.raises(InputFileError, match="not a usable SavedModel"):
        load_model(bad)


CUSTOM = """
import {keras}


class Doubling({keras}.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {{**super().get_config(), "factor": self.factor}}


def shifted_relu(x):
    return {keras}.activations.relu(x - 0.5)
"""


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
def test_custom_objects_are_named_when_missing_and_loaded_from_a_module(flavour, tmp_path):
    source = tmp_path / "layers_mod.py"
    source.write_text(CUSTOM.format(keras=flavour))
    spec = importlib.util.spec_from_file_location("user_layers_for_test", source)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    k = keras3() if flavour == "keras" else _tf.keras()
    inp = k.Input((4,), name="x")
    original = k.Model(inp, k.layers.Dense(2, activation=module.shifted_relu)(module.Doubling(name="dbl")(inp)))
    # tf_keras cannot read back an .h5 with a custom function activation, even given the function (its legacy
    # loader looks up the class name "function"), so the .h5 model has only the custom layer.
    layer_only = k.Model(inp, k.layers.Dense(2)(module.Doubling(name="dbl")(inp)))
    x = RNG.normal(0, 1, (6, 4)).astype(np.float32)
    cases = [
        (original, save(original, tmp_path / "custom.keras", "save"), "Doubling, shifted_relu"),
        (layer_only, save(layer_only, tmp_path / "custom.h5", "save"), "Doubling"),
    ]
    for keras_model, path, names in cases:
        sys.modules.pop("user_layers_for_test", None)
        with pytest.raises(UserError, match=f"needs custom objects that are not loaded: {names}$") as e:
            load_model(path)
        assert "--custom-objects" in (e.value.hint or "")
        model = load_model(path, custom_objects=source)
        assert isinstance(model, LoadedModel)
        np.testing.assert_allclose(model.predict({"x": x})[0], np.asarray(keras_model(x)), atol=1e-6)
    with pytest.raises(InputFileError, match="not a Python file"):
        load_model(path, custom_objects=tmp_path / "nope.py")


def test_a_rebuild_that_does_not_match_is_refused(tmp_path, monkeypatch):
    from mobile_ml.export import keras_rebuild

    model = load_model(save(k3_cnn(), tmp_path / "cnn.keras", "save"))
    monkeypatch.setattr(keras_rebuild, "_copy_weights", lambda original, new: None)  # fresh random weights
    with pytest.raises(FinetuneUnsupported, match="differs from it on output output_0"):
        model.finetunable({"image": IMAGES[:8]})


def test_the_temporary_keras3_export_is_made_once_and_removed_with_the_model(tmp_path):
    import gc

    model = load_model(save(k3_cnn(), tmp_path / "cnn.keras", "save"))
    model.converter()
    export = model._scratch["export"]
    assert (export / "saved_model.pb").is_file()
    model.converter()
    assert model._scratch["export"] == export
    del model
    gc.collect()
    assert not export.parent.exists()


def test_a_plain_tf_saved_model_and_a_tf_keras_saved_model_for_finetuning(tmp_path):
    tf = _tf.tensorflow()

    class Scaler(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.ones((4, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="features")])
        def __call__(self, x):
            return {"scores": tf.matmul(x, self.w)}

    module = Scaler()
    with _tf.quiet():
        tf.saved_model.save(module, str(tmp_path / "plain"), signatures=module.__call__)
    model = load_model(tmp_path / "plain")
    assert model.form == ModelForm.SAVED_MODEL
    assert [(s.name, s.shape) for s in model.inputs] == [("features", (4,))]
    assert [(s.name, s.shape) for s in model.outputs] == [("scores", (2,))]
    assert model.float_weight_bytes() == 4 * 8
    x = RNG.normal(0, 1, (5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict({"features": x})[0], x @ np.ones((4, 2)), atol=1e-5)
    names, got = litert(convert(model, "fp32"), {"features": x})
    assert names == {"inputs": ["features"], "outputs": ["scores"]}
    with pytest.raises(FinetuneUnsupported):
        model.finetunable({"features": x})
    saved = load_model(save(tk_cnn(), tmp_path / "tk-saved", "tf"))
    assert isinstance(saved.finetunable({}), _tf.keras().Model)


def test_a_run_directory_and_a_keras3_model_dropped_into_one(tiny_run, tmp_path):
    import shutil

    run_dir, _ = tiny_run
    model = load_model(run_dir)
    assert model.form == ModelForm.RUN and model.keras_major == 2
    assert model.sha256 == hashlib.sha256((run_dir / "model.keras").read_bytes()).hexdigest()
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (spec,) = model.inputs
    k = keras3()
    inp = k.Input(spec.shape, name="pixels")
    save(k.Model(inp, k.layers.Dense(3)(k.layers.Flatten()(inp))), copy / "model.keras", "save")
    dropped = load_model(copy)
    assert dropped.form == ModelForm.KERAS3 and [s.name for s in dropped.inputs] == ["pixels"]
