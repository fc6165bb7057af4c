"""The export stage's vocabulary: variant names, verdicts, the options that shape a variant, and the tensors and
operators of a .tflite file as ``export.json`` and ``metadata.json`` record them."""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass
from typing import Any

from mobile_ml.contracts import Fields
from mobile_ml.errors import ConfigError


class TextEnum(str, enum.Enum):
    """Prints and formats as its value ("int8", not "Variant.INT8"), on every Python we support."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Variant(TextEnum):
    """The exported variants, in the order they are built and reported: from no quantization to the most work."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"
    QAT_INT8 = "qat-int8"
    PRUNED_INT8 = "pruned-int8"


class Verdict(TextEnum):
    """What the accuracy gate says of one variant."""

    PASS = "pass"  # evaluated, and its accuracy drop is within the budget
    FAIL = "fail"  # evaluated, and it lost more than the budget
    NOT_EVALUATED = "not evaluated"  # LiteRT here cannot run it (Select-TF ops): it cannot pass


VARIANTS: tuple[Variant, ...] = tuple(Variant)


def check_variant(name: str) -> Variant:
    try:
        return Variant(name)
    except ValueError:
        close = difflib.get_close_matches(str(name), [v.value for v in VARIANTS], n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown variant '{name}'", hint=f"{hint}variants: {', '.join(VARIANTS)}") from None


@dataclass(frozen=True)
class ExportOptions:
    variants: tuple[Variant, ...] = VARIANTS
    max_accuracy_drop: float = 1.0  # percentage points of test accuracy below the Keras model
    require: Variant | None = None  # this variant must meet the budget
    allow_flex: bool = False  # let the converter fall back to Select-TF ops (LiteRT's Python runtime cannot run them)
    int8_io: str = "int8"  # integer variants' input/output type: "int8" (all-integer) or "float" (quantize inside)
    per_channel: bool = True  # one quantization scale per output channel (False: per tensor, smaller, coarser)
    calibration_samples: int = 200  # train rows for int8 calibration
    finetune_epochs: int = 3  # QAT and pruning fine-tuning
    finetune_learning_rate: float = 1e-4  # small: fine-tuning starts from the trained weights
    prune_sparsity: float = 0.5  # fraction of prunable weights set to zero
    seed: int = 0
    # Regression models: the largest mean |Δ| against the Keras model a variant may show (the target's units).
    max_error: float | None = None

    def __post_init__(self) -> None:
        if not self.variants:
            raise ConfigError("no variants requested", hint=f"choose from {', '.join(VARIANTS)}")
        # Names given as strings (TOML, Python callers) become ``Variant``s here, once.
        object.__setattr__(self, "variants", tuple(check_variant(v) for v in self.variants))
        if self.require is not None:
            object.__setattr__(self, "require", check_variant(self.require))
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
        if self.max_error is not None and not (self.max_error >= 0 and self.max_error < float("inf")):
            raise ConfigError(f"--max-error must be a finite number >= 0, not {self.max_error:g}", hint="e.g. 0.05")
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

    @classmethod
    def from_dict(cls, f: Fields) -> ExportOptions:
        try:
            options = cls(
                variants=tuple(f.strings("variants")),  # type: ignore[arg-type]  # names, checked by __post_init__
                max_accuracy_drop=f.number("max_accuracy_drop"),
                require=f.opt_string("require"),  # type: ignore[arg-type]
                allow_flex=f.boolean("allow_flex"),
                int8_io=f.string("int8_io"),
                per_channel=f.boolean("per_channel"),
                calibration_samples=f.integer("calibration_samples"),
                finetune_epochs=f.integer("finetune_epochs"),
                finetune_learning_rate=f.number("finetune_learning_rate"),
                prune_sparsity=f.number("prune_sparsity"),
                seed=f.integer("seed"),
                max_error=f.opt_number("max_error"),
            )
        except ConfigError as e:
            raise f.error("", e.message) from None
        f.done()
        return options

    def to_dict(self) -> dict[str, Any]:
        return {
            "variants": [v.value for v in self.variants],
            "max_accuracy_drop": self.max_accuracy_drop,
            "require": self.require.value if self.require else None,
            "allow_flex": self.allow_flex,
            "int8_io": self.int8_io,
            "per_channel": self.per_channel,
            "calibration_samples": self.calibration_samples,
            "finetune_epochs": self.finetune_epochs,
            "finetune_learning_rate": self.finetune_learning_rate,
            "prune_sparsity": self.prune_sparsity,
            "seed": self.seed,
            # written only when set: classification exports keep the exact options they always had
            **({"max_error": self.max_error} if self.max_error is not None else {}),
        }


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor as the app sees it."""

    name: str
    shape: tuple[int, ...]  # -1 where the model accepts any size (usually the batch dimension)
    dtype: str  # numpy name: float32, int8, uint8, ...
    # Affine quantization of integer tensors: real = scale × (q − zero_point). None for float tensors.
    scale: float | None = None
    zero_point: int | None = None

    @classmethod
    def from_details(cls, d: dict[str, Any]) -> TensorInfo:
        """From one entry of LiteRT's ``get_input_details()`` / ``get_output_details()``."""
        import numpy as np

        scale, zero = d.get("quantization", (0.0, 0))
        quantized = np.dtype(d["dtype"]).kind in "iu" and scale
        sig = d.get("shape_signature")
        shape = tuple(int(v) for v in (sig if sig is not None and len(sig) else d["shape"]))
        return cls(
            d["name"],
            shape,
            np.dtype(d["dtype"]).name,
            float(scale) if quantized else None,
            int(zero) if quantized else None,
        )

    @classmethod
    def from_dict(cls, f: Fields) -> TensorInfo:
        shape = f.array("shape", max_len=16)
        if any(isinstance(d, bool) or not isinstance(d, int) or d < -1 for d in shape):
            raise f.error("shape", "expected a list of dimensions (whole numbers, -1 for any size)")
        info = cls(
            f.string("name"),
            tuple(shape),
            f.string("dtype", pattern=r"[a-z]+[0-9]*"),
            f.opt_number("scale", lo=0.0),
            f.opt_integer("zero_point"),
        )
        f.done()
        return info

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass(frozen=True)
class OpsInfo:
    ops: tuple[str, ...]  # distinct operators, sorted: builtin names (CONV_2D), Flex* for Select-TF ops, custom names
    select_tf_ops: tuple[str, ...]  # ops that need the Flex (Select TensorFlow ops) delegate
    custom_ops: tuple[str, ...]  # other custom ops: need a registration in the app

    @property
    def builtin_only(self) -> bool:
        return not self.select_tf_ops and not self.custom_ops
