"""``mobile-ml``: a thin Typer layer over the library. Parsing, rendering and exit codes live here; work does not.

Exit codes: 0 success · 1 internal error (a bug: rerun with --debug) · 2 bad input or usage · 3 a quality gate
failed (`retrain`: the challenger did not win) · 4 a benchmark regression · 5 `monitor` found drift · 130 interrupted.
"""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from mobile_ml import __version__, _tf
from mobile_ml.cli import console
from mobile_ml.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, MobileMLError


def _framework_exceptions() -> tuple[type[BaseException], ...]:
    """Exceptions Typer itself turns into usage messages and exit codes (it vendors click from 0.29 on)."""
    found: list[type[BaseException]] = [typer.Exit, typer.Abort]
    try:
        from typer.exceptions import TyperException

        found.append(TyperException)
    except ImportError:
        pass
    try:
        import click

        found += [click.exceptions.Exit, click.ClickException, click.Abort]
    except ImportError:
        pass
    return tuple(found)


_PASS_THROUGH = _framework_exceptions()


class _ErrorBoundary(TyperGroup):
    """The one place where errors become messages and exit codes."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except MobileMLError as e:
            console.traceback_if_debug()
            console.error(e.message, e.hint)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            console.traceback_if_debug()
            console.error("interrupted", "nothing was written: outputs appear only when a stage completes")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:  # a bug, not the user's fault
            console.traceback_if_debug()
            console.error(
                f"internal error: {type(e).__name__}: {e}", "rerun with --debug for the traceback, and please report it"
            )
            raise typer.Exit(EXIT_INTERNAL) from None


app = typer.Typer(
    cls=_ErrorBoundary,
    help="Carry a model from a dataset to phones: data → train → export → benchmark → publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mobile-ml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and TensorFlow's own logs.")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    console.state.debug = debug
    _tf.configure_environment(debug=debug)


def _register() -> None:
    from mobile_ml.cli import (
        benchmark_cmd,
        capture_cmd,
        check_server_cmd,  # noqa: F401  (registers `release check-server` on publish_cmd.release_app)
        cycle_cmd,
        data_cmd,
        device_cmd,
        evaluate_cmd,
        export_cmd,
        monitor_cmd,
        pipeline_cmd,
        publish_cmd,
        retrain_cmd,
        serve_cmd,
        status_cmd,  # noqa: F401  (registers `release status` on publish_cmd.release_app)
        train_cmd,
    )

    app.add_typer(data_cmd.app, name="data")
    app.command("train")(train_cmd.train)
    app.command("export")(export_cmd.export)
    app.command("evaluate")(evaluate_cmd.evaluate)
    app.add_typer(benchmark_cmd.app, name="benchmark")
    app.add_typer(publish_cmd.keys_app, name="keys")
    app.command("publish")(publish_cmd.publish)
    app.add_typer(publish_cmd.release_app, name="release")
    app.command("serve")(serve_cmd.serve)
    app.add_typer(serve_cmd.telemetry_app, name="telemetry")
    app.add_typer(device_cmd.app, name="device")
    app.command("retrain")(retrain_cmd.retrain)
    app.command("monitor")(monitor_cmd.monitor)
    app.add_typer(capture_cmd.app, name="capture")
    app.command("quickstart")(pipeline_cmd.quickstart)
    app.command("pipeline")(pipeline_cmd.pipeline)
    app.command("cycle")(cycle_cmd.cycle)


_register()


def main() -> None:
    """The ``mobile-ml`` console script: the app, then ``_exit``."""
    try:
        app(prog_name="mobile-ml")
        code: object = 0
    except SystemExit as e:
        code = e.code
    _exit(code)


def _exit(code: object) -> NoReturn:
    """Leave as the interpreter would, without its teardown.

    What any exit does is done here, in the interpreter's order: non-daemon threads are waited for, atexit handlers
    run, stdout and stderr are flushed (a failure there exits 120, as Python's does). What is skipped is the teardown
    of every module after that: 0.8 s with TensorFlow loaded, 0.05 s with pandas (``python -c "import tensorflow"``
    against the same plus this exit, on this machine). Nothing is left unwritten by skipping it: a command writes
    and closes its outputs, atomically, before it returns.
    """
    import atexit
    import os
    import sys
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as the interpreter does
        print(code, file=sys.stderr)
        status = 1
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # not CPython: the ordinary exit
        sys.exit(status)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`), or a stream already closed
            status = status or 120
    os._exit(status)
