"""``mobile-ml benchmark compare BASE.json NEW.json``: p50 deltas per (variant, threads), with a noise-aware gate.

Each side's figure for a (variant, threads) pair is the median of its repeats' p50s. A pair **regresses** when the
new median is more than ``max_regression`` percent above the base median **and** the difference is larger than the
noise both runs showed: with two or more repeats a side, the ranges of repeat p50s must not overlap; with one
repeat, the difference must exceed the spread between p50 and p90 of the slower run. One noisy minute on a shared
machine then cannot fail a build, while a real slowdown still does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.benchmark.runner import SCHEMA, SCHEMA_VERSION
from mobile_ml.benchmark.stats import median
from mobile_ml.errors import ConfigError, RegressionError
from mobile_ml.outputs import read_json


@dataclass(frozen=True)
class Delta:
    variant: str
    threads: int
    base_p50: float | None
    new_p50: float | None
    change_pct: float | None
    noise_pct: float | None  # how much difference this pair's own noise could explain
    verdict: str  # "ok" | "faster" | "regressed" | "within noise" | "only in base" | "only in new"


def _center(m: dict[str, Any]) -> float:
    """p50, or the mean for phone results whose tool printed no median."""
    lat = m["latency_ms"]
    return lat["p50"] if lat.get("p50") is not None else lat["mean"]


def _spread(m: dict[str, Any]) -> float:
    lat = m["latency_ms"]
    return lat["p90"] - lat["p50"] if lat.get("p90") is not None and lat.get("p50") is not None else lat["std"]


def _groups(doc: dict[str, Any]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for m in doc["measurements"]:
        out.setdefault((m["variant"], int(m["threads"])), []).append(m)
    return out


def load(path: str | Path) -> dict[str, Any]:
    return read_json(path, SCHEMA, SCHEMA_VERSION, what="a mobile-ml benchmark result", redo="mobile-ml benchmark")


def compare(base: dict[str, Any], new: dict[str, Any], max_regression: float) -> list[Delta]:
    if max_regression < 0:
        raise ConfigError("--max-regression must not be negative", hint="e.g. --max-regression 10")
    b, n = _groups(base), _groups(new)
    deltas = []
    for key in sorted(set(b) | set(n)):
        variant, threads = key
        if key not in n or key not in b:
            p = median([_center(m) for m in (b.get(key) or n.get(key))])
            deltas.append(
                Delta(
                    variant,
                    threads,
                    p if key in b else None,
                    p if key in n else None,
                    None,
                    None,
                    "only in base" if key in b else "only in new",
                )
            )
            continue
        bp = [_center(m) for m in b[key]]
        np_ = [_center(m) for m in n[key]]
        bm, nm = median(bp), median(np_)
        change = (nm - bm) / bm * 100 if bm > 0 else 0.0
        if len(bp) >= 2 and len(np_) >= 2:
            separated = min(np_) > max(bp) if change > 0 else max(np_) < min(bp)
            noise = (max(max(bp) - min(bp), max(np_) - min(np_))) / bm * 100
        else:
            slower = b[key] if bm > nm else n[key]
            spread = max(_spread(m) for m in slower)
            noise = spread / bm * 100
            separated = abs(nm - bm) > spread
        if change > max_regression:
            verdict = "regressed" if separated else "within noise"
        elif change < -max_regression and separated:
            verdict = "faster"
        else:
            verdict = "ok"
        deltas.append(Delta(variant, threads, bm, nm, change, noise, verdict))
    return deltas


def check(deltas: list[Delta], max_regression: float) -> None:
    bad = [d for d in deltas if d.verdict == "regressed"]
    if bad:
        worst = max(bad, key=lambda d: d.change_pct)
        raise RegressionError(
            f"p50 regressed beyond {max_regression:g}% for {len(bad)} configuration(s); worst: {worst.variant} "
            f"at {worst.threads} thread(s), {worst.base_p50:.4g} → {worst.new_p50:.4g} ms (+{worst.change_pct:.1f}%)",
            hint="compare the device fingerprints in both files, then profile the variant",
        )


def to_dict(deltas: list[Delta], base: str, new: str, max_regression: float) -> dict[str, Any]:
    return {
        "schema": "mobile_ml.benchmark_compare",
        "schema_version": 1,
        "base": base,
        "new": new,
        "max_regression_pct": max_regression,
        "deltas": [d.__dict__ for d in deltas],
        "regressed": any(d.verdict == "regressed" for d in deltas),
    }
