"""Export variants and the options that shape them (the types live in ``mobile_ml.contracts.variants``)."""

from __future__ import annotations

from mobile_ml.contracts.variants import VARIANTS, ExportOptions, Variant, check_variant
from mobile_ml.errors import ConfigError

__all__ = [
    "DESCRIPTIONS",
    "FINETUNED_VARIANTS",
    "INTEGER_VARIANTS",
    "SHAPED_BY",
    "VARIANTS",
    "ExportOptions",
    "Variant",
    "check_variant",
    "parse_variants",
]

DESCRIPTIONS = {
    Variant.FP32: "float32, no quantization",
    Variant.FP16: "float16 weights, float32 compute",
    Variant.DYNAMIC: "int8 weights, float activations (dynamic-range)",
    Variant.INT8: "full integer, calibrated on train data",
    Variant.QAT_INT8: "quantization-aware fine-tuning, then full integer",
    Variant.PRUNED_INT8: "magnitude-pruned and fine-tuned, then full integer",
}
INTEGER_VARIANTS = (Variant.INT8, Variant.QAT_INT8, Variant.PRUNED_INT8)
FINETUNED_VARIANTS = (Variant.QAT_INT8, Variant.PRUNED_INT8)

# Which variants each option changes (the budget and --require change none: the gate is recomputed from figures).
# A re-export that keeps earlier variants must build them with the same values, or export.json would misdescribe them.
SHAPED_BY: dict[str, tuple[Variant, ...]] = {
    "allow_flex": VARIANTS,
    "per_channel": (Variant.DYNAMIC, *INTEGER_VARIANTS),  # fp16 keeps float32 compute: no integer weights
    "int8_io": INTEGER_VARIANTS,
    "calibration_samples": INTEGER_VARIANTS,
    "seed": INTEGER_VARIANTS,  # draws the calibration rows and seeds fine-tuning
    "finetune_epochs": FINETUNED_VARIANTS,
    "finetune_learning_rate": FINETUNED_VARIANTS,
    "prune_sparsity": (Variant.PRUNED_INT8,),
}


def parse_variants(text: str) -> tuple[Variant, ...]:
    """``"fp32,int8"`` or ``"all"`` → variant names in build order, duplicates removed."""
    if text.strip().lower() == "all":
        return VARIANTS
    names = [check_variant(p.strip()) for p in text.split(",") if p.strip()]
    if not names:
        raise ConfigError("no variants given", hint=f"e.g. --variants fp32,int8 or all ({', '.join(VARIANTS)})")
    return tuple(v for v in VARIANTS if v in names)
