"""``mobile-ml release check-server``: probe a live front of a publish root against the update protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console
from mobile_ml.cli.publish_cmd import Json, release_app


@release_app.command("check-server")
def check_server(
    url: Annotated[str, typer.Argument(help="The publish root as devices reach it, e.g. https://cdn.example/models/.")],
    model: Annotated[str, typer.Option("--model", "-m")],
    channel: Annotated[str, typer.Option("--channel", "-c")],
    public_key: Annotated[
        Path | None, typer.Option("--public-key", help="public.pem (or its directory): also verify the signature.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for each connect and read.")] = 10.0,
    json: Json = False,
) -> None:
    """Check that a server, CDN or bucket keeps what devices rely on: strong ETags and 304, Range and If-Range,
    416, HEAD, per-path Cache-Control, no listings, nothing outside the root, signed hashes; exit 3 on any failure."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.deliver.conformance import check_server as run
    from mobile_ml.deliver.conformance import require
    from mobile_ml.outputs import dumps
    from mobile_ml.publish.keys import load_public

    key = load_public(public_key) if public_key is not None else None
    report = run(url, model, channel, public_key=key, timeout=timeout)
    if json:
        typer.echo(dumps(document_dict(report)), nl=False)
    else:
        console.out.print(_table(report))
    require(report)


def _table(report):
    import re

    from rich.markup import escape
    from rich.table import Table

    from mobile_ml.cli.layout import Fit

    t = Table(title=f"{escape(report.url)} · {report.model}/{report.channel}")
    t.add_column("check")
    t.add_column("result")
    t.add_column("detail", overflow="fold")
    for c in report.checks:
        detail = re.sub(r"[0-9a-f]{64}", lambda m: m[0][:12] + "…", c.detail)  # blob names and hashes; --json has all
        t.add_row(c.check.value, "[green]pass[/]" if c.passed else "[red]FAIL[/]", escape(detail))
    return Fit(t)
