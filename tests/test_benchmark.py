"""Benchmark: statistics, MAC counting, the local harness and its outputs, the compare gate, the adb path, errors.

Timing accuracy is measured by benchmarks/benchmark_harness.py, not asserted here.
"""

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mobile_ml.benchmark import compare as cmp
from mobile_ml.benchmark import report, tool_log
from mobile_ml.benchmark.macs import count_macs
from mobile_ml.benchmark.runner import BenchmarkError, BenchmarkOptions, run
from mobile_ml.benchmark.session import benchmark
from mobile_ml.benchmark.stats import LatencyStats, median, percentile
from mobile_ml.contracts import document_dict, write_document
from mobile_ml.contracts.benchmark import BenchmarkResult, Comparison, Measurement, Verdict
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


@pytest.mark.parametrize("n", [2, 4, 10, 1000])
def test_percentiles_interpolate_between_ranks_like_numpy(n):
    """Uneven data and lengths where the quantiles fall between ranks: an off-by-one rank shows here."""
    xs = sorted(np.random.default_rng(n).lognormal(sigma=1.5, size=n).tolist())
    for q in (1, 5, 25, 33.3, 50, 75, 90, 95, 99):
        assert percentile(xs, q) == pytest.approx(np.percentile(xs, q), rel=1e-12), q
    s = LatencyStats.of(xs[::-1])  # unsorted input
    assert (s.p50, s.p90, s.p99) == pytest.approx([np.percentile(xs, q) for q in (50, 90, 99)], rel=1e-12)


def test_median_of_an_even_number_of_repeats():
    assert median([1.0, 1.3, 1.1, 1.2]) == pytest.approx(1.15)
    assert median([4.0, 1.0]) == pytest.approx(2.5)
    # compare's figure for a side is the median of its repeats' p50s
    d = cmp.compare(_result({("m", 1): [1.0, 1.3, 1.1, 1.2]}), _result({("m", 1): [1.0, 1.3, 1.1, 1.2]}), 10)
    assert d.deltas[0].base_p50 == pytest.approx(1.15) and d.deltas[0].verdict is Verdict.OK


def test_macs_of_the_tiny_cnn(digits_export):
    """TINY is conv(8 filters, 3×3) on 8×8×1 → pool → 4·4·8 features → dense 10."""
    run_dir, _ = digits_export
    for variant in ("fp32", "int8"):
        work = count_macs((run_dir / "exports" / variant / "model.tflite").read_bytes())
        assert work.by_op == {"CONV_2D": 8 * 8 * 8 * 3 * 3 * 1, "FULLY_CONNECTED": 4 * 4 * 8 * 10}, variant


