"""``mobile-ml benchmark compare BASE.json NEW.json``: p50 deltas per (variant, threads), judged on evidence.

The unit of evidence is the **repeat** (one fresh process, ``--repeats N``), not the timed sample. Samples of one
process share its minute: its CPU frequency, its neighbours on a shared machine, its heap layout. Two runs of the
same model a minute apart differed by +35 % here with thousands of samples each, so a test on pooled samples (or
p90 − p50 of one process as "the noise") declares that a regression with any confidence one likes. Each repeat's p50
summarises its timed samples; a side's figure is the median of its repeats' p50s.

A pair **regresses** when both hold:

- the effect is large enough to matter: the new median is more than ``max_regression`` percent above the base; and
- it is not explained by the spread between repeats: a one-sided Mann–Whitney rank test on the repeat p50s gives
  p ≤ ``ALPHA``. With three repeats a side that means the two sets do not overlap at all (p = 1/20).

With fewer than ``MIN_REPEATS`` repeats on either side there is no evidence either way: the verdict is
``insufficient evidence`` and the gate does not trip (exit 0), and the CLI says how to get a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path

from mobile_ml.benchmark.stats import median
from mobile_ml.contracts import read_document
from mobile_ml.contracts.benchmark import BenchmarkResult, Comparison, Delta, Measurement, Verdict
from mobile_ml.errors import ConfigError, RegressionError

MIN_REPEATS = 3  # the fewest repeats a side for which a rank test can reach ALPHA (1/C(6,3) = 0.05)
ALPHA = 0.05
_EXACT_LIMIT = 100_000  # rank-sum arrangements enumerated exactly; beyond, the normal approximation is close


def load(path: str | Path) -> BenchmarkResult:
    return read_document(BenchmarkResult, path)


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def mann_whitney_greater(xs: Sequence[float], ys: Sequence[float]) -> float:
    """One-sided p-value of the Mann–Whitney U test that ``ys`` tend to be larger than ``xs``.

    Exact (every arrangement of the pooled ranks, ties as mean ranks) while that is cheap, else the normal
    approximation with tie and continuity corrections, as scipy.stats.mannwhitneyu does.
    """
    n1, n2 = len(xs), len(ys)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    ranks = _ranks([*xs, *ys])
    observed = sum(ranks[n1:])
    if math.comb(n1 + n2, n2) <= _EXACT_LIMIT:
        eps = 1e-9 * (n1 + n2) ** 2
        at_least = total = 0
        for chosen in combinations(ranks, n2):
            total += 1
            at_least += sum(chosen) >= observed - eps
        return at_least / total
    n = n1 + n2
    u = observed - n2 * (n2 + 1) / 2
    counts: dict[float, int] = {}
    for r in ranks:
        counts[r] = counts.get(r, 0) + 1
    ties = sum(t**3 - t for t in counts.values())
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sd == 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / sd
    return 0.5 * math.erfc(z / math.sqrt(2))


def _spread(xs: Sequence[float]) -> float:
    return max(xs) - min(xs)


def judge(variant: str, threads: int, base: Sequence[float], new: Sequence[float], max_regression: float) -> Delta:
    """The delta and verdict for one pair, from each side's repeat p50s (ms)."""
    bm, nm = median(base), median(new)
    change = (nm - bm) / bm * 100 if bm > 0 else 0.0
    # one repeat shows no spread at all, which is not "no noise"
    noise = max(_spread(base), _spread(new)) / bm * 100 if bm > 0 and min(len(base), len(new)) > 1 else None
    p_value = None
    if min(len(base), len(new)) < MIN_REPEATS:
        verdict = Verdict.INSUFFICIENT
    elif change > max_regression:
        p_value = mann_whitney_greater(base, new)
        verdict = Verdict.REGRESSED if p_value <= ALPHA else Verdict.WITHIN_NOISE
    elif change < -max_regression:
        p_value = mann_whitney_greater(new, base)
        verdict = Verdict.FASTER if p_value <= ALPHA else Verdict.OK
    else:
        verdict = Verdict.OK
    return Delta(variant, threads, bm, nm, change, noise, verdict, len(base), len(new), p_value)


def _groups(doc: BenchmarkResult) -> dict[tuple[str, int], list[Measurement]]:
    out: dict[tuple[str, int], list[Measurement]] = {}
    for m in doc.measurements:
        out.setdefault((m.variant, m.threads), []).append(m)
    return out


def compare(
    base: BenchmarkResult, new: BenchmarkResult, max_regression: float, *, names: tuple[str, str] = ("", "")
) -> Comparison:
    if max_regression < 0:
        raise ConfigError("--max-regression must not be negative", hint="e.g. --max-regression 10")
    b, n = _groups(base), _groups(new)
    deltas = []
    for key in sorted(set(b) | set(n)):
        variant, threads = key
        if key in b and key in n:
            bp, np_ = [m.center_ms for m in b[key]], [m.center_ms for m in n[key]]
            deltas.append(judge(variant, threads, bp, np_, max_regression))
            continue
        side = b.get(key) or n[key]
        p = median([m.center_ms for m in side])
        verdict = Verdict.ONLY_IN_BASE if key in b else Verdict.ONLY_IN_NEW
        deltas.append(
            Delta(variant, threads, p if key in b else None, p if key in n else None, None, None, verdict, len(side))
        )
    return Comparison(names[0], names[1], max_regression, tuple(deltas))


def compare_files(base: str | Path, new: str | Path, max_regression: float) -> Comparison:
    return compare(load(base), load(new), max_regression, names=(str(base), str(new)))


def unjudged_note(comparison: Comparison) -> str | None:
    """What to tell the user when some pair had too few repeats to judge, else None."""
    short = [d for d in comparison.deltas if d.verdict is Verdict.INSUFFICIENT]
    if not short:
        return None
    fewest = min(min(d.base_repeats, d.new_repeats) for d in short)
    return (
        f"not judged: {len(short)} configuration(s) have {fewest} repeat(s) on a side, fewer than the "
        f"{MIN_REPEATS} a verdict needs; benchmark both with --repeats {MIN_REPEATS} or more"
    )


def check(comparison: Comparison) -> None:
    bad = [d for d in comparison.deltas if d.verdict is Verdict.REGRESSED]
    if bad:
        worst = max(bad, key=lambda d: d.change_pct or 0.0)
        raise RegressionError(
            f"p50 regressed beyond {comparison.max_regression_pct:g}% for {len(bad)} configuration(s); worst: "
            f"{worst.variant} at {worst.threads} thread(s), {worst.base_p50:.4g} → {worst.new_p50:.4g} ms "
            f"(+{worst.change_pct:.1f}%, p = {worst.p_value:.3g} over {worst.base_repeats}+{worst.new_repeats} "
            "repeats)",
            hint="compare the device fingerprints in both files, then profile the variant",
        )
