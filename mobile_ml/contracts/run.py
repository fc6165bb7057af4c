"""``run.json`` and ``metrics.json``: what a training run records about itself, for the stages after it.

``run.json`` is the lineage (data hash, config, seed, versions, timings) and the selection: every candidate's
validation scores and which one was kept. ``metrics.json`` holds the kept model's test-split metrics in full.
Paths are relative to the run directory: ``data.dir`` (so a pipeline output directory can move as a whole) and
``model.files``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from mobile_ml.contracts._fields import ContractError, Fields
from mobile_ml.contracts.data import integer_list, number_list
from mobile_ml.errors import ConfigError
from mobile_ml.outputs import to_jsonable
from mobile_ml.train.config import Candidate, GridConfig, TrainConfig

_REDO = "mobile-ml train"


class SelectionMetric(str, enum.Enum):
    """What candidates are ranked by. Always a validation score: the test split is looked at once, at the end."""

    VAL_ACCURACY = "val_accuracy"

    def __str__(self) -> str:
        return self.value


# ---------------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int

    @classmethod
    def from_dict(cls, f: Fields) -> ClassMetrics:
        m = cls(
            label=f.string("label"),
            precision=f.number("precision", lo=0, hi=1),
            recall=f.number("recall", lo=0, hi=1),
            f1=f.number("f1", lo=0, hi=1),
            support=f.integer("support", lo=0),
        )
        f.done()
        return m


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    loss: float  # mean cross-entropy
    macro_precision: float
    macro_recall: float
    macro_f1: float
    examples: int
    per_class: list[ClassMetrics]
    confusion_matrix: list[list[int]]  # rows: true label, columns: predicted label

    @classmethod
    def read(cls, f: Fields) -> Metrics:
        """The metric fields of ``f`` (metrics.json keeps them beside ``split`` and ``model``, not nested)."""
        per_class = [ClassMetrics.from_dict(c) for c in f.objs("per_class")]
        matrix = list(f.items("confusion_matrix", lambda row, where: _ints(row, where, f.hint)))
        if len(matrix) != len(per_class) or any(len(row) != len(per_class) for row in matrix):
            raise f.error("confusion_matrix", f"expected {len(per_class)} × {len(per_class)} counts")
        return cls(
            accuracy=f.number("accuracy", lo=0, hi=1),
            loss=f.number("loss", lo=0),
            macro_precision=f.number("macro_precision", lo=0, hi=1),
            macro_recall=f.number("macro_recall", lo=0, hi=1),
            macro_f1=f.number("macro_f1", lo=0, hi=1),
            examples=f.integer("examples", lo=0),
            per_class=per_class,
            confusion_matrix=matrix,
        )


@dataclass(frozen=True)
class MetricsReport:
    """``metrics.json``: one split's metrics of the selected model."""

    SCHEMA: ClassVar[str] = "mobile_ml.metrics"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml metrics file"
    REDO: ClassVar[str] = _REDO

    split: str  # "test"
    model: str  # the selected candidate's name
    metrics: Metrics

    @classmethod
    def from_dict(cls, f: Fields) -> MetricsReport:
        report = cls(split=f.string("split"), model=f.string("model"), metrics=Metrics.read(f))
        f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        return {"split": self.split, "model": self.model, **to_jsonable(self.metrics)}


# ---------------------------------------------------------------------------------------------------- run.json


@dataclass(frozen=True)
class RunData:
    dir: str  # the prepared data directory, relative to the run directory
    data_json_sha256: str | None  # of the data.json trained on; a different one is refused
    source: dict[str, Any]  # data.json's lineage record, copied
    counts: dict[str, int]  # rows per split

    @classmethod
    def from_dict(cls, f: Fields) -> RunData:
        counts = f.obj("counts")
        d = cls(
            dir=_relative(f, "dir", inside=False),
            data_json_sha256=f.opt_string("data_json_sha256", pattern="[0-9a-f]{64}"),
            source=f.mapping("source"),
            counts={k: counts.integer(k, lo=0) for k in counts.raw},
        )
        f.done()
        return d


