"""The console script's exit (``mobile_ml.cli._exit``): everything an interpreter exit does, without the module
teardown after it. Each test runs ``main()`` in a real subprocess, since the exit ends the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PRELUDE = "import atexit, sys, threading, time\nfrom mobile_ml.cli import main, _exit\n"


def _run(code: str, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for most users
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_exit_codes_and_messages_are_the_commands(tmp_path):
    ok = _run("sys.argv = ['mobile-ml', '--version']; main()")
    assert ok.returncode == 0 and ok.stdout.startswith("mobile-ml ")
    bad = _run(f"sys.argv = ['mobile-ml', 'data', 'profile', {str(tmp_path / 'none.csv')!r}]; main()")
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("code", "status", "stderr"), [("None", 0, ""), ("3", 3, ""), ("'gone'", 1, "gone\n")])
def test_a_system_exit_code_means_what_it_means_to_python(code, status, stderr):
    done = _run(f"_exit({code})")
    assert (done.returncode, done.stderr) == (status, stderr)


def test_buffered_output_written_at_exit_is_not_lost(tmp_path):
    """An atexit handler's print to a pipe sits in the buffer: without the flush it is gone with the process."""
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{'yn'[i % 2]}\n" for i in range(50)))
    done = _run(
        "atexit.register(lambda: print('atexit ran'))\n"
        "sys.argv = ['mobile-ml', 'data', 'profile', sys.argv[1], '--json', '-']; main()",
        str(csv),
    )
    assert done.returncode == 0, done.stderr
    report, _, tail = done.stdout.rpartition("}")
    assert json.loads(report + "}")["rows"] == 50
    assert tail.strip() == "atexit ran"


def test_a_running_thread_is_waited_for_as_at_any_exit():
    done = _run(
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True))).start()\n"
        "sys.argv = ['mobile-ml', '--version']; main()"
    )
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "thread done"
