"""One benchmark measurement in a fresh process: ``python -m mobile_ml.benchmark.worker SPEC.json``.

A fresh process per (model, threads) is how LiteRT's own tools measure: nothing else has warmed the caches or grown
the heap, and the resident-set figures belong to this model alone. The worker imports numpy and ai-edge-litert only
(never TensorFlow) and prints one JSON object on stdout.

Method, following LiteRT's benchmark_model: load + allocate (init), one first inference, warm-up for at least
``warmup_runs`` runs and ``warmup_seconds``, then timed runs for at least ``runs`` runs and ``min_seconds`` and at
most ``max_runs`` runs or ``max_seconds``. The same input is set once before the timed loop; only ``invoke()`` is
inside the timed region.
"""

from __future__ import annotations

import array
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0), so each phase's peak is its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def timed_loop(
    invoke: Callable[[], object], samples: array.array[int], min_runs: int, min_s: float, max_s: float
) -> int:
    """Call ``invoke`` until at least ``min_runs`` calls and ``min_s`` seconds (at most ``len(samples)`` calls or
    ``max_s``), storing each call's nanoseconds in ``samples``; returns the number of calls.

    Only the call sits between the two clock reads. benchmarks/benchmark_harness.py measures what the rest costs.
    """
    clock = time.perf_counter_ns
    n, max_runs = 0, len(samples)
    start = clock()
    min_end, max_end = start + int(min_s * 1e9), start + int(max_s * 1e9)
    while True:
        a = clock()
        invoke()
        b = clock()
        samples[n] = b - a
        n += 1
        if (n >= min_runs and b >= min_end) or n >= max_runs or b >= max_end:
            return n


def _set_inputs(interpreter: Any, input_path: str | None) -> None:
    """The given example (quantized as the model expects) as the first input; seeded random values elsewhere."""
    import numpy as np

    from mobile_ml.export.tflite_file import TensorInfo, quantize

    rng = np.random.default_rng(0)
    given = np.load(input_path) if input_path else None
    for i, d in enumerate(interpreter.get_input_details()):
        info = TensorInfo.from_details(d)
        shape = [1 if s == -1 else int(s) for s in info.shape]
        if given is not None and i == 0:
            x = quantize(given.reshape(shape), info)
        elif np.dtype(info.dtype).kind == "f":
            x = rng.uniform(-1, 1, size=shape).astype(info.dtype)
        else:
            lim = np.iinfo(info.dtype)
            x = rng.integers(lim.min, lim.max, size=shape, endpoint=True).astype(info.dtype)
        if list(d["shape"]) != shape:
            interpreter.resize_tensor_input(d["index"], shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(d["index"], x)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from mobile_ml.export.tflite_file import check_model_bytes

    data = Path(spec["model"]).read_bytes()
    check_model_bytes(data, spec["model"])
    resolver = OpResolverType.AUTO if spec.get("xnnpack", True) else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    rss0 = _status_kib("VmRSS")
    can_reset = _reset_peak()
    t0 = time.perf_counter_ns()
    interpreter = Interpreter(
        model_content=data, num_threads=int(spec["threads"]), experimental_op_resolver_type=resolver
    )
    interpreter.allocate_tensors()
    init_ns = time.perf_counter_ns() - t0
    init_peak = _status_kib("VmHWM")

    _set_inputs(interpreter, spec.get("input"))
    invoke = interpreter.invoke
    clock = time.perf_counter_ns
    t0 = clock()
    invoke()
    first_ns = clock() - t0

    # Preallocated before the run phase, so recording a sample allocates nothing and the run-phase memory figure
    # is the model's, not the harness's.
    warm_buf = array.array("q", bytes(8 * int(spec["max_runs"])))
    timed_buf = array.array("q", bytes(8 * int(spec["max_runs"])))
    n_warm = timed_loop(
        invoke, warm_buf, int(spec["warmup_runs"]), float(spec["warmup_seconds"]), float(spec["max_seconds"])
    )
    if can_reset:
        _reset_peak()
    rss_before_runs = _status_kib("VmRSS")
    n_timed = timed_loop(invoke, timed_buf, int(spec["runs"]), float(spec["min_seconds"]), float(spec["max_seconds"]))
    run_peak = _status_kib("VmHWM")
    warm, timed = warm_buf[:n_warm].tolist(), timed_buf[:n_timed].tolist()
    kib = lambda a, b: None if a is None or b is None else round((a - b) / 1024, 3)  # noqa: E731  (MiB)
    return {
        "init_ms": init_ns / 1e6,
        "first_ms": first_ns / 1e6,
        "warmup_ms": [w / 1e6 for w in warm],
        "samples_ms": [t / 1e6 for t in timed],
        "memory_mib": {
            "init_growth": kib(init_peak, rss0),
            "run_growth": kib(run_peak, rss_before_runs),
            "peak_rss": None if run_peak is None else round(run_peak / 1024, 3),
            "method": "VmHWM with clear_refs reset" if can_reset else "VmHWM (not resettable)",
        },
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        result = measure(spec)
    except Exception as e:  # reported to the parent, which turns it into a clear error
        print(json.dumps({"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"}))
        sys.exit(1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