@dataclass(frozen=True)
class CapturedSource:
    """The second data source of a run made by ``mobile-ml retrain``: captured labelled samples.

    Its rows were split by ``seed`` into the run's extra train and validation rows and a captured test split
    (``counts``); ``data.dir`` stays the original data directory, whose train split was trained on too.
    """

    dir: str  # the captured prepared-data directory, relative to the run directory
    data_json_sha256: str
    source: dict[str, Any]  # the captured data.json's lineage record, copied
    rows: int  # labelled samples read
    counts: dict[str, int]  # of those: rows in train, validation and test
    seed: int

    @classmethod
    def from_dict(cls, f: Fields) -> CapturedSource:
        counts = f.obj("counts")
        c = cls(
            dir=_relative(f, "dir", inside=False),
            data_json_sha256=f.string("data_json_sha256", pattern="[0-9a-f]{64}"),
            source=f.mapping("source"),
            rows=f.integer("rows", lo=0),
            counts={k: counts.integer(k, lo=0) for k in ("train", "validation", "test")},
            seed=f.integer("seed", lo=0),
        )
        counts.done()
        f.done()
        return c


@dataclass(frozen=True)
class ModelFiles:
    keras: str = "model.keras"  # relative to the run directory
    saved_model: str = "saved_model"

    @classmethod
    def from_dict(cls, f: Fields) -> ModelFiles:
        files = cls(keras=_relative(f, "keras"), saved_model=_relative(f, "saved_model"))
        f.done()
        return files