# Hand-counted work of the tiny models below (one multiply-accumulate per weight use, batch 1).
DEPTHWISE_MACS = 6 * 6 * (4 * 2) * 3 * 3  # 6×6 output, 4 channels × depth multiplier 2, one 3×3 window each
TRANSPOSE_MACS = (4 * 4 * 2) * 3 * 3 * 3  # every input value scatters a 3×3 window into each of 3 output channels
BATCH_MATMUL_MACS = 3 * 4 * 5 * 6  # batch 3 of (4×6) @ (6×5)
DENSE_MACS = 6 * 6 * 4 * 10


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Real .tflite models, each with one kind of op whose MACs are easy to count by hand (fp32, a few KB)."""
    from mobile_ml import _tf

    tf, keras = _tf.tensorflow(), _tf.keras()
    out = tmp_path_factory.mktemp("tiny-models")
    keras.utils.set_random_seed(0)
    depthwise = keras.Sequential(
        [
            keras.Input((6, 6, 4)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
            keras.layers.Flatten(),
        ]
    )
    transpose = keras.Sequential(
        [keras.Input((4, 4, 2)), keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")]
    )
    dense = keras.Sequential([keras.Input((6, 6, 4)), keras.layers.Flatten(), keras.layers.Dense(10)])

    @tf.function(input_signature=[tf.TensorSpec((3, 4, 6), tf.float32), tf.TensorSpec((3, 6, 5), tf.float32)])
    def batch_matmul(a, b):
        return tf.linalg.matmul(a, b)

    paths = {}
    with _tf.quiet_stderr():
        for name, model in (("depthwise", depthwise), ("transpose", transpose), ("dense", dense)):
            paths[name] = out / f"{name}.tflite"
            paths[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        conv = tf.lite.TFLiteConverter.from_concrete_functions([batch_matmul.get_concrete_function()], batch_matmul)
        paths["batch_matmul"] = out / "batch_matmul.tflite"
        paths["batch_matmul"].write_bytes(conv.convert())
    return paths


@pytest.mark.parametrize(
    "name, op, macs",
    [
        ("depthwise", "DEPTHWISE_CONV_2D", DEPTHWISE_MACS),
        ("transpose", "TRANSPOSE_CONV", TRANSPOSE_MACS),
        ("batch_matmul", "BATCH_MATMUL", BATCH_MATMUL_MACS),
        ("dense", "FULLY_CONNECTED", DENSE_MACS),
    ],
)
def test_macs_of_depthwise_transpose_and_batch_matmul(tiny_models, name, op, macs):
    work = count_macs(tiny_models[name].read_bytes())
    assert work.by_op == {op: macs} and work.macs == macs and work.counted_ops == 1


def test_warmup_runs_are_not_timed_samples(tiny_models):
    """With zero minimum durations the counts are exact: 5 warm-up runs, then exactly 7 timed ones."""
    options = BenchmarkOptions(warmup_runs=5, warmup_seconds=0, runs=7, min_seconds=0, repeats=2)
    result = run(tiny_models["dense"], options)
    assert len(result.measurements) == 2
    for m in result.measurements:
        assert m.warmup_runs == 5 and m.latency_ms.count == 7 and len(m.samples_ms) == 7
        assert m.latency_ms.p50 == pytest.approx(np.percentile(m.samples_ms, 50))
        assert m.warmup_mean_ms > 0 and m.first_ms > 0


QUICK3 = dict(runs=30, min_seconds=0.2, warmup_seconds=0.05, repeats=3)


def test_same_model_twice_is_not_a_regression(tiny_models):
    """Real LiteRT runs, one after the other, as a user would compare them."""
    base = run(tiny_models["depthwise"], BenchmarkOptions(**QUICK3))
    again = run(tiny_models["depthwise"], BenchmarkOptions(**QUICK3))
    c = cmp.compare(base, again, 10)
    assert c.deltas[0].base_repeats == c.deltas[0].new_repeats == 3
    assert c.deltas[0].verdict is not Verdict.REGRESSED and not c.regressed, c.deltas[0]
    one = cmp.compare(run(tiny_models["depthwise"], BenchmarkOptions(**{**QUICK3, "repeats": 1})), again, 10)
    assert one.deltas[0].verdict is Verdict.INSUFFICIENT


def test_a_bigger_model_is_a_regression(tiny_models, tmp_path):
    """Real LiteRT runs of a small and a ten-times-bigger model, interleaved in one run, compared as one variant."""
    from mobile_ml import _tf

    keras = _tf.keras()
    big = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(32, 3), keras.layers.Conv2D(32, 3)])
    both = tmp_path / "both"
    both.mkdir()
    with _tf.quiet_stderr():
        (both / "big.tflite").write_bytes(_tf.tensorflow().lite.TFLiteConverter.from_keras_model(big).convert())
    shutil.copy(tiny_models["dense"], both / "small.tflite")
    result = run(both, BenchmarkOptions(**QUICK3))

    def side(name):
        ms = tuple(dataclasses.replace(m, variant="m") for m in result.measurements if m.variant == name)
        return dataclasses.replace(result, measurements=ms)

    c = cmp.compare(side("small"), side("big"), 10)
    assert c.deltas[0].verdict is Verdict.REGRESSED and c.deltas[0].p_value == pytest.approx(0.05)
    assert cmp.compare(side("big"), side("small"), 10).deltas[0].verdict is Verdict.FASTER


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
    assert cmp.load(out / "benchmark.json") == local_result
    assert (out / "benchmark.csv").read_text().count("\n") == len(local_result.measurements) + 1
    for png in ("latency.png", "tradeoff.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    before = (out / "benchmark.json").read_bytes()
    with pytest.raises(Exception, match="already exists"):
        report.write(local_result, out)
    assert (out / "benchmark.json").read_bytes() == before


def _measurement(variant, threads, repeat, p50):
    """A measurement whose spread is fixed (p90 = 1.05 × p50), so only the repeats can tell noise from change."""
    stats = LatencyStats(20, p50 * 0.95, p50, p50 * 0.02, p50, p50 * 1.05, p50 * 1.07, p50 * 1.1, p50 * 1.2)
    return Measurement(variant, f"{variant}.tflite", 1000, threads, True, repeat, 1.0, p50, 1, p50, stats, {}, 10, 1.0)


def _result(p50s_by_key):
    ms = [_measurement(v, t, r, p) for (v, t), p50s in p50s_by_key.items() for r, p in enumerate(p50s)]
    return BenchmarkResult({"kind": "local", "cpu": "test"}, BenchmarkOptions(), "test", tuple(ms))


def _verdicts(comparison):
    return {(d.variant, d.threads): d.verdict for d in comparison.deltas}


def test_compare_gate_trips_on_a_real_regression_only():
    base = _result({("int8", 1): [1.00, 0.98, 1.02], ("fp32", 1): [2.0, 2.1, 1.9]})
    slower = _result({("int8", 1): [1.25, 1.22, 1.27], ("fp32", 1): [2.0, 2.05, 1.95]})
    c = cmp.compare(base, slower, 10)
    assert _verdicts(c) == {("int8", 1): Verdict.REGRESSED, ("fp32", 1): Verdict.OK}
    assert c.regressed and c.deltas[1].p_value == pytest.approx(0.05)  # 3 vs 3, no overlap: 1 of C(6, 3)
    with pytest.raises(RegressionError, match=r"int8 at 1 thread\(s\), 1 → 1.25 ms \(\+25.0%, p = 0.05") as e:
        cmp.check(c)
    assert e.value.exit_code == 4
    # the same median change, but the repeats overlap: noise, not a regression
    noisy = _result({("int8", 1): [0.95, 1.25, 1.6], ("fp32", 1): [2.0, 2.0, 2.0]})
    assert _verdicts(cmp.compare(base, noisy, 10))[("int8", 1)] is Verdict.WITHIN_NOISE
    faster = _result({("int8", 1): [0.7, 0.71, 0.69], ("fp32", 1): [2.0, 2.0, 2.0]})
    assert _verdicts(cmp.compare(base, faster, 10))[("int8", 1)] is Verdict.FASTER
    # a big slowdown that is not beyond the limit is not a regression either
    assert _verdicts(cmp.compare(base, slower, 30))[("int8", 1)] is Verdict.OK
    only = cmp.compare(base, _result({("int8", 1): [1.0, 1.0, 1.0]}), 10)
    assert _verdicts(only)[("fp32", 1)] is Verdict.ONLY_IN_BASE
    with pytest.raises(ConfigError):
        cmp.compare(base, base, -1)


@pytest.mark.parametrize("repeats", [1, 2])
def test_compare_refuses_to_judge_with_fewer_than_three_repeats(repeats):
    """The false alarm users hit: one repeat a side, +35 %. Without repeats there is no evidence either way."""
    base = _result({("int8", 1): [1.0] * repeats})
    new = _result({("int8", 1): [1.355] * repeats})
    c = cmp.compare(base, new, 10)
    d = c.deltas[0]
    assert d.verdict is Verdict.INSUFFICIENT and d.change_pct == pytest.approx(35.5) and d.p_value is None
    assert (d.noise_pct is None) == (repeats == 1)  # one repeat shows no spread, which is not "no noise"
    assert not c.regressed and not c.judged
    cmp.check(c)  # does not raise
    assert f"{repeats} repeat(s) on a side" in cmp.unjudged_note(c) and "--repeats 3" in cmp.unjudged_note(c)
    assert cmp.unjudged_note(cmp.compare(_result({("a", 1): [1, 1, 1]}), _result({("a", 1): [1, 1, 1]}), 10)) is None


def test_rank_test_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n1, n2 in ((3, 3), (3, 5), (6, 4)):
        xs, ys = rng.normal(size=n1).tolist(), (rng.normal(size=n2) + 0.8).tolist()
        want = stats.mannwhitneyu(ys, xs, alternative="greater", method="exact").pvalue
        assert cmp.mann_whitney_greater(xs, ys) == pytest.approx(want, rel=1e-9)
    xs, ys = rng.normal(size=40).round(1).tolist(), (rng.normal(size=35).round(1) + 0.3).tolist()  # ties, large
    want = stats.mannwhitneyu(ys, xs, alternative="greater", method="asymptotic", use_continuity=True).pvalue
    assert cmp.mann_whitney_greater(xs, ys) == pytest.approx(want, rel=1e-9)
    assert cmp.mann_whitney_greater([1, 2, 3], [4, 5, 6]) == pytest.approx(1 / 20)
    assert cmp.mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(1.0)


def test_cli_compare_exit_codes_and_json(tmp_path):
    from mobile_ml.contracts import parse_document
    from tests.test_cli import run as cli

    write_document(tmp_path / "a.json", _result({("int8", 1): [1.0, 1.0, 1.01]}))
    write_document(tmp_path / "b.json", _result({("int8", 1): [1.5, 1.52, 1.49]}))
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "b.json", "--max-regression", "10")
    assert r.exit_code == 4 and "regressed" in r.stdout and "p50 regressed beyond 10%" in r.stderr
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "b.json", "--json")
    doc = parse_document(Comparison, r.stdout, where="stdout")
    assert r.exit_code == 4 and doc.regressed and doc.deltas[0].verdict is Verdict.REGRESSED
    assert json.loads(r.stdout)["regressed"] is True
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "a.json", "--json")
    assert r.exit_code == 0 and parse_document(Comparison, r.stdout, where="stdout").regressed is False
    # one repeat a side: shown, not judged, exit 0
    write_document(tmp_path / "one.json", _result({("int8", 1): [1.0]}))
    write_document(tmp_path / "one-slower.json", _result({("int8", 1): [1.355]}))
    r = cli("benchmark", "compare", tmp_path / "one.json", tmp_path / "one-slower.json")
    assert r.exit_code == 0 and "insufficient" in r.stdout and "+35.5%" in r.stdout  # the table may fold the verdict
    assert "not judged" in r.stderr and "--repeats 3" in r.stderr
    r = cli("benchmark", "compare", tmp_path / "one.json", tmp_path / "one-slower.json", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["deltas"][0]["verdict"] == "insufficient evidence"
    (tmp_path / "c.json").write_text("{}")
    r = cli("benchmark", "compare", tmp_path / "a.json", tmp_path / "c.json")
    assert r.exit_code == 2 and "not a mobile-ml benchmark result" in r.stderr


def test_benchmark_json_round_trips_and_reads_what_an_earlier_version_wrote(tmp_path):
    result = _result({("int8", 1): [1.0, 1.1], ("fp32", 2): [2.0]})
    write_document(tmp_path / "benchmark.json", result)
    assert cmp.load(tmp_path / "benchmark.json") == result
    old = cmp.load(FIXTURES / "benchmark-json-v1-5c28662.json")  # written by mobile-ml before the contract
    assert old.options.repeats == 2 and old.options.warmup_runs == 2 and old.options.threads == (1,)
    assert [m.repeat for m in old.measurements] == [0, 1]
    for m in old.measurements:
        assert m.latency_ms.count == len(m.samples_ms) == 5 and m.warmup_runs == 2
        assert m.latency_ms.p50 == pytest.approx(np.percentile(m.samples_ms, 50))
    raw = json.loads((FIXTURES / "benchmark-json-v1-5c28662.json").read_text())
    assert document_dict(old) == raw  # written back key for key
    raw["measurements"][0]["latency_ms"]["count"] = "many"
    (tmp_path / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(InputFileError, match=r"measurements\[0\]\.latency_ms\.count: expected an integer"):
        cmp.load(tmp_path / "bad.json")


def _real_log(name):
    text = (FIXTURES / name).read_text()
    assert text.startswith("# source: ")  # provenance stays with the recording
    return text


def test_parser_reads_the_pixel2_2019_log():
    p = tool_log.parse(_real_log("pixel2-sd835-2019.txt"))
    assert (p.init_ms, p.first_ms, p.warmup_count, p.warmup_mean_ms) == pytest.approx((38.631, 581.397, 1, 581.397))
    s = p.latency_ms
    assert (s.count, s.min, s.max, s.mean, s.std) == pytest.approx((50, 470.353, 487.364, 479.385, 3.728))
    assert s.p50 is None and s.p90 is None and s.p95 is None and p.memory_mib == {}


def test_parser_reads_the_2020_log_with_peak_memory():
    p = tool_log.parse(_real_log("snapdragon835-or-heliop70-2020.txt"))
    assert (p.init_ms, p.first_ms, p.warmup_count, p.warmup_mean_ms) == pytest.approx((0.855, 49.060, 15, 34.8251))
    s = p.latency_ms
    assert (s.count, s.min, s.max, s.mean, s.std) == pytest.approx((50, 32.641, 34.005, 33.2094, 0.450))
    assert s.p50 is None and p.memory_mib == {"init_growth": 0.0, "run_growth": 12.8672}


def test_parser_reads_the_partial_gpu_log():
    p = tool_log.parse(_real_log("qualcomm-gpu-opencl-2020-partial.txt"))
    assert (p.init_ms, p.first_ms, p.warmup_count, p.warmup_mean_ms) == pytest.approx((870.557, 130.565, 4, 122.373))
    s = p.latency_ms
    assert (s.count, s.min, s.max, s.mean, s.std) == pytest.approx((50, 113.737, 124.776, 119.375, 1.948))
    assert s.p50 is None and p.memory_mib == {}


def test_parser_reads_the_logcat_log_with_percentiles_and_scientific_notation():
    p = tool_log.parse(_real_log("oppo-a3x-sd6s4g-logcat-percentiles.txt"))
    assert (p.init_ms, p.first_ms, p.warmup_count, p.warmup_mean_ms) == pytest.approx((458.883, 2732.148, 1, 2732.148))
    s = p.latency_ms
    assert (s.count, s.min, s.max, s.std) == pytest.approx((10, 2640.862, 3025.403, 105.101))
    assert s.mean == pytest.approx(2719.85)  # avg=2.71985e+06 µs
    assert (s.p50, s.p95) == pytest.approx((2709.263, 3025.403)) and s.p90 is None and s.p99 is None
    assert p.memory_mib == {"init_growth": 286.73, "run_growth": 337.0}


def test_parser_reads_the_compiled_model_benchmark_results_block():
    p = tool_log.parse(_real_log("litert-compiled-model-x86-2026.txt"))
    assert (p.init_ms, p.first_ms, p.warmup_count, p.warmup_mean_ms) == pytest.approx((1.16, 2.57, 5, 2.51))
    s = p.latency_ms
    assert (s.count, s.min, s.max, s.mean, s.std) == pytest.approx((50, 2.43, 2.55, 2.48, 0.03))
    assert (s.p50, s.p95) == pytest.approx((2.48, 2.52))
    cut = _real_log("litert-compiled-model-x86-2026.txt").replace("Inference (median):", "Inference (middle):")
    with pytest.raises(BenchmarkError, match="no 'inference \\(median\\)' line"):
        tool_log.parse(cut)


def test_parser_takes_prefixes_and_profiling_tables():
    """The same real logs with every line prefixed as other builds and logcat formats print them."""
    for name in ("snapdragon835-or-heliop70-2020.txt", "pixel2-sd835-2019.txt"):
        text = _real_log(name)
        want = tool_log.parse(text)
        info = "\n".join("INFO: " + line for line in text.splitlines())
        threadtime = "\n".join(f"07-08 15:33:55.768  5395  5395 I tflite  : {line}" for line in text.splitlines())
        profiled = text + (
            "\nProfiling Info for Benchmark Initialization:\n"
            "Timings (microseconds): count=1 curr=1234\n"
            "count=99 first=1 curr=1 min=1 max=1 avg=1 std=0\n"  # a table's row, after the summary
        )
        assert tool_log.parse(info) == want and tool_log.parse(threadtime) == want, name
        assert tool_log.parse(profiled) == want, name
    oppo = _real_log("oppo-a3x-sd6s4g-logcat-percentiles.txt")
    brief = "\n".join(line.split(" ", 2)[-1] for line in oppo.splitlines())  # logcat -v brief: no timestamp
    assert tool_log.parse(brief) == tool_log.parse(oppo)
    no_period = _real_log("qualcomm-gpu-opencl-2020-partial.txt").replace("870.557ms.", "870.557ms")
    assert tool_log.parse(no_period).init_ms == pytest.approx(870.557)
    with pytest.raises(BenchmarkError, match="cannot parse"):
        tool_log.parse("Segmentation fault\n")


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    """A fake `adb` on PATH: the phone is the one thing that cannot exist here; its output is a real recording."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_adb.py"} "$@"\n')
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(FIXTURES / "oppo-a3x-sd6s4g-logcat-percentiles.txt"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "PIXEL7")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF fake")
    return tmp_path / "adb.log", binary


