"""``mobile-ml quickstart`` and ``mobile-ml pipeline``: every stage in one go."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mobile_ml.cli import console, render


def _run(config, out: Path, force: bool, json: bool) -> None:
    from mobile_ml.outputs import dumps
    from mobile_ml.pipeline import run_pipeline

    from mobile_ml.export.report import check_gate

    with render.PipelineProgress() as progress:
        result = run_pipeline(config, out, force=force, reporter=progress)
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
        check_gate(result.export)
        return
    for t in render.profile_tables(result.profile)[-1:]:
        console.out.print(t)
    for t in render.data_spec_tables(result.data, result.out / "data"):
        console.out.print(t)
    for t in render.train_tables(result.train):
        console.out.print(t)
    console.out.print(render.export_table(result.export))
    console.out.print(f"wrote {render.escape(str(result.out))}/ in {result.seconds:.1f} s:\n"
                      f"  profile.json   data profile\n"
                      f"  data/          data.json + train/validation/test splits\n"
                      f"  run/           model.keras, saved_model/, metrics.json, history.png, run.json\n"
                      f"  run/exports/   <variant>/model.tflite + metadata.json, export.json/csv/png")
    check_gate(result.export)


def quickstart(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="Output directory."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists (only once the new one is complete)."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout instead of tables."),
) -> None:
    """Profile, prepare, train and export the built-in 8×8 digits: the whole pipeline with no data of your own."""
    from mobile_ml.pipeline import QUICKSTART

    _run(QUICKSTART, out, force, json)


def pipeline(
    config: Path = typer.Argument(..., help="Pipeline TOML file (see README: 'Pipeline config')."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (overrides `out` in the file)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists (only once the new one is complete)."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout instead of tables."),
) -> None:
    """Run profile → prepare → train → export on your own data, described in one TOML file."""
    from mobile_ml.errors import ConfigError
    from mobile_ml.pipeline import load_pipeline_config

    cfg = load_pipeline_config(config)
    target = out or (Path(cfg.out) if cfg.out else None)
    if target is None:
        raise ConfigError(f"{config}: no output directory", hint="set `out = \"runs/NAME\"` in the file or pass --out")
    _run(cfg, target, force, json)
