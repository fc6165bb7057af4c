"""Terminal output: results on stdout, progress and errors on stderr.

The stderr console writes to a duplicate of file descriptor 2 taken at start-up, because the library silences fd 2
while TensorFlow's native code runs (see mobile_ml._tf.quiet_stderr) and our own messages must still get through.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape


@dataclass
class _State:
    debug: bool = False


state = _State()


def _stderr_file():
    try:
        if sys.__stderr__ is not None and sys.stderr is sys.__stderr__ and sys.stderr.fileno() == 2:
            return os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    except (OSError, ValueError, AttributeError):  # no real fd 2, e.g. under a test runner's capture
        pass
    return None


# soft_wrap: plain lines (paths, commands to copy) are never wrapped or cut at the width rich guesses for a pipe
# (80 columns); tables lay themselves out (mobile_ml.cli.layout).
out = Console(highlight=False, soft_wrap=True)
_err = Console(file=f, highlight=False) if (f := _stderr_file()) is not None else None


def err() -> Console:
    # Built per call when there is no private fd, so test runners that swap sys.stderr still capture us.
    return _err or Console(file=sys.stderr, highlight=False)


def traceback_if_debug() -> None:
    """With --debug, the full traceback of the exception being handled goes to stderr before the message."""
    if state.debug:
        import traceback

        err().print(traceback.format_exc(), markup=False, highlight=False, end="")


def error(message: str, hint: str | None = None) -> None:
    c = err()
    c.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    if hint:
        c.print(f"[dim]hint:[/] {escape(hint)}", soft_wrap=True)


def info(message: str) -> None:
    err().print(message, soft_wrap=True)
