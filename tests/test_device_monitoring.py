"""The baseline from export to device: `export` writes baseline.json per variant, `publish` ships it as a third signed
file, `baseline_of` reads it back verified, and `device run --input` counts each inference against it.

The expected counts are computed here directly with the Aggregator, on the same rows and LiteRT probabilities.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mobile_ml.client import sync as client
from mobile_ml.contracts import ContractError, parse_document, read_document
from mobile_ml.contracts.aggregates import AggregatorState
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.export import tflite_file
from mobile_ml.export.metadata import model_input
from mobile_ml.export.metadata import read as read_metadata
from mobile_ml.monitor import BASELINE_FILE, Aggregator, build_baseline, state_file
from mobile_ml.publish import keys, publisher
from mobile_ml.publish.baselines import baseline_of
from tests.test_cli import run as cli
from tests.test_client import serving

FIXTURES = Path(__file__).parent / "fixtures"


def _litert_probs(vdir: Path, rows: np.ndarray) -> np.ndarray:
    """The variant's probabilities, one row at a time as a device runs it (raw rows, preprocessed as metadata says)."""
    meta = read_metadata(vdir / "metadata.json")
    interpreter = tflite_file.load_interpreter((vdir / "model.tflite").read_bytes(), str(vdir))
    shape = [1, *meta.input.tensor.shape[1:]]
    return np.concatenate([tflite_file.predict(interpreter, model_input(meta, r.reshape(shape))) for r in rows])


def _split(data_dir: Path, name: str):
    from mobile_ml.data.spec import load_spec, load_split

    return load_split(data_dir, load_spec(data_dir), name)


def _expected_baseline(data_dir: Path, vdir: Path, *, kind: str, features=()) -> Baseline:
    x_train, _ = _split(data_dir, "train")
    x_test, _ = _split(data_dir, "test")
    labels = read_metadata(vdir / "metadata.json").labels
    return build_baseline(
        x_train, x_test, features=features, kind=kind, test_probs=_litert_probs(vdir, x_test), labels=labels
    )


# -- export --------------------------------------------------------------------------------------------------------


def test_a_run_export_writes_each_variants_baseline_from_its_splits_and_litert(exported, digits_dir, tmp_path):
    run, result = exported
    for v in result.variants:
        vdir = run / "exports" / v.variant.value
        got = read_document(Baseline, vdir / BASELINE_FILE)
        assert got == _expected_baseline(digits_dir, vdir, kind="image"), v.variant
        assert got.train_rows == len(_split(digits_dir, "train")[0]) and got.image_channels == 1
        assert v.note == ""

    # --force re-exports fp32 only: int8 is kept, with its baseline, byte for byte
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / "exports" / "int8" / BASELINE_FILE).read_bytes()
    r = cli(
        "export",
        copy,
        "--data",
        digits_dir,
        "--variants",
        "fp32",
        "--force",
        "--calibration-samples",
        "64",
        "--finetune-epochs",
        "1",
    )
    assert r.exit_code == 0, r.output
    assert (copy / "exports" / "int8" / BASELINE_FILE).read_bytes() == before
    assert read_document(Baseline, copy / "exports" / "fp32" / BASELINE_FILE).test_rows > 0


