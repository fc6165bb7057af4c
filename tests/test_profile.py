from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from mobile_ml.data.column_stats import duplicate_rows
from mobile_ml.data.columns import classify_column, looks_continuous
from mobile_ml.data.profile import profile_csv, profile_frame, read_csv
from mobile_ml.errors import DataError, InputFileError


def kind(values, name="col", dtype=None):
    return classify_column(pd.Series(values, name=name, dtype=dtype))


# ------------------------------------------------------------------------------------------- classify_column


def test_empty_column():
    k = kind([None, None, None], dtype=object)
    assert k.kind == "empty"
    assert "3" in k.reason


def test_constant_column_ignores_missing():
    k = kind(["a", "a", None, "a"])
    assert k.kind == "constant"
    assert "'a'" in k.reason


@pytest.mark.parametrize("values", [[True, False, True], ["yes", "no", "Yes"], ["Y", "n", "y", None], ["on", "off"]])
def test_boolean_column(values):
    assert kind(values).kind == "boolean"


def test_two_ordinary_values_are_categorical_not_boolean():
    assert kind(["MALE", "FEMALE", "MALE"]).kind == "categorical"
    assert kind([0, 1, 1, 0]).kind == "numeric"  # 0/1 already is a usable number


def test_numeric_column():
    k = kind([1.5, 2.0, 3.25, 2.0])
    assert k.kind == "numeric"
    assert "3 distinct" in k.reason


def test_integer_id_by_name():
    for name in ("user_id", "customerId", "ID", "uuid", "row key"):
        assert kind([5, 3, 9, 100], name=name).kind == "id", name


def test_integer_id_by_consecutive_values():
    values = np.random.default_rng(0).permutation(np.arange(7, 57))
    k = kind(values, name="Unnamed: 0")
    assert k.kind == "id"
    assert "consecutive" in k.reason


def test_distinct_integers_without_id_name_or_run_are_numeric():
    assert kind([21, 35, 44, 60, 72], name="age").kind == "numeric"
    assert kind([1, 2, 2, 3], name="id").kind == "numeric"  # not all distinct: not an identifier


def test_numbers_stored_as_text():
    values = [str(v) for v in np.linspace(0, 10, 19)] + ["n/a?"]  # 95% parse
    k = kind(values)
    assert k.kind == "numeric"
    assert k.reason.startswith("numbers stored as text")
    assert kind(["1", "2", "3", "x", "y", "4", "5", "6", "7", "8"]).kind == "categorical"  # only 80% parse


def test_zero_padded_text_ids():
    values = [f"{i:05d}" for i in range(30)]
    assert kind(values, name="code").kind == "id"


def test_datetime_column():
    k = kind(["2021-01-05", "2021/02/07", "March 3, 2021", "2021-04-01 10:00", None])
    assert k.kind == "datetime"
    assert "%" in k.reason


def test_month_names_and_plain_numbers_are_not_dates():
    assert kind(["Jan", "Feb", "Mar", "Jan"]).kind == "categorical"
    assert kind(["2007", "2008", "2009", "2007"]).kind == "numeric"
    # the parser would read these as 20 October of year 1 and as today at 10:30
    assert kind(["10-20", "20-30", "10-20", "30-40"]).kind == "categorical"
    assert kind(["10:30", "11:45", "10:30", "12:00"]).kind == "categorical"


def test_free_text_column():
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "it", "rains"]
    rng = np.random.default_rng(1)
    values = [" ".join(rng.choice(words, 8)) for _ in range(40)]
    k = kind(values, name="comment")
    assert k.kind == "text"
    assert "free text" in k.reason


def test_repeated_long_strings_stay_categorical():
    values = ["Nest never observed with full clutch."] * 8 + ["Not enough blood for isotopes."] * 4
    assert kind(values).kind == "categorical"


def test_distinct_strings_are_id_only_with_enough_rows():
    assert kind([f"u{i * 7919 % 1000}" for i in range(25)]).kind == "id"
    assert kind([f"u{i}" for i in range(10)]).kind == "categorical"


def test_categorical_column():
    k = kind(["red", "green", "red", "blue", None])
    assert (k.kind, k.reason) == ("categorical", "3 distinct values")


