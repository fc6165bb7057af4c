"""``mobile-ml serve`` and ``mobile-ml telemetry summary``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render

telemetry_app = typer.Typer(help="Device telemetry collected by `mobile-ml serve`.", no_args_is_help=True)


def serve(
    root: Annotated[Path, typer.Argument(help="Publish root to serve (read-only).")] = Path("exports"),
    host: Annotated[str, typer.Option("--host", help="Interface; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    telemetry_db: Annotated[  # str, not Path: Path("postgresql://h/db") would fold the "//"
        str | None,
        typer.Option(
            "--telemetry-db",
            help="Where POST /v1/telemetry stores: a SQLite file (outside the root), or postgresql://USER:PASS@HOST/DB"
            " shared by several servers.",
        ),
    ] = "telemetry.db",
    telemetry_token: Annotated[
        str | None,
        typer.Option(
            "--telemetry-token",
            envvar="MOBILE_ML_TELEMETRY_TOKEN",
            help="Shared ingest token devices send as `Authorization: Bearer <token>`; without it anyone may post.",
        ),
    ] = None,
    telemetry_rate: Annotated[
        float,
        typer.Option(
            "--telemetry-rate", help="Telemetry requests per second per client address (burst 10 s); 0: no limit."
        ),
    ] = 20.0,
    max_connections: Annotated[
        int, typer.Option("--max-connections", help="Open connections at once (at most what `ulimit -n` allows).")
    ] = 1000,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", help="Seconds a connection may wait between requests.")
    ] = 5.0,
    header_timeout: Annotated[
        float, typer.Option("--header-timeout", help="Seconds to send a request's headers.")
    ] = 10.0,
    body_timeout: Annotated[float, typer.Option("--body-timeout", help="Seconds to send a request's body.")] = 30.0,
    print_nginx_config: Annotated[
        bool, typer.Option("--print-nginx-config", help="Print an nginx server block for ROOT instead of serving.")
    ] = False,
    listen: Annotated[str, typer.Option("--listen", help="With --print-nginx-config: nginx's HOST:PORT.")] = (
        "127.0.0.1:8080"
    ),
    telemetry_upstream: Annotated[
        str | None,
        typer.Option("--telemetry-upstream", help="With --print-nginx-config: a `mobile-ml serve` for telemetry."),
    ] = None,
    capture_store: Annotated[
        str | None,
        typer.Option(
            "--capture-store",
            help="Where POST /v1/capture stores consented samples: a directory (outside the root) or s3://BUCKET/PREFIX."
            " Default: capture off (404).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Server processes on the one port (about one per core); limits and the telemetry rate are per worker.",
        ),
    ] = 1,
) -> None:
    """Serve a publish root over HTTP with ETags, ranges and cache headers, and accept device telemetry."""
    if print_nginx_config:  # only the configuration on stdout, so `> nginx.conf` works
        from mobile_ml.deliver.nginx import config

        typer.echo(config(root, listen=listen, telemetry_upstream=telemetry_upstream), nl=False)
        return
    from mobile_ml.deliver.guard import Limits
    from mobile_ml.deliver.ports import check_free
    from mobile_ml.deliver.server import check_options
    from mobile_ml.deliver.server import serve as run
    from mobile_ml.deliver.telemetry import describe, open_store
    from mobile_ml.deliver.workers import check_count

    limits = Limits(idle_timeout, header_timeout, body_timeout, max_connections)
    check_options(root, telemetry_db, telemetry_token)
    if capture_store is not None and "://" not in capture_store:
        store, served = Path(capture_store).resolve(), root.resolve()
        if store == served or served in store.parents:  # raw user inputs: never beside what is served
            from mobile_ml.errors import ConfigError

            raise ConfigError(
                f"the capture store {capture_store} is inside the served root {root}",
                hint="pass --capture-store a directory outside the publish root",
            )
    check_count(workers)
    check_free(host, port)  # before "serving…": a busy port is one line and exit 2, not uvicorn's [Errno 98]
    if telemetry_db is not None:
        open_store(telemetry_db).close()  # before "serving…": an unreachable database is exit 2; creates/migrates
    console.info(
        f"serving {render.escape(str(root))} on http://{host}:{port}/ "
        f"(telemetry → {render.escape(describe(telemetry_db) if telemetry_db else 'off')}"
        f"{f', {workers} workers' if workers > 1 else ''}); Ctrl-C or SIGTERM stops it"
    )
    run(
        root,
        host=host,
        port=port,
        telemetry_db=telemetry_db,
        telemetry_token=telemetry_token,
        telemetry_rate=telemetry_rate,
        limits=limits,
        workers=workers,
        capture_store=capture_store,
    )


@telemetry_app.command("summary")
def summary(
    db: Annotated[
        str, typer.Option("--db", help="The --telemetry-db of `mobile-ml serve`: a SQLite file or postgresql:// URL.")
    ] = "telemetry.db",
    json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Per model, channel, version and device model: devices running it now (each install once, at its latest
    report), their share, on-device latency p50/p90, failure rate."""
    from dataclasses import asdict

    from mobile_ml.deliver.telemetry import SUMMARY_SCHEMA, SUMMARY_SCHEMA_VERSION
    from mobile_ml.deliver.telemetry import summary as run
    from mobile_ml.outputs import dumps

    rows = run(db)
    if json:
        doc = {"schema": SUMMARY_SCHEMA, "schema_version": SUMMARY_SCHEMA_VERSION, "rows": [asdict(r) for r in rows]}
        typer.echo(dumps(doc), nl=False)
        return
    console.out.print(render.telemetry_table(rows))
