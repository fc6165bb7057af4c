"""Integer variants of a tabular model whose features differ by four orders of magnitude (issue 14, item 3).

tests/fixtures/scaled-table.csv (made by make_scaled_table.py): ratio ~0.1, length ~10, mass ~1000 and a signed
offset ~0, with a label that needs every one of them. With normalization inside the integer graph, the int8 input
scale that fits the masses rounds the ratios and lengths away; the exporter now builds integer variants from the
model minus its Normalization layer, and the app normalizes from metadata.json.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mobile_ml.contracts import parse_document
from mobile_ml.contracts.model_metadata import FeatureNormalization, ModelMetadata
from mobile_ml.errors import InputFileError
from mobile_ml.export import metadata, tflite_file
from mobile_ml.export.options import ExportOptions

FIXTURES = Path(__file__).parent / "fixtures"
TABLE = FIXTURES / "scaled-table.csv"
VECTOR = Path(__file__).parent / "vectors" / "tabular-int8-metadata.json"
INTEGER = ("int8", "qat-int8", "pruned-int8")
# Pruning half the weights of this 4-feature net costs ~12 points in float already (before any quantization); a
# quarter is benign, so the figure below measures what quantization costs, which is what this design is about.
OPTIONS = ExportOptions(variants=("fp32", *INTEGER), max_accuracy_drop=100, prune_sparsity=0.25)

pytestmark = pytest.mark.slow


def _train_table(root: Path) -> Path:
    from mobile_ml.data.prepare import prepare
    from mobile_ml.train.config import GridConfig, TrainConfig
    from mobile_ml.train.trainer import train

    prepare(TABLE, root / "data", target="grade")
    grid = GridConfig(width=(64,), depth=(1,), learning_rate=(0.01,), dropout=(0.0,))
    train(root / "data", root / "run", TrainConfig(epochs=40, patience=8, batch_size=32, seed=0, grid=grid))
    return root / "run"


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    return _train_table(tmp_path_factory.mktemp("scaled"))


def _export(run: Path, dest: Path, **kw):
    from mobile_ml.export.exporter import export_run
    from mobile_ml.train.rundir import load_run

    return export_run(load_run(run), dest, OPTIONS, **kw)


def _within_one_row(keras_accuracy: float, accuracy: float, examples: int) -> bool:
    """The issue's target: within 1 point of Keras, or at most one extra misclassified test row."""
    return keras_accuracy - accuracy <= max(0.01, 1 / examples) + 1e-9