def test_classification_is_deterministic_and_fast_on_large_columns():
    values = pd.Series([f"{v:.3f}" for v in np.random.default_rng(2).normal(size=50_000)], name="x")
    first = classify_column(values)
    assert first == classify_column(values)
    assert first.kind == "numeric"


# ------------------------------------------------------------------------------------------- profile numbers


def frame():
    return pd.DataFrame(
        {
            "x": [1, 2, 3, 4, 5, 6, 7, 8, 9, 100, None, 5],
            "mostly_missing": [None] * 8 + [1.0, 2.0, 3.0, 1.0],
            "color": ["r", "g", "r", "b", "r", "g", "r", "b", "r", "g", "r", "g"],
            "y": ["a", "a", "a", "a", "a", "a", "a", "b", "b", None, "a", "a"],
        }
    )


def test_column_numbers():
    report = profile_frame(frame())
    x = {c["name"]: c for c in report.column_profiles}["x"]
    assert (x["missing"], x["unique"]) == (1, 10)
    assert x["missing_fraction"] == pytest.approx(1 / 12)
    num = x["numeric"]
    # 1..9, 100, 5: q1 = 3.5, q3 = 7.5, IQR = 4, fences [-2.5, 13.5] → only 100 is outside
    assert (num["q1"], num["median"], num["q3"]) == (3.5, 5.0, 7.5)
    assert num["outliers"] == 1
    assert (num["min"], num["max"]) == (1.0, 100.0)
    assert num["mean"] == pytest.approx(150 / 11)
    assert num["std"] == pytest.approx(np.std([1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 5], ddof=1))


def test_top_values_and_kind_lists():
    df = frame().assign(const=7, uid=[f"id{i}" for i in range(12)])
    report = profile_frame(df)
    color = {c["name"]: c for c in report.column_profiles}["color"]
    assert color["top_values"] == [{"value": "r", "count": 6}, {"value": "g", "count": 4}, {"value": "b", "count": 2}]
    assert color["numeric"] is None
    assert report.constant_columns == ["const"]
    assert report.id_columns == []  # 12 distinct strings are too few to call an identifier
    assert report.rows == 12 and report.columns == 6


def test_duplicate_rows_and_warnings():
    df = pd.concat([frame(), frame().iloc[:2]], ignore_index=True)
    report = profile_frame(df)
    assert report.duplicate_rows == 2
    assert any("2 row(s) are exact duplicates" in w for w in report.warnings)
    assert any("'mostly_missing' is 71% missing" in w for w in report.warnings)


def test_target_section():
    report = profile_frame(frame(), target="y")
    t = report.target
    assert t["classes"] == {"a": 9, "b": 2}
    assert list(t["classes"]) == ["a", "b"]  # by count
    assert t["num_classes"] == 2
    assert t["minority_majority_ratio"] == pytest.approx(2 / 9)
    assert t["missing"] == 1
    assert any("1 row(s) have no target value" in w for w in report.warnings)
    assert not any("imbalanced" in w for w in report.warnings)


def test_imbalance_and_one_class_warnings():
    imbalanced = pd.DataFrame({"y": ["a"] * 20 + ["b"] * 3, "x": range(23)})
    warns = profile_frame(imbalanced, target="y").warnings
    assert any("imbalanced" in w and "'b'" in w for w in warns)
    one = profile_frame(pd.DataFrame({"y": ["a"] * 5, "x": range(5)}), target="y")
    assert one.target["num_classes"] == 1
    assert any("1 class(es)" in w for w in one.warnings)


def test_continuous_target_warning():
    df = pd.DataFrame({"price": np.random.default_rng(3).normal(100, 20, 200).round(2), "x": range(200)})
    report = profile_frame(df, target="price")
    assert report.target["looks_continuous"] is True
    assert any("looks continuous" in w for w in report.warnings)
    assert looks_continuous(pd.Series(range(100))) and not looks_continuous(pd.Series([1, 2, 3] * 50))
    # 30 classes in 10,000 rows is a classification target, however many distinct numbers it has
    assert not looks_continuous(pd.Series(np.arange(10_000) % 30))


