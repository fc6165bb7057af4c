"""``mobile-ml benchmark TARGET`` (this machine or a phone over adb) and ``mobile-ml benchmark compare``."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup

from mobile_ml.cli import console, render


class _DefaultRun(TyperGroup):
    """``benchmark TARGET`` means ``benchmark run TARGET``; ``benchmark compare A B`` is the subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultRun,
    no_args_is_help=True,
    help="Measure inference latency like LiteRT's benchmark tools: here, or on a phone over adb.\n\n"
    "mobile-ml benchmark TARGET [OPTIONS] is short for mobile-ml benchmark run TARGET [OPTIONS].",
)


def _threads(text: str) -> tuple[int, ...]:
    from mobile_ml.errors import ConfigError

    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(
            f"--threads takes comma-separated integers, not '{text}'", hint="e.g. --threads 1,2,4"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise ConfigError(f"thread counts must be positive, not '{text}'", hint="e.g. --threads 1,2,4")
    return values


@app.command("run")
def run(
    target: Path = typer.Argument(..., help="A .tflite file, an export directory, or a run (all its variants)."),
    threads: str = typer.Option("1", "--threads", "-t", help="Thread counts to sweep, e.g. 1,2,4."),
    no_xnnpack: bool = typer.Option(False, "--no-xnnpack", help="Run LiteRT's builtin kernels without XNNPACK."),
    warmup_runs: int = typer.Option(1, help="Minimum warm-up runs."),
    warmup_seconds: float = typer.Option(0.5, help="Minimum warm-up time."),
    runs: int = typer.Option(50, help="Minimum timed runs."),
    min_seconds: float = typer.Option(1.0, help="Minimum timed duration."),
    max_runs: int = typer.Option(100_000, help="Maximum timed runs."),
    max_seconds: float = typer.Option(150.0, help="Maximum duration of each phase."),
    repeats: int = typer.Option(1, help="Fresh-process repeats per (model, threads), for noise-aware comparisons."),
    device: str = typer.Option("local", "--device", help="local, or adb[:SERIAL] for an Android phone."),
    benchmark_binary: Path | None = typer.Option(
        None, "--benchmark-binary", help="LiteRT's benchmark_model built for the phone (adb only)."
    ),
    compare_keras: bool = typer.Option(False, "--compare-keras", help="Also time the run's Keras model."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Results directory (default: beside TARGET)."),
    force: bool = typer.Option(False, "--force", help="Replace the results directory (once the new one is done)."),
    json: bool = typer.Option(False, "--json", help="Print benchmark.json to stdout instead of a table."),
) -> None:
    """Benchmark TARGET: init, first inference, warm-up, timed runs (p50…p99), memory, MACs and GOP/s."""
    from mobile_ml.benchmark import report
    from mobile_ml.benchmark.runner import BenchmarkOptions, default_out
    from mobile_ml.benchmark.session import benchmark
    from mobile_ml.contracts import document_dict
    from mobile_ml.outputs import check_destination, dumps

    options = BenchmarkOptions(
        threads=_threads(threads),
        xnnpack=not no_xnnpack,
        warmup_runs=warmup_runs,
        warmup_seconds=warmup_seconds,
        runs=runs,
        min_seconds=min_seconds,
        max_runs=max_runs,
        max_seconds=max_seconds,
        repeats=repeats,
    )
    destination = out or default_out(target)
    check_destination(destination.absolute(), force)  # before minutes of measuring, not after
    with render.BenchmarkProgress() as progress:
        result = benchmark(
            target, options, device=device, binary=benchmark_binary, compare_keras=compare_keras, reporter=progress
        )
    written = report.write(result, destination, force=force)
    if json:
        typer.echo(dumps(document_dict(result)), nl=False)
        return
    console.out.print(render.benchmark_table(result))
    console.out.print(
        f"wrote {render.escape(str(written))}/: benchmark.json, benchmark.csv, latency.png"
        + (", tradeoff.png" if result.export else "")
    )


@app.command("compare")
def compare(
    base: Path = typer.Argument(..., help="benchmark.json of the baseline."),
    new: Path = typer.Argument(..., help="benchmark.json to check."),
    max_regression: float = typer.Option(10.0, "--max-regression", help="Allowed p50 slowdown, percent."),
    json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Per (variant, threads) p50 deltas; exit 4 if any regressed beyond the limit and beyond the noise.

    A verdict needs at least 3 repeats a side (benchmark both with --repeats 3); with fewer, the pair is reported as
    "insufficient evidence" and the exit code is 0."""
    from mobile_ml.benchmark import compare as cmp
    from mobile_ml.contracts import document_dict
    from mobile_ml.outputs import dumps

    comparison = cmp.compare_files(base, new, max_regression)
    if json:
        typer.echo(dumps(document_dict(comparison)), nl=False)
    else:
        console.out.print(render.compare_table(list(comparison.deltas), max_regression))
    note = cmp.unjudged_note(comparison)
    if note:
        console.info(f"note: {note}")
    cmp.check(comparison)
