from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mobile_ml.contracts import document_dict, parse_document, write_document
from mobile_ml.data.spec import LABEL_COLUMN, SPLITS, DataSpec, load_spec, load_split
from mobile_ml.data.split import SplitOptions
from mobile_ml.data.tabular import TabularOptions, prepare_tabular
from mobile_ml.errors import ConfigError, DataError


def prepare(tmp_path, df, target="y", name="out", split=None, **options):
    path = tmp_path / f"{name}.csv"
    if not path.exists():
        df.to_csv(path, index=False)
    out = tmp_path / name
    out.mkdir()
    spec = prepare_tabular(path, target, TabularOptions(**options), split or SplitOptions(), out)
    return spec, out


def load(spec, out):
    return {s: load_split(out, spec, s) for s in SPLITS}


def feature(spec, x, name):
    return x[:, spec.features.index(name)]


def base(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "rid": np.arange(n),
            "x": rng.normal(50, 10, n).round(3),
            "c": rng.choice(["p", "q", "s"], n),
            "y": np.array(["a", "b", "c"])[np.arange(n) % 3],
        }
    )


# Rows per split under the default 0.7/0.15/0.15 ratios: a class of 10 puts 6 rows in train, a class of 9 puts 7 (the
# validation/test share rounds to 2 and 1). The tests below use that to make train-only statistics differ, for
# certain, from statistics over all rows.
def leaky():
    return pd.DataFrame(
        {
            "x": [0.0] * 10 + [100.0] * 9 + [None] * 5 + [5.0, 5.0],
            "c": ["a"] * 10 + ["b"] * 9 + [None] * 5 + ["z", "z"],
            "y": ["A"] * 10 + ["B"] * 9 + ["C"] * 5 + [None, None],
        }
    )


# ------------------------------------------------------------------------------------------- train-only fitting


def test_imputation_uses_the_train_median_and_most_frequent(tmp_path):
    df = leaky()
    labelled = df[df["y"].notna()]
    assert labelled["x"].median() == 0.0 and labelled["c"].value_counts().idxmax() == "a"  # all rows: 0 and "a"
    spec, out = prepare(tmp_path, df, drop_duplicates=False)
    assert spec.class_counts["train"] == [6, 7, 3]  # train: 6 × 0, 7 × 100, 6 × "a", 7 × "b"
    cols = {c.name: c for c in spec.columns}
    assert cols["x"].impute == 100.0
    assert cols["c"].impute == "b"
    assert spec.cleaning["imputed"] == {"x": 5, "c": 5}
    assert spec.cleaning["missing_target_dropped"] == 2
    x, y = load(spec, out)["train"]
    assert (feature(spec, x, "x")[y == 2] == 100.0).all()
    assert (feature(spec, x, "c=b")[y == 2] == 1.0).all()
    assert (feature(spec, x, "c=__unknown__") == 0).all()


def test_mean_imputation_uses_the_train_mean(tmp_path):
    spec, _ = prepare(tmp_path, leaky(), drop_duplicates=False, numeric_impute="mean")
    assert {c.name: c for c in spec.columns}["x"].impute == pytest.approx(700 / 13)


def test_categorical_impute_unknown(tmp_path):
    spec, out = prepare(tmp_path, leaky(), drop_duplicates=False, categorical_impute="unknown")
    c = {c.name: c for c in spec.columns}["c"]
    assert c.impute == "__unknown__" and c.unknown_feature == "c=__unknown__"
    for x, y in load(spec, out).values():
        assert (feature(spec, x, "c=__unknown__") == (y == 2)).all()


def test_missing_drop(tmp_path):
    df = base()
    df.loc[[1, 5, 7], "x"] = None
    df.loc[[5, 11], "c"] = None
    spec, out = prepare(tmp_path, df, missing="drop")
    assert spec.cleaning["missing_rows_dropped"] == 4
    assert sum(spec.counts.values()) == 56
    assert all(c.impute is None for c in spec.columns)
    assert spec.cleaning["imputed"] == {}


def test_missing_drop_that_empties_a_class_is_an_error(tmp_path):
    with pytest.raises(DataError, match="class 'C' has no rows left after dropping rows with missing values"):
        prepare(tmp_path, leaky(), drop_duplicates=False, missing="drop")


