"""The train split as model input: in memory for small formats, streamed from Parquet through ``tf.data``.

A Parquet train split is never loaded whole: each epoch reads a shuffled order of row groups, ``WINDOW`` groups at a
time, shuffles the rows inside that window and yields batches, so memory holds at most ``WINDOW`` row groups
(``WINDOW × BATCH_ROWS`` rows) whatever the split's size. The order is seeded per epoch, so the same seed trains the
same weights. Validation and test stay in memory (``load_split``): they are evaluated whole every epoch anyway.
``mobile-ml retrain`` adds its (small) captured train rows as ``extra``: one more "row group" held in memory, shuffled
into the order like the others.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobile_ml.data.spec import DataKind, DataSpec, SplitFormat, load_split

WINDOW = 2  # row groups shuffled together: rows of neighbouring groups mix, memory stays at two groups


@dataclass(frozen=True)
class StreamedSplit:
    """A train split read batch by batch; ``dataset(batch_size, seed)`` is what ``model.fit`` consumes."""

    path: Path
    spec: DataSpec
    rows: int  # in the file, plus ``extra``'s
    extra: tuple[np.ndarray, np.ndarray] | None = None  # rows trained on beside the file's (x float32, y int64)

    def with_rows(self, x: np.ndarray, y: np.ndarray) -> StreamedSplit:
        """This split plus the in-memory rows ``(x, y)``."""
        if self.extra is not None:
            x, y = np.concatenate([self.extra[0], x]), np.concatenate([self.extra[1], y])
        return StreamedSplit(self.path, self.spec, self.rows + len(y) - self._extra_rows, (x, y))

    @property
    def _extra_rows(self) -> int:
        return 0 if self.extra is None else len(self.extra[1])

    def batches(self, batch_size: int, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from mobile_ml.data.parquet import iter_split, row_groups

        rng = np.random.default_rng([seed, epoch])
        groups = row_groups(self.path, self.spec, "train")
        # Group index ``groups`` stands for ``extra``: without extra rows the order is what it always was.
        order = rng.permutation(groups + (self.extra is not None)).tolist()
        for start in range(0, len(order), WINDOW):
            window = order[start : start + WINDOW]
            parts = list(iter_split(self.path, self.spec, "train", order=[g for g in window if g < groups]))
            if self.extra is not None and groups in window:
                parts.append(self.extra)
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            perm = rng.permutation(len(y))
            for b in range(0, len(y), batch_size):
                take = perm[b : b + batch_size]
                yield x[take], y[take]

    def dataset(self, batch_size: int, seed: int) -> Any:
        from mobile_ml import _tf

        tf = _tf.tensorflow()
        epochs = itertools.count()  # from_generator calls the factory once per epoch: a new seeded order each

        def factory() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            return self.batches(batch_size, seed, next(epochs))

        width = len(self.spec.features)
        signature = (
            tf.TensorSpec(shape=(None, width), dtype=tf.float32),
            tf.TensorSpec(shape=(None,), dtype=tf.int64),
        )
        return tf.data.Dataset.from_generator(factory, output_signature=signature).prefetch(2)


TrainInput = tuple[np.ndarray, np.ndarray] | StreamedSplit


def train_input(datadir: Path, spec: DataSpec) -> TrainInput:
    """The train split: streamed for Parquet splits, numpy arrays for CSV (older data directories) and images."""
    if spec.kind == DataKind.TABULAR and spec.split_format is SplitFormat.PARQUET:
        from mobile_ml.data.parquet import row_groups

        path = datadir / spec.files["train"]
        row_groups(path, spec, "train")  # schema and row count checked now, not in the middle of the first epoch
        return StreamedSplit(path, spec, spec.counts["train"])
    return load_split(datadir, spec, "train")


def fit_arguments(train: TrainInput, batch_size: int, seed: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments of ``model.fit`` for ``train``."""
    if isinstance(train, StreamedSplit):
        return (train.dataset(batch_size, seed),), {}
    return train, {"batch_size": batch_size, "shuffle": True}
