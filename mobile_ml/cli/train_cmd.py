"""``mobile-ml train``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def train(
    datadir: Annotated[Path, typer.Argument(help="A data directory made by `mobile-ml data prepare`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML file with a [train] table.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the maximum epochs per candidate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the random seed.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (only once the new run is complete).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON to stdout instead of tables.")] = False,
) -> None:
    """Train the candidate grid, select the best on validation, evaluate on test, save the run."""
    from mobile_ml.outputs import dumps
    from mobile_ml.pipeline import load_train_config
    from mobile_ml.train.config import TrainConfig
    from mobile_ml.train.trainer import train as run_train

    cfg = load_train_config(config) if config else TrainConfig()
    cfg = replace(cfg, epochs=cfg.epochs if epochs is None else epochs, seed=cfg.seed if seed is None else seed)
    with render.TrainProgress() as progress:
        result = run_train(datadir, out, cfg, force=force, reporter=progress)
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
        return
    for t in render.train_tables(result):
        console.out.print(t)
    console.out.print(render.run_files(result.run_dir))
