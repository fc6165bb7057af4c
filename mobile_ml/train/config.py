"""Training configuration: the model family, the fit settings and the candidate grid."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mobile_ml.errors import ConfigError

FAMILIES = ("auto", "mlp", "cnn")


@dataclass(frozen=True)
class GridConfig:
    """Every combination of these values is one candidate model."""

    width: tuple[int, ...] = (
        32,
        64,
    )  # mlp: units per hidden layer; cnn: filters in the first block (doubles per block)
    depth: tuple[int, ...] = (2,)  # mlp: hidden layers; cnn: convolution blocks
    learning_rate: tuple[float, ...] = (0.001, 0.003)
    dropout: tuple[float, ...] = (0.1,)

    def __post_init__(self) -> None:
        for name in ("width", "depth", "learning_rate", "dropout"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values:
                raise ConfigError(f"grid.{name} is empty", hint="give at least one value")
        if any(w < 1 or w > 4096 for w in self.width):
            raise ConfigError(f"grid.width {list(self.width)} must be between 1 and 4096", hint="e.g. width = [32, 64]")
        if any(d < 1 or d > 8 for d in self.depth):
            raise ConfigError(f"grid.depth {list(self.depth)} must be between 1 and 8", hint="e.g. depth = [2]")
        if any(not 0 < lr < 1 for lr in self.learning_rate):
            raise ConfigError(
                f"grid.learning_rate {list(self.learning_rate)} must be in (0, 1)",
                hint="e.g. learning_rate = [0.001, 0.003]",
            )
        if any(not 0 <= d < 1 for d in self.dropout):
            raise ConfigError(f"grid.dropout {list(self.dropout)} must be in [0, 1)", hint="e.g. dropout = [0.1]")


@dataclass(frozen=True)
class Candidate:
    index: int
    family: str
    width: int
    depth: int
    learning_rate: float
    dropout: float

    @property
    def name(self) -> str:
        return f"{self.family}-w{self.width}-d{self.depth}-lr{self.learning_rate:g}-do{self.dropout:g}"


@dataclass(frozen=True)
class TrainConfig:
    family: str = "auto"  # "auto" picks cnn for images and mlp for tables
    epochs: int = 30  # upper bound per candidate; early stopping usually ends sooner
    batch_size: int = 32
    patience: int = 5  # epochs without val_loss improvement before stopping
    seed: int = 42
    # TensorFlow op determinism: the same seed on the same machine gives the same metrics. It costs about 7% of
    # training throughput on CPU (benchmarks/train_throughput.py); false trades reproducibility for that speed.
    deterministic: bool = True
    grid: GridConfig = field(default_factory=GridConfig)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family {self.family!r} is not one of {', '.join(FAMILIES)}", hint='e.g. family = "mlp"')
        for name, lo, hi in (("epochs", 1, 10_000), ("batch_size", 1, 65_536), ("patience", 1, 10_000)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ConfigError(f"{name} = {v} must be between {lo} and {hi}", hint=f"e.g. {name} = {lo * 10}")
        if self.seed < 0:
            raise ConfigError(f"seed = {self.seed} must be ≥ 0", hint="e.g. seed = 42")

    def candidates(self, family: str) -> list[Candidate]:
        g = self.grid
        combos = itertools.product(g.width, g.depth, g.learning_rate, g.dropout)
        return [Candidate(i, family, w, d, lr, do) for i, (w, d, lr, do) in enumerate(combos)]
