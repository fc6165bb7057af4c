"""How trustworthy is `mobile-ml benchmark`? Its p50 against two independent measurements of the same model.

    python benchmarks/benchmark_harness.py [--rounds 5] [--out benchmarks/results/benchmark_harness.json]

Model: MobileNetV2 1.0, 224×224×3, fp32 (random weights: timing does not depend on them), ~10 ms per inference
here, long enough for LiteRT's tool, which rounds to 0.01 ms. One thread, XNNPACK on, in every arm.

Arms, each in a fresh process, interleaved round by round (harness, bare, litert, harness, bare, ...):
  harness  `mobile_ml.benchmark.runner.run` (the CLI's code path): 1 warm-up run / 0.5 s, ≥ 50 runs / 1 s; p50
  bare     a minimal script: Interpreter, allocate, set input, 10 warm-up invokes, 100 timed invokes; median
  litert   `python -m ai_edge_litert.tools.benchmark_litert_model --num_threads=1` (LiteRT's own Python tool,
           which runs the CompiledModel API), 10 warm-up + 100 runs; its median_ms

Reported: ratios of medians across rounds (targets: harness/bare within ±3 %, harness/litert within ±5 %), the
spread of the harness p50 over the rounds (max/min, target ≤ 1.10), and the harness's own cost per timed run,
measured by running its timing loop around a no-op (target < 5 µs).
"""

from __future__ import annotations

import argparse
import array
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BARE = r"""
import sys, time, statistics, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.random.default_rng(0).uniform(-1, 1, d["shape"]).astype(np.float32))
for _ in range(10):
    it.invoke()
ts = []
for _ in range(100):
    t0 = time.perf_counter_ns(); it.invoke(); ts.append(time.perf_counter_ns() - t0)
print(statistics.median(ts) / 1e6)
"""


def build_model(path: Path) -> None:
    from mobile_ml import _tf
    from mobile_ml.export.convert import convert

    keras = _tf.keras()
    keras.utils.set_random_seed(0)
    with _tf.quiet_stderr():
        model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None, classes=1000)
    path.write_bytes(convert(model, "fp32"))


def arm_harness(model: Path) -> float:
    from mobile_ml.benchmark.runner import BenchmarkOptions, run

    return run(model, BenchmarkOptions(threads=(1,))).measurements[0].latency_ms.p50


def arm_bare(model: Path) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(model)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def arm_litert(model: Path, tmp: Path) -> float:
    result = tmp / "litert.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ai_edge_litert.tools.benchmark_litert_model",
            f"--model={model}",
            "--num_threads=1",
            "--num_runs=100",
            "--warmup_runs=10",
            f"--result_json={result}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(result.read_text())["latency"]["median_ms"])


def harness_overhead_us(n: int = 200_000) -> dict:
    """The timing loop of the worker around a no-op: what it adds inside and outside the timed region."""
    from mobile_ml.benchmark.worker import timed_loop

    buf = array.array("q", bytes(8 * n))
    start = time.perf_counter_ns()
    count = timed_loop(lambda: None, buf, n, 0.0, 60.0)
    total = time.perf_counter_ns() - start
    inside = statistics.median(buf[:count]) / 1e3
    return {"inside_timed_region_us": round(inside, 4), "per_iteration_total_us": round(total / count / 1e3, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "benchmark_harness.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = tmp / "mobilenet_v2_224.tflite"
        print("building MobileNetV2 1.0/224 fp32 ...", file=sys.stderr)
        build_model(model)
        arms = {"harness": [], "bare": [], "litert": []}
        for r in range(args.rounds):
            arms["harness"].append(arm_harness(model))
            arms["bare"].append(arm_bare(model))
            arms["litert"].append(arm_litert(model, tmp))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in arms.items()), file=sys.stderr)
    med = {k: statistics.median(v) for k, v in arms.items()}
    h = arms["harness"]
    out = {
        "schema": "mobile_ml.bench.benchmark_harness",
        "schema_version": 1,
        "date": time.strftime("%Y-%m-%d"),
        "model": "MobileNetV2 1.0 224x224x3 fp32, 1 thread, XNNPACK",
        "rounds": args.rounds,
        "p50_ms": arms,
        "median_ms": med,
        "harness_over_bare": med["harness"] / med["bare"],
        "harness_over_litert": med["harness"] / med["litert"],
        "harness_spread_max_over_min": max(h) / min(h),
        "overhead": harness_overhead_us(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "median_ms",
                    "harness_over_bare",
                    "harness_over_litert",
                    "harness_spread_max_over_min",
                    "overhead",
                )
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
