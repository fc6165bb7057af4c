"""Mutation check: remove or bend each defence and each stage rule in a scratch copy, and watch its tests fail.

    python benchmarks/mutation_check.py [--only NAME,...] [--group stages|channel] [--out FILE.json] [--list]

A test suite that still passes when the code it guards is broken proves nothing. Each mutant below is one small,
realistic bug (the kind a refactor introduces), listed in `mutants.py`: a text replacement in one file, and the
tests that should catch it. The named tests first run once on an unmutated copy: they must pass there.
For every mutant the script copies the working tree to a temporary directory (tracked files only), applies the
replacement there, runs the named tests with that copy first on ``PYTHONPATH``, and records:

- ``killed``: the tests failed, as they must;
- ``survived``: the tests passed with the bug in place (a hole in the suite);
- ``stale``: the text to replace is no longer in the file (the code moved: update the mutant).

The exit code is 0 only if every mutant is killed. Nothing outside the temporary copies is touched. Results go to
``benchmarks/results/mutation_check.json`` and a table on stdout (the README quotes it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import MUTANTS, Mutant  # noqa: E402  (the list lives beside this file, so this one stays short)


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def _scratch_copy(dest: Path, files: list[str]) -> None:
    for rel in files:
        src = ROOT / rel
        if not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


@dataclass
class Outcome:
    name: str
    group: str
    what: str
    result: str  # killed | survived | stale
    killed_by: str  # first failing test line, or ""
    seconds: float


def _first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" ", 1)[1].split(" - ")[0]
    return ""


def run_mutant(m: Mutant, files: list[str], timeout: float) -> Outcome:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        scratch = Path(tmp)
        _scratch_copy(scratch, files)
        path = scratch / m.file
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        if text.count(m.old) != 1:
            return Outcome(m.name, m.group, m.what, "stale", "", 0.0)
        path.write_text(text.replace(m.old, m.new), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *m.tests]
        try:
            proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
            output, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired:
            output, code = "timed out", -1
    seconds = time.perf_counter() - start
    if code == 0:
        return Outcome(m.name, m.group, m.what, "survived", "", seconds)
    if code == 5 or "no tests ran" in output or "ERROR: not found" in output:
        # The named tests do not exist: that is a broken mutant definition, not a kill.
        return Outcome(m.name, m.group, m.what, "stale", "tests not found", seconds)
    return Outcome(m.name, m.group, m.what, "killed", _first_failure(output) or "timed out", seconds)


def _table(outcomes: list[Outcome]) -> str:
    lines = ["| mutant | group | the bug | result | killed by |", "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        lines.append(
            f"| {o.name} | {o.group} | {o.what} | {o.result} | `{o.killed_by}` |"
            if o.killed_by
            else f"| {o.name} | {o.group} | {o.what} | {o.result} | |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated mutant names")
    ap.add_argument("--group", choices=["stages", "channel"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mutation_check.json")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = ap.parse_args()
    mutants = MUTANTS
    if args.only:
        wanted = set(args.only.split(","))
        mutants = tuple(m for m in mutants if m.name in wanted)
    if args.group:
        mutants = tuple(m for m in mutants if m.group == args.group)
    if args.list:
        for m in mutants:
            print(f"{m.name:32} {m.group:8} {m.what}")
        return 0
    files = _tracked_files()
    # Control: the same tests on an unmutated copy must pass, or a "kill" would mean nothing.
    control = run_mutant(
        Mutant(
            "control",
            "control",
            "no change",
            "pyproject.toml",
            "[project]",
            "[project]",
            tuple(sorted({t for m in mutants for t in m.tests})),
        ),
        files,
        args.timeout,
    )
    if control.result != "survived":
        print(f"the named tests fail without any mutant ({control.killed_by}); fix them first", file=sys.stderr)
        return 2
    outcomes = []
    for i, m in enumerate(mutants, 1):
        o = run_mutant(m, files, args.timeout)
        outcomes.append(o)
        print(f"[{i}/{len(mutants)}] {o.name}: {o.result} ({o.seconds:.0f} s) {o.killed_by}", file=sys.stderr)
    killed = sum(o.result == "killed" for o in outcomes)
    print(_table(outcomes))
    print(f"\n{killed}/{len(outcomes)} mutants killed")
    if not (args.only or args.group):  # only a full run replaces the recorded figures
        doc = {
            "schema": "mobile_ml.mutation_check",
            "schema_version": 1,
            "killed": killed,
            "total": len(outcomes),
            "mutants": [asdict(o) for o in outcomes],
        }
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
