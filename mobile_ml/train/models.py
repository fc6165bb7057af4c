"""Model families. Normalization is the first layer, so a phone feeds raw features or pixels.

Integer variants of tabular models are exported without it (one int8 input scale cannot fit raw features of
different magnitudes); their metadata.json asks the app to normalize (``mobile_ml.export.normalization``).
"""

from __future__ import annotations

import numpy as np

from mobile_ml.data.spec import DataSpec
from mobile_ml.errors import ConfigError
from mobile_ml.train.config import Candidate


def resolve_family(family: str, spec: DataSpec) -> str:
    if family == "auto":
        return "cnn" if spec.kind == "image" else "mlp"
    if family == "cnn" and spec.kind != "image":
        raise ConfigError("family 'cnn' needs image data, but this data is tabular", hint='use family = "mlp"')
    return family


def build_model(spec: DataSpec, candidate: Candidate, keras):
    """A compiled ``tf_keras`` model for ``candidate`` on data described by ``spec``."""
    layers = keras.layers
    mean = np.asarray(spec.normalization.mean, dtype=np.float32)
    var = np.square(np.asarray(spec.normalization.std, dtype=np.float32))
    inputs = keras.Input(shape=spec.input_shape, name="input")
    x = layers.Normalization(axis=-1, mean=mean, variance=var, name="normalize")(inputs)
    if candidate.family == "cnn":
        height, width = spec.input_shape[:2]
        for i in range(candidate.depth):
            x = layers.Conv2D(candidate.width * 2**i, 3, padding="same", activation="relu", name=f"conv{i}")(x)
            if height >= 4 and width >= 4:  # stop pooling at 2×2 so deep grids still fit tiny images like 8×8
                x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
                height, width = height // 2, width // 2
        # Tiny feature maps keep their layout (Flatten); larger ones are averaged so the head stays small.
        x = layers.Flatten(name="flatten")(x) if height * width <= 16 else layers.GlobalAveragePooling2D(name="gap")(x)
        if candidate.dropout:
            x = layers.Dropout(candidate.dropout, name="dropout")(x)
    else:
        if len(spec.input_shape) > 1:
            x = layers.Flatten(name="flatten")(x)
        for i in range(candidate.depth):
            x = layers.Dense(candidate.width, activation="relu", name=f"dense{i}")(x)
            if candidate.dropout:
                x = layers.Dropout(candidate.dropout, name=f"dropout{i}")(x)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=candidate.name.replace(".", "_"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=candidate.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