def test_one_hot_vocabulary_and_unknown_bucket(tmp_path):
    df = base(90)
    rare = np.arange(0, 90, 5)  # 18 values that occur once: those outside train are unknown
    df.loc[rare, "c"] = [f"r{i}" for i in rare]
    spec, out = prepare(tmp_path, df, keep_columns=["rid"], max_categories=100)
    c = {c.name: c for c in spec.columns}["c"]
    data = load(spec, out)
    train_rows = df.iloc[feature(spec, data["train"][0], "rid").astype(int)]
    counts = train_rows["c"].value_counts()
    assert c.vocabulary == sorted(counts.index, key=lambda v: (-counts[v], v))
    assert c.features == [f"c={v}" for v in c.vocabulary] + ["c=__unknown__"]
    unseen = 0
    for s in ("validation", "test"):
        x, _ = data[s]
        raw = df["c"].to_numpy()[feature(spec, x, "rid").astype(int)]
        onehot = x[:, [spec.features.index(f) for f in c.features]]
        assert (onehot.sum(axis=1) == 1).all()
        is_unknown = ~np.isin(raw, c.vocabulary)
        assert (feature(spec, x, "c=__unknown__") == is_unknown).all()
        unseen += int(is_unknown.sum())
    assert unseen > 0


def test_max_categories_keeps_the_most_frequent_train_values(tmp_path):
    df = pd.DataFrame({"c": ["x"] * 20 + ["y"] * 10 + ["w"] * 10, "y": ["A"] * 20 + ["B"] * 10 + ["C"] * 10})
    spec, out = prepare(tmp_path, df, drop_duplicates=False, max_categories=2)
    c = spec.columns[0]
    assert c.vocabulary == ["x", "w"]  # train counts 14, 6, 6: the tie goes to the first value alphabetically
    assert spec.features == ["c=x", "c=w", "c=__unknown__"]
    for x, y in load(spec, out).values():
        assert (x[:, 2] == (y == 1)).all()


def test_dates_become_parts_with_train_median_imputation(tmp_path):
    df = base()
    dates = pd.date_range("2020-01-01", periods=60, freq="11D")
    df["d"] = dates.strftime("%Y-%m-%d")
    df.loc[[4, 9, 30], "d"] = None
    spec, out = prepare(tmp_path, df, keep_columns=["rid"])
    d = {c.name: c for c in spec.columns}["d"]
    assert d.kind == "date" and d.date_parts == ["year", "month", "day", "dayofweek"]
    assert d.features == ["d.year", "d.month", "d.day", "d.dayofweek"]
    data = load(spec, out)
    train_rid = feature(spec, data["train"][0], "rid").astype(int)
    present = pd.Series(dates[train_rid])[df["d"].iloc[train_rid].notna().to_numpy()]
    assert d.impute == {p: float(getattr(present.dt, p).median()) for p in d.date_parts}
    for x, _ in data.values():
        rid = feature(spec, x, "rid").astype(int)
        ok = df["d"].iloc[rid].notna().to_numpy()
        when = pd.DatetimeIndex(dates[rid])
        for part in d.date_parts:
            got = feature(spec, x, f"d.{part}")
            assert (got[ok] == getattr(when, part)[ok]).all()
            assert (got[~ok] == np.float32(d.impute[part])).all()
    assert spec.cleaning["imputed"]["d"] == 3


def test_dates_drop(tmp_path):
    df = base().assign(d=pd.date_range("2020-01-01", periods=60, freq="7D").strftime("%Y-%m-%d"))
    spec, _ = prepare(tmp_path, df, dates="drop")
    assert not any(f.startswith("d.") for f in spec.features)
    reason = {d["name"]: d["reason"] for d in spec.dropped_columns}["d"]
    assert reason.startswith("datetime") and 'dates = "drop"' in reason
    kept, _ = prepare(tmp_path, df, name="kept", dates="drop", keep_columns=["d"])  # keep_columns wins
    assert "d.year" in kept.features