def _classifier(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    from mobile_ml import _tf

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    m.add(keras.layers.Softmax())
    m.compile("adam", "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=5, verbose=0)
    m.save(path)
    return path


def test_a_model_file_export_uses_calibration_and_eval_rows_or_says_why_not(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    x = (np.eye(3, 5)[y] * 4 + rng.normal(0, 1, (400, 5))).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x[:150], y=y[:150])
    np.savez(tmp_path / "cal.npz", x=x[150:])
    model = _classifier(tmp_path / "m.keras", x[150:], y[150:])
    r = cli(
        "export", model, "--eval", tmp_path / "eval.npz", "--calibration", tmp_path / "cal.npz", "--out",
        tmp_path / "e", "--variants", "fp32,int8", "--max-accuracy-drop", "100", "--calibration-samples", "200",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for variant in ("fp32", "int8"):
        vdir = tmp_path / "e" / variant
        got = read_document(Baseline, vdir / BASELINE_FILE)
        cal = x[150:][np.random.default_rng(0).permutation(250)[:200]]  # Examples.take(200, seed 0)
        want = build_baseline(
            cal, x[:150], features=[f"{got.features[0].name[:-3]}[{j}]" for j in range(5)], kind="tabular",
            test_probs=_litert_probs(vdir, x[:150]), labels=("0", "1", "2"),
        )  # fmt: skip
        assert got == want and got.train_rows == 200 and got.test_rows == 150

    # no calibration rows: fp32 is exported without a baseline, and the export says why
    r = cli("export", model, "--eval", tmp_path / "eval.npz", "--out", tmp_path / "n", "--variants", "fp32")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "n" / "fp32" / BASELINE_FILE).exists()
    assert "fp32: no baseline.json: a model file's baseline needs calibration rows" in " ".join(r.output.split())
    report = json.loads((tmp_path / "n" / "export.json").read_text())
    assert "calibration rows" in report["variants"][0]["note"]


def test_a_model_with_more_features_than_a_baseline_monitors_is_exported_without_one(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    x = rng.normal(0, 1, (300, 257)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x[:100], y=y[:100])
    np.savez(tmp_path / "cal.npz", x=x[100:])
    model = _classifier(tmp_path / "wide.keras", x[100:], y[100:])
    r = cli(
        "export", model, "--eval", tmp_path / "eval.npz", "--calibration", tmp_path / "cal.npz", "--out",
        tmp_path / "w", "--variants", "fp32", "--max-accuracy-drop", "100",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "fp32" / "metadata.json").is_file()
    assert not (tmp_path / "w" / "fp32" / BASELINE_FILE).exists()
    assert "257 features; a baseline monitors at most 256" in " ".join(r.output.split())


# -- publish -------------------------------------------------------------------------------------------------------


@pytest.fixture()
def with_baseline(digits_export, digits_dir, tmp_path):
    """A copy of the committed digits export, its baselines made again here from the digits splits and LiteRT: the
    committed ones must be exactly these."""
    from mobile_ml.monitor import write_baseline

    run = tmp_path / "with-baseline"
    shutil.copytree(digits_export.run, run)
    for variant in ("fp32", "int8"):
        vdir = run / "exports" / variant
        committed = (vdir / BASELINE_FILE).read_bytes()
        write_baseline(vdir / BASELINE_FILE, _expected_baseline(digits_dir, vdir, kind="image"))
        assert (vdir / BASELINE_FILE).read_bytes() == committed, variant
    return run


def test_publish_ships_the_baseline_and_baseline_of_reads_it_back_verified(with_baseline, digits_export, tmp_path):
    keys.generate(tmp_path / "keys")
    root = tmp_path / "root"
    publisher.publish(str(root), with_baseline, model="digits", version="1.0.0", channel="beta", key=tmp_path / "keys")
    release = json.loads((root / "digits" / "releases" / "1.0.0.json").read_text())
    assert [f["name"] for f in release["files"]] == ["model.tflite", "metadata.json", BASELINE_FILE]
    variant = release["variant"]
    local = (with_baseline / "exports" / variant / BASELINE_FILE).read_bytes()
    assert release["files"][2]["sha256"] == hashlib.sha256(local).hexdigest()
    assert baseline_of(str(root), "digits", "1.0.0") == parse_document(Baseline, local, where="local")
    assert baseline_of(str(root), "digits", "9.9.9") is None  # no such release
    # names come from uploads: never a path (root/digits + ../digits would reach the real release)
    assert baseline_of(str(root / "digits"), "../digits", "1.0.0") is None
    assert baseline_of(str(root), "digits", "1.0.0/../1.0.0") is None

    blob = root / release["files"][2]["url"]
    blob.write_bytes(blob.read_bytes().replace(b'"train_rows": ', b'"train_rows": 1'))
    with pytest.raises(ContractError, match="does not match its signed sha256"):
        baseline_of(str(root), "digits", "1.0.0")

    # a variant exported without a baseline publishes as before: two files, and baseline_of says None
    plain = tmp_path / "plain"
    shutil.copytree(digits_export.run, plain)
    for p in (plain / "exports").glob(f"*/{BASELINE_FILE}"):
        p.unlink()
    publisher.publish(str(root), plain, model="digits", version="1.1.0", channel="beta", key=tmp_path / "keys")
    assert baseline_of(str(root), "digits", "1.1.0") is None


def test_publish_refuses_a_baseline_of_other_classes(with_baseline, tmp_path):
    keys.generate(tmp_path / "keys")
    for path in (with_baseline / "exports").glob(f"*/{BASELINE_FILE}"):
        doc = json.loads(path.read_text())
        doc["labels"] = [f"c{i}" for i in range(10)]
        path.write_text(json.dumps(doc))
    from mobile_ml.errors import InputFileError

    with pytest.raises(InputFileError, match="not the model's"):
        publisher.publish(
            str(tmp_path / "r"), with_baseline, model="d", version="1.0.0", channel="b", key=tmp_path / "keys"
        )


# -- device --------------------------------------------------------------------------------------------------------


def _install(tmp_path: Path, source: Path, model: str = "digits") -> Path:
    """Publish ``source`` as 1.0.0 on MODEL/beta, serve it on loopback, and sync a device once; its state dir."""
    from mobile_ml.deliver.server import create_app

    keys.generate(tmp_path / "keys")
    root = tmp_path / "root"
    publisher.publish(str(root), source, model=model, version="1.0.0", channel="beta", key=tmp_path / "keys")
    state = tmp_path / "device"
    with serving(create_app(root, tmp_path / "telemetry.db")) as url:
        cfg = client.DeviceConfig(
            server=url, model=model, channel="beta", public_key=keys.load_public(tmp_path / "keys"), state_dir=state,
            install_id="device-1", app_version="1.0.0", timeout=5.0, send_telemetry=False,
        )  # fmt: skip
        assert client.sync(cfg).current == "1.0.0"
    return state


def _direct(vdir: Path, rows: np.ndarray, model: str = "digits") -> Aggregator:
    """The counts the device should hold after ``rows``: the Aggregator fed directly, LiteRT probabilities."""
    baseline = read_document(Baseline, vdir / BASELINE_FILE)
    agg = Aggregator(baseline, model=model, version="1.0.0", channel="beta")
    for row, probs in zip(rows, _litert_probs(vdir, rows), strict=True):
        agg.observe(row, probs, 1.0)
    return agg


def _same_counts(state: Path, want: Aggregator, model: str = "digits") -> None:
    doc = read_document(AggregatorState, state_file(state, model, "beta", "1.0.0")).current
    exp = want.to_document()
    assert doc.count == exp.count
    assert [(f.name, f.counts, f.missing) for f in doc.features] == [
        (f.name, f.counts, f.missing) for f in exp.features
    ]
    assert (doc.predictions, doc.confidence) == (exp.predictions, exp.confidence)
    assert sum(doc.latency_ms) == exp.count  # one latency bin per inference (the times themselves differ per run)


def _predicted(output: str) -> list[str]:
    """The top labels of `--json` output: one indented document for one input, JSON Lines for several."""
    docs, text, decoder = [], output.strip(), json.JSONDecoder()
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc["top"][0]["label"])
        text = text[end:].strip()
    return docs


def test_device_run_counts_json_and_npz_inputs_against_the_installed_baseline(with_baseline, digits_dir, tmp_path):
    state = _install(tmp_path, with_baseline)
    vdir = state / "versions" / "1.0.0"
    assert (vdir / BASELINE_FILE).is_file()  # downloaded and verified like the model
    x_test, _ = _split(digits_dir, "test")
    one, many, npz = x_test[:1], x_test[1:6], x_test[6:26]
    (tmp_path / "one.json").write_text(json.dumps(one[0].tolist()))  # one input: 8 × 8 × 1 nested lists
    (tmp_path / "many.json").write_text(json.dumps(many.tolist()))  # a list of five
    np.savez(tmp_path / "rows.npz", x=npz.reshape(len(npz), -1))  # one flat row per input
    fed = []
    for name, rows in (("one.json", one), ("many.json", many), ("rows.npz", npz)):
        r = cli("device", "run", "--state", state, "--input", tmp_path / name, "--json")
        assert r.exit_code == 0, r.output
        probs = _litert_probs(vdir, rows)
        assert _predicted(r.output) == [str(k) for k in probs.argmax(1)]
        fed.append(rows)
        _same_counts(state, _direct(vdir, np.concatenate(fed)))
    r = cli("device", "run", "--state", state, "--input", tmp_path / "many.json")  # plain output: a line per input
    assert r.exit_code == 0 and r.output.count("model 1.0.0:") == 5, r.output
    assert read_document(AggregatorState, state_file(state, "digits", "beta", "1.0.0")).current.count == 31

    # a file whose values are not a whole number of inputs counts nothing
    (tmp_path / "bad.json").write_text(json.dumps([1.0] * 65))
    r = cli("device", "run", "--state", state, "--input", tmp_path / "bad.json")
    assert r.exit_code == 2 and "not a whole number of inputs" in " ".join(r.output.split())
    assert read_document(AggregatorState, state_file(state, "digits", "beta", "1.0.0")).current.count == 31


def test_a_model_published_without_a_baseline_still_runs_uncounted(digits_export, tmp_path):
    plain = tmp_path / "plain"  # an export from before baselines
    shutil.copytree(digits_export.run, plain)
    for p in (plain / "exports").glob(f"*/{BASELINE_FILE}"):
        p.unlink()
    state = _install(tmp_path, plain)
    r = cli("device", "run", "--state", state)
    assert r.exit_code == 0, r.output
    assert "model 1.0.0:" in r.output
    assert "published without baseline.json: its inferences are not counted" in " ".join(r.output.split())
    assert not (state / "aggregates").exists()


CATEGORIES = ("red", "green", "blue")


@pytest.mark.slow
def test_device_run_encodes_csv_rows_as_the_metadata_says_and_counts_them(tmp_path):
    """A tabular run with a categorical column: raw CSV rows on the device give the counts of the encoded rows
    (encoded here by hand from metadata.json's columns), and the int8 variant (the app normalizes) counts raw units."""
    from mobile_ml.data.prepare import prepare
    from mobile_ml.export.exporter import export
    from mobile_ml.export.options import ExportOptions
    from mobile_ml.train.trainer import train
    from tests.conftest import TINY

    with (FIXTURES / "scaled-table.csv").open() as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        row["color"] = CATEGORIES[i % 3]
    table = tmp_path / "table.csv"
    with table.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    prepare(table, tmp_path / "data", target="grade")
    train(tmp_path / "data", tmp_path / "run", TINY)
    export(tmp_path / "run", ExportOptions(variants=("fp32", "int8"), max_accuracy_drop=100, calibration_samples=64))
    exports = tmp_path / "run" / "exports"
    for variant in ("fp32", "int8"):
        assert read_document(Baseline, exports / variant / BASELINE_FILE).kind.value == "tabular"
    shutil.rmtree(exports / "fp32")  # publish the int8 variant: the one whose input the app must normalize
    report = json.loads((exports / "export.json").read_text())
    report["variants"] = [v for v in report["variants"] if v["variant"] == "int8"]
    report["recommended"] = "int8"
    (exports / "export.json").write_text(json.dumps(report))
    state = _install(tmp_path, tmp_path / "run", model="table")
    vdir = state / "versions" / "1.0.0"
    meta = read_metadata(vdir / "metadata.json")
    assert meta.app_normalizes is not None

    inputs = [dict(r) for r in rows[:30]]
    inputs[3]["color"] = "purple"  # unseen: the unknown bucket
    with (tmp_path / "in.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in inputs[0] if k != "grade"], extrasaction="ignore")
        w.writeheader()
        w.writerows(inputs)
    r = cli("device", "run", "--state", state, "--input", tmp_path / "in.csv", "--json")
    assert r.exit_code == 0, r.output

    def encoded(row: dict) -> list[float]:
        out: dict[str, float] = {}
        for c in meta.input.columns:
            if c["kind"] == "numeric":
                out[c["name"]] = float(row[c["name"]])
            else:
                vocab = c["vocabulary"]
                hot = vocab.index(row[c["name"]]) if row[c["name"]] in vocab else len(vocab)
                names = [f"{c['name']}={v}" for v in vocab] + [c["unknown_feature"]]
                out.update({n: float(i == hot) for i, n in enumerate(names)})
        return [out[name] for name in meta.input.features]

    x = np.array([encoded(row) for row in inputs], np.float32)
    assert any("color" in c["name"] for c in meta.input.columns)
    assert _predicted(r.output) == [meta.labels[k] for k in _litert_probs(vdir, x).argmax(1)]
    _same_counts(state, _direct(vdir, x, model="table"), model="table")
