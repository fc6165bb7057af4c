"""Parts of ``export.json`` for models that did not come from a run: where the model came from (``ModelSource``),
what it predicts (``Task``), regression figures, and every output's difference from the source model.

Files written before these existed read as a run's classification export (see ``ExportResult.from_dict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.contracts import Fields
from mobile_ml.contracts.variants import TextEnum


class Task(TextEnum):
    CLASSIFICATION = "classification"  # one softmax (or sigmoid) output over `labels`: accuracy parity
    REGRESSION = "regression"  # real-valued outputs on the target's scale: error parity


class SourceKind(TextEnum):
    RUN = "run"  # a training run directory (model.keras written by `mobile-ml train`)
    FILE = "file"  # a model file or directory the user brought


@dataclass(frozen=True)
class ModelSource:
    """Where the exported model came from; ``path`` is absolute once read (relative to the exports dir on disk)."""

    kind: SourceKind
    path: Path
    form: str  # a ModelForm value (mobile_ml.export.model_file)
    sha256: str  # of the model file (a run: of its model.keras); "" in files written before this was recorded

    @classmethod
    def from_dict(cls, f: Fields) -> ModelSource:
        s = cls(
            f.choice("kind", SourceKind),
            Path(f.string("path")),
            f.string("form", pattern=r"[a-z0-9_]+"),
            f.string("sha256", pattern=r"([0-9a-f]{64})?"),
        )
        f.done()
        return s

    def to_dict(self, relative_to: Path | None = None) -> dict[str, Any]:
        import os

        path = self.path
        if relative_to is not None and path.is_absolute() and relative_to.is_absolute():
            path = Path(os.path.relpath(path, relative_to))
        return {"kind": self.kind.value, "path": path.as_posix(), "form": self.form, "sha256": self.sha256}


@dataclass(frozen=True)
class RegressionFigures:
    """A regression model's error against the true targets (the Keras model's in ``export.json``'s ``keras``)."""

    mae: float
    rmse: float
    examples: int

    @classmethod
    def from_dict(cls, f: Fields) -> RegressionFigures:
        r = cls(f.number("mae", lo=0.0), f.number("rmse", lo=0.0), f.integer("examples", lo=0))
        f.done()
        return r

    def to_dict(self) -> dict[str, Any]:
        return {"mae": self.mae, "rmse": self.rmse, "examples": self.examples}


@dataclass(frozen=True)
class RegressionParity:
    """A variant's regression outputs against the Keras model's on the evaluation rows (the target's scale).

    ``mae`` (mean |Δ| against Keras) is what ``--max-error`` gates: the average amount by which converting moved a
    prediction, in the target's own units. ``max_abs_diff`` is the worst row. ``target`` is the variant's own error
    against the true targets, beside the Keras model's in ``export.json``'s ``keras_regression``.
    """

    examples: int
    mae: float
    rmse: float
    max_abs_diff: float
    target: RegressionFigures | None  # None when the evaluation data has no targets

    @classmethod
    def from_dict(cls, f: Fields) -> RegressionParity:
        p = cls(
            f.integer("examples", lo=0),
            f.number("mae", lo=0.0),
            f.number("rmse", lo=0.0),
            f.number("max_abs_diff", lo=0.0),
            RegressionFigures.from_dict(t) if (t := f.opt_obj("target")) is not None else None,
        )
        f.done()
        return p

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "mae": self.mae,
            "rmse": self.rmse,
            "max_abs_diff": self.max_abs_diff,
            "target": self.target.to_dict() if self.target else None,
        }


@dataclass(frozen=True)
class OutputDiff:
    """One output tensor of a variant against the same output of the Keras model, on every evaluation row."""

    name: str
    max_abs_diff: float
    mean_abs_diff: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_abs_diff) and math.isfinite(self.mean_abs_diff)):
            raise ValueError(f"output {self.name}: differences must be finite")

    @classmethod
    def from_dict(cls, f: Fields) -> OutputDiff:
        d = cls(f.string("name"), f.number("max_abs_diff", lo=0.0), f.number("mean_abs_diff", lo=0.0))
        f.done()
        return d

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff}