@pytest.fixture(scope="module")
def table_export(table_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("scaled-export") / "exports"
    return out, _export(table_run, out)


def test_integer_variants_of_mixed_scale_features_stay_within_one_row(table_run, table_export):
    out, result = table_export
    keras = result.keras
    assert keras.accuracy > 0.9  # the rule is learnable: a drop below is the variants' fault
    for name in INTEGER:
        v = result.variant(name)
        assert _within_one_row(keras.accuracy, v.parity.metrics.accuracy, keras.examples), (name, v.parity)
        assert v.inputs[0].dtype == "int8" and v.inputs[0].scale < 0.1  # fits normalized features (about ±3)
        meta = metadata.read(out / name / "metadata.json")
        norm = meta.app_normalizes
        assert norm is not None and len(norm.mean) == len(meta.input.features) == 4
        assert meta.inside_model == () and any("preprocessing.normalize" in s for s in meta.app_must)
        assert metadata.health_check((out / name / "model.tflite").read_bytes(), meta).ok
    from mobile_ml.export.evaluate import evaluate_file

    # `mobile-ml evaluate` on the file feeds it as its metadata.json says, so it agrees with export.json.
    evaluated = evaluate_file(out / "int8" / "model.tflite", table_run)
    assert evaluated["accuracy"] == result.variant("int8").parity.metrics.accuracy
    # so does `mobile-ml evaluate MODEL --eval FILE` without the run: the app's normalization comes from metadata.json
    from mobile_ml.export.evaluate import evaluate_tflite
    from mobile_ml.train.rundir import load_run

    x, y = load_run(table_run).split("test")
    np.savez(out.parent / "test.npz", x=x, y=y)
    alone = evaluate_tflite(out / "int8" / "model.tflite", out.parent / "test.npz")
    assert alone["accuracy"] == evaluated["accuracy"] and alone["metadata"] is True
    fp32 = metadata.read(out / "fp32" / "metadata.json")  # float variants keep normalization in the model
    assert fp32.app_normalizes is None and "normalization" in fp32.inside_model[0]
    assert "normalize" not in json.loads((out / "fp32" / "metadata.json").read_text())["preprocessing"]


def test_normalization_inside_the_integer_graph_falls_to_about_majority_class(table_run, tmp_path):
    """The design this replaces, measured by the same figure: the test above would fail on it."""
    result = _export(table_run, tmp_path / "exports", normalize_in_model=True)
    keras = result.keras
    for name in INTEGER:
        v = result.variant(name)
        assert not _within_one_row(keras.accuracy, v.parity.metrics.accuracy, keras.examples)
        assert v.parity.metrics.accuracy < 0.6, name  # three balanced classes: majority is 1/3
        assert v.inputs[0].scale > 1  # one step of the input is wider than every ratio and length in the table
        assert metadata.read(tmp_path / "exports" / name / "metadata.json").app_normalizes is None


def test_the_reference_client_on_raw_csv_rows_predicts_what_keras_does(table_run, table_export, tmp_path):
    from mobile_ml.client.run import run_model
    from mobile_ml.client.state import install_version
    from mobile_ml.contracts.manifest import FileEntry, Release
    from mobile_ml.train.rundir import load_run

    out, _ = table_export
    with TABLE.open() as f:
        rows = list(csv.DictReader(f))[:25]
    meta = metadata.read(out / "int8" / "metadata.json")
    raw = np.array([[float(r[name]) for name in meta.input.features] for r in rows], np.float32)
    keras_top = load_run(table_run).load_model().predict(raw, verbose=0).argmax(1)
    files = {n: (out / "int8" / n).read_bytes() for n in ("model.tflite", "metadata.json")}
    (tmp_path / "device").mkdir()
    entries = tuple(
        FileEntry(n, f"blobs/sha256/{hashlib.sha256(d).hexdigest()}", hashlib.sha256(d).hexdigest(), len(d))
        for n, d in files.items()
    )
    install_version(tmp_path / "device", Release("table", "1.0.0", "int8", entries), files, set())
    got = []
    for i, row in enumerate(raw):
        (tmp_path / f"row{i}.json").write_text(json.dumps([row.tolist()]))
        got.append(run_model(tmp_path / "device", tmp_path / f"row{i}.json").top[0][0])
    assert got == [meta.labels[k] for k in keras_top]
    with pytest.raises(InputFileError, match="takes 4 features"):
        (tmp_path / "short.json").write_text("[[1.0, 2.0, 3.0]]")
        run_model(tmp_path / "device", tmp_path / "short.json")


def test_a_split_that_does_not_match_the_model_is_refused(table_run):
    from mobile_ml.export.convert import ConversionError
    from mobile_ml.export.normalization import check_split, split_normalization
    from mobile_ml.train.rundir import load_run

    run = load_run(table_run)
    model = run.load_model()
    x = run.split("test")[0]
    split = split_normalization(model, x)
    assert split is not None
    check_split(model, split, x)
    weights = split.body.get_weights()
    split.body.set_weights([w * 1.01 for w in weights])  # e.g. weights not copied exactly
    with pytest.raises(ConversionError, match="differs from the model"):
        check_split(model, split, x)
    bad = replace(split, norm=FeatureNormalization(split.norm.mean, tuple(s * 2 for s in split.norm.std)))
    split.body.set_weights(weights)
    with pytest.raises(ConversionError, match="differs from the model"):
        check_split(model, bad, x)


def test_the_committed_vector_is_what_the_exporter_writes(table_export):
    """tests/vectors/tabular-int8-metadata.json, which the Kotlin tests replay, matches this export's shape and math.

    Regenerate it (after a deliberate change) with `python tests/test_int8_tables.py`.
    """
    out, _ = table_export
    vector = parse_document(ModelMetadata, VECTOR.read_bytes(), where=str(VECTOR))
    fresh = metadata.read(out / "int8" / "metadata.json")
    assert vector.to_dict().keys() == fresh.to_dict().keys()
    assert vector.input.features == fresh.input.features and vector.app_normalizes is not None
    for meta in (vector, fresh):
        case = meta.health_check
        q = tflite_file.quantize(metadata.model_input(meta, case.input), meta.input.tensor)
        assert q.tolist() == case.input_quantized


def test_normalize_in_metadata_is_checked():
    doc = json.loads(VECTOR.read_text())
    assert parse_document(ModelMetadata, doc, where="v").app_normalizes is not None
    for key, value, match in [
        ("std", [1.0, 0.0, 1.0, 1.0], "positive"),
        ("mean", [0.0, 1.0], "one std per mean"),
        ("axis", "sample", "one mean and std per feature"),
        ("mean", [0.0, "x", 1.0, 2.0], "finite numbers"),
    ]:
        bad = json.loads(json.dumps(doc))
        bad["preprocessing"]["normalize"][key] = value
        with pytest.raises(InputFileError, match=match):
            parse_document(ModelMetadata, bad, where="v")
    short = json.loads(json.dumps(doc))
    short["preprocessing"]["normalize"] = {"axis": "feature", "mean": [0.0], "std": [1.0]}
    with pytest.raises(InputFileError, match="for 4 input.features"):
        parse_document(ModelMetadata, short, where="v")
    del doc["preprocessing"]["normalize"]  # earlier exports: the model normalizes, nothing changes
    old = parse_document(ModelMetadata, doc, where="v")
    assert old.app_normalizes is None and "normalize" not in old.to_dict()["preprocessing"]


if __name__ == "__main__":  # regenerate the committed vector from a fresh export of the fixture table
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "exports"
        _export(_train_table(Path(tmp)), dest)
        shutil.copy(dest / "int8" / "metadata.json", VECTOR)
        print(f"wrote {VECTOR}")
