"""The data stage at scale: `data profile` and `data prepare` against `pandas.read_csv` of the same file.

    python benchmarks/data_scale.py [--rows 100000 1000000 [10000000]] [--workdir /tmp/data_scale]

For each size the script writes a seeded CSV (N rows × 50 columns: 40 numeric columns whose scales run from 1e-3 to
1e6, 9 categorical columns with 3 to 40 categories, 1 three-class label that depends on a few of them), then runs,
each in its own child process so that peak memory is that command's alone:

  read_csv   `pandas.read_csv(path)`: the baseline; its time is measured inside the child (imports excluded) and
             as the child's wall time (`process_seconds`, imports included: the fair comparison for a CLI command,
             reported as `vs_read_csv_process`); the loaded DataFrame's `memory_usage(deep=True)` is the memory
             baseline, and the read_csv child's own peak is reported beside it.
  profile    `mobile-ml data profile CSV --target label --json` (wall time of the whole command, imports included)
  prepare    `mobile-ml data prepare CSV --target label --out DIR --force` (the same)

Each command runs `--repeat` times (default 3), interleaved; the tables quote the median time and the median peak,
and every sample is in the JSON. Peak memory is each child's `ru_maxrss` from `os.wait4`. Results go to
benchmarks/results/data_scale.json. Targets
(issue 16): profile ≤ 1.5× read_csv, prepare ≤ 3× read_csv, peak ≤ 2.5× the DataFrame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "data_scale.json"
SEED = 16
CHUNK = 250_000  # rows generated and written at a time, so a 10M-row file needs no 10M-row frame
TARGETS = {"profile": 1.5, "prepare": 3.0, "peak_vs_dataframe": 2.5}

READ_CSV = """
import json, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "dataframe_bytes": int(df.memory_usage(deep=True).sum()), "rows": len(df)}))
"""


def generate(path: Path, rows: int, seed: int = SEED) -> None:
    """Write the seeded benchmark CSV in chunks (each chunk from its own seeded generator: same file every time)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    scales = np.logspace(-3, 6, 40)  # very different scales: the case that breaks one-scale int8 inputs
    cardinalities = [3, 5, 8, 12, 16, 20, 25, 30, 40]
    writer = None
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            rng = np.random.default_rng([seed, start])
            cols: dict[str, object] = {}
            numeric = rng.standard_normal((n, 40)) * scales + scales * 3
            for j in range(40):
                values = numeric[:, j].round(4)
                if j % 10 == 3:  # a few missing values, so imputation has work to do
                    values = np.where(rng.random(n) < 0.02, np.nan, values)
                cols[f"num_{j:02d}"] = pa.array(values, from_pandas=True)
            codes = []
            for j, k in enumerate(cardinalities):
                c = rng.integers(0, k, n)
                codes.append(c)
                cols[f"cat_{j}"] = pa.array(np.char.add(f"c{j}_", c.astype(str)))
            # standardized num_00 + num_07 + one category: learnable, and not from one column alone
            score = (numeric[:, 0] / scales[0] - 3) + (numeric[:, 7] / scales[7] - 3) + (codes[0] == 1)
            label = np.where(score < -0.7, "low", np.where(score > 0.7, "high", "mid"))
            cols["label"] = pa.array(label)
            table = pa.table(cols)
            if writer is None:
                writer = pacsv.CSVWriter(str(path), table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def run_child(argv: list[str]) -> dict:
    """Run ``argv``; its wall time, peak RSS (bytes, from wait4) and stdout."""
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        # Not communicate(): it reaps the child, and wait4 is what returns that one child's peak memory.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        assert proc.stdout is not None
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if code != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:4])} failed ({code}):\n{err.read()[-2000:]}")
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    return {"seconds": seconds, "peak_rss_bytes": peak, "stdout": out}


