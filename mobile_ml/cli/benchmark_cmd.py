"""``mobile-ml benchmark TARGET`` (this machine or a phone over adb) and ``mobile-ml benchmark compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    target: Annotated[Path, typer.Argument(help="A .tflite file, an export directory, or a run (all its variants).")],
    threads: Annotated[str, typer.Option("--threads", "-t", help="Thread counts to sweep, e.g. 1,2,4.")] = "1",
    no_xnnpack: Annotated[
        bool, typer.Option("--no-xnnpack", help="Run LiteRT's builtin kernels without XNNPACK.")
    ] = False,
    warmup_runs: Annotated[int, typer.Option(help="Minimum warm-up runs.")] = 1,
    warmup_seconds: Annotated[float, typer.Option(help="Minimum warm-up time.")] = 0.5,
    runs: Annotated[int, typer.Option(help="Minimum timed runs.")] = 50,
    min_seconds: Annotated[float, typer.Option(help="Minimum timed duration.")] = 1.0,
    max_runs: Annotated[int, typer.Option(help="Maximum timed runs.")] = 100_000,
    max_seconds: Annotated[float, typer.Option(help="Maximum duration of each phase.")] = 150.0,
    repeats: Annotated[
        int, typer.Option(help="Fresh-process repeats per (model, threads), for noise-aware comparisons.")
    ] = 1,
    device: Annotated[str, typer.Option("--device", help="local, or adb[:SERIAL] for an Android phone.")] = "local",
    benchmark_binary: Annotated[
        Path | None, typer.Option("--benchmark-binary", help="LiteRT's benchmark_model built for the phone (adb only).")
    ] = None,
    compare_keras: Annotated[bool, typer.Option("--compare-keras", help="Also time the run's Keras model.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Results directory (default: beside TARGET).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the results directory (once the new one is done).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print benchmark.json to stdout instead of a table.")] = False,
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
    base: Annotated[Path, typer.Argument(help="benchmark.json of the baseline.")],
    new: Annotated[Path, typer.Argument(help="benchmark.json to check.")],
    max_regression: Annotated[float, typer.Option("--max-regression", help="Allowed p50 slowdown, percent.")] = 10.0,
    json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
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
