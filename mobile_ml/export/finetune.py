"""Quantization-aware training and magnitude pruning with tensorflow-model-optimization, from trained weights.

Both wrap only the layers tfmot supports (convolutions, dense, pooling, ...) and leave the rest as they are, so a
model that starts with a ``Normalization`` layer (ours do) still fine-tunes: the converter calibrates the unwrapped
parts from the representative data. tfmot needs legacy Keras (``tf_keras``); see ``mobile_ml._tf``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np

from mobile_ml import _tf
from mobile_ml.contracts.export import FinetuneInfo
from mobile_ml.export.convert import ConversionError
from mobile_ml.progress import epoch_callback

__all__ = ["EpochCallback", "FinetuneInfo", "pruned", "quantization_aware"]

EpochCallback = Callable[[int, dict], None]


def _tfmot():
    _tf.keras()
    with _tf.quiet():
        import tensorflow_model_optimization as tfmot
    return tfmot


def _fit(model, train, val, epochs, lr, batch_size, seed, callbacks, on_epoch: EpochCallback | None, regression):
    keras = _tf.keras()
    keras.utils.set_random_seed(seed)

    # Regression models fine-tune on squared error, the loss a regression model is trained on; there is no accuracy
    # to report for them (FinetuneInfo.val_accuracy stays None).
    loss, metric = ("mse", "mae") if regression else ("sparse_categorical_crossentropy", "accuracy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss=loss, metrics=[metric])
    with _tf.quiet():
        model.fit(
            *train,
            validation_data=val,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[*callbacks, epoch_callback(keras, on_epoch)],
        )
        if val is None or regression:
            return None
        return float(model.evaluate(*val, batch_size=256, verbose=0)[1])


def quantization_aware(
    model,
    train,
    val,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int = 64,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    regression: bool = False,
):
    """Fine-tune ``model`` with fake-quantization; return ``(qat_model, FinetuneInfo)`` ready for int8 conversion."""

    start = time.perf_counter()
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    supported = registry.Default8BitQuantizeRegistry()
    annotated, wrapped = _clone_annotating(model, lambda layer: supported.supports(layer), qk.quantize_annotate_layer)
    with qk.quantize_scope(), _tf.quiet():
        qat = qk.quantize_apply(annotated)
    if regression:
        _seed_activation_ranges(model, qat, train[0])
    acc = _fit(qat, train, val, epochs, learning_rate, batch_size, seed, [], on_epoch, regression)
    return qat, FinetuneInfo(epochs, learning_rate, tuple(wrapped), acc, seconds=time.perf_counter() - start)


def _seed_activation_ranges(model, qat, x) -> None:
    """Start each wrapped layer's activation range at what the float model's layer produces on ``x``.

    tfmot starts every activation range at [-6, 6] and moves it by an exponential average (decay 0.999), so a few
    epochs hardly move it. A classifier's activations fit in it; a regression output on its target's scale (tens,
    thousands) does not: it was clamped to 6 and the qat-int8 variant predicted nonsense. Seeding the ranges from
    the float model makes fine-tuning start where int8 calibration would.
    """
    keras = _tf.keras()
    by_name = {layer.name: layer for layer in model.layers}
    pairs = [(w, by_name[w.layer.name]) for w in qat.layers if hasattr(w, "layer") and w.layer.name in by_name]
    if not pairs:
        return
    probe = keras.Model(model.inputs, [orig.output for _, orig in pairs])
    with _tf.quiet():
        outs = probe.predict(x, batch_size=256, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    for (wrapper, _), out in zip(pairs, outs, strict=True):
        lo, hi = min(0.0, float(np.min(out))), max(0.0, float(np.max(out)))
        for var in wrapper.weights:
            name = var.name.split("/")[-1].split(":")[0]
            if name in ("post_activation_min", "output_min"):
                var.assign(np.full(var.shape, lo, np.float32))
            elif name in ("post_activation_max", "output_max"):
                var.assign(np.full(var.shape, hi, np.float32))


def pruned(
    model,
    train,
    val,
    *,
    sparsity: float,
    epochs: int,
    learning_rate: float,
    batch_size: int = 64,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
    regression: bool = False,
):
    """Prune to ``sparsity`` while fine-tuning; return ``(stripped_model, FinetuneInfo)`` with measured sparsity."""

    start = time.perf_counter()
    tfmot = _tfmot()
    sp = tfmot.sparsity.keras
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    rows = len(next(iter(train[0].values()))) if isinstance(train[0], dict) else len(train[0])
    steps = max(1, int(np.ceil(rows / batch_size))) * epochs
    # Reach the target sparsity by two thirds of fine-tuning, then let the remaining weights recover.
    schedule = sp.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=sparsity,
        begin_step=0,
        end_step=max(1, int(steps * 2 / 3)),
        frequency=max(1, steps // (3 * epochs)),
    )
    wrapped_model, wrapped = _clone_annotating(
        model,
        lambda layer: prune_registry.PruneRegistry.supports(layer) and bool(layer.get_weights()),
        lambda layer: sp.prune_low_magnitude(layer, pruning_schedule=schedule),
    )
    callbacks = [sp.UpdatePruningStep()]
    acc = _fit(wrapped_model, train, val, epochs, learning_rate, batch_size, seed, callbacks, on_epoch, regression)
    stripped = sp.strip_pruning(wrapped_model)
    kernels = [layer.get_weights()[0] for layer in stripped.layers if layer.name in wrapped]
    total = sum(k.size for k in kernels)
    measured = float(sum(int((k == 0).sum()) for k in kernels) / total) if total else 0.0
    return stripped, FinetuneInfo(epochs, learning_rate, tuple(wrapped), acc, measured, time.perf_counter() - start)


def _clone_annotating(model, should_wrap, wrap):
    """Clone ``model`` with ``wrap`` applied to the layers ``should_wrap`` picks; weights carried over."""
    keras = _tf.keras()
    wrapped: list[str] = []

    def clone(layer):
        if should_wrap(layer):
            wrapped.append(layer.name)
            with contextlib.suppress(Exception):
                layer = layer.__class__.from_config(layer.get_config())
            return wrap(layer)
        return layer.__class__.from_config(layer.get_config())

    try:
        with _tf.quiet():
            new = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError) as e:
        raise ConversionError(
            f"cannot instrument the model for fine-tuning: {str(e).splitlines()[0][:200]}",
            hint="QAT and pruning need a Sequential or Functional tf_keras model",
        ) from e
    if not wrapped:
        raise ConversionError(
            "no layer of this model can be quantized or pruned by tensorflow-model-optimization",
            hint="export fp32, fp16, dynamic or int8 instead",
        )
    for old_layer, new_layer in zip(model.layers, new.layers, strict=False):
        src = old_layer.get_weights()
        if src:  # clone_model copies structure only; wrappers list the inner layer's variables first, then theirs
            new_layer.set_weights(list(src) + new_layer.get_weights()[len(src) :])
    return new, wrapped
