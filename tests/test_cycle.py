"""`mobile-ml cycle`: monitor → retrain → export → benchmark → publish, from one TOML file, with its evidence.

Real everything: a publish root with a baseline, fleet aggregates in the telemetry store as the server stores them
(tests/monitor_fleet.py), labelled captured samples in a capture store, a real champion run, retrain, export,
LiteRT benchmark and a signed publish.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from mobile_ml.capture.store import CaptureStore
from mobile_ml.cli import app
from mobile_ml.contracts import read_document
from mobile_ml.contracts.capture import CaptureBatch, CaptureSample
from mobile_ml.contracts.cycle import CycleReport, Outcome, StepName, Trigger
from mobile_ml.contracts.retrain import RetrainReport
from mobile_ml.errors import ConfigError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from tests.monitor_fleet import fleet, make_baseline, put_aggregates, put_baseline
from tests.test_retrain import CHAMPION

runner = CliRunner()
MODEL = "digits"


def _store_samples(store, images, labels):
    """Labelled samples as consenting devices send them (flattened raw inputs, batches of 100), stored as the
    server does."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    samples = [
        CaptureSample(f"{i:032x}", now, "1.0.0", tuple(float(v) for v in x.ravel()), "0", 0.5, str(int(y)))
        for i, (x, y) in enumerate(zip(images, labels, strict=True))
    ]
    for i in range(0, len(samples), 100):
        batch = CaptureBatch(MODEL, "stable", "d" * 64, True, tuple(samples[i : i + 100]))
        CaptureStore(str(store)).add(batch, max_per_day=10_000)


def _world(tmp_path, *, n, shift):
    """Release 1.0.0 with a baseline in the root, and ``n`` fleet inferences counted against it."""
    baseline = make_baseline()
    put_baseline(str(tmp_path / "root"), MODEL, "1.0.0", baseline)
    docs = [replace(d, model=MODEL) for d in fleet(baseline, n, shift=shift, version="1.0.0")]
    put_aggregates(str(tmp_path / "telemetry.db"), docs)
    keys.generate(tmp_path / "keys")


def _config(tmp_path, run, *, min_labelled=200, extra=""):
    path = tmp_path / "cycle.toml"
    path.write_text(
        f"""
[cycle]
run = "{run}"
root = "root"
model = "{MODEL}"
channel = "beta"
out = "cycles"

[monitor]
db = "telemetry.db"

[capture]
store = "capture"
min_labelled = {min_labelled}

[publish]
key = "keys"
rollout = 20
{extra}
""",
        encoding="utf-8",
    )
    return path


