# stand-in: replaced by byom-data's module at merge
"""Minimal stand-in of the evaluation-data loader (.npz only) with the interface's signature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.errors import DataError, InputFileError


@dataclass(frozen=True)
class Examples:
    x: dict[str, np.ndarray]
    y: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.x.values())))

    def take(self, n: int, seed: int) -> Examples:
        idx = np.sort(np.random.default_rng(seed).permutation(len(self))[: min(n, len(self))])
        return Examples({k: v[idx] for k, v in self.x.items()}, None if self.y is None else self.y[idx], self.source)


def load_examples(
    path: str | Path,
    inputs: Sequence,
    *,
    option: str,
    labelled: bool,
    target: str | None = None,
    labels: Sequence[str] | None = None,
    input_range: tuple[float, float] | None = None,
) -> Examples:
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        raise InputFileError(f"{option} {path}: not an .npz file", hint="pass an .npz with arrays x and y")
    with np.load(path) as z:
        arrays = dict(z)
    x: dict[str, Any]
    if len(inputs) == 1:
        x = {inputs[0].name: arrays.get("x", arrays.get(f"x_{inputs[0].name}"))}
    else:
        x = {i.name: arrays.get(f"x_{i.name}") for i in inputs}
    for spec in inputs:
        rows = x[spec.name]
        if rows is None:
            raise DataError(f"{option} {path} has no array for input {spec.name}", hint="name it x_<input name>")
        if tuple(rows.shape[1:]) != tuple(d for d in spec.shape):
            raise DataError(
                f"{option} {path}: rows of shape {list(rows.shape[1:])}, the model's input {spec.name} takes "
                f"{list(spec.shape)}",
                hint="pass data shaped like the model's input",
            )
        x[spec.name] = rows.astype(spec.dtype)
    y = arrays.get("y")
    if labelled and y is None:
        raise DataError(f"{option} {path} has no array y", hint="labelled data needs y")
    return Examples(x, y, str(path))


def load_labels(path: str | Path) -> tuple[str, ...]:
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if any(not line for line in lines) or len(set(lines)) != len(lines):
        raise DataError(f"{path}: blank or duplicate labels", hint="one distinct label per line")
    return tuple(lines)
