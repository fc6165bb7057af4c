"""Read the log of LiteRT's benchmark tools: the C++ ``benchmark_model`` (every version since 2019) and the
CompiledModel benchmark's ``BENCHMARK RESULTS`` block.

The C++ tool prints two ``count=`` lines, warm-up then timed runs, in microseconds, and a summary line. Its formats
changed over the years; tests/fixtures/benchmark_model/ holds a real recording of each (its README lists them):

- oldest (2019): ``Average inference timings in us: Warmup: …, Init: …, no stats: …``; no percentiles;
- 2020: ``Inference timings in us: Init: …, First inference: …, Warmup (avg): …, Inference (avg): …`` and
  ``Peak memory footprint (MB): init=… overall=…``;
- newest: ``p5= median= p95=`` in the ``count=`` lines, numbers at 6 significant digits (``avg=2.71985e+06``), and
  ``Memory footprint delta from the start of the tool (MB): init=… overall=…``.

Lines may carry an ``INFO: `` prefix or a logcat prefix. A one-run phase prints ``count=1 curr=X`` with no min/max.
The tool prints summaries, not samples, so p90/p99 stay None and p50 is None unless it printed ``median=``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mobile_ml.benchmark.stats import LatencyStats
from mobile_ml.errors import UserError

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_KV = re.compile(rf"(\w+)=({_NUM})")
_PAIR = re.compile(rf"([A-Za-z][A-Za-z ()]*?)\s*:\s*({_NUM})")
# logcat "brief"/"time" (`07-08 15:33:55.768 I/tflite  ( 5395): `) and "threadtime" (`07-08 15:33:55.768  5395  5395
# I tflite  : `), then the tool's own `INFO: `.
_PREFIX = re.compile(
    r"^(?:\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?"
    r"(?:[VDIWEF]/[^(:]*\(\s*\d+\)\s*:\s?|\d+\s+\d+\s+[VDIWEF]\s+[^:]*:\s?)?"
    r"(?:INFO:\s)?"
)
_RESULT = re.compile(rf"^([A-Za-z][\w ()]*?):\s+({_NUM})\s*ms(?:\s*\((\d+) runs\))?")


class BenchmarkError(UserError):
    """A model that cannot be benchmarked here, or a tool whose output cannot be read (exit 2)."""


@dataclass(frozen=True)
class ToolRun:
    """One run of the tool, in milliseconds (memory in MiB, as the tool reports MB)."""

    init_ms: float
    first_ms: float
    warmup_count: int
    warmup_mean_ms: float
    latency_ms: LatencyStats
    memory_mib: dict[str, Any] = field(default_factory=dict)


def _strip(raw: str) -> str:
    return _PREFIX.sub("", raw.strip(), count=1).strip()


@dataclass
class _Lines:
    blocks: list[dict[str, float]] = field(default_factory=list)  # `count=` lines, in µs
    summary: dict[str, float] = field(default_factory=dict)  # the `… timings in us:` line, in µs
    init_ms: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    results: dict[str, tuple[float, int | None]] = field(default_factory=dict)  # BENCHMARK RESULTS, in ms


def _memory(line: str, memory: dict[str, Any]) -> None:
    """``Peak memory footprint (MB): init= overall=`` (2020) or ``Memory footprint delta from the start of the tool
    (MB): init= overall=`` (newer): growth since the tool started; ``… via periodic monitoring: X``: the peak."""
    kv = dict(_KV.findall(line))
    if "init" in kv:
        memory["init_growth"] = float(kv["init"])
    if "overall" in kv:
        memory["run_growth"] = float(kv["overall"])
    if "periodic" in line.lower() and (m := re.search(rf"({_NUM})\s*$", line)):
        memory["peak_rss"] = float(m.group(1))


def _read(text: str) -> _Lines:
    seen = _Lines()
    in_results = False
    for line in map(_strip, text.splitlines()):
        low = line.lower()
        if line.startswith("count=") and not seen.summary:  # op-profiling tables after the summary reuse count=
            seen.blocks.append({k: float(v) for k, v in _KV.findall(line)})
        elif line.startswith("Initialized session in"):
            m = re.search(rf"in ({_NUM})\s*ms", line)
            if m:
                seen.init_ms = float(m.group(1))
        elif "inference timings in us:" in low:
            seen.summary = {k.strip().lower(): float(v) for k, v in _PAIR.findall(line.split(":", 1)[1])}
        elif "memory footprint" in low:
            _memory(line, seen.memory)
        elif line.strip("= ") == "BENCHMARK RESULTS":
            in_results = True
        elif in_results and (m := _RESULT.match(line)):
            seen.results[m.group(1).lower()] = (float(m.group(2)), int(m.group(3)) if m.group(3) else None)
    return seen


def _from_results(r: dict[str, tuple[float, int | None]]) -> ToolRun:
    """The CompiledModel benchmark's block: already milliseconds, every figure named."""
    try:
        avg, count = r["inference (avg)"]
        stats = LatencyStats(
            count=count or 0,
            min=r["inference (min)"][0],
            mean=avg,
            std=r["inference (std)"][0],
            p50=r["inference (median)"][0],
            p90=None,
            p95=r["inference (p95)"][0],
            p99=None,
            max=r["inference (max)"][0],
        )
        warm, warm_count = r["warmup (avg)"]
        return ToolRun(r["model initialization"][0], r["warmup (first)"][0], warm_count or 0, warm, stats)
    except KeyError as e:
        raise BenchmarkError(
            f"cannot parse the benchmark tool's BENCHMARK RESULTS block: no {e.args[0]!r} line",
            hint="rerun with --debug to see the tool's raw output",
        ) from None


def _us(block: dict[str, float], key: str) -> float | None:
    return block[key] / 1000 if key in block else None


def _pick(*values: float | None) -> float:
    """The first figure the log has (0.0 if none): formats differ in which lines carry which figure."""
    return next((v for v in values if v is not None), 0.0)


def parse(text: str) -> ToolRun:
    """The figures of one tool log; ``BenchmarkError`` when it holds no warm-up and timed results."""
    seen = _read(text)
    if seen.results:
        return _from_results(seen.results)
    if len(seen.blocks) < 2:
        raise BenchmarkError(
            f"cannot parse benchmark_model's output: expected a warm-up and a timed `count=` line, "
            f"found {len(seen.blocks)}",
            hint="rerun with --debug to see the tool's raw output",
        )
    warm, timed, summary = seen.blocks[0], seen.blocks[-1], seen.summary
    warm_count = int(warm.get("count", 0))
    # A one-run phase prints only curr=. The summary's figures are rounded to 6 digits, so they come last.
    warm_mean = _pick(
        _us(warm, "avg"),
        _us(warm, "curr") if warm_count == 1 else None,
        _us(summary, "warmup (avg)"),
        _us(summary, "warmup"),
    )
    # The oldest tool has no first-inference figure: its single warm-up run is the first inference.
    first = _pick(_us(summary, "first inference"), _us(warm, "first"), _us(warm, "curr"))
    mean = _pick(_us(timed, "avg"), _us(timed, "curr"))
    stats = LatencyStats(
        count=int(timed["count"]),
        min=_pick(_us(timed, "min"), mean),
        mean=mean,
        std=_pick(_us(timed, "std")),
        p50=_us(timed, "median"),
        p90=None,
        p95=_us(timed, "p95"),
        p99=None,
        max=_pick(_us(timed, "max"), mean),
    )
    return ToolRun(_pick(seen.init_ms, _us(summary, "init")), first, warm_count, warm_mean, stats, seen.memory)
