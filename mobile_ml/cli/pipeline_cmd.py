"""``mobile-ml quickstart`` and ``mobile-ml pipeline``: every stage in one go (the stages run in mobile_ml.pipeline)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def _run(config, out: Path, force: bool, json: bool) -> None:
    from mobile_ml.export.report import check_gate
    from mobile_ml.outputs import dumps
    from mobile_ml.pipeline import run_pipeline

    with render.PipelineProgress() as progress:
        result = run_pipeline(config, out, force=force, reporter=progress)
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
    else:
        _show(result, config.publish)
    check_gate(result.export)  # after the evidence is shown: exit 3 names the best variant


def _show(result, publish) -> None:
    for t in render.profile_tables(result.profile)[-1:]:
        console.out.print(t)
    for t in render.data_spec_tables(result.data, result.out / "data"):
        console.out.print(t)
    for t in render.train_tables(result.train):
        console.out.print(t)
    console.out.print(render.export_table(result.export))
    if result.benchmark is not None:
        console.out.print(render.benchmark_table(result.benchmark))
    console.out.print(render.pipeline_files(result))
    if result.release is not None:
        console.out.print(render.release_summary(result.release.to_dict()))
        console.out.print(render.deliver_commands(result.release.to_dict(), publish.root, publish.key_dir))


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
    from mobile_ml.pipeline import QUICKSTART, BenchmarkStage, PublishStage

    publish = None if no_publish else PublishStage(model="digits", root=publish_root, key_dir=str(key_dir))
    config = replace(QUICKSTART, benchmark=None if no_benchmark else BenchmarkStage(), publish=publish)
    _run(config, out, force, json)


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
    """Run profile → prepare → train → export on your own data, described in one TOML file; then benchmark and
    publish too if it has [benchmark] and [publish] tables."""
    from mobile_ml.errors import ConfigError
    from mobile_ml.pipeline import load_pipeline_config

    cfg = load_pipeline_config(config)
    target = out or (Path(cfg.out) if cfg.out else None)
    if target is None:
        raise ConfigError(f"{config}: no output directory", hint='set `out = "runs/NAME"` in the file or pass --out')
    _run(cfg, target, force, json)
