"""``mobile-ml monitor``: the fleet's inputs and predictions against the model's baseline; exit 5 on drift."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console
from mobile_ml.errors import EXIT_DRIFT, ConfigError


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date", hint="write 2026-12-01 or 2026-12-01T08:00:00Z (UTC)"
        ) from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def monitor(
    model: Annotated[str, typer.Option("--model", "-m", help="The published model name.")],
    root: Annotated[str, typer.Option("--root", help="The publish root (directory or s3://) holding the baselines.")],
    db: Annotated[
        str, typer.Option("--db", help="The --telemetry-db of `mobile-ml serve`: a SQLite file or postgresql:// URL.")
    ] = "telemetry.db",
    channel: Annotated[str | None, typer.Option("--channel", "-c", help="Only this channel's aggregates.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Only this model version.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only data received from this UTC date or time.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write a PNG per drifted feature here.")] = None,
    psi_drift: Annotated[float, typer.Option("--psi-drift", help="PSI from which a histogram is drift.")] = 0.2,
    psi_warn: Annotated[float, typer.Option("--psi-warn", help="PSI from which it is a warning.")] = 0.1,
    min_count: Annotated[
        int, typer.Option("--min-count", help="Fleet samples below which there is no verdict (not enough data).")
    ] = 500,
    json: Annotated[bool, typer.Option("--json", help="Print the report as JSON to stdout.")] = False,
) -> None:
    """Per feature PSI and Jensen–Shannon distance of what devices counted against the baseline's test split,
    the same for predicted classes and confidence, latency by device model and the update funnel. Exit 5 when a
    histogram drifted (the report is printed first); "not enough data" below --min-count samples."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.monitor.plots import plot_drifted
    from mobile_ml.monitor.report import monitor as run
    from mobile_ml.monitor.stats import Thresholds
    from mobile_ml.outputs import dumps

    try:
        thresholds = Thresholds(warn_psi=psi_warn, drift_psi=psi_drift, min_count=min_count)
    except ValueError as e:
        raise ConfigError(str(e), hint="e.g. --psi-warn 0.1 --psi-drift 0.2 --min-count 500") from None
    report = run(
        db, root=root, model=model, channel=channel, version=version, since=_since(since), thresholds=thresholds
    )
    plots = plot_drifted(report, out) if out is not None else []
    if json:
        typer.echo(dumps(document_dict(report)), nl=False)
    else:
        from mobile_ml.cli import monitor_render

        monitor_render.print_report(report)
    for path in plots:
        console.info(f"plot: {path}")
    if report.drift:
        drifted = [f"{v.version} {name}" for v in report.versions for name in _drifted_names(v)]
        console.info(f"drift: {', '.join(drifted)}")
        if out is None and any(f.drifted for v in report.versions for f in v.features):
            console.info("hint: pass --out DIR for a plot of each drifted feature")
        raise typer.Exit(EXIT_DRIFT)


def _drifted_names(v) -> list[str]:
    names = [f.name for f in v.features if f.drifted]
    return names + [name for name, h in (("(prediction)", v.prediction), ("(confidence)", v.confidence)) if h.drifted]
