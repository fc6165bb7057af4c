"""``cycle.json``: what one ``mobile-ml cycle`` did, step by step, written into its evidence directory.

Every step that ran is listed in order with its outcome, the files it wrote (relative to the evidence directory)
and its wall time, so a reader can see why the cycle stopped where it did and find each step's own evidence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.outputs import to_jsonable


class StepName(str, enum.Enum):
    MONITOR = "monitor"
    CAPTURE = "capture"
    RETRAIN = "retrain"
    EXPORT = "export"
    BENCHMARK = "benchmark"
    PUBLISH = "publish"

    def __str__(self) -> str:
        return self.value


class Trigger(str, enum.Enum):
    DRIFT = "drift"  # the monitor found drift
    LABELLED = "labelled"  # enough labelled samples were captured
    BOTH = "drift_and_labelled"
    NONE = "none"  # neither: the cycle stops after the monitor

    def __str__(self) -> str:
        return self.value


class Outcome(str, enum.Enum):
    STOPPED = "stopped"  # nothing to retrain for (exit 0)
    PUBLISHED = "published"  # the challenger won and is on the channel (exit 0)
    NOT_PUBLISHED = "not_published"  # the challenger lost, or no variant passed the export gate (exit 3)
    FAILED = "failed"  # a step after the monitor raised a user error (exit 2); the last step says which

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Step:
    name: StepName
    outcome: str  # one line: what the step found or did
    seconds: float
    paths: dict[str, str]  # what it wrote, relative to the evidence directory

    @classmethod
    def from_dict(cls, f: Fields) -> Step:
        paths = f.mapping("paths")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in paths.items()):
            raise f.error("paths", "must map names to relative paths (strings)")
        s = cls(
            name=f.choice("name", StepName),
            outcome=f.string("outcome"),
            seconds=f.number("seconds", lo=0),
            paths=paths,
        )
        f.done()
        return s


@dataclass(frozen=True)
class CycleReport:
    SCHEMA: ClassVar[str] = "mobile_ml.cycle"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml cycle record"
    REDO: ClassVar[str] = "mobile-ml cycle CONFIG.toml"

    model: str
    channel: str
    started: str  # UTC, ISO 8601
    drift: bool  # what the monitor said
    labelled: int  # labelled samples in the capture store (since [capture] since)
    trigger: Trigger
    outcome: Outcome
    reason: str  # the outcome in one sentence
    steps: tuple[Step, ...]
    version: str | None = None  # the version published, when one was
    rollout: float | None = None  # its rollout percent

    @classmethod
    def from_dict(cls, f: Fields) -> CycleReport:
        report = cls(
            model=f.string("model"),
            channel=f.string("channel"),
            started=f.string("started"),
            drift=f.boolean("drift"),
            labelled=f.integer("labelled", lo=0),
            trigger=f.choice("trigger", Trigger),
            outcome=f.choice("outcome", Outcome),
            reason=f.string("reason"),
            steps=tuple(Step.from_dict(s) for s in f.objs("steps", max_len=len(StepName))),
            version=f.opt_string("version"),
            rollout=f.opt_number("rollout", lo=0, hi=100),
        )
        if (report.outcome is Outcome.PUBLISHED) != (report.version is not None):
            raise f.error("version", f"must be set exactly when the outcome is {Outcome.PUBLISHED.value}")
        f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(self)
