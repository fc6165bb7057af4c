"""Regenerate the monitoring vectors: `PYTHONPATH=. python tests/vectors/make_aggregate_vectors.py`.

`tests/vectors/aggregates/` holds what the Android `Aggregator` (VectorsTest) and `mobile_ml.monitor`
(tests/test_monitor_vectors.py) must agree on, exactly: values → bins (edges at, just below and just above each
value, ±0, ±inf, NaN), baselines fitted here, the counts of a sequence of inferences, and the merge of two devices'
documents. Deterministic (seeded, fixed clock): regenerating gives the same bytes, which the Python test checks.
Non-finite values are written as the strings "nan", "inf", "-inf" (JSON has no spelling for them).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.contracts import document_dict
from mobile_ml.monitor import bins as B
from mobile_ml.monitor.aggregate import Aggregator, merge
from mobile_ml.monitor.baseline import build_baseline
from mobile_ml.outputs import dumps

OUT = Path(__file__).parent / "aggregates"
START = datetime(2026, 11, 23, tzinfo=timezone.utc)


def number(v: float) -> float | str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _probe_values(edges: tuple[float, ...], rng: np.random.Generator) -> list[float]:
    values = [-math.inf, math.inf, math.nan, 0.0, -0.0]
    for e in edges:
        values += [e, math.nextafter(e, -math.inf), math.nextafter(e, math.inf)]
    lo, hi = (edges[0], edges[-1]) if edges else (-1.0, 1.0)
    span = max(hi - lo, 1.0)
    values += rng.uniform(lo - span, hi + span, 20).tolist()
    return values


def bin_cases(rng: np.random.Generator) -> list[dict[str, Any]]:
    samples = {
        "normal": rng.normal(0.3, 2.0, 1000),
        "lognormal": rng.lognormal(0.0, 1.5, 1000),
        "tiny": rng.normal(0.0, 1e-12, 500),
        "large": rng.normal(1e12, 1e9, 500),
        "ties_at_zero": np.where(rng.random(1000) < 0.6, 0.0, rng.exponential(3.0, 1000)),
        "one_hot": rng.integers(0, 2, 300).astype(float),
        "small_count": rng.integers(0, 5, 300).astype(float),
        "constant": np.full(50, -7.25),
        "float32_pixels": rng.integers(0, 17, 400).astype(np.float32) / np.float32(3),
    }
    cases = []
    for name, values in samples.items():
        for bins in (2, 5, 10):
            edges, discrete = B.fit_edges(values, bins)
            probes = _probe_values(edges, rng)
            cases.append(
                {
                    "name": f"{name}/{bins}",
                    "edges": list(edges),
                    "discrete": discrete,
                    "values": [number(v) for v in probes],
                    "bins": [B.bin_index(edges, v) for v in probes],  # null: NaN, counted as missing
                }
            )
    return cases


def _clock(start: datetime):
    ticks = iter(range(10**6))
    return lambda: start + timedelta(seconds=next(ticks))


def _device(baseline, inputs, probs, latencies, start: datetime) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    agg = Aggregator(baseline, model="vectors", version="1.0.0", channel="stable", clock=_clock(start))
    observations = []
    for x, p, ms in zip(inputs, probs, latencies, strict=True):
        agg.observe(x, p, ms)
        observations.append({"input": [number(v) for v in np.ravel(x).tolist()], "probs": p.tolist(), "latency_ms": ms})
    return document_dict(agg.to_document()), observations


def _probs(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    p = rng.dirichlet(np.full(classes, 0.3), n).astype(np.float32)
    p[0] = np.float32(1.0) / classes  # every class ties: the first one is predicted
    p[1] = 0.0
    p[1][1] = p[1][2] = 0.5  # a tie between two classes, at a confidence edge
    return p


def aggregate_case(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    classes = 4
    if kind == "image":
        shape = (4, 4, 2)  # 16 pixels per channel, integer values: sums and means are exact in doubles
        x_train = rng.integers(0, 17, (300, *shape)).astype(np.float32)
        x_test = rng.integers(0, 17, (80, *shape)).astype(np.float32)
        devices = [rng.integers(0, 17, (30, *shape)).astype(np.float32) for _ in range(2)]
        features: list[str] = []
    else:

        def table(n: int) -> np.ndarray:
            return np.c_[rng.normal(0, 1, n), rng.integers(0, 2, n), rng.exponential(2.0, n), np.full(n, 5.0)]

        x_train, x_test = table(300).astype(np.float32), table(80).astype(np.float32)
        devices = [table(30).astype(np.float32) for _ in range(2)]
        devices[0][3, 0] = np.nan  # a missing value
        devices[1][4, 2] = np.inf
        devices[1][5, 1] = -3.0  # below every one-hot bin
        features = ["z", "flag", "amount", "constant"]
    baseline = build_baseline(
        x_train,
        x_test,
        features=features,
        kind=kind,
        test_probs=_probs(rng, 80, classes),
        labels=["a", "b", "c", "d"],
        bins=6,
    )
    latencies = [[0.0, 0.5, 1.0, 1e5, *rng.lognormal(2.0, 1.0, 26).round(3).tolist()] for _ in devices]
    docs, observed = [], []
    for i, (x, ms) in enumerate(zip(devices, latencies, strict=True)):
        doc, obs = _device(baseline, x, _probs(rng, len(x), classes), ms, START + timedelta(hours=i))
        docs.append(doc)
        observed.append(obs)
    a, b = (parse(d) for d in docs)
    return {
        "baseline": document_dict(baseline),
        "devices": [{"observations": obs, "expect": doc} for obs, doc in zip(observed, docs, strict=True)],
        "merged": document_dict(merge(a, b)),
        "summaries": [B.image_summaries(x, 2).tolist() for x in devices[0][:3]] if kind == "image" else None,
    }


def parse(doc: dict[str, Any]):
    from mobile_ml.contracts import parse_document
    from mobile_ml.contracts.aggregates import Aggregates

    return parse_document(Aggregates, doc, where="vector")


def main() -> None:
    rng = np.random.default_rng(15)
    OUT.mkdir(exist_ok=True)
    (OUT / "bins.json").write_text(
        dumps(
            {
                "schema": "mobile_ml.test_vectors.bins",
                "schema_version": 1,
                "rule": "bin = number of edges <= value ([e[i-1], e[i]) bins, open at both ends); NaN: null, missing",
                "cases": bin_cases(rng),
            }
        )
    )
    for kind in ("tabular", "image"):
        case = aggregate_case(rng, kind)
        (OUT / f"{kind}.json").write_text(
            dumps({"schema": "mobile_ml.test_vectors.aggregates", "schema_version": 1, "kind": kind, **case})
        )


if __name__ == "__main__":
    main()