def test_no_drift_and_too_few_samples_stops_after_the_monitor(tmp_path):
    _world(tmp_path, n=200, shift=None)  # below min_count: "not enough data", never drift
    _store_samples(tmp_path / "capture", np.zeros((5, 8, 8)), range(5))
    r = runner.invoke(app, ["cycle", str(_config(tmp_path, tmp_path / "no-run-needed")), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    [evidence] = (tmp_path / "cycles").iterdir()
    report = read_document(CycleReport, evidence / "cycle.json")
    assert out == json.loads((evidence / "cycle.json").read_text())
    assert report.outcome is Outcome.STOPPED and report.trigger is Trigger.NONE and not report.drift
    assert report.labelled == 5 and "fewer than min_labelled 200" in report.reason
    assert [s.name for s in report.steps] == [StepName.MONITOR] and report.version is None
    monitor = json.loads((evidence / "monitor.json").read_text())
    assert monitor["schema"] == "mobile_ml.monitor" and monitor["drift"] is False
    assert not (tmp_path / "root" / MODEL / "channels").exists()  # nothing published


def test_enough_labelled_samples_alone_trigger_a_retrain_and_a_failing_step_is_recorded(tmp_path):
    """min_labelled reached with no drift: the capture step runs, and its refusal of a run directory that does not
    exist (exit 2, before any training) is in cycle.json. A missing signing key is refused before anything runs."""
    _world(tmp_path, n=200, shift=None)
    _store_samples(tmp_path / "capture", np.zeros((5, 8, 8)), range(5))
    path = _config(tmp_path, tmp_path / "missing-run", min_labelled=5)
    os.rename(tmp_path / "keys", tmp_path / "keys.away")
    r = runner.invoke(app, ["cycle", str(path)])
    assert r.exit_code == 2 and "▸ monitor" not in r.output and not (tmp_path / "cycles").exists(), r.output
    os.rename(tmp_path / "keys.away", tmp_path / "keys")
    r = runner.invoke(app, ["cycle", str(path)])
    assert r.exit_code == 2, r.output
    assert "▸ capture" in r.output and "missing-run" in r.output
    [evidence] = (tmp_path / "cycles").iterdir()
    report = read_document(CycleReport, evidence / "cycle.json")
    assert report.trigger is Trigger.LABELLED and report.outcome is Outcome.FAILED and report.labelled == 5
    assert [s.name for s in report.steps] == [StepName.MONITOR, StepName.CAPTURE]
    assert report.steps[-1].outcome.startswith("failed: ") and "missing-run" in report.reason
    assert not (tmp_path / "root" / MODEL / "channels").exists()


@pytest.fixture(scope="module")
def champion(digits_dir, tmp_path_factory):
    from mobile_ml.train.trainer import train

    out = tmp_path_factory.mktemp("champion") / "run"
    train(digits_dir, out, CHAMPION)
    return out


@pytest.mark.slow
def test_drift_retrains_exports_benchmarks_and_publishes_the_winner_at_the_rollout(champion, tmp_path):
    from mobile_ml.data.images import load_builtin

    _world(tmp_path, n=2000, shift={"b": 1.0})
    x, y, _, _ = load_builtin("digits")
    rows = np.random.default_rng(0).permutation(len(y))[:600]
    _store_samples(tmp_path / "capture", np.roll(x[rows], 2, axis=2), y[rows])  # shifted two pixels, labelled
    # The budget rule itself is tested in test_retrain.py. Here 3 points: on 269 test images one image is 0.37 of a
    # point, and TensorFlow's threaded CPU training moved the challenger's original-split score by 3 images from run
    # to run (a fresh-clone CI run failed at 1.1 points lost against a budget of 1).
    extra = """
[retrain]
budget = 3.0

[export]
variants = ["fp32"]
calibration_samples = 64
finetune_epochs = 1

[benchmark]
min_seconds = 0.2
"""
    path = _config(tmp_path, champion, min_labelled=1000, extra=extra)  # drift alone triggers it
    r = runner.invoke(app, ["cycle", str(path)])
    assert r.exit_code == 0, r.output
    for step in ("monitor", "capture", "retrain", "export", "benchmark", "publish"):
        assert f"▸ {step}" in r.output
    [evidence] = (tmp_path / "cycles").iterdir()
    report = read_document(CycleReport, evidence / "cycle.json")
    assert report.trigger is Trigger.DRIFT and report.drift and report.labelled == 600
    assert report.outcome is Outcome.PUBLISHED and report.version == "1.0.1" and report.rollout == 20
    assert [s.name.value for s in report.steps] == ["monitor", "capture", "retrain", "export", "benchmark", "publish"]
    for step in report.steps:
        for rel in step.paths.values():
            assert (evidence / rel).exists(), (step.name, rel)
    assert "drift in b" in report.steps[0].outcome
    assert read_document(RetrainReport, evidence / "retrain" / "retrain.json").winner
    assert (evidence / "retrain" / "benchmark" / "benchmark.json").is_file()

    manifest = mf.parse((tmp_path / "root" / MODEL / "channels" / "beta.json").read_bytes(), "manifest")
    assert manifest.release.version == "1.0.1" and manifest.rollout.percent == 20 and manifest.release.variant == "fp32"
    published = json.loads((evidence / "publish.json").read_text())
    assert published["channel"] == "beta" and published["model"] == MODEL


def _subprocess(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "mobile_ml", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def test_an_unknown_key_exits_2_with_one_line_naming_it(tmp_path):
    path = _config(tmp_path, "run", extra="[retrain]\nbudjet = 2\n")
    r = _subprocess("cycle", path, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "unknown key 'retrain.budjet'" in r.stderr and "did you mean 'budget'" in r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "cycles").exists()


@pytest.mark.slow
def test_labelled_samples_that_do_not_help_exit_3_and_publish_nothing(champion, tmp_path):
    """No drift, but enough labelled samples: digits the champion already gets right, so the challenger cannot
    be better on them."""
    from mobile_ml.train.rundir import load_run

    _world(tmp_path, n=200, shift=None)
    run = load_run(champion)
    x, y = run.split("test")
    right = np.flatnonzero(run.load_model().predict(x, verbose=0).argmax(axis=1) == y)
    keep = np.concatenate([right[y[right] == c][:3] for c in range(10)])  # three per class: 30 rows
    _store_samples(tmp_path / "capture", x[keep], y[keep])
    extra = '[export]\nvariants = ["fp32"]\n'
    r = runner.invoke(app, ["cycle", str(_config(tmp_path, champion, min_labelled=30, extra=extra)), "--json"])
    assert r.exit_code == 3, r.output
    [evidence] = (tmp_path / "cycles").iterdir()
    report = read_document(CycleReport, evidence / "cycle.json")
    assert report.trigger is Trigger.LABELLED and not report.drift and report.labelled == 30
    assert report.outcome is Outcome.NOT_PUBLISHED and "did not win" in report.reason and report.version is None
    assert [s.name.value for s in report.steps] == ["monitor", "capture", "retrain"]
    assert not read_document(RetrainReport, evidence / "retrain" / "retrain.json").winner
    assert not (tmp_path / "root" / MODEL / "channels").exists()


def test_the_readme_cycle_config_is_a_valid_config(tmp_path):
    """The documented format is the real one: every table of the README's example loads, paths resolved."""
    from pathlib import Path

    from mobile_ml.loop import load_cycle_config

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Cycle config", 1)[1].split("```toml\n", 1)[1].split("\n```", 1)[0]
    (tmp_path / "c.toml").write_text(block, encoding="utf-8")
    cfg = load_cycle_config(tmp_path / "c.toml")
    assert cfg.cycle.run == str(tmp_path.resolve() / "runs/digits/run") and cfg.publish.rollout == 10
    assert cfg.benchmark is not None and cfg.benchmark.min_seconds == 0.3 and cfg.monitor.thresholds().min_count == 500
    (tmp_path / "bad.toml").write_text(block.replace("rollout = 10 ", "rollout = 101 "), encoding="utf-8")
    with pytest.raises(ConfigError, match="rollout percent must be between 0 and 100"):
        load_cycle_config(tmp_path / "bad.toml")


def test_cycle_json_round_trips_and_refuses_a_version_without_a_publish(tmp_path):
    from mobile_ml.contracts import parse_document, write_document
    from mobile_ml.contracts._fields import ContractError
    from mobile_ml.contracts.cycle import Step

    step = Step(StepName.MONITOR, "no drift", 0.5, {"report": "monitor.json"})
    doc = CycleReport("m", "beta", "2026-12-01T14:00:00+00:00", False, 3, Trigger.NONE, Outcome.STOPPED, "why", (step,))
    write_document(tmp_path / "cycle.json", doc)
    assert read_document(CycleReport, tmp_path / "cycle.json") == doc
    raw = json.loads((tmp_path / "cycle.json").read_text())
    assert raw["schema"] == "mobile_ml.cycle" and raw["schema_version"] == 1
    with pytest.raises(ContractError, match="version"):
        parse_document(CycleReport, {**raw, "version": "1.0.1"}, where="cycle.json")
    with pytest.raises(ContractError, match="paths"):
        parse_document(CycleReport, {**raw, "steps": [{**raw["steps"][0], "paths": {"a": 1}}]}, where="cycle.json")
