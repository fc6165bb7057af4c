"""One error family for the whole toolchain.

Library code raises these; only the CLI boundary (``mobile_ml.cli``) turns them into a message, a hint and an exit
code. Anything else that escapes is a bug and exits with ``EXIT_INTERNAL``.
"""

from __future__ import annotations

EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_GATE = 3  # a quality gate failed: export parity, a publish root that does not verify
EXIT_REGRESSION = 4  # a benchmark regression gate failed
EXIT_DRIFT = 5  # `monitor` found drift: a result (the report is printed first), not an error
EXIT_INTERRUPTED = 130


class MobileMLError(Exception):
    """Base of every error we expect users to see.

    ``message`` names the problem in one line; ``hint`` says what to do about it.
    """

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UserError(MobileMLError):
    """The input was wrong: a file, an option, a config value. Exit code 2."""

    exit_code = EXIT_USER


class InputFileError(UserError):
    """A file the user named is missing, unreadable or malformed."""


class DataError(UserError):
    """The data cannot be used as asked: unknown column, one class, too few rows, ..."""


class ConfigError(UserError):
    """A TOML config or an option value is invalid; the message names the key."""


class OutputError(UserError):
    """The output location exists (without --force) or cannot be written."""


class GateError(MobileMLError):
    """A quality gate failed: the work ran, but its result is not good enough. Exit code 3."""

    exit_code = EXIT_GATE


class RegressionError(MobileMLError):
    """A benchmark comparison found a slowdown beyond the limit. Exit code 4."""

    exit_code = EXIT_REGRESSION
