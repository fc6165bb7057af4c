"""The export stage on a tiny real model: every variant, the figures, the gate, metadata and the error paths."""

import csv
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from mobile_ml.contracts import document_dict
from mobile_ml.errors import ConfigError, DataError, GateError, InputFileError
from mobile_ml.export import convert as convert_mod
from mobile_ml.export import metadata, tflite_file
from mobile_ml.export.convert import ConversionError, convert
from mobile_ml.export.evaluate import evaluate_file
from mobile_ml.export.exporter import export
from mobile_ml.export.options import VARIANTS, ExportOptions, parse_variants
from mobile_ml.export.report import check_gate
from mobile_ml.outputs import dumps
from tests.conftest import FAST, leftovers


def _copy_run(tiny_run, dest):
    """A private copy of the shared tiny run, so exporting into it cannot disturb other tests."""
    run, _ = tiny_run
    shutil.copytree(run, dest)
    return dest


def test_every_variant_is_written_and_evaluated(exported):
    run, result = exported
    exports = run / "exports"
    assert [v.variant for v in result.variants] == list(VARIANTS)
    for v in result.variants:
        model = exports / v.variant / "model.tflite"
        assert model.stat().st_size == v.bytes > 0
        assert v.ops.builtin_only and v.parity is not None
        assert v.parity.metrics.examples == 269
    fp32, fp16, dyn, int8 = (result.variant(n) for n in ("fp32", "fp16", "dynamic", "int8"))
    # fp32 is the Keras model: same answers up to float rounding
    assert fp32.parity.agreement == 1.0 and fp32.parity.max_abs_diff < 1e-4 and fp32.parity.accuracy_drop_pp == 0
    assert "DEQUANTIZE" in fp16.ops.ops and fp16.bytes < fp32.bytes
    assert dyn.bytes < fp16.bytes and dyn.inputs[0].dtype == "float32"
    for name in ("int8", "qat-int8", "pruned-int8"):
        v = result.variant(name)
        assert v.inputs[0].dtype == "int8" and v.inputs[0].scale > 0 and v.outputs[0].dtype == "int8"
        assert v.bytes < fp16.bytes
    assert int8.parity.agreement > 0.9
    qat, pruned = result.variant("qat-int8"), result.variant("pruned-int8")
    assert qat.finetune.epochs == 1 and "conv0" in qat.finetune.wrapped_layers
    assert abs(pruned.finetune.sparsity - 0.5) < 0.05
    assert pruned.gzip_bytes < int8.gzip_bytes  # pruning's zeros compress


def test_figures_match_an_independent_litert_run(exported, digits_dir):
    """Recompute int8 accuracy here, quantizing by hand, and compare with export.json."""
    from ai_edge_litert.interpreter import Interpreter

    from mobile_ml.data.spec import load_spec, load_split

    run, result = exported
    x, y = load_split(digits_dir, load_spec(digits_dir), "test")
    it = Interpreter(model_path=str(run / "exports" / "int8" / "model.tflite"))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    preds = []
    for row in x:
        it.resize_tensor_input(inp["index"], [1, 8, 8, 1])
        it.allocate_tensors()
        it.set_tensor(inp["index"], np.clip(np.round(row[None] / scale + zero), -128, 127).astype(np.int8))
        it.invoke()
        preds.append(int(it.get_tensor(out["index"])[0].argmax()))
    accuracy = float((np.array(preds) == y).mean())
    saved = json.loads((run / "exports" / "export.json").read_text())
    int8 = next(v for v in saved["variants"] if v["variant"] == "int8")
    assert int8["parity"]["accuracy"] == pytest.approx(accuracy)
    again = evaluate_file(run / "exports" / "int8" / "model.tflite", run, data_dir=digits_dir)
    assert again["accuracy"] == pytest.approx(accuracy) and again["agreement"] == int8["parity"]["agreement"]