def test_numeric_labels_sort_numerically_and_lose_float_suffix():
    df = pd.DataFrame({"y": [1.0, 2.0, 10.0, 10.0, None, 2.0, 10.0], "x": range(7)})
    assert profile_frame(df, target="y").target["classes"] == {"10": 3, "2": 2, "1": 1}


def test_unknown_target_lists_columns():
    with pytest.raises(DataError) as e:
        profile_frame(frame(), target="Y")
    assert "'Y'" in e.value.message and "x, mostly_missing, color, y" in e.value.message
    assert "did you mean 'y'" in e.value.hint


def test_unknown_target_truncates_long_column_list():
    df = pd.DataFrame({f"c{i}": [1, 2] for i in range(40)})
    with pytest.raises(DataError) as e:
        profile_frame(df, target="nope")
    assert "c14" in e.value.message and "c15" not in e.value.message and "and 25 more" in e.value.message


def test_to_dict_is_json_and_has_what_the_cli_renders(tmp_path):
    path = tmp_path / "d.csv"
    frame().to_csv(path, index=False)
    d = profile_csv(path, target="y").to_dict()
    assert (d["schema"], d["schema_version"], d["kind"]) == ("mobile_ml.profile", 1, "tabular")
    assert d["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert d["source"]["bytes"] == path.stat().st_size
    assert d["source"]["path"] == str(path.resolve())
    json.dumps(d, allow_nan=False)
    # keys cli/render.py reads
    assert {"rows", "columns", "duplicate_rows", "column_profiles", "target", "warnings"} <= set(d)
    col = d["column_profiles"][0]
    assert {"name", "dtype", "kind", "reason", "missing", "missing_fraction", "unique", "numeric"} <= set(col)
    assert {"classes", "num_classes", "minority_majority_ratio"} <= set(d["target"])


# ------------------------------------------------------------------------------------------- read_csv


def test_read_csv_returns_frame_and_hash(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_bytes("\ufeffa,b\n1,x\n2,NA\n".encode())
    df, sha = read_csv(path)
    assert list(df.columns) == ["a", "b"]  # BOM stripped
    assert df["a"].tolist() == [1, 2] and df["b"].isna().tolist() == [False, True]
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "does not exist"),
        ("dir", "is a directory"),
        (b"", "has no data rows"),
        (b"a,b\n", "has no data rows"),
        (b"\n\n", "has no data rows"),
        (b"a,b\n1,caf\xe9\n", "not UTF-8"),
        (b"a,b\n1,2\n3,4,5,6\n", "not a valid CSV"),
        (b"a,b\n1,2,3\n4,5,6\n", "not a valid CSV"),  # pandas would silently make column 1 the index
        (b'a,b\n"1,2\n', "not a valid CSV"),
    ],
)
def test_read_csv_errors_name_the_path(tmp_path, content, words):
    path = tmp_path / "input.csv"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputFileError) as e:
        read_csv(path)
    assert str(path) in e.value.message
    assert words in e.value.message
    assert e.value.hint


def test_duplicate_rows_match_pandas_across_hashing_rounds():
    # 12 columns: three rounds of 5. Near-duplicates that differ only in the last round's column, missing values
    # (equal to each other in pandas' duplicated) and a low-cardinality first round that leaves many candidates.
    rng = np.random.default_rng(7)
    n = 400
    df = pd.DataFrame({f"c{j}": rng.integers(0, 2, n) for j in range(10)})
    df["s"] = rng.choice(["a", "b", None], n)
    df["last"] = rng.integers(0, 3, n).astype(float)
    df.loc[::7, "last"] = np.nan
    expected = df.duplicated().to_numpy()
    assert 0 < expected.sum() < n  # the case has both duplicates and rows that only look like them early on
    assert (duplicate_rows(df) == expected).all()


def test_quantiles_read_off_the_sorted_column_are_numpys_to_the_last_bit():
    from mobile_ml.data.column_stats import _sorted_quantile

    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 4, 5, 10, 101, 1000, 12345):
        for _ in range(20):
            a = np.sort(rng.standard_normal(n) * rng.choice([1e-3, 1.0, 1e6]))
            for q in (0.25, 0.5, 0.75):
                assert _sorted_quantile(a, q) == float(np.quantile(a, q)), (n, q)
