"""``--device adb[:SERIAL]``: run LiteRT's ``benchmark_model`` on an Android phone and read its output.

The binary is LiteRT's own C++ benchmark tool built for the phone's ABI (``--benchmark-binary``); we push it and the
model to ``/data/local/tmp/mobile_ml/``, run it with flags equivalent to ours, and parse its log into the same result
schema. The tool prints summary statistics, not every sample, so p90/p99 are absent (None) for phones unless the
tool prints them; p50 comes from its ``median=`` field when present.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mobile_ml.benchmark.runner import BenchmarkError, BenchmarkOptions, BenchmarkResult, Measurement, _check, resolve
from mobile_ml.benchmark.stats import LatencyStats

REMOTE_DIR = "/data/local/tmp/mobile_ml"
_KV = re.compile(r"(\w+)=([-+0-9.eE]+)")


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """Parse benchmark_model's log: init, the warm-up and timed ``count=`` lines (µs), memory lines (MB)."""
    out: dict[str, Any] = {"memory_mib": {}}
    blocks = []
    for raw in text.splitlines():
        line = raw.split("INFO: ", 1)[-1].strip()
        if line.startswith("count="):
            blocks.append({k: float(v) for k, v in _KV.findall(line)})
        elif line.startswith("Initialized session in"):
            m = re.search(r"in ([0-9.]+)\s*ms", line)
            if m:
                out["init_ms"] = float(m.group(1))
        elif line.startswith("Inference timings in us:"):
            for key, val in re.findall(r"([A-Za-z ()]+): ([0-9.]+)", line.split(":", 1)[1]):
                key = key.strip().lower()
                if key == "init":
                    out["init_ms"] = float(val) / 1e3
                elif key == "first inference":
                    out["first_ms"] = float(val) / 1e3
        elif "memory footprint" in line.lower() and "init=" in line:
            kv = dict(_KV.findall(line))
            out["memory_mib"]["init_growth"] = float(kv.get("init", "nan"))
            out["memory_mib"]["run_growth"] = float(kv.get("overall", "nan"))
        elif "peak memory footprint" in line.lower() and "periodic" in line.lower():
            m = re.search(r"([0-9.]+)\s*$", line)
            if m:
                out["memory_mib"]["peak_rss"] = float(m.group(1))
    if len(blocks) < 2:
        raise BenchmarkError(
            f"cannot parse benchmark_model's output: expected a warm-up and a timed `count=` line, found {len(blocks)}",
            hint="rerun with --debug to see the tool's raw output",
        )
    warm, timed = blocks[0], blocks[-1]
    us = 1e-3
    out["warmup"] = {"count": int(warm.get("count", 0)), "mean_ms": warm.get("avg", 0.0) * us}
    out["first_ms"] = out.get("first_ms", warm.get("first", 0.0) * us)
    out["latency_ms"] = LatencyStats(
        count=int(timed["count"]),
        min=timed["min"] * us,
        mean=timed["avg"] * us,
        std=timed.get("std", 0.0) * us,
        p50=timed["median"] * us if "median" in timed else None,
        p90=None,
        p95=timed["p95"] * us if "p95" in timed else None,
        p99=None,
        max=timed["max"] * us,
    )
    return out


def _adb() -> str:
    adb = os.environ.get("ADB") or shutil.which("adb")
    if not adb:
        raise BenchmarkError(
            "adb not found (not on PATH and $ADB not set)", hint="install Android platform-tools and put adb on PATH"
        )
    return adb


def pick_device(adb: str, wanted: str | None) -> str:
    proc = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=30)
    serials = [line.split("\t")[0] for line in proc.stdout.splitlines()[1:] if line.strip().endswith("\tdevice")]
    if wanted:
        if wanted not in serials:
            raise BenchmarkError(
                f"device {wanted} is not connected (connected: {', '.join(serials) or 'none'})",
                hint="check `adb devices`",
            )
        return wanted
    if not serials:
        raise BenchmarkError(
            "no Android device connected", hint="connect a phone with USB debugging on; check `adb devices`"
        )
    if len(serials) > 1:
        raise BenchmarkError(
            f"{len(serials)} devices connected ({', '.join(serials)})", hint=f"choose one: --device adb:{serials[0]}"
        )
    return serials[0]