def test_outlier_removal_only_touches_train(tmp_path):
    df = base(120)
    extreme = np.arange(3, 120, 10)  # 12 rows, spread over the classes
    df.loc[extreme, "x"] = 1000.0
    keep, keep_out = prepare(tmp_path, df, name="keep", keep_columns=["rid"])
    df.to_csv(tmp_path / "remove.csv", index=False)
    removed, removed_out = prepare(tmp_path, df, name="remove", keep_columns=["rid"], outliers="remove")
    for s in ("validation", "test"):
        assert (keep_out / f"{s}.parquet").read_bytes() == (removed_out / f"{s}.parquet").read_bytes()
    n = removed.cleaning["outliers_removed"]
    assert removed.counts["train"] == keep.counts["train"] - n
    kept_x = {s: feature(keep, x, "x") for s, (x, _) in load(keep, keep_out).items()}
    assert n == int((kept_x["train"] == 1000).sum()) > 0
    assert (kept_x["validation"] == 1000).sum() + (kept_x["test"] == 1000).sum() > 0
    assert feature(removed, load(removed, removed_out)["train"][0], "x").max() < 100
    assert keep.cleaning["outliers_removed"] == 0


# ------------------------------------------------------------------------------------------- columns


def test_id_text_constant_and_empty_columns_are_dropped_with_reasons(tmp_path):
    df = base()
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "it", "rains"]
    rng = np.random.default_rng(5)
    df["note"] = [" ".join(rng.choice(words, 7)) for _ in range(60)]
    df["customer_id"] = rng.permutation(np.arange(1000, 1060)) * 3
    df["const"] = "same"
    df["blank"] = None
    spec, _ = prepare(tmp_path, df, drop_columns=["c"])
    reasons = {d["name"]: d["reason"] for d in spec.dropped_columns}
    assert reasons["rid"].startswith("id: ") and "consecutive" in reasons["rid"]
    assert reasons["customer_id"].startswith("id: ") and "identifier" in reasons["customer_id"]
    assert reasons["note"].startswith("text: free text")
    assert reasons["const"].startswith("constant: ")
    assert reasons["blank"].startswith("empty: ")
    assert reasons["c"] == "listed in drop_columns"
    assert spec.features == ["x"]
    assert [c.name for c in spec.columns] == ["x"]


def test_numbers_stored_as_text_and_booleans(tmp_path):
    df = base(40)
    df["n"] = [f"{v:.2f}" for v in np.linspace(1, 9, 40)]
    df.loc[7, "n"] = "oops"
    df["flag"] = np.where(np.arange(40) % 4 == 0, "yes", "no")
    spec, out = prepare(tmp_path, df)
    n = {c.name: c for c in spec.columns}["n"]
    assert n.kind == "numeric" and n.features == ["n"]
    assert spec.cleaning["imputed"] == {"n": 1}
    flag = {c.name: c for c in spec.columns}["flag"]
    assert flag.kind == "categorical" and flag.vocabulary == ["no", "yes"]
    x, _ = load(spec, out)["train"]
    assert set(feature(spec, x, "flag=yes")) == {0.0, 1.0}
    assert np.isfinite(feature(spec, x, "n")).all()


def test_duplicates_dropped(tmp_path):
    df = pd.concat([base(), base().iloc[:5]], ignore_index=True)
    spec, _ = prepare(tmp_path, df)
    assert spec.cleaning["duplicates_dropped"] == 5
    assert sum(spec.counts.values()) == 60
    kept, _ = prepare(tmp_path, df, name="dups", drop_duplicates=False)
    assert kept.cleaning["duplicates_dropped"] == 0 and sum(kept.counts.values()) == 65


# ------------------------------------------------------------------------------------------- split and files


def test_stratification_keeps_class_proportions(tmp_path):
    df = base(100)
    df["y"] = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    spec, out = prepare(tmp_path, df)
    assert spec.labels == ["a", "b", "c"]
    assert spec.class_counts == {"train": [42, 22, 6], "validation": [9, 4, 2], "test": [9, 4, 2]}
    assert spec.counts == {"train": 70, "validation": 15, "test": 15}
    for s, (_, y) in load(spec, out).items():
        assert np.bincount(y, minlength=3).tolist() == spec.class_counts[s]


