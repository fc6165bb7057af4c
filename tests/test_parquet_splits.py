"""Parquet split files: the schema data.json implies, old CSV data directories, batch-size independence, streaming."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mobile_ml.contracts import write_document
from mobile_ml.data import encoding
from mobile_ml.data.prepare import prepare
from mobile_ml.data.spec import LABEL_COLUMN, SPLITS, SplitFormat, load_spec, load_split
from mobile_ml.errors import DataError
from mobile_ml.train.inputs import StreamedSplit, train_input


def table(n=300, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "big": rng.normal(3e6, 1e5, n).round(1),
            "small": rng.normal(0.001, 0.0002, n),
            "colour": rng.choice(["red", "green", "blue", None], n),
            "y": rng.choice(["a", "b", "c"], n),
        }
    )


@pytest.fixture
def prepared(tmp_path):
    csv = tmp_path / "t.csv"
    table().to_csv(csv, index=False)
    out = tmp_path / "data"
    return csv, out, prepare(csv, out, target="y")


def test_splits_are_parquet_with_the_schema_data_json_implies(prepared):
    csv, out, spec = prepared
    assert spec.split_format is SplitFormat.PARQUET
    assert json.loads((out / "data.json").read_text())["split_format"] == "parquet"
    assert load_spec(out) == spec
    for s in SPLITS:
        schema = pq.read_schema(out / spec.files[s])
        assert schema.names == spec.features + [LABEL_COLUMN]
        assert all(t == pa.float32() for t in schema.types[:-1]) and schema.types[-1] == pa.int64()
        x, y = load_split(out, spec, s)
        frame = pd.read_parquet(out / spec.files[s])
        assert x.dtype == np.float32 and y.dtype == np.int64 and len(y) == spec.counts[s]
        assert np.array_equal(x, frame[spec.features].to_numpy(dtype=np.float32))
        assert np.bincount(y, minlength=3).tolist() == spec.class_counts[s]


def _as_old_csv_dir(out, spec, old):
    """What `data prepare` wrote before Parquet: CSV splits and a data.json without split_format."""
    old.mkdir()
    for s in SPLITS:
        pd.read_parquet(out / spec.files[s]).to_csv(old / f"{s}.csv", index=False)
    doc = json.loads((out / "data.json").read_text())
    del doc["split_format"]
    doc["files"] = {s: f"{s}.csv" for s in SPLITS}
    (old / "data.json").write_text(json.dumps(doc, indent=2))


def test_old_csv_data_directory_still_reads_and_trains(prepared, tmp_path):
    from mobile_ml.train.trainer import train

    from .conftest import TINY

    _, out, spec = prepared
    old = tmp_path / "old"
    _as_old_csv_dir(out, spec, old)
    old_spec = load_spec(old)
    assert old_spec.split_format is SplitFormat.CSV
    assert "split_format" not in json.loads(json.dumps(old_spec.to_dict()))  # rewritten as it was read
    for s in SPLITS:
        x_old, y_old = load_split(old, old_spec, s)
        x_new, y_new = load_split(out, spec, s)
        assert np.array_equal(x_old, x_new) and np.array_equal(y_old, y_new)
    assert isinstance(train_input(old, old_spec), tuple)  # CSV: in memory, as before
    result = train(old, tmp_path / "run", TINY)
    assert result.test.examples == spec.counts["test"]


def _rewrite(path, change):
    t = pq.read_table(path)
    pq.write_table(change(t), path)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.rename_columns([*t.column_names[:1], "renamed", *t.column_names[2:]]), "renamed"),
        (lambda t: t.set_column(0, t.field(0).name, pa.compute.cast(t.column(0), pa.float64())), "big"),
        (lambda t: t.select([1, 0, *range(2, t.num_columns)]), "small"),
        (lambda t: t.drop_columns([LABEL_COLUMN]), LABEL_COLUMN),
        (lambda t: t.append_column("extra", pa.array(np.zeros(t.num_rows))), "extra"),
    ],
    ids=["renamed", "one-float64-column", "reordered", "missing-label", "extra"],
)
def test_a_split_whose_schema_differs_from_data_json_is_refused_naming_the_column(prepared, change, named):
    _, out, spec = prepared
    _rewrite(out / spec.files["test"], change)
    with pytest.raises(DataError, match=f"'{named}'"):
        load_split(out, spec, "test")
    load_split(out, spec, "train")  # the others are untouched


def test_float64_splits_written_before_float32_still_read_as_the_same_float32_values(prepared):
    _, out, spec = prepared
    for s in SPLITS:
        x_new, y_new = load_split(out, spec, s)
        _rewrite(out / spec.files[s], lambda t: t.cast(tabular_schema_float64(t)))
        assert all(t == pa.float64() for t in pq.read_schema(out / spec.files[s]).types[:-1])
        x_old, y_old = load_split(out, spec, s)
        assert x_old.dtype == np.float32 and np.array_equal(x_old, x_new) and np.array_equal(y_old, y_new)


def tabular_schema_float64(t):
    return pa.schema([pa.field(f.name, pa.float64() if f.name != LABEL_COLUMN else f.type) for f in t.schema])


def test_schema_mismatch_exits_2_at_the_cli_naming_the_column(prepared, tmp_path):
    _, out, spec = prepared
    _rewrite(out / spec.files["train"], lambda t: t.rename_columns(["BIG", *t.column_names[1:]]))
    proc = subprocess.run(
        [sys.executable, "-m", "mobile_ml", "train", str(out), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'BIG'" in proc.stderr and "'big'" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_prepare_is_the_same_whatever_the_batch_size(tmp_path, monkeypatch):
    csv = tmp_path / "t.csv"
    table(500).to_csv(csv, index=False)
    whole = prepare(csv, tmp_path / "whole", target="y")
    monkeypatch.setattr(encoding, "BATCH_ROWS", 7)
    batched = prepare(csv, tmp_path / "batched", target="y")
    assert pq.ParquetFile(tmp_path / "batched" / "train.parquet").num_row_groups > 1
    assert batched.counts == whole.counts and batched.columns == whole.columns
    for s in SPLITS:
        a = pd.read_parquet(tmp_path / "whole" / whole.files[s])
        b = pd.read_parquet(tmp_path / "batched" / batched.files[s])
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_allclose(batched.normalization.mean, whole.normalization.mean, rtol=1e-12)
    np.testing.assert_allclose(batched.normalization.std, whole.normalization.std, rtol=1e-12)
    x = pd.read_parquet(tmp_path / "whole" / "train.parquet")[whole.features].to_numpy(dtype=np.float64)
    std = x.std(axis=0)
    std[std == 0] = 1
    np.testing.assert_allclose(batched.normalization.std, std, rtol=1e-12)  # the pairwise merge is exact


def test_training_streams_the_train_split_in_row_group_windows(tmp_path, monkeypatch):
    from mobile_ml.train import inputs
    from mobile_ml.train.trainer import train

    from .conftest import TINY

    csv = tmp_path / "t.csv"
    table(600).to_csv(csv, index=False)
    monkeypatch.setattr(encoding, "BATCH_ROWS", 50)  # 8 row groups of train
    spec = prepare(csv, tmp_path / "data", target="y")
    stream = train_input(tmp_path / "data", spec)
    assert isinstance(stream, StreamedSplit)
    whole_x, whole_y = load_split(tmp_path / "data", spec, "train")

    read = []
    real_concatenate = inputs.np.concatenate

    def counting(parts, *a, **k):
        out = real_concatenate(parts, *a, **k)
        read.append(len(out))
        return out

    monkeypatch.setattr(inputs.np, "concatenate", counting)
    epoch0 = list(stream.batches(32, seed=1, epoch=0))
    monkeypatch.setattr(inputs.np, "concatenate", real_concatenate)
    assert max(read) <= inputs.WINDOW * 50  # never more than a window of row groups in memory
    x0 = np.concatenate([b[0] for b in epoch0])
    y0 = np.concatenate([b[1] for b in epoch0])
    assert all(len(b[1]) <= 32 for b in epoch0)
    # every train row exactly once per epoch, in a seeded order that changes between epochs
    key = lambda x, y: sorted(map(tuple, np.column_stack([x, y])))  # noqa: E731
    assert key(x0, y0) == key(whole_x, whole_y)
    assert not np.array_equal(y0, whole_y)
    again = np.concatenate([b[1] for b in stream.batches(32, seed=1, epoch=0)])
    other = np.concatenate([b[1] for b in stream.batches(32, seed=1, epoch=1)])
    assert np.array_equal(again, y0) and not np.array_equal(other, y0)

    result = train(tmp_path / "data", tmp_path / "run", TINY)
    assert result.selected.epochs_run >= 1 and result.test.examples == spec.counts["test"]
    same = train(tmp_path / "data", tmp_path / "run2", TINY)
    assert same.test.accuracy == result.test.accuracy and same.selected.val_loss == result.selected.val_loss


def test_write_document_keeps_old_csv_data_json_bytes(prepared, tmp_path):
    _, out, spec = prepared
    old = tmp_path / "old"
    _as_old_csv_dir(out, spec, old)
    before = json.loads((old / "data.json").read_text())
    write_document(tmp_path / "again.json", load_spec(old))
    assert json.loads((tmp_path / "again.json").read_text()) == before
