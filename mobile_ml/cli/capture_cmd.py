"""``mobile-ml capture export``: consented samples from the capture store → a prepared-data directory."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render

app = typer.Typer(help="Samples consenting devices captured (`serve --capture-store`).", no_args_is_help=True)


def _since(text: str | None) -> datetime | None:
    from mobile_ml.errors import ConfigError

    if text is None:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not a date", hint="e.g. --since 2026-11-20") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


@app.command("export")
def export(
    store: Annotated[str, typer.Option("--store", help="The server's --capture-store: a directory or s3://BUCKET/P.")],
    model: Annotated[str, typer.Option("--model", "-m")],
    run: Annotated[
        Path,
        typer.Option(
            "--run",
            help="The run the published model came from: its data.json is the "
            "schema (labels, features or image shape, normalization).",
        ),
    ],  # fmt: skip
    out: Annotated[Path, typer.Option("--out", "-o", help="The prepared-data directory to write.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only batches received on or after this UTC day.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the train/validation/test split.")] = 42,
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Turn stored capture batches into data.json + splits (as `data prepare` writes them); only samples the user
    labelled go into the splits."""
    from mobile_ml.capture.export import export as run_export
    from mobile_ml.outputs import dumps

    counts = run_export(store, model=model, run=run, out=out, since=_since(since), seed=seed, force=force)
    if json:
        typer.echo(dumps(counts.to_dict()), nl=False)
        return
    splits = ", ".join(f"{k} {v}" for k, v in counts.splits.items())
    console.out.print(
        f"{render.escape(str(out))}: {counts.labelled} labelled samples ({splits}) from {counts.batches} batches; "
        f"{counts.unlabelled} unlabelled and {counts.skipped} not of this schema left out"
    )
