"""The device-side Aggregator: counting, merge algebra, the state file and the snapshot/acknowledge protocol, and
the server's strict check of an uploaded document against the baseline."""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from mobile_ml.contracts import ContractError, document_dict, parse_document, read_document
from mobile_ml.contracts.aggregates import Aggregates, AggregatorState
from mobile_ml.contracts.baseline import MAX_BINS
from mobile_ml.errors import DataError
from mobile_ml.monitor.aggregate import (
    MAX_UPLOAD_BYTES,
    Aggregator,
    check_against_baseline,
    merge,
    read_upload,
    state_file,
)
from mobile_ml.monitor.baseline import build_baseline

T0 = datetime(2026, 11, 23, tzinfo=timezone.utc)
LABELS = ["a", "b", "c"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 1, 500), rng.integers(0, 2, 500)]
    return build_baseline(x[:400], x[400:], features=["z", "flag"], kind="tabular",
                          test_probs=rng.dirichlet([1, 1, 1], 100), labels=LABELS, bins=5)  # fmt: skip


def _agg(baseline, clock=None, **kw) -> Aggregator:
    return Aggregator(baseline, model="digits", version="1.0.0", channel="stable", clock=clock or Clock(), **kw)


def _feed(agg: Aggregator, rng: random.Random, n: int) -> None:
    for _ in range(n):
        p = [rng.random() for _ in LABELS]
        agg.observe([rng.gauss(0, 1.5), rng.choice([0.0, 1.0, 2.0])], [v / sum(p) for v in p], rng.expovariate(0.1))


def test_each_observation_adds_one_to_every_histogram(baseline):
    agg = _agg(baseline)
    agg.observe([0.0, 1.0], [0.2, 0.7, 0.1], 3.0)
    agg.observe([float("nan"), -5.0], [0.5, 0.5, 0.0], 0.0)  # NaN: missing; a tie: the first class
    agg.observe(np.array([1e9, 1.0], dtype=np.float32), np.array([0, 0, 1], dtype=np.float32), 1e7)
    doc = agg.to_document()
    z, flag = doc.features
    assert doc.count == 3 and z.missing == 1 and sum(z.counts) == 2 and z.counts[-1] == 1  # 1e9: the last bin
    assert flag.counts == (1, 0, 2, 0)  # -5 below the one-hot values, then 1.0 twice
    assert doc.predictions == (1, 1, 1)
    assert doc.confidence[baseline.confidence_edges.index(0.5) + 1] == 1 and doc.confidence[-1] == 1  # 0.5, 1.0
    assert doc.latency_ms[0] == 1 and doc.latency_ms[-1] == 1 and sum(doc.latency_ms) == 3
    assert parse_document(Aggregates, document_dict(doc), where="x") == doc
    assert "0.7" not in json.dumps(document_dict(doc))  # counts only: no input or probability leaves


@pytest.mark.parametrize(
    "x, probs, latency, message",
    [
        ([0.0], [0.2, 0.7, 0.1], 1.0, "2 features"),
        ([0.0, 1.0], [0.5, 0.5], 1.0, "3 finite numbers"),
        ([0.0, 1.0], [float("nan"), 0.5, 0.5], 1.0, "3 finite numbers"),
        ([0.0, 1.0], [0.2, 0.7, 0.1], -1.0, "latency"),
        ([0.0, 1.0], [0.2, 0.7, 0.1], float("inf"), "latency"),
    ],
)
def test_a_bad_observation_is_refused_and_counts_nothing(baseline, x, probs, latency, message):
    agg = _agg(baseline)
    with pytest.raises(DataError, match=message):
        agg.observe(x, probs, latency)
    assert agg.to_document().count == 0


def test_merge_is_associative_and_commutative(baseline):
    rng = random.Random(15)
    for _ in range(30):
        docs = []
        for _ in range(3):
            clock = Clock()
            clock.now = T0 + timedelta(seconds=rng.randrange(86400))
            agg = _agg(baseline, clock)
            _feed(agg, rng, rng.randrange(0, 25))
            clock.now += timedelta(seconds=rng.randrange(3600))
            agg.observe([0.0, 0.0], [1, 0, 0], 1.0)
            docs.append(agg.to_document())
        a, b, c = docs
        left = merge(merge(a, b), c)
        assert left == merge(a, merge(b, c)) == merge(c, merge(b, a)) == merge(merge(c, a), b)
        assert left.count == a.count + b.count + c.count
        assert left.window_start == min(d.window_start for d in docs)
        assert left.window_end == max(d.window_end for d in docs)
        assert parse_document(Aggregates, document_dict(left), where="merged") == left


def test_merge_refuses_other_models_and_other_bins(baseline):
    a = _agg(baseline).to_document()
    with pytest.raises(DataError, match="cannot merge"):
        merge(a, replace(a, version="1.0.1"))
    with pytest.raises(DataError, match="different features or bins"):
        merge(a, replace(a, latency_ms=a.latency_ms[:-1]))


