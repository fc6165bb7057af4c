"""``mobile-ml release status``: per channel, the signed manifest beside what the fleet runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console
from mobile_ml.cli.publish_cmd import Json, Root, release_app

ADOPTION_DAYS_SHOWN = 7  # the table's last days; --json has every day


@release_app.command("status")
def status(
    model: Annotated[str, typer.Argument(help="The model's name in the publish root, e.g. digits.")],
    db: Annotated[
        str, typer.Option("--db", help="The --telemetry-db of `mobile-ml serve`: a SQLite file or postgresql:// URL.")
    ] = "telemetry.db",
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="public.pem (or its directory): also verify each manifest.")
    ] = None,
    root: Root = "exports",
    json: Json = False,
) -> None:
    """Per channel: manifest version, release, rollout and halt, expiry; devices by the version they run now (each
    install once, at its latest report), adoption per day, update failures since the manifest, drift. Exit 3 when a
    manifest fails its signature check."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.errors import GateError
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.keys import load_public
    from mobile_ml.publish.status import release_status

    key = load_public(public_key) if public_key is not None else None
    report = release_status(root, model, db, public_key=key)
    if json:
        typer.echo(dumps(document_dict(report)), nl=False)
    else:
        for table in _tables(report):
            console.out.print(table)
    if not report.ok:
        bad = ", ".join(c.channel for c in report.channels if c.signature.value == "failed")
        raise GateError(
            f"{model}: the manifest of {bad} fails its signature check", hint="run `mobile-ml release verify`"
        )


def _versions(counts) -> str:
    return "  ".join(f"{c.version} {c.devices} ({c.share:.0%})" for c in counts) or "—"


def _expiry(c, now) -> str:
    from mobile_ml.contracts.manifest import format_time

    days = (c.expires - now).total_seconds() / 86400
    return f"{format_time(c.expires)} (" + ("EXPIRED" if c.expired else f"in {days:.1f} d") + ")"


def _tables(report):
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from mobile_ml.cli.layout import Fit

    t = Table(
        title=f"{escape(report.model)} in {escape(report.root)} · telemetry {escape(report.telemetry)}",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
    )
    for col in ("channel", "release", "manifest", "rollout", "expires", "signature", "fail %", "drift"):
        t.add_column(col)
    t.add_column("devices now", overflow="fold")
    for c in report.channels:
        rollout = f"{c.rollout_percent:g}%" + (" HALTED" if c.halted else "")
        rollout += f", else {escape(c.fallback)}" if c.fallback else ""
        fail = "—" if c.failure_rate is None else f"{c.failure_rate:.1%} of {c.updates_applied + c.updates_failed}"
        drift = "n/a" if c.drift is None else ("DRIFT" if c.drift else "none")
        t.add_row(
            escape(c.channel),
            escape(c.version),
            f"v{c.manifest_version} {escape(c.action)}",
            rollout,
            _expiry(c, report.generated_at),
            c.signature.value,
            fail,
            drift,
            escape(_versions(c.devices)),
        )
    yield Fit(t)
    if report.unassigned_devices:
        yield f"{report.unassigned_devices} more devices report no channel (older clients)"
    for c in report.channels:
        if not c.adoption:
            continue
        a = Table(title=f"{escape(c.channel)}: adoption per day (installs reporting that day)", box=box.SIMPLE_HEAD)
        for col in ("day", "installs"):
            a.add_column(col)
        a.add_column("versions", overflow="fold")
        for d in c.adoption[-ADOPTION_DAYS_SHOWN:]:
            a.add_row(d.day, str(d.installs), escape(_versions(d.versions)))
        yield Fit(a)
