"""Benchmark: statistics, MAC counting, the local harness and its outputs, the compare gate, the adb path, errors.

Timing accuracy is measured by benchmarks/benchmark_harness.py, not asserted here.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mobile_ml.benchmark import android, report
from mobile_ml.benchmark import compare as cmp
from mobile_ml.benchmark.macs import count_macs
from mobile_ml.benchmark.runner import BenchmarkError, BenchmarkOptions, run
from mobile_ml.benchmark.stats import LatencyStats, percentile
from mobile_ml.errors import ConfigError, InputFileError, RegressionError

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"
QUICK = dict(runs=20, min_seconds=0.05, warmup_seconds=0.02)


def test_stats_match_numpy():
    rng = np.random.default_rng(0)
    xs = rng.lognormal(size=1001).tolist()
    s = LatencyStats.of(xs)
    for q, v in ((50, s.p50), (90, s.p90), (95, s.p95), (99, s.p99)):
        assert v == pytest.approx(np.percentile(xs, q))
    assert s.std == pytest.approx(np.std(xs)) and s.mean == pytest.approx(np.mean(xs))
    assert (s.min, s.max, s.count) == (min(xs), max(xs), 1001)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        LatencyStats.of([])


def test_macs_of_the_tiny_cnn(digits_export):
    """TINY is conv(8 filters, 3×3) on 8×8×1 → pool → 4·4·8 features → dense 10."""
    run_dir, _ = digits_export
    for variant in ("fp32", "int8"):
        work = count_macs((run_dir / "exports" / variant / "model.tflite").read_bytes())
        assert work.by_op == {"CONV_2D": 8 * 8 * 8 * 3 * 3 * 1, "FULLY_CONNECTED": 4 * 4 * 8 * 10}, variant


@pytest.fixture(scope="module")
def local_result(digits_export):
    run_dir, _ = digits_export
    return run(run_dir, BenchmarkOptions(threads=(1, 2), **QUICK))


def test_local_run_measures_every_variant_and_thread_count(local_result, digits_export):
    run_dir, export = digits_export
    assert {(m.variant, m.threads) for m in local_result.measurements} == {
        (v["variant"], t) for v in export["variants"] for t in (1, 2)
    }
    for m in local_result.measurements:
        s = m.latency_ms
        assert s.count == len(m.samples_ms) >= 20
        assert s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max
        assert m.init_ms > 0 and m.first_ms > 0 and m.warmup_runs >= 1 and m.gops > 0
        assert m.memory_mib["init_growth"] is not None
    d = local_result.device
    assert d["cores"] == os.cpu_count() and "ai-edge-litert" in d["runtime"] and d["cpu"]


def test_outputs_and_schema(local_result, tmp_path):
    out = report.write(local_result, tmp_path / "bench")
    doc = json.loads((out / "benchmark.json").read_text())
    assert doc["schema"] == "mobile_ml.benchmark" and doc["schema_version"] == 1
    assert len(doc["measurements"]) == len(local_result.measurements)
    assert (out / "benchmark.csv").read_text().count("\n") == len(local_result.measurements) + 1
    for png in ("latency.png", "tradeoff.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    before = (out / "benchmark.json").read_bytes()
    with pytest.raises(Exception, match="already exists"):
        report.write(local_result, out)
    assert (out / "benchmark.json").read_bytes() == before


def _doc(p50s_by_key):
    ms = []
    for (variant, threads), p50s in p50s_by_key.items():
        for r, p in enumerate(p50s):
            ms.append(
                {
                    "variant": variant,
                    "threads": threads,
                    "repeat": r,
                    "latency_ms": {"p50": p, "p90": p * 1.05, "mean": p, "std": p * 0.02},
                }
            )
    return {"schema": "mobile_ml.benchmark", "schema_version": 1, "measurements": ms}


def test_compare_gate_trips_on_a_real_regression_only():
    base = _doc({("int8", 1): [1.00, 0.98, 1.02], ("fp32", 1): [2.0, 2.1, 1.9]})
    slower = _doc({("int8", 1): [1.25, 1.22, 1.27], ("fp32", 1): [2.0, 2.05, 1.95]})
    deltas = cmp.compare(base, slower, 10)
    verdicts = {(d.variant, d.threads): d.verdict for d in deltas}
    assert verdicts == {("int8", 1): "regressed", ("fp32", 1): "ok"}
    with pytest.raises(RegressionError, match=r"int8 at 1 thread\(s\), 1 → 1.25 ms \(\+25.0%\)") as e:
        cmp.check(deltas, 10)
    assert e.value.exit_code == 4
    # the same median change, but the repeats overlap: noise, not a regression
    noisy = _doc({("int8", 1): [0.95, 1.25, 1.6], ("fp32", 1): [2.0, 2.0, 2.0]})
    assert {d.variant: d.verdict for d in cmp.compare(base, noisy, 10)}["int8"] == "within noise"
    faster = _doc({("int8", 1): [0.7, 0.71, 0.69], ("fp32", 1): [2.0, 2.0, 2.0]})
    assert {d.variant: d.verdict for d in cmp.compare(base, faster, 10)}["int8"] == "faster"
    only = cmp.compare(base, _doc({("int8", 1): [1.0]}), 10)
    assert {d.variant: d.verdict for d in only}["fp32"] == "only in base"
    with pytest.raises(ConfigError):
        cmp.compare(base, base, -1)


def test_cli_compare_exit_4(tmp_path):
    from tests.test_cli import run as cli

    (tmp_path / "a.json").write_text(json.dumps(_doc({("int8", 1): [1.0, 1.0, 1.01]})))
    (tmp_path / "b.json").write_text(json.dumps(_doc({("int8", 1): [1.5, 1.52, 1.49]})))
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "b.json", "--max-regression", "10")
    assert r.exit_code == 4 and "regressed" in r.stdout and "p50 regressed beyond 10%" in r.stderr
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "a.json", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["regressed"] is False
    (tmp_path / "c.json").write_text("{}")
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "c.json")
    assert r.exit_code == 2 and "not a mobile-ml benchmark result" in r.stderr


def test_parser_on_both_output_formats():
    new = android.parse_benchmark_model((FIXTURES / "new_format.txt").read_text())
    assert new["init_ms"] == pytest.approx(3.127) and new["first_ms"] == pytest.approx(0.412)
    s = new["latency_ms"]
    assert (s.count, s.min, s.p50, s.p95, s.max) == (9488, 0.090, 0.099, 0.131, 0.877)
    assert s.mean == pytest.approx(0.1027) and s.p90 is None and s.p99 is None
    assert new["warmup"] == {"count": 4102, "mean_ms": pytest.approx(0.1189)}
    assert new["memory_mib"] == {"init_growth": 2.85156, "run_growth": 3.12891, "peak_rss": 9.85547}
    old = android.parse_benchmark_model((FIXTURES / "old_format.txt").read_text())
    assert old["latency_ms"].p50 is None and old["latency_ms"].mean == pytest.approx(0.2556)
    assert old["memory_mib"]["run_growth"] == 7.25 and old["init_ms"] == pytest.approx(1.904)
    with pytest.raises(BenchmarkError, match="cannot parse"):
        android.parse_benchmark_model("Segmentation fault\n")


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    """A fake `adb` on PATH: the phone is the one thing that cannot exist here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_adb.py"} "$@"\n')
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(FIXTURES / "new_format.txt"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "PIXEL7")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    return tmp_path / "adb.log", binary


