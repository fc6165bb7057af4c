"""``mobile-ml cycle CONFIG.toml``: one turn of the loop (the steps run in mobile_ml.loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def cycle(
    config: Annotated[Path, typer.Argument(help="Cycle TOML file (see README: 'Cycle config').")],
    json: Annotated[bool, typer.Option("--json", help="Print cycle.json to stdout.")] = False,
) -> None:
    """Monitor the fleet; when it drifted or enough labelled samples were captured, retrain on them, export,
    benchmark and publish the challenger to the channel at a small rollout, if it wins. Every step's evidence goes
    into OUT/<UTC timestamp>/ with a cycle.json. Exit 0 when it published or had nothing to retrain for; exit 3,
    nothing published, when the challenger did not win or no variant passed the export gate."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.contracts.cycle import Outcome
    from mobile_ml.errors import GateError
    from mobile_ml.loop import load_cycle_config, run_cycle
    from mobile_ml.outputs import dumps

    cfg = load_cycle_config(config)
    with render.PipelineProgress() as progress:
        result = run_cycle(
            cfg, reporter=progress, say=lambda line: progress.progress.console.print(render.escape(line))
        )
    report = result.report
    if json:
        typer.echo(dumps(document_dict(report)), nl=False)
    else:
        console.out.print(f"{render.escape(report.reason)}\nevidence: {render.escape(str(result.dir))}/")
    if report.outcome is Outcome.NOT_PUBLISHED:
        raise GateError(report.reason, hint=f"nothing was published; the evidence is in {result.dir}")
