"""``mobile-ml quickstart`` and ``mobile-ml pipeline``: every stage in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def _benchmark(result):
    """quickstart's benchmark: every variant, 1 thread, short phases (a full run is `mobile-ml benchmark RUNDIR`)."""
    from mobile_ml.benchmark import report
    from mobile_ml.benchmark.runner import BenchmarkOptions, run

    with render.BenchmarkProgress() as progress:
        bench = run(
            result.out / "run", BenchmarkOptions(threads=(1,), warmup_seconds=0.1, min_seconds=0.3), reporter=progress
        )
    report.write(bench, result.out / "run" / "benchmark")
    return bench


def _run(config, out: Path, force: bool, json: bool, publish: dict | None = None, benchmark: bool = False) -> None:
    from mobile_ml.export.report import check_gate
    from mobile_ml.outputs import dumps
    from mobile_ml.pipeline import run_pipeline

    with render.PipelineProgress() as progress:
        result = run_pipeline(config, out, force=force, reporter=progress)
    bench = _benchmark(result) if benchmark and result.export.recommended else None
    if json:
        doc = result.to_dict()
        if bench is not None:
            doc["benchmark"] = bench.to_dict()
        if result.export.recommended and publish:
            doc["publish"] = _publish(result, publish).to_dict()
        typer.echo(dumps(doc), nl=False)
        check_gate(result.export)
        return
    for t in render.profile_tables(result.profile)[-1:]:
        console.out.print(t)
    for t in render.data_spec_tables(result.data, result.out / "data"):
        console.out.print(t)
    for t in render.train_tables(result.train):
        console.out.print(t)
    console.out.print(render.export_table(result.export))
    if bench is not None:
        console.out.print(render.benchmark_table(bench))
    console.out.print(
        f"wrote {render.escape(str(result.out))}/ in {result.seconds:.1f} s:\n"
        f"  profile.json   data profile\n"
        f"  data/          data.json + train/validation/test splits\n"
        f"  run/           model.keras, saved_model/, metrics.json, history.png, run.json\n"
        f"  run/exports/   <variant>/model.tflite + metadata.json, export.json/csv/png"
        + ("\n  run/benchmark/  benchmark.json/csv, latency.png, tradeoff.png" if bench else "")
    )
    check_gate(result.export)
    if publish:
        released = _publish(result, publish)
        r = released.to_dict()
        console.out.print(render.release_summary(r))
        root, key = render.escape(publish["root"]), render.escape(str(publish["key_dir"]))
        console.out.print(
            f"deliver it (any static web server or CDN can serve {root}/ too):\n"
            f"  mobile-ml serve {root} --port 8000\n"
            f"  mobile-ml device sync --server http://127.0.0.1:8000/ --model digits --channel dev "
            f"--public-key {key}/public.pem --state device-state --install-id demo-device --app-version 1.0.0\n"
            f"  mobile-ml device run --state device-state\n"
            f"  check the root: mobile-ml release verify --root {root} --public-key {key}/public.pem\n"
            f"  app key: {key}/public.b64 (a development key: make your own with `mobile-ml keys generate`)"
        )


def _publish(result, publish: dict):
    from mobile_ml.publish.publisher import publish_dev

    return publish_dev(publish["root"], result.out / "run", model="digits", channel="dev", key_dir=publish["key_dir"])


def quickstart(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("runs/quickstart"),
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (only once the new one is complete).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout instead of tables.")] = False,
    publish_root: Annotated[
        str, typer.Option("--publish-root", help="Where to publish the recommended variant.")
    ] = "exports",
    key_dir: Annotated[
        Path, typer.Option("--key-dir", help="Signing key; a development key is created here if there is none.")
    ] = Path("keys/dev"),
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Do not publish.")] = False,
    no_benchmark: Annotated[bool, typer.Option("--no-benchmark", help="Do not benchmark the variants.")] = False,
) -> None:
    """Profile, prepare, train, export, benchmark and publish the built-in 8×8 digits, with no data of your own."""
    from mobile_ml.pipeline import QUICKSTART

    _run(
        QUICKSTART,
        out,
        force,
        json,
        None if no_publish else {"root": publish_root, "key_dir": key_dir},
        benchmark=not no_benchmark,
    )


def pipeline(
    config: Annotated[Path, typer.Argument(help="Pipeline TOML file (see README: 'Pipeline config').")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory (overrides `out` in the file).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (only once the new one is complete).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout instead of tables.")] = False,
) -> None:
    """Run profile → prepare → train → export on your own data, described in one TOML file."""
    from mobile_ml.errors import ConfigError
    from mobile_ml.pipeline import load_pipeline_config

    cfg = load_pipeline_config(config)
    target = out or (Path(cfg.out) if cfg.out else None)
    if target is None:
        raise ConfigError(f"{config}: no output directory", hint='set `out = "runs/NAME"` in the file or pass --out')
    _run(cfg, target, force, json)