def _median(runs: list[dict]) -> dict:
    """The run with the median wall time (its stdout too), with the median peak memory of all runs."""
    ordered = sorted(runs, key=lambda r: r["seconds"])
    middle = dict(ordered[len(ordered) // 2])
    middle["peak_rss_bytes"] = int(statistics.median(r["peak_rss_bytes"] for r in runs))
    return middle


def measure(rows: int, workdir: Path, repeat: int) -> dict:
    csv = workdir / f"table_{rows}.csv"
    t = time.perf_counter()
    generate(csv, rows)
    gen_s = time.perf_counter() - t
    cli = [sys.executable, "-m", "mobile_ml"]
    out = workdir / f"prepared_{rows}"
    commands = {
        "read_csv": [sys.executable, "-c", READ_CSV, str(csv)],
        "profile": [*cli, "data", "profile", str(csv), "--target", "label", "--json", "-"],
        "prepare": [*cli, "data", "prepare", str(csv), "--target", "label", "--out", str(out), "--force"],
    }
    samples: dict[str, list[dict]] = {name: [] for name in commands}
    try:
        for _ in range(repeat):  # interleaved, so a busy spell on a shared machine slows all three alike
            for name, argv in commands.items():
                samples[name].append(run_child(argv))
        prepared_bytes = sum(p.stat().st_size for p in out.iterdir())
    finally:
        csv_bytes = csv.stat().st_size
        csv.unlink(missing_ok=True)
        shutil.rmtree(workdir / f"prepared_{rows}", ignore_errors=True)
    base, profile, prepare = (_median(samples[name]) for name in commands)
    loaded = json.loads(base["stdout"])
    loaded["seconds"] = statistics.median(json.loads(r["stdout"])["seconds"] for r in samples["read_csv"])
    frame = loaded["dataframe_bytes"]
    result = {
        "rows": rows,
        "columns": 50,
        "csv_bytes": csv_bytes,
        "generate_s": round(gen_s, 2),
        "dataframe_bytes": frame,
        "read_csv": {"seconds": round(loaded["seconds"], 3), "process_seconds": round(base["seconds"], 3)},
        "prepared_bytes": prepared_bytes,
    }
    result["read_csv"]["peak_rss_bytes"] = base["peak_rss_bytes"]
    result["repeat"] = repeat
    result["samples_seconds"] = {name: [round(r["seconds"], 3) for r in runs] for name, runs in samples.items()}
    for name, r in (("profile", profile), ("prepare", prepare)):
        result[name] = {
            "seconds": round(r["seconds"], 3),
            "vs_read_csv": round(r["seconds"] / loaded["seconds"], 2),
            # against a process that imports pandas and reads the file: both sides pay interpreter start-up
            "vs_read_csv_process": round(r["seconds"] / base["seconds"], 2),
            "peak_rss_bytes": r["peak_rss_bytes"],
            "peak_vs_dataframe": round(r["peak_rss_bytes"] / frame, 2),
        }
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| rows | CSV MB | DataFrame MB | read_csv s (process s) | read_csv peak MB (×) | profile s (×, × process) "
        "| prepare s (×, × process) | profile peak MB (×) | prepare peak MB (×) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mb = 1 << 20
    for r in results:
        p, q = r["profile"], r["prepare"]
        rc = r["read_csv"]
        lines.append(
            f"| {r['rows']:,} | {r['csv_bytes'] / mb:.0f} | {r['dataframe_bytes'] / mb:.0f} | "
            f"{rc['seconds']:.2f} ({rc['process_seconds']:.2f}) | "
            f"{rc['peak_rss_bytes'] / mb:.0f} ({rc['peak_rss_bytes'] / r['dataframe_bytes']:.2f}×) | "
            f"{p['seconds']:.2f} ({p['vs_read_csv']}×, {p['vs_read_csv_process']}×) | "
            f"{q['seconds']:.2f} ({q['vs_read_csv']}×, {q['vs_read_csv_process']}×) | "
            f"{p['peak_rss_bytes'] / mb:.0f} ({p['peak_vs_dataframe']}×) | "
            f"{q['peak_rss_bytes'] / mb:.0f} ({q['peak_vs_dataframe']}×) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/data_scale"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command; medians are reported")
    parser.add_argument("--generate-only", type=Path, help="write the file for --rows[0] to this path and stop")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.rows[0])
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = [measure(n, args.workdir, args.repeat) for n in args.rows]
    doc = {
        "benchmark": "data_scale",
        "seed": SEED,
        "targets": TARGETS,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "results": results,
    }
    doc["load_average"] = os.getloadavg()  # a shared machine: how busy it was when the run ended
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(doc, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