def _adb(model, options, device="adb", binary=None):
    return benchmark(model, options, device=device, binary=binary)


def test_adb_flow(fake_adb, tiny_models):
    log, binary = fake_adb
    result = _adb(tiny_models["depthwise"], BenchmarkOptions(threads=(1, 4)), binary=binary)
    assert result.device["device"] == "Google Pixel 7" and result.device["cpu"] == "Tensor G2"
    assert [m.threads for m in result.measurements] == [1, 4]
    m = result.measurements[0]
    assert m.latency_ms.p50 == pytest.approx(2709.263) and m.warmup_runs == 1 and m.samples_ms == ()
    assert m.gops == pytest.approx(2 * DEPTHWISE_MACS / 2.709263 / 1e9)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    runs = [c for c in calls if len(c) > 3 and c[2] == "shell" and c[3].endswith("benchmark_model")]
    assert runs and "--num_threads=4" in runs[-1] and "--use_xnnpack=true" in runs[-1]
    assert any("--warmup_min_secs=0.5" in c for c in runs) and any("--graph=" in a for a in runs[0])


def test_phone_results_compare_on_their_repeats(fake_adb, tiny_models, monkeypatch, tmp_path):
    """Phones print no samples; compare still judges on the repeats' medians (here: mean, the 2019 tool)."""
    _, binary = fake_adb
    base = _adb(tiny_models["depthwise"], BenchmarkOptions(repeats=3), binary=binary)
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(FIXTURES / "pixel2-sd835-2019.txt"))
    old_phone = _adb(tiny_models["depthwise"], BenchmarkOptions(repeats=3), binary=binary)
    c = cmp.compare(old_phone, base, 10)
    assert c.deltas[0].base_p50 == pytest.approx(479.385) and c.deltas[0].new_p50 == pytest.approx(2709.263)
    # identical repeats on each side: a tie-free complete separation, p = 1/20
    assert c.deltas[0].verdict is Verdict.REGRESSED and c.deltas[0].p_value == pytest.approx(0.05)
    report.write(base, tmp_path / "phone")  # no samples, no p90: still writes CSV and JSON
    assert cmp.load(tmp_path / "phone" / "benchmark.json") == base


