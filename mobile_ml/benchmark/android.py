"""``--device adb[:SERIAL]``: run LiteRT's ``benchmark_model`` on an Android phone and read its output.

The binary is LiteRT's own C++ benchmark tool built for the phone's ABI (``--benchmark-binary``); we push it and the
model to ``/data/local/tmp/mobile_ml/``, run it with flags equivalent to ours, and read its log (``tool_log``) into
the same result schema. The tool prints summary statistics, not every sample, so a phone's measurements carry no
samples and p90/p99 are None; p50 comes from its ``median=`` field when present.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from mobile_ml.benchmark import tool_log
from mobile_ml.benchmark.runner import BenchmarkOptions, BenchmarkResult, Measurement, Reporter, check_model, gops
from mobile_ml.benchmark.targets import Resolved, Target
from mobile_ml.benchmark.tool_log import BenchmarkError

REMOTE_DIR = "/data/local/tmp/mobile_ml"
_PROPS = (
    "ro.product.manufacturer",
    "ro.product.model",
    "ro.soc.model",
    "ro.board.platform",
    "ro.product.cpu.abi",
    "ro.build.version.release",
    "ro.build.version.sdk",
)


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


class Phone:
    """One connected phone, reached through adb."""

    def __init__(self, adb: str, serial: str) -> None:
        self.adb, self.serial = adb, serial

    def sh(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run([self.adb, "-s", self.serial, *args], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise BenchmarkError(
                f"adb {' '.join(args[:2])} failed: {(proc.stderr or proc.stdout).strip()[:200]}",
                hint="check the phone's connection and storage",
            )
        return proc.stdout

    def fingerprint(self, binary: Path) -> dict[str, Any]:
        props = {p: self.sh("shell", "getprop", p).strip() for p in _PROPS}
        return {
            "kind": "android",
            "serial": self.serial,
            "cpu": props["ro.soc.model"] or props["ro.board.platform"],
            "device": f"{props['ro.product.manufacturer']} {props['ro.product.model']}".strip(),
            "abi": props["ro.product.cpu.abi"],
            "os": f"Android {props['ro.build.version.release']} (API {props['ro.build.version.sdk']})",
            "runtime": f"benchmark_model ({binary.name})",
            "cores": None,
        }

    def benchmark(self, remote_bin: str, remote_model: str, threads: int, options: BenchmarkOptions) -> str:
        return self.sh(
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


def measurement(t: Target, threads: int, repeat: int, options: BenchmarkOptions, log: str, macs: int) -> Measurement:
    """One phone run's log as a Measurement (no samples: the tool prints only its summary)."""
    p = tool_log.parse(log)
    return Measurement(
        variant=t.name,
        model=str(t.path),
        bytes=t.size_bytes,
        threads=threads,
        xnnpack=options.xnnpack,
        repeat=repeat,
        init_ms=p.init_ms,
        first_ms=p.first_ms,
        warmup_runs=p.warmup_count,
        warmup_mean_ms=p.warmup_mean_ms,
        latency_ms=p.latency_ms,
        memory_mib=p.memory_mib,
        macs=macs,
        gops=gops(macs, p.latency_ms.p50 if p.latency_ms.p50 is not None else p.latency_ms.mean),
    )


def _connect(device: str, binary: Path | None) -> tuple[Phone, Path]:
    kind, _, serial = device.partition(":")
    if kind != "adb":
        raise BenchmarkError(f"unknown device '{device}'", hint="use local, adb or adb:SERIAL")
    if binary is None or not Path(binary).is_file():
        raise BenchmarkError(
            f"benchmark binary {binary or '(none given)'} not found",
            hint="build or download LiteRT's benchmark_model for the phone's ABI and pass --benchmark-binary PATH",
        )
    adb = _adb()
    return Phone(adb, pick_device(adb, serial or None)), Path(binary)


def measure_adb(
    resolved: Resolved,
    options: BenchmarkOptions,
    *,
    device: str,
    binary: Path | None,
    reporter: Reporter | None = None,
) -> BenchmarkResult:
    phone, binary = _connect(device, binary)
    targets = resolved.targets
    macs = {t.name: check_model(t) for t in targets}  # validates each model here before the phone sees it
    fingerprint = phone.fingerprint(binary)
    phone.sh("shell", "mkdir", "-p", REMOTE_DIR)
    remote_bin = f"{REMOTE_DIR}/benchmark_model"
    phone.sh("push", str(binary), remote_bin)
    phone.sh("shell", "chmod", "755", remote_bin)
    measurements: list[Measurement] = []
    total = len(targets) * len(options.threads) * options.repeats
    for t in targets:
        remote_model = f"{REMOTE_DIR}/{t.name}.tflite"
        phone.sh("push", str(t.path), remote_model)
        for repeat in range(options.repeats):
            for threads in options.threads:
                if reporter:
                    reporter.measuring(t, threads, repeat, len(measurements), total)
                log = phone.benchmark(remote_bin, remote_model, threads, options)
                measurements.append(measurement(t, threads, repeat, options, log, macs[t.name]))
    source = "random values (benchmark_model's own inputs)"
    return BenchmarkResult(fingerprint, options, source, tuple(measurements), export=resolved.export)
