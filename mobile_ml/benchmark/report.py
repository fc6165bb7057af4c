"""Benchmark outputs, written atomically: ``benchmark.json``, ``benchmark.csv``, ``latency.png``, ``tradeoff.png``."""

from __future__ import annotations

import csv
from pathlib import Path

from mobile_ml.benchmark.stats import median
from mobile_ml.contracts import write_document
from mobile_ml.contracts.benchmark import BenchmarkResult, Measurement
from mobile_ml.outputs import atomic_dir
from mobile_ml.plotting import label_points, plain_log_ticks, pyplot

CSV_COLUMNS = (
    "variant",
    "threads",
    "xnnpack",
    "repeat",
    "bytes",
    "init_ms",
    "first_ms",
    "count",
    "min_ms",
    "mean_ms",
    "std_ms",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "macs",
    "gops",
    "init_mib",
    "run_mib",
)


def _row(m: Measurement) -> list[object]:
    s = m.latency_ms
    return [
        m.variant,
        m.threads,
        m.xnnpack,
        m.repeat,
        m.bytes,
        f"{m.init_ms:.4f}",
        f"{m.first_ms:.4f}",
        s.count,
        *("" if v is None else f"{v:.6f}" for v in (s.min, s.mean, s.std, s.p50, s.p90, s.p95, s.p99, s.max)),
        m.macs,
        f"{m.gops:.4f}",
        m.memory_mib.get("init_growth"),
        m.memory_mib.get("run_growth"),
    ]


def write(result: BenchmarkResult, out: str | Path, *, force: bool = False) -> Path:
    with atomic_dir(out, force=force) as tmp:
        write_document(tmp / "benchmark.json", result)
        with open(tmp / "benchmark.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            w.writerows(_row(m) for m in result.measurements)
        plot_latency(result, tmp / "latency.png")
        if result.export:
            plot_tradeoff(result, tmp / "tradeoff.png")
    return Path(out).absolute()


def plot_latency(result: BenchmarkResult, path: Path) -> None:
    """Latency distribution (timed runs) per variant and thread count, repeats pooled."""
    plt = pyplot()
    groups: dict[str, list[float]] = {}
    for m in result.measurements:
        groups.setdefault(f"{m.variant}\n{m.threads} thr", []).extend(m.samples_ms)
    groups = {k: v for k, v in groups.items() if v}  # phone results carry no samples
    if not groups:
        return
    scale, unit = (1000.0, "µs") if max(max(v) for v in groups.values()) < 1 else (1.0, "ms")
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(groups) + 2), 4.5), dpi=120)
    ax.boxplot([[x * scale for x in v] for v in groups.values()], showfliers=False, whis=(1, 99))
    ax.set_xticks(range(1, len(groups) + 1), list(groups), fontsize=8)
    ax.set_ylabel(f"latency per inference ({unit})")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_title(
        f"LiteRT latency, {result.device['cpu']} ({'XNNPACK' if result.options.xnnpack else 'no XNNPACK'}); "
        "box: p25–p75, whiskers: p1–p99",
        fontsize=9,
    )
    ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tradeoff_points(result: BenchmarkResult) -> dict[str, float]:
    """Each exported variant's p50 at the fewest threads measured: the median of its repeats' p50s (ms)."""
    rows = {r["variant"] for r in (result.export or {}).get("variants", [])}
    fewest = min((m.threads for m in result.measurements), default=1)
    p50s: dict[str, list[float]] = {}
    for m in result.measurements:
        if m.threads == fewest and m.variant in rows:
            p50s.setdefault(m.variant, []).append(m.center_ms)
    return {v: median(p) for v, p in p50s.items()}


def plot_tradeoff(result: BenchmarkResult, path: Path) -> None:
    """Size against p50 latency (fewest threads), coloured by LiteRT test accuracy from export.json."""
    plt = pyplot()
    rows = {r["variant"]: r for r in (result.export or {}).get("variants", [])}
    fewest = min(m.threads for m in result.measurements)
    centers = tradeoff_points(result)
    if not centers:
        return
    scale, unit = (1000.0, "µs") if max(centers.values()) < 1 else (1.0, "ms")
    pts = {v: c * scale for v, c in centers.items()}
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    accs = [(rows[v].get("parity") or {}).get("accuracy") for v in pts]
    sc = ax.scatter(
        [rows[v]["bytes"] / 1024 for v in pts],
        list(pts.values()),
        c=[a if a is not None else 0 for a in accs],
        cmap="viridis",
        s=80,
        zorder=3,
    )
    ys = list(pts.values())
    label_points(
        ax, [(rows[v]["bytes"] / 1024, y, v) for v, y in pts.items()], y_close=(max(ys) - min(ys)) * 0.05 + 1e-12
    )
    fig.colorbar(sc, ax=ax, label="test accuracy (LiteRT)")
    ax.set_xscale("log")
    ax.margins(x=0.15)
    plain_log_ticks(ax.xaxis)
    ax.set_xlabel("model file size (KiB)")
    ax.set_ylabel(f"p50 latency, {fewest} thread(s) ({unit})")
    ax.set_title("Size, accuracy and latency of the exported variants")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
