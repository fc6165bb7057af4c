"""``mobile-ml retrain``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def retrain(
    rundir: Annotated[Path, typer.Argument(help="The champion: a run directory made by `mobile-ml train`.")],
    captured: Annotated[
        Path,
        typer.Option(
            "--captured", help="Captured labelled samples: a data directory with the run's schema (`capture export`)."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create for the challenger.")],
    budget: Annotated[
        float,
        typer.Option("--budget", help="Accuracy the challenger may lose on the original test split, in points."),
    ] = 1.0,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the captured train/validation/test split (default: the run's seed).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (only once the new run is complete).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print retrain.json's figures as JSON to stdout.")] = False,
) -> None:
    """Train a challenger on the run's train split plus captured samples, and compare it with the run's model.

    The captured labelled rows are split by seed into train, validation and a captured test split. The challenger,
    trained with the run's own config, wins only if it is better on the captured test split and loses at most
    --budget points of accuracy on the original test split. OUT is a normal run directory (export it with
    `mobile-ml export OUT`) with a retrain.json holding both models' figures and the verdict. Exit 3 when the
    challenger does not win: OUT is still written, marked as not the winner in retrain.json, for inspection.
    Exit 2, writing nothing, when the captured data has another schema than the run's or no labelled samples.
    """
    from mobile_ml.errors import GateError
    from mobile_ml.outputs import dumps
    from mobile_ml.train.retrain import retrain as run_retrain

    with render.TrainProgress() as progress:
        result = run_retrain(rundir, captured, out, budget_pp=budget, seed=seed, force=force, reporter=progress)
    report = result.report
    if json:
        typer.echo(dumps(result.to_dict()), nl=False)
    else:
        console.out.print(_table(report))
        console.out.print(f"wrote {render.escape(str(result.run.run_dir))}/ with retrain.json")
    if not report.winner:
        raise GateError(
            report.reason,
            hint=f"{result.run.run_dir} is written and marked as not the winner in retrain.json: inspect it, "
            "capture more labelled samples, or change --budget",
        )
    if not json:
        console.out.print(render.escape(report.reason))


def _table(report):
    from mobile_ml.cli.layout import Fit

    t = render._compact(f"Champion against challenger (budget: {report.budget_pp:g} pp of test accuracy)")
    for col in ("", "model", "test acc", "test F1", "captured acc", "captured F1"):
        t.add_column(col, justify="left" if col in ("", "model") else "right")
    for role, m in (("champion", report.champion), ("challenger", report.challenger)):
        o, c = m.original, m.captured
        t.add_row(
            role,
            render.escape(m.model),
            f"{o.accuracy:.4f}",
            f"{o.macro_f1:.4f}",
            f"{c.accuracy:.4f}",
            f"{c.macro_f1:.4f}",
        )
    return Fit(t, name_columns=2)
