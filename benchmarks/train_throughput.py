"""`mobile-ml train` throughput against a plain Keras `fit` of the same model on the same data.

Each trial runs in a fresh process (TensorFlow's op determinism, which `mobile-ml train` switches on, is
process-wide and cannot be switched off again), the two arms alternate (A B A B ...) so machine noise hits both, and
we report medians and the ratio of medians.

    python benchmarks/train_throughput.py [--trials 3] [--epochs 20]

Arms:
  mobile-ml  `mobile-ml train DATADIR --config one-candidate.toml --json` through the real CLI (progress bars,
             early stopping callback, determinism, evaluation, saving). Throughput counts the fit phase, which
             run.json times; the whole command's wall time is reported beside it.
  keras      `build_model(...)` + `model.fit(...)` with the same batch size, epochs and validation data, nothing else.
  mobile-ml-nodet  `mobile-ml train` with `deterministic = false`.
  keras-det  the same with TensorFlow's op determinism on, as `mobile-ml train` has it (the price of "same seed →
             same metrics").
Early stopping is disabled (patience = epochs) so both arms run the same number of epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("mobile-ml", "keras", "keras-det", "mobile-ml-nodet")
CONFIG = """
[train]
epochs = {epochs}
patience = {epochs}
batch_size = 32
seed = 42
deterministic = {deterministic}
[train.grid]
width = [32]
depth = [2]
learning_rate = [0.003]
dropout = [0.1]
"""


def worker(arm: str, datadir: str, epochs: int, workdir: str) -> dict:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    from mobile_ml.data.spec import load_spec, load_split

    spec = load_spec(datadir)
    n_train = spec.counts["train"]
    if arm.startswith("mobile-ml"):
        from typer.testing import CliRunner

        from mobile_ml.cli import app

        cfg = Path(workdir) / "c.toml"
        cfg.write_text(CONFIG.format(epochs=epochs, deterministic=str(arm == "mobile-ml").lower()))
        start = time.perf_counter()
        r = CliRunner().invoke(app, ["train", datadir, "--out", f"{workdir}/run", "--config", str(cfg), "--json"])
        wall = time.perf_counter() - start
        assert r.exit_code == 0, r.output
        fit_s = json.loads(Path(f"{workdir}/run/run.json").read_text())["timings"]["train_s"]
    else:
        from mobile_ml import _tf
        from mobile_ml.train.config import Candidate
        from mobile_ml.train.models import build_model

        start = time.perf_counter()
        keras = _tf.keras()
        if arm == "keras-det":
            _tf.tensorflow().config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(42)
        model = build_model(spec, Candidate(0, "cnn", 32, 2, 0.003, 0.1), keras)
        train, val = load_split(datadir, spec, "train"), load_split(datadir, spec, "validation")
        t = time.perf_counter()
        model.fit(*train, validation_data=val, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
        fit_s = time.perf_counter() - t
        wall = time.perf_counter() - start
    return {"arm": arm, "fit_s": fit_s, "wall_s": wall, "examples_per_s": n_train * epochs / fit_s}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    p.add_argument("--worker", nargs=3, metavar=("ARM", "DATADIR", "WORKDIR"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], a.worker[1], a.epochs, a.worker[2])))
        return

    from mobile_ml.data.prepare import prepare

    with tempfile.TemporaryDirectory() as tmp:
        datadir = f"{tmp}/data"
        prepare("builtin:digits", datadir)
        trials = []
        for i in range(a.trials):
            for arm in ARMS:
                work = tempfile.mkdtemp(dir=tmp)
                out = subprocess.run(
                    [sys.executable, __file__, "--epochs", str(a.epochs), "--worker", arm, datadir, work],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                trials.append(json.loads(out.stdout.strip().splitlines()[-1]))
                t = trials[-1]
                print(
                    f"trial {i + 1} {arm:10s}  fit {t['fit_s']:6.2f} s  {t['examples_per_s']:8.0f} examples/s"
                    f"  wall {t['wall_s']:6.2f} s",
                    flush=True,
                )

    def stat(fn, arm, key):
        return fn([t[key] for t in trials if t["arm"] == arm])

    med = {arm: stat(statistics.median, arm, "examples_per_s") for arm in ARMS}
    best = {arm: stat(max, arm, "examples_per_s") for arm in ARMS}
    result = {
        "benchmark": "train_throughput",
        "epochs": a.epochs,
        "trials": a.trials,
        "dataset": "builtin:digits",
        "model": "cnn-w32-d2",
        "cpu_count": os.cpu_count(),
        "median_examples_per_s": med,
        "best_examples_per_s": best,  # least disturbed trial of each arm: steadier than the median on a noisy host
        "median_wall_s": {arm: stat(statistics.median, arm, "wall_s") for arm in ARMS},
        "ratio_examples_per_s": med["mobile-ml"] / med["keras"],
        "ratio_best_examples_per_s": best["mobile-ml"] / best["keras"],
        "ratio_same_determinism": med["mobile-ml"] / med["keras-det"],
        "ratio_nondeterministic": med["mobile-ml-nodet"] / med["keras"],
        "determinism_ratio": med["keras-det"] / med["keras"],
        "trials_raw": trials,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nmedian throughput (examples/s): mobile-ml {med['mobile-ml']:.0f}, plain Keras fit {med['keras']:.0f},"
        f" Keras fit with op determinism {med['keras-det']:.0f}, mobile-ml with deterministic = false "
        f"{med['mobile-ml-nodet']:.0f}"
    )
    print(
        f"mobile-ml / Keras: median {result['ratio_examples_per_s']:.3f}, best trial "
        f"{result['ratio_best_examples_per_s']:.3f} (target ≥ 0.95); determinism alone: "
        f"{result['determinism_ratio']:.3f}; like for like: determinism on both {result['ratio_same_determinism']:.3f},"
        f" off on both {result['ratio_nondeterministic']:.3f}"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
