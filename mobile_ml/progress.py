"""Progress events shared by the stages: a reporter that ignores them, and the Keras callback that emits them.

The library never prints; the CLI passes a reporter that draws bars. ``NullReporter`` stands in for every stage's
reporter protocol (training's candidates and epochs, export's variants and fine-tuning epochs), so a caller that
drives several stages, or a test that wants to hook one event, subclasses one class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobile_ml.train.config import Candidate
    from mobile_ml.train.trainer import CandidateResult

EpochCallback = Callable[[int, dict[str, float]], None]  # (1-based epoch, Keras logs)


class NullReporter:
    """Every progress event of every stage, ignored."""

    def candidate_started(self, candidate: Candidate, total: int, max_epochs: int) -> None:
        pass

    def epoch_finished(self, candidate: Candidate, epoch: int, logs: dict[str, float]) -> None:
        pass

    def candidate_finished(self, result: CandidateResult) -> None:
        pass

    def variant_started(self, variant: str, index: int, total: int) -> None:
        pass

    def finetune_epoch(self, variant: str, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        pass

    def variant_finished(self, result: object) -> None:  # an export VariantResult
        pass


def epoch_callback(keras: Any, on_epoch: EpochCallback | None) -> Any:
    """A ``keras.callbacks.Callback`` that calls ``on_epoch(epoch, logs)`` after every epoch (epochs count from 1).

    ``keras`` is the module the model was built with (``mobile_ml._tf.keras()``); it is passed in so this module
    stays light to import.
    """

    class _Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if on_epoch is not None:
                on_epoch(epoch + 1, dict(logs or {}))

    return _Progress()