def test_same_seed_same_files_other_seed_other_split(tmp_path):
    df = base()
    a, a_out = prepare(tmp_path, df, name="a")
    df.to_csv(tmp_path / "b.csv", index=False)
    b, b_out = prepare(tmp_path, df, name="b")
    df.to_csv(tmp_path / "c.csv", index=False)
    c, c_out = prepare(tmp_path, df, name="c", split=SplitOptions(seed=7))
    for s in SPLITS:
        assert (a_out / f"{s}.parquet").read_bytes() == (b_out / f"{s}.parquet").read_bytes()
    assert a.normalization == b.normalization and a.columns == b.columns
    assert (a_out / "train.parquet").read_bytes() != (c_out / "train.parquet").read_bytes()
    assert c.split["seed"] == 7


def test_normalization_is_train_mean_and_population_std(tmp_path):
    df = base().assign(k=7.5)
    spec, out = prepare(tmp_path, df, keep_columns=["k"])
    train = pd.read_parquet(out / "train.parquet")[spec.features].to_numpy(dtype=np.float64)
    assert spec.normalization.axis == "feature"
    assert np.allclose(spec.normalization.mean, train.mean(axis=0), rtol=1e-12)
    expected_std = train.std(axis=0)
    assert expected_std[spec.features.index("k")] == 0
    expected_std[expected_std == 0] = 1.0  # a constant feature must not divide by zero
    assert np.allclose(spec.normalization.std, expected_std, rtol=1e-12)
    assert spec.normalization.mean[spec.features.index("k")] == 7.5
    everything = pd.read_parquet(out / "test.parquet")[spec.features].to_numpy()
    assert not np.allclose(spec.normalization.mean, everything.mean(axis=0))


def test_round_trip_through_data_json_and_load_split(tmp_path):
    df = base()
    spec, out = prepare(tmp_path, df, keep_columns=["rid"])
    write_document(out / "data.json", spec)
    loaded = load_spec(out)
    assert loaded == spec == parse_document(DataSpec, json.loads(json.dumps(document_dict(spec))), where="d")
    assert loaded.features == spec.features and loaded.columns == spec.columns
    assert spec.files == {"train": "train.parquet", "validation": "validation.parquet", "test": "test.parquet"}
    assert spec.source["rows"] == 60 and spec.source["columns"] == 4
    assert list(pd.read_parquet(out / "train.parquet").columns) == spec.features + [LABEL_COLUMN]
    for s in SPLITS:
        x, y = load_split(out, loaded, s)
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (spec.counts[s], len(spec.features))
        rows = df.iloc[feature(spec, x, "rid").astype(int)]
        assert np.array_equal(feature(spec, x, "x"), rows["x"].to_numpy(dtype=np.float32))
        assert np.array_equal(y, rows["y"].map({"a": 0, "b": 1, "c": 2}).to_numpy())
        assert np.array_equal(feature(spec, x, "c=p"), (rows["c"] == "p").to_numpy(dtype=np.float32))


def test_numeric_labels_sort_by_value(tmp_path):
    df = base().assign(y=np.array([2, 10, 1])[np.arange(60) % 3])
    spec, out = prepare(tmp_path, df)
    assert spec.labels == ["1", "2", "10"]
    assert spec.class_counts["train"] == [14, 14, 14]


# ------------------------------------------------------------------------------------------- errors


def test_unknown_target_lists_columns(tmp_path):
    with pytest.raises(DataError) as e:
        prepare(tmp_path, base(), target="label")
    assert "'label'" in e.value.message and "rid, x, c, y" in e.value.message


def test_one_class_target(tmp_path):
    with pytest.raises(DataError, match="only one class") as e:
        prepare(tmp_path, base().assign(y="a"))
    assert e.value.hint


def test_continuous_target(tmp_path):
    with pytest.raises(DataError, match="mobile-ml trains classifiers") as e:
        prepare(tmp_path, base(), target="x")
    assert "bin" in e.value.hint


def test_too_few_rows(tmp_path):
    df = pd.DataFrame({"x": [1.5, 2.5], "y": ["a", "b"]})
    with pytest.raises(DataError, match="only 2 usable rows"):
        prepare(tmp_path, df, split=SplitOptions(stratify=False))


