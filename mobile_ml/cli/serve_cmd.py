"""``mobile-ml serve`` and ``mobile-ml telemetry summary``."""

from __future__ import annotations

from pathlib import Path

import typer

from mobile_ml.cli import console, render

telemetry_app = typer.Typer(help="Device telemetry collected by `mobile-ml serve`.", no_args_is_help=True)


def serve(
    root: Path = typer.Argument(Path("exports"), help="Publish root to serve (read-only)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface; 0.0.0.0 exposes it to the network."),
    port: int = typer.Option(8000, "--port"),
    telemetry_db: Path | None = typer.Option(
        Path("telemetry.db"), "--telemetry-db", help="SQLite file for POST /v1/telemetry (outside the root)."
    ),
    telemetry_token: str | None = typer.Option(
        None,
        "--telemetry-token",
        envvar="MOBILE_ML_TELEMETRY_TOKEN",
        help="Shared ingest token devices send as `Authorization: Bearer <token>`; without it anyone may post.",
    ),
    telemetry_rate: float = typer.Option(
        20.0, "--telemetry-rate", help="Telemetry requests per second per client address (burst 10 s); 0: no limit."
    ),
    max_connections: int = typer.Option(
        1000, "--max-connections", help="Open connections at once (at most what `ulimit -n` allows)."
    ),
    idle_timeout: float = typer.Option(5.0, "--idle-timeout", help="Seconds a connection may wait between requests."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds to send a request's headers."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", help="Seconds to send a request's body."),
) -> None:
    """Serve a publish root over HTTP with ETags, ranges and cache headers, and accept device telemetry."""
    from mobile_ml.deliver.guard import Limits
    from mobile_ml.deliver.server import check_options
    from mobile_ml.deliver.server import serve as run

    limits = Limits(idle_timeout, header_timeout, body_timeout, max_connections)
    check_options(root, telemetry_db, telemetry_token)
    console.err().print(
        f"serving {render.escape(str(root))} on http://{host}:{port}/ "
        f"(telemetry → {render.escape(str(telemetry_db))}); Ctrl-C or SIGTERM stops it"
    )
    run(
        root,
        host=host,
        port=port,
        telemetry_db=telemetry_db,
        telemetry_token=telemetry_token,
        telemetry_rate=telemetry_rate,
        limits=limits,
    )


@telemetry_app.command("summary")
def summary(
    db: Path = typer.Option(Path("telemetry.db"), "--db", help="The --telemetry-db of `mobile-ml serve`."),
    json: bool = typer.Option(False, "--json", help="Print JSON to stdout."),
) -> None:
    """Per model version and device model: devices, adoption, on-device latency p50/p90, failure rate."""
    from dataclasses import asdict

    from mobile_ml.deliver.telemetry import summary as run
    from mobile_ml.outputs import dumps

    rows = run(db)
    if json:
        typer.echo(
            dumps({"schema": "mobile_ml.telemetry_summary", "schema_version": 1, "rows": [asdict(r) for r in rows]}),
            nl=False,
        )
        return
    console.out.print(render.telemetry_table(rows))