def run_adb(target, options: BenchmarkOptions, *, device: str, binary: Path | None, reporter=None) -> BenchmarkResult:
    kind, _, serial = device.partition(":")
    if kind != "adb":
        raise BenchmarkError(f"unknown device '{device}'", hint="use local, adb or adb:SERIAL")
    if binary is None or not Path(binary).is_file():
        raise BenchmarkError(
            f"benchmark binary {binary or '(none given)'} not found",
            hint="build or download LiteRT's benchmark_model for the phone's ABI and pass --benchmark-binary PATH",
        )
    adb = _adb()
    serial = pick_device(adb, serial or None)
    targets, export_report, _ = resolve(target)
    macs = {t.name: _check(t) for t in targets}  # validates each model here before the phone sees it

    def sh(*args: str, timeout: float = 120) -> str:
        proc = subprocess.run([adb, "-s", serial, *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchmarkError(
                f"adb {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()[:200]}",
                hint="check the phone's connection and storage",
            )
        return proc.stdout

    props = {
        p: sh("shell", "getprop", p).strip()
        for p in (
            "ro.product.manufacturer",
            "ro.product.model",
            "ro.soc.model",
            "ro.board.platform",
            "ro.product.cpu.abi",
            "ro.build.version.release",
            "ro.build.version.sdk",
        )
    }
    sh("shell", "mkdir", "-p", REMOTE_DIR)
    remote_bin = f"{REMOTE_DIR}/benchmark_model"
    sh("push", str(binary), remote_bin)
    sh("shell", "chmod", "755", remote_bin)
    measurements = []
    total, i = len(targets) * len(options.threads) * options.repeats, 0
    for t in targets:
        remote_model = f"{REMOTE_DIR}/{t.name}.tflite"
        sh("push", str(t.path), remote_model)
        for repeat in range(options.repeats):
            for threads in options.threads:
                if reporter:
                    reporter.measuring(t, threads, repeat, i, total)
                i += 1
                text = sh(
                    "shell",
                    remote_bin,
                    f"--graph={remote_model}",
                    f"--num_threads={threads}",
                    f"--warmup_runs={options.warmup_runs}",
                    f"--warmup_min_secs={options.warmup_seconds}",
                    f"--num_runs={options.runs}",
                    f"--min_secs={options.min_seconds}",
                    f"--max_secs={options.max_seconds}",
                    f"--use_xnnpack={str(options.xnnpack).lower()}",
                    "--report_peak_memory_footprint=true",
                    timeout=options.max_seconds * 2 + 120,
                )
                p = parse_benchmark_model(text)
                stats = p["latency_ms"]
                center = stats.p50 if stats.p50 is not None else stats.mean
                measurements.append(
                    Measurement(
                        t.name,
                        str(t.path),
                        t.size_bytes,
                        threads,
                        options.xnnpack,
                        repeat,
                        p.get("init_ms", 0.0),
                        p["first_ms"],
                        p["warmup"]["count"],
                        p["warmup"]["mean_ms"],
                        stats,
                        p["memory_mib"],
                        macs[t.name],
                        2 * macs[t.name] / (center / 1e3) / 1e9 if center else 0.0,
                        [],
                    )
                )
    soc = props["ro.soc.model"] or props["ro.board.platform"]
    fingerprint = {
        "kind": "android",
        "serial": serial,
        "cpu": soc,
        "device": f"{props['ro.product.manufacturer']} {props['ro.product.model']}".strip(),
        "abi": props["ro.product.cpu.abi"],
        "os": f"Android {props['ro.build.version.release']} (API {props['ro.build.version.sdk']})",
        "runtime": f"benchmark_model ({Path(binary).name})",
        "cores": None,
    }
    return BenchmarkResult(
        fingerprint, options, "random values (benchmark_model's own inputs)", measurements, export_report
    )