@pytest.mark.parametrize(
    "devices, device, match",
    [
        ("", "adb", "no Android device connected"),
        ("A,B", "adb", "2 devices connected"),
        ("A", "adb:B", "device B is not connected"),
    ],
)
def test_adb_device_errors(fake_adb, tiny_models, monkeypatch, devices, device, match):
    _, binary = fake_adb
    monkeypatch.setenv("FAKE_ADB_DEVICES", devices)
    with pytest.raises(BenchmarkError, match=match):
        _adb(tiny_models["depthwise"], BenchmarkOptions(), device=device, binary=binary)


def test_adb_missing_binary_and_tool(fake_adb, tiny_models, monkeypatch, tmp_path):
    _, binary = fake_adb
    model = tiny_models["depthwise"]
    with pytest.raises(BenchmarkError, match="benchmark binary .* not found"):
        _adb(model, BenchmarkOptions(), binary=tmp_path / "nope")
    with pytest.raises(BenchmarkError, match="unknown device 'usb'"):
        _adb(model, BenchmarkOptions(), device="usb", binary=binary)
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(tmp_path / "garbage.txt"))
    (tmp_path / "garbage.txt").write_text("Aborted\n")
    with pytest.raises(BenchmarkError, match="cannot parse"):
        _adb(model, BenchmarkOptions(), binary=binary)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(BenchmarkError, match="adb not found"):
        _adb(model, BenchmarkOptions(), binary=binary)


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


def test_compare_keras_times_the_runs_model_and_needs_a_run(exported, tiny_models):
    calls = []

    class Count:
        def measuring(self, *args):
            calls.append(args)

    with pytest.raises(InputFileError, match="--compare-keras needs a run directory"):
        benchmark(tiny_models["dense"], BenchmarkOptions(), compare_keras=True, reporter=Count())
    assert calls == []  # refused before any measuring
    fast = BenchmarkOptions(warmup_runs=1, warmup_seconds=0, runs=3, min_seconds=0)
    result = benchmark(exported[0], fast, compare_keras=True, reporter=Count())
    assert len(calls) == len(result.measurements) == len(exported[1].variants)
    for name in ("predict", "call"):
        assert result.keras[name]["count"] == 3 and result.keras[name]["p50"] > 0
    assert result.keras["model"].endswith("model.keras")
