"""The pyarrow CSV reader: the same frame, profile and prepared splits as the pandas path, in bounded memory."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mobile_ml.data import csv_reader, csv_segments, profile
from mobile_ml.data.profile import profile_csv, read_csv
from mobile_ml.data.spec import SPLITS
from mobile_ml.data.split import SplitOptions
from mobile_ml.data.tabular import TabularOptions, prepare_tabular
from tests.conftest import same_frames

FIXTURE = Path(__file__).parent / "fixtures" / "scaled-table.csv"

QUIRKS = (
    "id,price,qty,flag,maybe,when,note,empty,mixed\n"
    '1,1.5,3,True,yes,2021-03-04,"a, quoted ""value""",,7\n'
    '2,NA,,false,,2022-11-30 10:00,"two\nlines",,8\n'
    "3,2.25,5,TRUE,no,2020-01-01,null,,9\n"
    "4,-0.5,6,False,N/A,2019-07-15,plain,,x\n"
)


def _pandas_frame(path: Path) -> pd.DataFrame:
    return profile._read_pandas(path)


def test_arrow_frame_is_what_pandas_read_csv_gives(tmp_path, monkeypatch):
    path = tmp_path / "quirks.csv"
    path.write_text(QUIRKS)
    df, _ = read_csv(path)
    same_frames(df, _pandas_frame(path))
    assert df["when"].dtype == "str" and df["empty"].dtype == "float64"  # dates stay text; no value → float NaN
    assert df["note"].tolist()[:2] == ['a, quoted "value"', "two\nlines"]


