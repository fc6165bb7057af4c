"""Export variants and the options that shape them."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mobile_ml.errors import ConfigError

# In the order they are built and reported: from no quantization to the most work.
VARIANTS = ("fp32", "fp16", "dynamic", "int8", "qat-int8", "pruned-int8")
DESCRIPTIONS = {
    "fp32": "float32, no quantization",
    "fp16": "float16 weights, float32 compute",
    "dynamic": "int8 weights, float activations (dynamic-range)",
    "int8": "full integer, calibrated on train data",
    "qat-int8": "quantization-aware fine-tuning, then full integer",
    "pruned-int8": "magnitude-pruned and fine-tuned, then full integer",
}
INTEGER_VARIANTS = ("int8", "qat-int8", "pruned-int8")
FINETUNED_VARIANTS = ("qat-int8", "pruned-int8")


@dataclass(frozen=True)
class ExportOptions:
    variants: tuple[str, ...] = VARIANTS
    max_accuracy_drop: float = 1.0  # percentage points of test accuracy below the Keras model
    require: str | None = None  # this variant must meet the budget
    allow_flex: bool = False  # let the converter fall back to Select-TF ops (LiteRT's Python runtime cannot run them)
    int8_io: str = "int8"  # integer variants' input/output type: "int8" (all-integer) or "float" (quantize inside)
    per_channel: bool = True  # one quantization scale per output channel (False: per tensor, smaller, coarser)
    calibration_samples: int = 200  # train rows for int8 calibration
    finetune_epochs: int = 3  # QAT and pruning fine-tuning
    finetune_learning_rate: float = 1e-4  # small: fine-tuning starts from the trained weights
    prune_sparsity: float = 0.5  # fraction of prunable weights set to zero
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.variants:
            raise ConfigError("no variants requested", hint=f"choose from {', '.join(VARIANTS)}")
        for v in self.variants:
            check_variant(v)
        if self.require is not None:
            check_variant(self.require)
            if self.require not in self.variants:
                raise ConfigError(
                    f"--require {self.require} names a variant that is not being exported",
                    hint=f"add it to --variants ({','.join(self.variants)})",
                )
        if not 0 <= self.max_accuracy_drop <= 100:
            raise ConfigError(
                f"--max-accuracy-drop must be between 0 and 100 percentage points, not {self.max_accuracy_drop:g}",
                hint="e.g. --max-accuracy-drop 1.0",
            )
        if self.int8_io not in ("int8", "float"):
            raise ConfigError(f"unknown integer input/output type '{self.int8_io}'", hint="use int8 or float")
        if self.calibration_samples < 1:
            raise ConfigError("calibration needs at least 1 sample", hint="e.g. --calibration-samples 200")
        if self.finetune_epochs < 1:
            raise ConfigError("fine-tuning needs at least 1 epoch", hint="e.g. --finetune-epochs 3")
        if not 0 < self.prune_sparsity < 1:
            raise ConfigError(
                f"pruning sparsity must be between 0 and 1, not {self.prune_sparsity:g}",
                hint="e.g. --prune-sparsity 0.5",
            )


def check_variant(name: str) -> str:
    if name not in VARIANTS:
        close = difflib.get_close_matches(name, VARIANTS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown variant '{name}'", hint=f"{hint}variants: {', '.join(VARIANTS)}")
    return name


def parse_variants(text: str) -> tuple[str, ...]:
    """``"fp32,int8"`` or ``"all"`` → variant names in build order, duplicates removed."""
    if text.strip().lower() == "all":
        return VARIANTS
    names = [check_variant(p.strip()) for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError("no variants given", hint=f"e.g. --variants fp32,int8 or all ({', '.join(VARIANTS)})")
    return tuple(v for v in VARIANTS if v in names)