@dataclass(frozen=True)
class ModelRecord:
    family: str
    name: str
    params: int
    input_shape: list[int]
    num_classes: int
    files: ModelFiles
    sha256: dict[str, str]  # file name → digest

    @classmethod
    def from_dict(cls, f: Fields) -> ModelRecord:
        digests = f.obj("sha256")
        shape = integer_list(f, "input_shape", lo=1)
        m = cls(
            family=f.string("family"),
            name=f.string("name"),
            params=f.integer("params", lo=0),
            input_shape=list(shape),
            num_classes=f.integer("num_classes", lo=2),
            files=ModelFiles.from_dict(f.obj("files")),
            sha256={k: digests.string(k, pattern="[0-9a-f]{64}") for k in digests.raw},
        )
        f.done()
        return m


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's validation scores, of the weights early stopping restored."""

    candidate: Candidate
    val_accuracy: float
    val_loss: float
    best_epoch: int  # 1-based epoch whose weights were kept (lowest val_loss)
    epochs_run: int
    params: int
    seconds: float

    @classmethod
    def from_dict(cls, f: Fields) -> CandidateScore:
        name = f.string("name")  # derived from the hyper-parameters; written for people reading the file
        score = cls(
            candidate=Candidate(
                index=f.integer("index", lo=0),
                family=f.string("family"),
                width=f.integer("width", lo=1),
                depth=f.integer("depth", lo=1),
                learning_rate=f.number("learning_rate"),
                dropout=f.number("dropout"),
            ),
            val_accuracy=f.number("val_accuracy", lo=0, hi=1),
            val_loss=f.number("val_loss"),
            best_epoch=f.integer("best_epoch", lo=1),
            epochs_run=f.integer("epochs_run", lo=1),
            params=f.integer("params", lo=0),
            seconds=f.number("seconds", lo=0),
        )
        if name != score.candidate.name:
            raise f.error("name", f"{name!r} does not match the hyper-parameters ({score.candidate.name})")
        f.done()
        return score

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.candidate.name,
            **to_jsonable(self.candidate),
            "val_accuracy": self.val_accuracy,
            "val_loss": self.val_loss,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "params": self.params,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Selection:
    metric: SelectionMetric
    selected: str  # name of the kept candidate, one of ``candidates``
    candidates: list[CandidateScore]

    @classmethod
    def from_dict(cls, f: Fields) -> Selection:
        s = cls(
            metric=f.choice("metric", SelectionMetric),
            selected=f.string("selected"),
            candidates=[CandidateScore.from_dict(c) for c in f.objs("candidates")],
        )
        if s.selected not in {c.candidate.name for c in s.candidates}:
            raise f.error("selected", f"{s.selected!r} is not one of the candidates")
        f.done()
        return s

    @property
    def kept(self) -> CandidateScore:
        return next(c for c in self.candidates if c.candidate.name == self.selected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric.value,
            "selected": self.selected,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass(frozen=True)
class EvaluationSummary:
    accuracy: float
    macro_f1: float
    loss: float

    @classmethod
    def from_dict(cls, f: Fields) -> EvaluationSummary:
        t = cls(f.number("accuracy", lo=0, hi=1), f.number("macro_f1", lo=0, hi=1), f.number("loss", lo=0))
        f.done()
        return t


@dataclass(frozen=True)
class RunRecord:
    """``run.json``."""

    SCHEMA: ClassVar[str] = "mobile_ml.run"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml run description"
    REDO: ClassVar[str] = _REDO

    created_at: str  # ISO 8601, UTC
    data: RunData
    config: TrainConfig
    seed: int
    model: ModelRecord
    selection: Selection
    test: EvaluationSummary
    timings: dict[str, float]  # seconds per phase
    environment: dict[str, Any]  # library versions and machine
    # Runs made by `mobile-ml retrain` only; absent from every other run.json, so those read as before.
    captured: CapturedSource | None = None

    @classmethod
    def from_dict(cls, f: Fields) -> RunRecord:
        timings = f.obj("timings")
        captured = f.opt_obj("captured")
        record = cls(
            created_at=f.string("created_at"),
            data=RunData.from_dict(f.obj("data")),
            config=_train_config(f),
            seed=f.integer("seed", lo=0),
            model=ModelRecord.from_dict(f.obj("model")),
            selection=Selection.from_dict(f.obj("selection")),
            test=EvaluationSummary.from_dict(f.obj("test")),
            timings={k: timings.number(k, lo=0) for k in timings.raw},
            environment=f.mapping("environment"),
            captured=None if captured is None else CapturedSource.from_dict(captured),
        )
        f.done()
        return record

    def to_dict(self) -> dict[str, Any]:
        d = to_jsonable(self)
        if self.captured is None:
            del d["captured"]  # a plain training run's run.json keeps the keys it always had
        d["selection"] = self.selection.to_dict()  # candidates flattened: name and hyper-parameters side by side
        return d


# ---------------------------------------------------------------------------------------------------- helpers


def _ints(value: Any, where: str, hint: str | None) -> list[int]:
    if not isinstance(value, list):
        raise ContractError(f"{where}: expected a list of counts", field=where, hint=hint)
    return [Fields({"": v}, f"{where}[{i}]", hint=hint).integer("", lo=0) for i, v in enumerate(value)]


def _relative(f: Fields, key: str, *, inside: bool = True) -> str:
    """A path relative to the run directory; ``inside`` also refuses ``..`` (the run's own files)."""
    value = f.string(key, max_len=1024)
    path = PurePosixPath(value)
    if path.is_absolute() or "\\" in value or not path.parts or (inside and ".." in path.parts):
        where = "inside the run directory" if inside else "relative to the run directory"
        raise f.error(key, f"{value!r} must be a path {where}")
    return value


def _train_config(f: Fields) -> TrainConfig:
    """The training config, checked by ``TrainConfig`` itself (a value it refuses is a damaged file here)."""
    c = f.obj("config")
    g = c.obj("grid")
    try:
        grid = GridConfig(
            width=tuple(integer_list(g, "width")),
            depth=tuple(integer_list(g, "depth")),
            learning_rate=tuple(number_list(g, "learning_rate")),
            dropout=tuple(number_list(g, "dropout")),
        )
        config = TrainConfig(
            family=c.string("family"),
            epochs=c.integer("epochs"),
            batch_size=c.integer("batch_size"),
            patience=c.integer("patience"),
            seed=c.integer("seed"),
            deterministic=c.boolean("deterministic", default=True),  # runs written before this key existed were
            grid=grid,
        )
    except ConfigError as e:
        raise ContractError(f"{c.where}: {e.message}", field=c.where, hint=f.hint) from e
    g.done()
    c.done()
    return config
