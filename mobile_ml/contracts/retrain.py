"""``retrain.json``: champion against challenger, written by ``mobile-ml retrain`` into the challenger's run directory.

Both models are scored on the same two held-out sets: the original data's test split (what the champion was
tested on) and the captured test split (rows of the captured data that neither model trained on). The verdict is
the rule of ``mobile_ml.train.retrain.decide``; every figure it used is here, so a reader can check it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.outputs import to_jsonable


class Verdict(str, enum.Enum):
    WINS = "challenger_wins"  # better on captured data, within the budget on the original
    NOT_BETTER = "not_better_on_captured"
    OVER_BUDGET = "over_budget_on_original"  # better on captured data, but loses more than the budget on the original

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Score:
    """One model on one held-out set."""

    accuracy: float
    macro_f1: float
    loss: float  # mean cross-entropy
    examples: int

    @classmethod
    def from_dict(cls, f: Fields) -> Score:
        s = cls(
            accuracy=f.number("accuracy", lo=0, hi=1),
            macro_f1=f.number("macro_f1", lo=0, hi=1),
            loss=f.number("loss", lo=0),
            examples=f.integer("examples", lo=0),
        )
        f.done()
        return s


@dataclass(frozen=True)
class ModelScores:
    run: str  # the model's run directory, absolute
    model: str  # its candidate name
    original: Score  # on the original test split
    captured: Score  # on the captured test split

    @classmethod
    def from_dict(cls, f: Fields) -> ModelScores:
        m = cls(
            run=f.string("run"),
            model=f.string("model"),
            original=Score.from_dict(f.obj("original")),
            captured=Score.from_dict(f.obj("captured")),
        )
        f.done()
        return m


@dataclass(frozen=True)
class RetrainReport:
    SCHEMA: ClassVar[str] = "mobile_ml.retrain"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml retrain report"
    REDO: ClassVar[str] = "mobile-ml retrain"

    champion: ModelScores
    challenger: ModelScores
    budget_pp: float  # accuracy the challenger may lose on the original test split, in percentage points
    seed: int  # of the captured train / validation / test split
    captured_gain_pp: float  # challenger minus champion accuracy on the captured test split
    original_loss_pp: float  # champion minus challenger accuracy on the original test split
    verdict: Verdict
    reason: str  # the verdict in one sentence, with its figures

    @property
    def winner(self) -> bool:
        return self.verdict is Verdict.WINS

    @classmethod
    def from_dict(cls, f: Fields) -> RetrainReport:
        report = cls(
            champion=ModelScores.from_dict(f.obj("champion")),
            challenger=ModelScores.from_dict(f.obj("challenger")),
            budget_pp=f.number("budget_pp", lo=0, hi=100),
            seed=f.integer("seed", lo=0),
            captured_gain_pp=f.number("captured_gain_pp", lo=-100, hi=100),
            original_loss_pp=f.number("original_loss_pp", lo=-100, hi=100),
            verdict=f.choice("verdict", Verdict),
            reason=f.string("reason"),
        )
        if f.boolean("winner") is not report.winner:
            raise f.error("winner", f"contradicts the verdict {report.verdict.value!r}")
        f.done()
        return report

    def to_dict(self) -> dict[str, Any]:
        return {"winner": self.winner, **to_jsonable(self)}
