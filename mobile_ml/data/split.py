"""Stratified train / validation / test split by ratios, reproducible from a seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mobile_ml.errors import ConfigError, DataError


@dataclass(frozen=True)
class SplitOptions:
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 42
    stratify: bool = True

    def __post_init__(self) -> None:
        for name in ("train", "validation", "test"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ConfigError(
                    f"split ratio {name}={v} must be between 0 and 1 (exclusive)",
                    hint="e.g. train=0.7, validation=0.15, test=0.15",
                )
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(
                f"split ratios add up to {total:g}, not 1", hint="e.g. train=0.7, validation=0.15, test=0.15"
            )

    def to_dict(self) -> dict:
        return {
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
            "seed": self.seed,
            "stratified": self.stratify,
        }


def parse_ratios(text: str) -> tuple[float, float, float]:
    """Parse ``"0.7,0.15,0.15"`` (or ``"70,15,15"``) into three fractions."""
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3:
        raise ConfigError(f"--split {text!r} is not three comma-separated numbers", hint="e.g. --split 0.7,0.15,0.15")
    if sum(parts) > 1.5:  # percentages
        parts = [p / 100 for p in parts]
    return parts[0], parts[1], parts[2]


def _allocate(n: int, options: SplitOptions) -> tuple[int, int]:
    """Rows for validation and test out of ``n``; at least one each, train keeps at least one."""
    n_val = max(1, round(n * options.validation))
    n_test = max(1, round(n * options.test))
    return n_val, n_test


def stratified_split(labels: np.ndarray, options: SplitOptions, label_names: list[str] | None = None):
    """Indices ``(train, validation, test)`` into ``labels``.

    With ``stratify`` every class is split by the same ratios, so each split holds every class in proportion; that
    needs at least three rows per class. Each index array is sorted, so the output order follows the input order.
    """
    labels = np.asarray(labels)
    n = len(labels)
    rng = np.random.default_rng(options.seed)
    names = label_names or [str(c) for c in np.unique(labels)]
    min_rows = 3
    if n < min_rows:
        raise DataError(
            f"only {n} usable rows; a train/validation/test split needs at least {min_rows}", hint="provide more data"
        )
    groups: list[tuple[str | None, np.ndarray]]  # (class name when stratified, row indices)
    if options.stratify:
        groups = []
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            name = names[int(c)] if label_names else str(c)
            if len(idx) < min_rows:
                raise DataError(
                    f"class {name!r} has only {len(idx)} row(s); "
                    f"a stratified split needs at least {min_rows} per class",
                    hint="add rows for that class, drop it from the data, or set stratify = false",
                )
            groups.append((name, idx))
    else:
        groups = [(None, np.arange(n))]
    train, val, test = [], [], []
    for group, idx in groups:
        idx = rng.permutation(idx)
        n_val, n_test = _allocate(len(idx), options)
        if n_val + n_test >= len(idx):
            what = f"class {group!r} has {len(idx)} rows" if group is not None else f"only {n} usable rows"
            raise DataError(
                f"{what}: too few for a train/validation/test split with these ratios",
                hint="provide more data or change the split ratios",
            )
        val.append(idx[:n_val])
        test.append(idx[n_val : n_val + n_test])
        train.append(idx[n_val + n_test :])
    return tuple(np.sort(np.concatenate(s)) for s in (train, val, test))