def test_a_column_that_changes_type_past_the_first_block_is_typed_as_pandas_would(tmp_path, monkeypatch):
    path = tmp_path / "late.csv"
    rows = [f"{i},{i * 0.5}" for i in range(3000)] + ["oops,1.0"]
    path.write_text("n,x\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 4096)  # many blocks: the streaming reader typed n from block 1
    df, _ = read_csv(path)
    same_frames(df, _pandas_frame(path))
    assert df["n"].dtype == "str"


@pytest.mark.parametrize(
    "content",
    [b"a,b\n1,2\n3\n", b"a,a,\n1,2,3\n"],
    ids=["short-row", "repeated-and-empty-names"],
)
def test_files_pyarrow_reads_differently_go_through_pandas(tmp_path, content):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(csv_reader.NeedsPandas):
        csv_reader.read_arrow(path)
    df, _ = read_csv(path)
    same_frames(df, _pandas_frame(path))


def _close(a, b, where=""):
    """Equal, with floats to 1e-12 relative: pyarrow and numpy sum in different orders."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _numbers_csv(rows: int = 80) -> str:
    """Number columns down every path of the profile: an integer column with a gap (float64 in pandas), a row
    number (an id), two values, one value, no value, an infinity, -0.0 beside 0.0, repeated rows, and a number
    target."""
    lines = ["row,gappy,two,one,none,wild,zero,x,grade"]
    for i in range(rows):
        gappy = "" if i % 7 == 3 else str(i * 3)
        wild = "inf" if i == 5 else f"{(i % 9) * 0.25}"
        zero = "-0.0" if i % 2 else "0.0"
        x = f"{(i % 10) / 3:.6f}"
        lines.append(f"{i},{gappy},{i % 2},4,,{wild},{zero},{x},{i % 3}")
    repeated = ["1000,6,1,4,,0.5,0.0,0.5,1"] * 3  # the same row three times: two duplicates
    repeated += ["1000,6,1,4,,0.5,-0.0,0.5,1"]  # one more to pandas, which takes -0.0 for 0.0 (Arrow does not)
    return "\n".join(lines + repeated) + "\n"


def _texts_csv(rows: int = 90) -> str:
    """Text columns down every path of the profile, first in the file so that duplicate rows are found on them: an
    identifier, a category with gaps, yes/no in mixed case, numbers stored as text, dates, free text, a label."""
    lines = ["code,city,ok,amount,when,comment,key,label"]
    words = ["the", "parcel", "came", "late", "but", "the", "driver", "was", "kind", "and", "careful"]
    for i in range(rows):
        city = "" if i % 11 == 0 else ["Oslo", "Lima", "Pune"][i % 3]
        ok = ["Yes", "no", "YES", "No"][i % 4]
        amount = "about 3" if i == 7 else f"{i * 1.5}"  # one word: numbers stored as text
        comment = " ".join(words[(i + k) % len(words)] for k in range(7)) + f" #{i}"
        when = f"2021-{i % 12 + 1:02d}-{i % 27 + 1:02d}"
        lines.append(f"u{i % 60:04d},{city},{ok},{amount},{when},{comment},k{i:05d},{'abc'[i % 3]}")
    repeated = [lines[5]] * 2 + ['u9999,"Lima",no,3,2021-01-01,"said ""ok"", then left",k99999,b'] * 2
    return "\n".join(lines + repeated) + "\n"


def _ids_csv(rows: int = 40) -> str:
    """Identifiers and nothing repeated: a row number, a string key, a named integer key."""
    lines = ["n,key,user_id,x,y"] + [f"{i},k{i * 7:05d},{1000 + i * 3},{i % 5},{'ab'[i % 2]}" for i in range(rows)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("csv", ["fixture", "quirks", "numbers", "texts", "ids"])
def test_profile_figures_equal_the_pandas_path(tmp_path, monkeypatch, csv):
    path = FIXTURE if csv == "fixture" else tmp_path / f"{csv}.csv"
    if csv == "quirks":
        path.write_text(QUIRKS)
    if csv in ("numbers", "texts", "ids"):
        path.write_text({"numbers": _numbers_csv, "texts": _texts_csv, "ids": _ids_csv}[csv]())
    target = {"fixture": "grade", "quirks": "flag", "numbers": "grade", "texts": "label", "ids": "y"}[csv]
    backed = read_csv(path, arrow_backed=True)[0]
    assert all(isinstance(backed[c].dtype, pd.ArrowDtype) for c in {"numbers": ["x"], "texts": ["city"]}.get(csv, []))
    new = profile_csv(path, target=target).to_dict()

    def pandas_only(p, **_):
        raise csv_reader.NeedsPandas("reference")

    monkeypatch.setattr(csv_reader, "read_hashed", pandas_only)
    monkeypatch.setattr(profile, "submit_summaries", lambda df, pool: {})
    old = profile_csv(path, target=target).to_dict()
    assert any(c["numeric"] for c in new["column_profiles"])
    _close(new, old)  # counts, distinct values, top values exact; quantiles are exact in both (linear)


def _prepare(path: Path, out: Path):
    out.mkdir()
    return prepare_tabular(path, "y", TabularOptions(), SplitOptions(seed=3), out)


def test_prepare_streaming_many_blocks_gives_the_splits_of_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    n = 3000
    df = pd.DataFrame(
        {
            "a": rng.normal(size=n).round(3),
            "b": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 100, n)),
            "c": rng.choice(["red", "green", "blue"], n),
            "y": rng.choice(["p", "q", "r"], n),
        }
    )
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    one = _prepare(path, tmp_path / "one")
    monkeypatch.setattr(csv_reader, "BLOCK_BYTES", 2048)  # the file is ~40 blocks
    assert path.stat().st_size > 20 * csv_reader.BLOCK_BYTES
    many = _prepare(path, tmp_path / "many")
    assert many.counts == one.counts and many.columns == one.columns
    assert many.normalization == one.normalization
    for s in SPLITS:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "one" / one.files[s]),
            pd.read_parquet(tmp_path / "many" / many.files[s]),
            check_exact=True,
        )


@pytest.mark.parametrize("stray", [False, True], ids=["segments", "stray-quote-fallback"])
def test_the_sha256_is_the_files_whether_hashed_while_parsing_or_beside_a_fallback(tmp_path, monkeypatch, stray):
    import hashlib

    path = tmp_path / "h.csv"
    # a stray quote (row 900) sends the file to the streaming reader after the segment reader hashed part of it
    rows = [f'{i},"v{i % 7}",{"ab" + chr(34) + "c" if stray and i == 900 else "x"}' for i in range(2000)]
    path.write_text("n,s,t\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(csv_segments, "SEGMENT_BYTES", 1024)  # many segments
    streamed: list[int] = []
    streaming = csv_reader._read_streaming
    monkeypatch.setattr(csv_reader, "_read_streaming", lambda *a: streamed.append(1) or streaming(*a))
    df, sha = read_csv(path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert bool(streamed) == stray
    same_frames(df, _pandas_frame(path))


_TABLE = "n,c,y\n" + "".join(f'{i},"c{i % 3}",{"pq"[i % 2]}\n' for i in range(60))


@pytest.mark.parametrize("content", [_TABLE.encode(), b"a,b,y\n1,2,p\n3\n4,5,q\n"], ids=["arrow", "pandas-fallback"])
def test_the_facades_hash_ahead_of_the_pandas_import_and_record_the_files_sha256(tmp_path, content):
    import hashlib
    import json

    from mobile_ml.data.prepare import prepare, profile

    path = tmp_path / "t.csv"
    path.write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()
    assert profile(path, target="y")["source"]["sha256"] == expected
    if content != _TABLE.encode():
        return  # three rows cannot be split; the profile is what the pandas path is tested for
    prepare(path, tmp_path / "data", target="y")
    assert json.loads((tmp_path / "data" / "data.json").read_text())["source"]["sha256"] == expected
