"""``mobile-ml train``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from mobile_ml.cli import console, render


def train(
    datadir: Path = typer.Argument(..., help="A data directory made by `mobile-ml data prepare`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML file with a [train] table."),
    epochs: int | None = typer.Option(None, help="Override the maximum epochs per candidate."),
    seed: int | None = typer.Option(None, help="Override the random seed."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists (only once the new run is complete)."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON to stdout instead of tables."),
) -> None:
    """Train the candidate grid, select the best on validation, evaluate on test, save the run."""
    from mobile_ml.outputs import dumps
    from mobile_ml.pipeline import load_train_config
    from mobile_ml.train.config import TrainConfig
    from mobile_ml.train.trainer import train as run_train

    cfg = load_train_config(config) if config else TrainConfig()
    if epochs is not None:
        cfg = replace(cfg, epochs=epochs)
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    with render.TrainProgress() as progress:
        result = run_train(datadir, out, cfg, force=force, reporter=progress)
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
        return
    for t in render.train_tables(result):
        console.out.print(t)
    console.out.print(render.run_files(result.run_dir))