def test_adb_flow(fake_adb, digits_export):
    log, binary = fake_adb
    run_dir, _ = digits_export
    result = android.run_adb(
        run_dir / "exports" / "int8" / "model.tflite", BenchmarkOptions(threads=(1, 4)), device="adb", binary=binary
    )
    assert result.device["device"] == "Google Pixel 7" and result.device["cpu"] == "Tensor G2"
    assert [m.threads for m in result.measurements] == [1, 4]
    assert result.measurements[0].latency_ms.p50 == 0.099 and result.measurements[0].gops > 0
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [c for c in calls if len(c) > 3 and c[2] == "shell" and c[3].endswith("benchmark_model")]
    assert runs and "--num_threads=4" in runs[-1] and "--use_xnnpack=true" in runs[-1]
    assert any("--warmup_min_secs=0.5" in c for c in runs) and any("--graph=" in a for a in runs[0])


@pytest.mark.parametrize(
    "devices, device, match",
    [
        ("", "adb", "no Android device connected"),
        ("A,B", "adb", "2 devices connected"),
        ("A", "adb:B", "device B is not connected"),
    ],
)
def test_adb_device_errors(fake_adb, digits_export, monkeypatch, devices, device, match):
    _, binary = fake_adb
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    with pytest.raises(BenchmarkError, match=match):
        android.run_adb(
            digits_export[0] / "exports" / "int8" / "model.tflite", BenchmarkOptions(), device=device, binary=binary
        )