def test_report_files(exported):
    run, result = exported
    saved = json.loads((run / "exports" / "export.json").read_text())
    assert saved["schema"] == "mobile_ml.export" and saved["schema_version"] == 1
    assert saved["recommended"] == result.recommended
    passing = [v for v in saved["variants"] if v["passed"]]
    assert saved["recommended"] == min(passing, key=lambda v: v["bytes"])["variant"]
    fp32 = next(v for v in saved["variants"] if v["variant"] == "fp32")
    assert fp32["size_ratio"] == 1.0 and fp32["inputs"][0]["shape"] == [-1, 8, 8, 1]
    with open(run / "exports" / "export.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == list(VARIANTS)
    assert (run / "exports" / "export.png").read_bytes()[:4] == b"\x89PNG"


def test_metadata_round_trips_and_health_checks(exported):
    run, result = exported
    for v in result.variants:
        meta = metadata.read(run / "exports" / v.variant / "metadata.json")
        model = (run / "exports" / v.variant / "model.tflite").read_bytes()
        assert meta.labels == tuple(str(i) for i in range(10)) and meta.input.kind == "image"
        assert meta.input.height == 8 and meta.input.value_range == (0.0, 16.0)
        assert meta.model.bytes == len(model) and meta.parity.accuracy == v.parity.metrics.accuracy
        assert meta.parity.passed == v.passed and meta.variant == v.variant
        assert any("normalization" in s for s in meta.inside_model)
        if v.inputs[0].scale is not None:
            assert meta.input.tensor.scale == v.inputs[0].scale
            assert any("quantize to int8" in s for s in meta.app_must)
            assert np.array(meta.health_check.input_quantized).dtype.kind == "i"
        assert metadata.health_check(model, meta).ok, v.variant
        # The contract writes back exactly the bytes the exporter wrote: keys, order and values
        raw = (run / "exports" / v.variant / "metadata.json").read_bytes()
        assert dumps(document_dict(meta)).encode() == raw
    # A device must notice a model that answers differently from what the bundle promises
    meta = metadata.read(run / "exports" / "int8" / "metadata.json")
    wrong = replace(meta.health_check, expected_top1=(meta.health_check.expected_top1 + 1) % 10)
    model = (run / "exports" / "int8" / "model.tflite").read_bytes()
    assert not metadata.health_check(model, replace(meta, health_check=wrong)).ok


def _broken_calibration(x, n, seed):
    """Calibrate on inputs 100× too small: the int8 input scale cannot represent real pixels (all saturate)."""
    return np.asarray(x[:n], dtype=np.float32) * 0.01


def test_gate_fails_on_a_broken_variant(tiny_run, digits_dir, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    x_train = np.load(digits_dir / "train.npz")["x"].astype(np.float32)
    result = export(
        run,
        ExportOptions(variants=("fp32", "int8"), require="int8", **FAST),
        data_dir=digits_dir,
        representative=_broken_calibration(x_train, 64, 0),
    )
    int8 = result.variant("int8")
    assert not int8.passed and int8.parity.accuracy_drop_pp > 20
    assert result.recommended == "fp32"
    with pytest.raises(GateError, match="required variant int8 misses the 1-point budget") as e:
        check_gate(result)
    assert e.value.exit_code == 3
    only_int8 = export(
        run,
        ExportOptions(variants=("int8",), **FAST),
        data_dir=digits_dir,
        clean=True,
        representative=_broken_calibration(x_train, 64, 0),
    )
    with pytest.raises(GateError, match=r"best is int8 with a drop of \d+\.\d\d points"):
        check_gate(only_int8)


def test_cli_export_gate_exit_code_and_evidence(tiny_run, digits_dir, tmp_path, monkeypatch):
    from tests.test_cli import run as cli

    run = _copy_run(tiny_run, tmp_path / "run")
    monkeypatch.setattr(convert_mod, "representative_sample", _broken_calibration)
    monkeypatch.setattr("mobile_ml.export.exporter.representative_sample", _broken_calibration)
    r = cli("export", run, "--variants", "int8", "--data", digits_dir, "--finetune-epochs", "1")
    assert r.exit_code == 3, r.output
    assert "no variant is within the 1-point accuracy budget; the best is int8" in r.stderr
    assert (run / "exports" / "export.json").is_file()  # the evidence stays for inspection


def test_cli_export_json_and_refusal_to_overwrite(exported, digits_dir):
    from tests.test_cli import run as cli

    run, _ = exported
    before = (run / "exports" / "export.json").read_bytes()
    r = cli("export", run, "--variants", "fp32", "--data", digits_dir)
    assert r.exit_code == 2 and "already exists" in r.stderr
    assert (run / "exports" / "export.json").read_bytes() == before and leftovers(run) == []


def test_failed_reexport_keeps_the_earlier_exports(tiny_run, digits_dir, tmp_path, monkeypatch):
    run = _copy_run(tiny_run, tmp_path / "run")
    export(run, ExportOptions(variants=("fp32",), **FAST), data_dir=digits_dir)
    before = (run / "exports" / "export.json").read_bytes()

    def boom(*a, **k):
        raise ConversionError("converter exploded", hint="none")

    monkeypatch.setattr("mobile_ml.export.exporter.convert", boom)
    with pytest.raises(ConversionError):
        export(run, ExportOptions(variants=("fp32",), **FAST), data_dir=digits_dir, force=True)
    assert (run / "exports" / "export.json").read_bytes() == before and leftovers(run) == []


def test_run_without_model_is_refused(tiny_run, digits_dir, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    (run / "model.keras").unlink()
    with pytest.raises(InputFileError, match="has no model: model.keras is missing"):
        export(run, ExportOptions(**FAST), data_dir=digits_dir)
    assert not (run / "exports").exists() and leftovers(run) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="not a run directory"):
        export(tmp_path / "empty", data_dir=digits_dir)


def test_run_with_moved_data_names_the_fix(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "a" / "b" / "run")  # run.json's relative data path no longer resolves
    with pytest.raises(InputFileError, match="data directory .* is missing") as e:
        export(run)
    assert "--data" in e.value.hint


def test_corrupt_and_truncated_models_are_rejected(exported, tmp_path):
    run, _ = exported
    good = (run / "exports" / "int8" / "model.tflite").read_bytes()
    (tmp_path / "half.tflite").write_bytes(good[: len(good) // 2])
    (tmp_path / "noise.tflite").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(InputFileError, match="LiteRT cannot load"):
        tflite_file.load_interpreter(tflite_file.read_model_bytes(tmp_path / "half.tflite"), "half.tflite")
    with pytest.raises(InputFileError, match="not a TFLite model"):
        tflite_file.read_model_bytes(tmp_path / "noise.tflite")
    with pytest.raises(InputFileError, match="is empty"):
        tflite_file.read_model_bytes(tmp_path / "empty.tflite")
    from tests.test_cli import run as cli

    r = cli("evaluate", tmp_path / "half.tflite", "--run", run)
    assert r.exit_code == 2 and "truncated or damaged" in r.stderr


def _model_with_op(keras, tf, fn, name):
    inputs = keras.Input((4, 4), name="input")
    x = keras.layers.Lambda(fn, name=name)(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_unconvertible_op_names_op_and_layer():
    from mobile_ml import _tf

    tf, keras = _tf.tensorflow(), _tf.keras()
    model = _model_with_op(keras, tf, lambda t: tf.expand_dims(tf.linalg.det(t), -1) * t, "determinant")
    with pytest.raises(ConversionError, match=r"MatrixDeterminant \(layer 'determinant'\)") as e:
        convert(model, "fp32")
    assert "--allow-flex" in e.value.hint
    flex = convert(model, "fp32", allow_flex=True)
    ops = tflite_file.ops_info(flex)
    assert ops.select_tf_ops == ("FlexMatrixDeterminant",) and not ops.builtin_only
    with pytest.raises(InputFileError, match="Select-TF"):
        tflite_file.load_interpreter(flex, "flex.tflite")


def test_representative_data_of_the_wrong_shape(exported):
    from mobile_ml import _tf

    run, _ = exported
    m = _tf.keras().models.load_model(run / "model.keras")
    with pytest.raises(DataError, match=r"rows of shape \[5, 5, 1\] but the model's input is \[8, 8, 1\]"):
        convert(m, "int8", representative=np.zeros((4, 5, 5, 1), np.float32))
    with pytest.raises(DataError, match="NaN"):
        convert(m, "int8", representative=np.full((4, 8, 8, 1), np.nan, np.float32))


def test_variant_names_and_options():
    assert parse_variants("all") == VARIANTS
    assert parse_variants("int8, fp32,int8") == ("fp32", "int8")
    with pytest.raises(ConfigError, match="unknown variant 'int9'") as e:
        parse_variants("int9")
    assert "did you mean 'int8'" in e.value.hint
    with pytest.raises(ConfigError, match="not being exported"):
        ExportOptions(variants=("fp32",), require="int8")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        ExportOptions(prune_sparsity=1.5)
    with pytest.raises(ConfigError, match="unknown integer input/output type 'uint8'"):
        ExportOptions(int8_io="uint8")


def test_cli_unknown_variant_exit_2(exported):
    from tests.test_cli import run as cli

    run, _ = exported
    r = cli("export", run, "--variants", "fp32,qat")
    assert r.exit_code == 2 and "unknown variant 'qat'" in r.stderr


def test_float_io_integer_variant(exported, digits_dir, tmp_path):
    """--int8-io float keeps float input/output while the body runs in int8."""
    run, _ = exported
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("exports"))
    result = export(copy, ExportOptions(variants=("int8",), int8_io="float", **FAST), data_dir=digits_dir)
    v = result.variant("int8")
    assert v.inputs[0].dtype == "float32" and "QUANTIZE" in v.ops.ops and v.parity.agreement > 0.9
    assert metadata.health_check(
        (copy / "exports" / "int8" / "model.tflite").read_bytes(),
        metadata.read(copy / "exports" / "int8" / "metadata.json"),
    ).ok


@pytest.mark.slow
def test_tabular_pipeline_exports_with_feature_metadata(tmp_path):
    """A CSV through the whole pipeline: the metadata tells an app how to encode a row."""
    from pathlib import Path

    from mobile_ml.pipeline import load_pipeline_config, run_pipeline
    from tests.conftest import TINY

    root = Path(__file__).resolve().parents[1]
    cfg = load_pipeline_config(root / "examples" / "penguins.toml")
    cfg = replace(
        cfg,
        train=replace(TINY, family="mlp"),
        export=ExportOptions(variants=("fp32", "int8"), max_accuracy_drop=100, **FAST),
    )
    result = run_pipeline(cfg, tmp_path / "p")
    meta = metadata.read(tmp_path / "p" / "run" / "exports" / "int8" / "metadata.json")
    assert meta.input.kind == "tabular"
    assert list(meta.input.features) == result.data.features
    assert meta.input.tensor.shape[1] == len(result.data.features)
    island = next(c for c in meta.input.columns if c["name"] == "Island")
    assert island["kind"] == "categorical" and "Biscoe" in island["vocabulary"]
    assert any("one-hot" in s for s in meta.app_must)
    assert list(meta.labels) == result.data.labels and result.export.recommended in ("fp32", "int8")
    assert metadata.health_check((tmp_path / "p" / "run" / "exports" / "int8" / "model.tflite").read_bytes(), meta).ok


def test_damaged_metadata_is_named(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(InputFileError, match="m.json is not valid JSON"):
        metadata.read(tmp_path / "m.json")
    (tmp_path / "m.json").write_text(json.dumps({"schema": metadata.SCHEMA, "schema_version": 99}))
    with pytest.raises(InputFileError, match="schema_version 99; this mobile-ml reads version 1"):
        metadata.read(tmp_path / "m.json")


# -- the gate and the recommendation, on constructed figures ------------------------------------------------------


def _variant(name, *, bytes_, drop, budget=1.0):
    """A VariantResult with this accuracy drop, judged by the real gate (its other figures are placeholders)."""
    from mobile_ml.contracts.export import OpsInfo, Parity, VariantResult
    from mobile_ml.export.report import verdict
    from mobile_ml.train.metrics import classification_metrics

    par = Parity(classification_metrics(np.array([0]), np.array([[1.0, 0.0]]), ["a", "b"]), drop, 1.0, 0.0, 0.0)
    return VariantResult(
        name,
        "",
        f"{name}/model.tflite",
        bytes_,
        bytes_,
        1.0,
        OpsInfo((), (), ()),
        (),
        (),
        par,
        verdict(par, budget),
        {},
    )


def test_gate_is_on_the_signed_drop_and_a_drop_at_the_budget_passes():
    """README: a variant passes when its drop is at most the budget. Beating Keras is a negative drop: a pass."""
    from mobile_ml.contracts.export import Verdict
    from mobile_ml.export.exporter import parity
    from mobile_ml.export.report import recommend, verdict
    from mobile_ml.train.metrics import classification_metrics

    labels = ["a", "b"]
    y = np.array([0] * 50 + [1] * 50)
    right, wrong = np.array([[0.9, 0.1]]), np.array([[0.1, 0.9]])

    def probs(n_wrong):  # the first n_wrong rows of class 0 answered wrongly
        return np.concatenate([wrong] * n_wrong + [right] * (50 - n_wrong) + [right[:, ::-1]] * 50)

    keras_probs = probs(10)  # Keras: 90 of 100 right
    keras = classification_metrics(y, keras_probs, labels)
    better = parity(probs(2), y, labels, keras_probs, keras)  # 98 right: 8 points better than Keras
    at_budget = parity(probs(11), y, labels, keras_probs, keras)  # 89 right: exactly 1 point worse
    over = parity(probs(12), y, labels, keras_probs, keras)  # 88 right: 2 points worse
    assert (better.accuracy_drop_pp, at_budget.accuracy_drop_pp, over.accuracy_drop_pp) == (-8.0, 1.0, 2.0)
    assert verdict(better, 1.0) is Verdict.PASS  # more accurate than Keras by far more than the budget
    assert verdict(better, 0.0) is Verdict.PASS
    assert verdict(at_budget, 1.0) is Verdict.PASS  # the boundary belongs to the budget
    assert verdict(over, 1.0) is Verdict.FAIL and verdict(over, 2.0) is Verdict.PASS
    assert verdict(None, 100.0) is Verdict.NOT_EVALUATED
    # The recommendation: the smallest passing variant, even when it beats Keras; failing ones are never chosen.
    variants = [
        _variant("fp32", bytes_=400, drop=0.0),
        _variant("int8", bytes_=100, drop=-3.0),
        _variant("qat-int8", bytes_=90, drop=1.5),
    ]
    assert [v.verdict for v in variants] == [Verdict.PASS, Verdict.PASS, Verdict.FAIL]
    assert recommend(variants) == "int8"
    assert recommend([_variant("int8", bytes_=100, drop=1.0), _variant("fp16", bytes_=100, drop=0.5)]) == "fp16"
    assert recommend([_variant("int8", bytes_=100, drop=1.01)]) is None


# -- re-exporting: --force keeps the other variants, --clean replaces them -----------------------------------------


def _files(exports):
    return {p.relative_to(exports).as_posix(): p.read_bytes() for p in exports.rglob("*") if p.is_file()}


def test_force_reexport_keeps_the_earlier_variants_and_recommends_over_all(tiny_run, digits_dir, tmp_path):
    from mobile_ml.contracts.export import read_export
    from mobile_ml.publish.publisher import load_variant

    run = _copy_run(tiny_run, tmp_path / "run")
    x_train = np.load(digits_dir / "train.npz")["x"].astype(np.float32)
    export(run, ExportOptions(variants=("fp32", "dynamic"), **FAST), data_dir=digits_dir)
    before = _files(run / "exports")
    # The scenario: re-export only int8, and this time it fails the gate.
    result = export(
        run,
        ExportOptions(variants=("int8",), **FAST),
        data_dir=digits_dir,
        force=True,
        representative=_broken_calibration(x_train, 64, 0),
    )
    assert [v.variant for v in result.variants] == ["fp32", "dynamic", "int8"]
    assert [v.passed for v in result.variants] == [True, True, False]
    assert result.recommended == "dynamic" and result.exports_dir == run / "exports"
    after = _files(run / "exports")
    for name in ("fp32/model.tflite", "fp32/metadata.json", "dynamic/model.tflite", "dynamic/metadata.json"):
        assert after[name] == before[name], name  # kept as they were, not rebuilt
    saved = read_export(run / "exports")
    assert (saved.variants, saved.recommended, saved.run_dir) == (result.variants, result.recommended, run)
    assert saved.options.variants == ("fp32", "dynamic", "int8")
    assert saved.variant("dynamic").size_ratio == round(saved.variant("dynamic").bytes / saved.variant("fp32").bytes, 4)
    with open(run / "exports" / "export.csv") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == ["fp32", "dynamic", "int8"]
    assert load_variant(run, None).variant == "dynamic"  # publish finds the recommendation again
    # --clean replaces everything with just what was asked for
    clean = export(run, ExportOptions(variants=("fp16",), **FAST), data_dir=digits_dir, clean=True)
    assert [v.variant for v in clean.variants] == ["fp16"]
    assert sorted(p.name for p in (run / "exports").iterdir() if p.is_dir()) == ["fp16"]
    assert leftovers(run) == []


def test_force_reexport_regates_kept_variants_on_the_new_budget(tiny_run, digits_dir, tmp_path):
    run = _copy_run(tiny_run, tmp_path / "run")
    x_train = np.load(digits_dir / "train.npz")["x"].astype(np.float32)
    export(
        run,
        ExportOptions(variants=("int8",), **FAST),
        data_dir=digits_dir,
        representative=_broken_calibration(x_train, 64, 0),
    )
    failed = metadata.read(run / "exports" / "int8" / "metadata.json")
    assert not failed.parity.passed and failed.parity.accuracy_drop_pp > 20
    # Rebuild only fp32 with a budget the broken int8 meets: the kept int8 is judged again, and is now the pick.
    result = export(
        run, ExportOptions(variants=("fp32",), max_accuracy_drop=100, **FAST), data_dir=digits_dir, force=True
    )
    assert result.variant("int8").passed and result.recommended == "int8"
    meta = metadata.read(run / "exports" / "int8" / "metadata.json")
    assert meta.parity.passed and meta.parity.budget_pp == 100
    assert meta.parity.accuracy_drop_pp == failed.parity.accuracy_drop_pp  # figures kept, only the verdict follows


def test_force_refuses_to_mix_variants_built_differently(tiny_run, digits_dir, tmp_path):
    from tests.test_cli import run as cli

    run = _copy_run(tiny_run, tmp_path / "run")
    export(run, ExportOptions(variants=("fp32", "int8"), **FAST), data_dir=digits_dir)
    before = _files(run / "exports")
    # The hint of a plain re-export names options that exist
    r = cli("export", run, "--variants", "int8", "--data", digits_dir)
    assert r.exit_code == 2 and "already exists" in r.stderr and "--force" in r.stderr and "--clean" in r.stderr
    assert "--out" not in r.stderr
    # Per-tensor fp32 next to a per-channel int8 would be misdescribed by export.json's one options record
    with pytest.raises(ConfigError, match="kept variant int8 was exported with per_channel = True") as e:
        export(run, ExportOptions(variants=("fp32",), per_channel=False, **FAST), data_dir=digits_dir, force=True)
    assert "--variants fp32,int8" in e.value.hint and "--clean" in e.value.hint
    # A retrained model makes every earlier figure stale
    report = json.loads((run / "exports" / "export.json").read_text())
    report["keras"]["accuracy"] = 0.5
    (run / "exports" / "export.json").write_text(json.dumps(report))
    with pytest.raises(ConfigError, match="model or test split changed") as e:
        export(run, ExportOptions(variants=("fp32",), **FAST), data_dir=digits_dir, force=True)
    assert "--clean" in e.value.hint
    before["export.json"] = (run / "exports" / "export.json").read_bytes()
    assert _files(run / "exports") == before and leftovers(run) == []


def test_interrupted_force_reexport_leaves_the_earlier_exports(tiny_run, digits_dir, tmp_path, monkeypatch):
    run = _copy_run(tiny_run, tmp_path / "run")
    export(run, ExportOptions(variants=("fp32", "int8"), **FAST), data_dir=digits_dir)
    before = _files(run / "exports")
    real = convert_mod.convert

    def interrupted(model, variant, **kw):
        if variant == "int8":
            raise KeyboardInterrupt  # Ctrl-C after fp32 was copied over and dynamic was built
        return real(model, variant, **kw)

    monkeypatch.setattr("mobile_ml.export.exporter.convert", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(run, ExportOptions(variants=("dynamic", "int8"), **FAST), data_dir=digits_dir, force=True)
    assert _files(run / "exports") == before and leftovers(run) == []


# -- export.json: paths relative to the file, one reader ------------------------------------------------------------


def test_export_json_paths_are_relative_and_resolve_where_the_file_is(exported, tmp_path):
    from mobile_ml.contracts.export import read_export

    run, result = exported
    raw = json.loads((run / "exports" / "export.json").read_text())
    assert (raw["exports_dir"], raw["run_dir"]) == (".", "..")
    assert ".partial" not in (run / "exports" / "export.json").read_text()
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    report = read_export(moved / "exports" / "export.json")
    assert report.exports_dir == moved / "exports" and report.run_dir.resolve() == moved.resolve()
    assert report.variants == result.variants and report.recommended == result.recommended
    # Files written before the fix recorded absolute paths, exports_dir even the temporary build directory
    raw.update(exports_dir=str(moved / ".exports.abc.partial"), run_dir=str(moved))
    (moved / "exports" / "export.json").write_text(json.dumps(raw))
    old = read_export(moved / "exports")
    assert old.exports_dir == moved / "exports" and old.run_dir == moved


def test_damaged_export_json_is_refused_naming_the_field(exported, tmp_path):
    from mobile_ml.contracts import ContractError
    from mobile_ml.contracts.export import read_export
    from mobile_ml.publish.publisher import load_variant

    run, _ = exported
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / "exports" / "export.json"
    good = json.loads(path.read_text())
    cases = [
        (lambda r: r["variants"][1].update(bytes="big"), r"variants\[1\]\.bytes: expected an integer"),
        (lambda r: r["variants"][0].update(variant="int9"), r"variants\[0\]\.variant: .* is not one of"),
        (lambda r: r["variants"][2].update(file="../../etc/passwd"), r"not a path inside the exports directory"),
        (lambda r: r.update(recommended="fp16", variants=r["variants"][:1]), "fp16 is not among the variants"),
        (lambda r: r["variants"][3]["parity"].update(accuracy=0.1), "disagrees with metrics.accuracy"),
        (lambda r: r.update(extra=1), "extra: unknown field"),
    ]
    for edit, message in cases:
        raw = json.loads(json.dumps(good))
        edit(raw)
        path.write_text(json.dumps(raw))
        with pytest.raises(ContractError, match=message):
            read_export(path)
        with pytest.raises(InputFileError, match=message):
            load_variant(copy, None)


def test_int8_is_calibrated_on_train_rows_only(tiny_run, digits_dir, tmp_path, monkeypatch):
    """Calibration rows come from the train split: calibrating on the test split would flatter the int8 parity."""
    from mobile_ml.export import exporter

    seen = []
    real = exporter.representative_sample

    def spy(x, n, seed):
        seen.append(np.asarray(x).copy())
        return real(x, n, seed)

    monkeypatch.setattr(exporter, "representative_sample", spy)
    run = _copy_run(tiny_run, tmp_path / "run")
    export(run, ExportOptions(variants=("int8",), **FAST), data_dir=digits_dir)
    x_train = np.load(digits_dir / "train.npz")["x"].astype(np.float32)
    assert len(seen) == 1 and seen[0].shape == x_train.shape and np.array_equal(seen[0], x_train)
