"""tests/vectors/aggregates/: the cases the Android Aggregator replays (VectorsTest) are what this Python code
computes, and regenerating them changes nothing (so a change to the bin rule cannot drift from the vectors)."""

from __future__ import annotations

import importlib.util
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mobile_ml.contracts import document_dict, parse_document
from mobile_ml.contracts.aggregates import Aggregates
from mobile_ml.contracts.baseline import Baseline
from mobile_ml.monitor import bins as B
from mobile_ml.monitor.aggregate import Aggregator, merge

VECTORS = Path(__file__).parent / "vectors"
FILES = ("bins.json", "tabular.json", "image.json")


def _number(v) -> float:
    return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v, v)


def _ticking(start: datetime):
    """A clock one second later at every call, as the generator's."""
    ticks = iter(range(10**6))
    return lambda: start + timedelta(seconds=next(ticks))


def _load(name: str) -> dict:
    return json.loads((VECTORS / "aggregates" / name).read_text())


def test_regenerating_the_vectors_changes_no_byte(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("make_aggregate_vectors", VECTORS / "make_aggregate_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "OUT", tmp_path)
    module.main()
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (VECTORS / "aggregates" / name).read_bytes(), name


def test_every_bin_case_is_the_rule():
    cases = _load("bins.json")["cases"]
    assert len(cases) >= 20
    for case in cases:
        edges = tuple(case["edges"])
        values = [_number(v) for v in case["values"]]
        assert [B.bin_index(edges, v) for v in values] == case["bins"], case["name"]
        counts, missing = B.histogram(edges, values)
        assert missing == case["bins"].count(None)
        assert counts == [case["bins"].count(i) for i in range(len(edges) + 1)], case["name"]
        assert any(v == e for v in values for e in edges)  # the edges themselves are probed


@pytest.mark.parametrize("kind", ["tabular", "image"])
def test_the_aggregate_cases_replay(kind):
    doc = _load(f"{kind}.json")
    baseline = parse_document(Baseline, doc["baseline"], where=kind)
    assert baseline.kind.value == kind
    docs = []
    for device in doc["devices"]:
        expect = parse_document(Aggregates, device["expect"], where=kind)
        agg = Aggregator(baseline, model=expect.model, version=expect.version, channel=expect.channel,
                         clock=_ticking(expect.window_start))  # fmt: skip
        for o in device["observations"]:
            agg.observe([_number(v) for v in o["input"]], o["probs"], o["latency_ms"])
        assert agg.to_document() == expect
        docs.append(expect)
    assert document_dict(merge(*docs)) == doc["merged"]
    assert merge(docs[1], docs[0]) == merge(*docs)
    # The vectors exercise what they claim: missing values, the end bins, ties at a confidence edge.
    counts = [f for d in docs for f in d.features]
    if kind == "tabular":
        assert any(f.missing for f in counts) and any(f.counts[-1] and f.counts[0] for f in counts)
    assert any(d.confidence[baseline.confidence_edges.index(0.5) + 1] for d in docs)
