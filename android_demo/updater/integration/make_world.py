"""Build what the Kotlin updater's integration test publishes: a tiny trained digits run with two exported
variants (int8, fp32) and a signing key. Real training and the real TFLite converter, kept small (~20 s).

    python make_world.py OUT     →  OUT/run (with exports/int8, exports/fp32), OUT/keys (private.pem, public.b64, ...)
"""

import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(out: Path) -> None:
    from mobile_ml.data.prepare import prepare
    from mobile_ml.export.exporter import export
    from mobile_ml.export.options import ExportOptions
    from mobile_ml.publish import keys
    from mobile_ml.train.config import GridConfig, TrainConfig
    from mobile_ml.train.trainer import train

    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if not data.exists():
        prepare("builtin:digits", data)
    run = out / "run"
    if not (run / "exports").exists():
        tiny = TrainConfig(
            epochs=3,
            patience=2,
            batch_size=64,
            grid=GridConfig(width=(8,), depth=(1,), learning_rate=(0.01,), dropout=(0.0,)),
        )
        train(data, run, tiny)
        export(run, ExportOptions(variants=("fp32", "int8"), calibration_samples=64), data_dir=data)
    if not (out / "keys" / "private.pem").exists():
        keys.generate(out / "keys")
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