def test_class_with_fewer_than_three_rows(tmp_path):
    df = base()
    df.loc[[0, 3, 6, 9, 12, 15], "y"] = ["rare", "rare"] + ["b"] * 4
    with pytest.raises(DataError, match="class 'rare' has only 2 row"):
        prepare(tmp_path, df)


def test_unknown_drop_and_keep_columns(tmp_path):
    with pytest.raises(ConfigError, match="drop_columns names 'nope'"):
        prepare(tmp_path, base(), drop_columns=["x", "nope"])
    with pytest.raises(ConfigError, match="keep_columns names 'Rid'"):
        prepare(tmp_path, base(), name="k", keep_columns=["Rid"])


def test_keep_columns_that_cannot_be_encoded(tmp_path):
    df = base()
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"]
    rng = np.random.default_rng(5)
    df["note"] = [" ".join(rng.choice(words, 7)) for _ in range(60)]
    df["code"] = [f"K{i * 7919 % 10007}" for i in range(60)]
    with pytest.raises(DataError, match="column 'note' cannot be encoded: it holds free text") as e:
        prepare(tmp_path, df, keep_columns=["note"])
    assert "keep_columns" in e.value.hint
    with pytest.raises(DataError, match="column 'code' cannot be encoded: every value is a different string"):
        prepare(tmp_path, df, name="code", keep_columns=["code"])


def test_no_features_left(tmp_path):
    df = base()[["rid", "y"]].assign(const=1)
    with pytest.raises(DataError, match="no usable feature columns") as e:
        prepare(tmp_path, df)
    assert "keep_columns" in e.value.hint


@pytest.mark.parametrize(
    "field, value",
    [
        ("missing", "fill"),
        ("numeric_impute", "mode"),
        ("categorical_impute", "none"),
        ("dates", "keep"),
        ("outliers", "clip"),
        ("outliers", None),
        ("outlier_factor", 0),
        ("outlier_factor", -1.0),
        ("outlier_factor", "2"),
        ("outlier_factor", True),
        ("outlier_factor", float("inf")),
        ("max_categories", 0),
        ("max_categories", 2.5),
        ("max_categories", True),
        ("drop_duplicates", "yes"),
        ("drop_columns", "abc"),
        ("keep_columns", [1]),
    ],
)
def test_invalid_options_name_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        TabularOptions(**{field: value})
    assert e.value.message.startswith(field) and e.value.hint


def test_options_accept_lists_and_reject_overlap():
    o = TabularOptions(drop_columns=["a"], keep_columns=["b", "c"], outlier_factor=3)
    assert o.drop_columns == ("a",) and o.keep_columns == ("b", "c") and o.outlier_factor == 3.0
    assert isinstance(o.outlier_factor, float)
    with pytest.raises(ConfigError, match="both name 'a'"):
        TabularOptions(drop_columns=["a"], keep_columns=["a"])


def test_no_tensorflow_import():
    code = (
        "import mobile_ml.data.profile, mobile_ml.data.tabular, sys; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_number_column_skipped_by_the_sample_is_one_classify_column_calls_numeric():
    from mobile_ml.data.columns import classify_column
    from mobile_ml.data.tabular import _surely_numeric

    rng = np.random.default_rng(7)
    n = 20_000
    columns = {
        "constant": np.full(n, 3.0),
        "two": rng.integers(0, 2, n).astype(float),
        "four": rng.integers(0, 4, n).astype(float),
        "five": rng.integers(0, 5, n).astype(float),
        "row_number": np.arange(n, dtype=float),
        "user_id": rng.permutation(n).astype(float),
        "distinct_floats": rng.standard_normal(n),
        "repeats": rng.standard_normal(n).round(1),
        "mostly_missing": np.where(rng.random(n) < 0.999, np.nan, rng.integers(0, 50, n)),
        "all_missing": np.full(n, np.nan),
        "one_repeat": np.r_[np.arange(n - 1), 0.0],  # all distinct but one: an id? no, a repeat
    }
    skipped = set()
    for name, values in columns.items():
        series = pd.Series(values, name=name)
        if _surely_numeric(series):
            skipped.add(name)
            assert classify_column(series).kind == "numeric", name
    assert {"five", "repeats"} <= skipped  # the common case is skipped
    assert not skipped & {"constant", "two", "four", "row_number", "user_id", "distinct_floats", "all_missing"}