def test_adb_missing_binary_and_tool(fake_adb, digits_export, monkeypatch, tmp_path):
    _, binary = fake_adb
    model = digits_export[0] / "exports" / "int8" / "model.tflite"
    with pytest.raises(BenchmarkError, match="benchmark binary .* not found"):
        android.run_adb(model, BenchmarkOptions(), device="adb", binary=tmp_path / "nope")
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(tmp_path / "garbage.txt"))
    (tmp_path / "garbage.txt").write_text("Aborted\n")
    with pytest.raises(BenchmarkError, match="cannot parse"):
        android.run_adb(model, BenchmarkOptions(), device="adb", binary=binary)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(BenchmarkError, match="adb not found"):
        android.run_adb(model, BenchmarkOptions(), device="adb", binary=binary)


def test_bad_targets(digits_export, tmp_path):
    (tmp_path / "noise.tflite").write_bytes(os.urandom(512))
    with pytest.raises(InputFileError, match="not a TFLite model"):
        run(tmp_path / "noise.tflite", BenchmarkOptions(**QUICK))
    good = (digits_export[0] / "exports" / "fp32" / "model.tflite").read_bytes()
    (tmp_path / "half.tflite").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputFileError, match="LiteRT cannot load .*half.tflite") as e:
        run(tmp_path / "half.tflite", BenchmarkOptions(**QUICK))
    assert "truncated or damaged" in e.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no .tflite files"):
        run(tmp_path / "empty", BenchmarkOptions(**QUICK))
    with pytest.raises(ConfigError, match="must be positive"):
        BenchmarkOptions(threads=(0,))


def test_select_tf_model_is_refused(tmp_path):
    from mobile_ml import _tf
    from mobile_ml.export.convert import convert

    tf, keras = _tf.tensorflow(), _tf.keras()
    inputs = keras.Input((4, 4))
    x = keras.layers.Lambda(lambda t: tf.expand_dims(tf.linalg.det(t), -1))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    (tmp_path / "flex.tflite").write_bytes(convert(model, "fp32", allow_flex=True))
    with pytest.raises(BenchmarkError, match="needs Select-TF ops"):
        run(tmp_path / "flex.tflite", BenchmarkOptions(**QUICK))


def test_cli_benchmark_file_json_and_errors(digits_export, tmp_path):
    from tests.test_cli import run as cli

    model = tmp_path / "m.tflite"
    shutil.copy(digits_export[0] / "exports" / "int8" / "model.tflite", model)
    r = cli(
        "benchmark",
        model,
        "--threads",
        "1",
        "--runs",
        "10",
        "--min-seconds",
        "0.02",
        "--warmup-seconds",
        "0.01",
        "--json",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["measurements"][0]["variant"] == "m" and (tmp_path / "m-benchmark" / "benchmark.json").is_file()
    r = cli("benchmark", model, "--threads", "0")
    assert r.exit_code == 2 and "must be positive" in r.stderr
    r = cli("benchmark", model, "--threads", "1,x")
    assert r.exit_code == 2 and "comma-separated integers" in r.stderr
    r = cli("benchmark", model, "--runs", "10")  # results exist: refused before measuring
    assert r.exit_code == 2 and "already exists" in r.stderr