def test_counts_between_snapshot_and_acknowledge_are_not_lost(baseline, tmp_path):
    clock, path = Clock(), state_file(tmp_path, "digits", "stable", "1.0.0")
    agg = Aggregator.open(path, baseline, model="digits", version="1.0.0", channel="stable", clock=clock)
    assert agg.snapshot() is None and not path.exists()  # nothing counted: nothing to upload
    rng = random.Random(1)
    _feed(agg, rng, 5)
    clock.now += timedelta(minutes=10)
    first = agg.snapshot()
    assert first is not None and first.count == 5 and first.snapshot_id and first.window_end == clock.now
    # The snapshot is on disk before anything is uploaded: a crash now loses nothing.
    assert read_document(AggregatorState, path).pending == first
    _feed(agg, rng, 3)  # counted while the upload is in flight
    assert agg.snapshot() == first  # a retry: the same document, the same id
    agg.acknowledge("0" * 32)  # someone else's answer: nothing happens
    assert agg.pending == first
    agg.save()
    reopened = Aggregator.open(path, baseline, model="digits", version="1.0.0", channel="stable", clock=clock)
    assert reopened.pending == first and reopened.to_document().count == 3
    reopened.acknowledge(first.snapshot_id)
    assert reopened.pending is None and read_document(AggregatorState, path).pending is None
    second = reopened.snapshot()
    assert second is not None and second.count == 3 and second.window_start == first.window_end
    assert second.snapshot_id != first.snapshot_id
    assert merge(first, second).count == 8


def test_the_state_file_belongs_to_one_model_version(baseline, tmp_path):
    path = tmp_path / "agg.json"
    agg = _agg(baseline, path=path)
    _feed(agg, random.Random(2), 4)
    agg.save()
    for other in (dict(version="1.0.1"), dict(channel="beta"), dict(model="other")):
        kw = {"model": "digits", "version": "1.0.0", "channel": "stable", **other}
        with pytest.raises(ContractError, match="not "):
            Aggregator.open(path, baseline, **kw)
    path.write_text(path.read_text()[:-20])
    with pytest.raises(ContractError, match="not valid JSON"):
        Aggregator.open(path, baseline, model="digits", version="1.0.0", channel="stable")


def test_check_against_baseline_names_what_does_not_match(baseline):
    agg = _agg(baseline)
    _feed(agg, random.Random(3), 10)
    doc = agg.to_document()
    check_against_baseline(doc, baseline)
    z = doc.features[0]
    fewer = replace(z, counts=z.counts[:-2] + (z.counts[-2] + z.counts[-1],))
    cases = [
        (replace(doc, features=(fewer, doc.features[1])), "aggregates.features[0].counts", "bins; the baseline has"),
        (replace(doc, features=doc.features[::-1]), "aggregates.features[0].name", "'flag'"),
        (replace(doc, features=doc.features[:1]), "aggregates.features", "1 features"),
        (replace(doc, predictions=doc.predictions + (0,)), "aggregates.predictions", "4 bins"),
        (replace(doc, confidence=doc.confidence[:-1]), "aggregates.confidence", "bins"),
        (replace(doc, latency_ms=doc.latency_ms + (0,)), "aggregates.latency_ms", "bins"),
    ]
    for bad, field, message in cases:
        with pytest.raises(ContractError, match=message) as e:
            check_against_baseline(bad, baseline)
        assert e.value.field == field


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d.update(count=d["count"] + 1), "counts"),  # histograms no longer add up to count
        (lambda d: d["predictions"].__setitem__(0, d["predictions"][0] + 1), "predictions"),
        (lambda d: d["features"][0].__setitem__("missing", -1), "missing"),
        (lambda d: d["features"][0]["counts"].__setitem__(0, True), "counts[0]"),
        (lambda d: d["latency_ms"].__setitem__(0, 1.5), "latency_ms[0]"),
        (lambda d: d.update(count=2**60), "count"),
        (lambda d: d.update(window_end="2026-11-22T00:00:00Z"), "window_end"),
        (lambda d: d.update(version="1.0"), "version"),
        (lambda d: d.update(snapshot_id="../x"), "snapshot_id"),
        (lambda d: d.update(raw_inputs=[1, 2]), "raw_inputs"),
        (lambda d: d["features"][0].update(counts=[0] * (MAX_BINS + 1)), "counts"),
        (lambda d: d.update(features=[d["features"][0]] * 2), "features"),
    ],
)
def test_an_uploaded_document_is_read_strictly(baseline, change, field):
    agg = _agg(baseline)
    _feed(agg, random.Random(4), 6)
    doc = copy.deepcopy(document_dict(agg.to_document()))
    change(doc)
    with pytest.raises(ContractError) as e:
        parse_document(Aggregates, json.dumps(doc).encode(), where="aggregates")
    assert field in e.value.field


def test_read_upload_caps_parses_and_checks_against_the_baseline(baseline):
    agg = _agg(baseline)
    _feed(agg, random.Random(5), 7)
    data = json.dumps(document_dict(agg.to_document())).encode()
    asked = []

    def find(model: str, version: str):
        asked.append((model, version))
        return baseline

    assert read_upload(data, find) == agg.to_document() and asked == [("digits", "1.0.0")]
    with pytest.raises(ContractError, match="bytes; at most"):
        read_upload(data + b" " * MAX_UPLOAD_BYTES, find)
    with pytest.raises(ContractError, match="not valid JSON"):
        read_upload(data[:-3], find)
    other = build_baseline(np.zeros((3, 2)), np.zeros((3, 2)), features=["z", "flag"], kind="tabular",
                           test_probs=np.full((3, 3), 1 / 3), labels=LABELS)  # fmt: skip
    with pytest.raises(ContractError, match="bins; the baseline has"):
        read_upload(data, lambda model, version: other)
