"""The mutants ``mutation_check.py`` applies: one realistic bug each, and the tests that must catch it.

``old`` must occur exactly once in ``file``; keep it short but unique. ``tests`` are pytest node ids (a file, a
test, or ``file::test``); the fewer, the faster the check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    group: str  # "stages" (data, train, export, benchmark) or "channel" (publish, serve, client: the threat rows)
    what: str  # the bug, in words
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = ()
