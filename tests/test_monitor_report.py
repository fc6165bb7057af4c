"""`mobile-ml monitor`: the fleet's stored aggregates against the published baseline, verdicts, plots, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from mobile_ml.cli import app
from mobile_ml.contracts import document_dict, parse_document
from mobile_ml.contracts.monitor import MonitorReport
from mobile_ml.errors import EXIT_DRIFT, UserError
from mobile_ml.monitor.report import monitor
from mobile_ml.monitor.stats import Thresholds
from tests import pg
from tests.monitor_fleet import LABELS, fleet, make_baseline, put_aggregates, put_baseline, put_events

runner = CliRunner()


@pytest.fixture(scope="module")
def baseline():
    return make_baseline()


@pytest.fixture
def where(tmp_path, baseline):
    root, db = str(tmp_path / "root"), str(tmp_path / "telemetry.db")
    put_baseline(root, "m", "1.0.0", baseline)
    put_events(db, [{"event": "update_check"}])  # a store the server created
    return root, db


def cli(root, db, *args):
    return runner.invoke(app, ["monitor", "--db", db, "--root", root, "--model", "m", *map(str, args)])


def table_rows(stdout: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines() if line.startswith("│")]
    return {r[0]: r[1:] for r in rows}


def report_json(result) -> dict:
    return json.loads(result.stdout)


def test_no_shift_is_no_drift_at_thousands_of_samples(where, baseline):
    root, db = where
    put_aggregates(db, fleet(baseline, 4000))
    r = cli(root, db, "--json")
    assert r.exit_code == 0, r.output
    doc = report_json(r)
    assert doc["schema"] == "mobile_ml.monitor" and doc["drift"] is False
    assert [f["name"] for f in doc["features"]] == ["a", "b", "c"]
    for f in doc["features"]:
        assert f["count"] == 4000 and f["verdict"] == "ok" and not f["drifted"]
        assert 0 <= f["psi"] < 0.05 and 0 <= f["js"] < 0.1  # raw scores, not only flags
    assert doc["prediction"]["verdict"] == "ok" and sum(doc["prediction"]["fleet"]) == 4000
    assert doc["confidence"]["verdict"] == "ok"


def test_a_shifted_feature_is_drift_named_plotted_and_exits_5(where, baseline, tmp_path):
    root, db = where
    put_aggregates(db, fleet(baseline, 2000, shift={"b": 1.0}))
    out = tmp_path / "plots"
    r = cli(root, db, "--out", out)
    assert r.exit_code == EXIT_DRIFT, r.output
    assert "drift: 1.0.0 b" in r.stderr
    rows = table_rows(r.stdout)
    assert rows["b"][0] == "drift" and rows["a"][0] == "ok" and rows["c"][0] == "ok"
    assert float(rows["b"][1]) >= 0.2 and float(rows["a"][1]) < 0.1  # the PSI itself is in the table
    assert [p.name for p in out.iterdir()] == ["drift-1.0.0-b.png"]
    assert (out / "drift-1.0.0-b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = cli(root, db, "--json")
    assert as_json.exit_code == EXIT_DRIFT  # the JSON is printed, then the exit code says drift
    doc = report_json(as_json)
    assert doc["drift"] is True and [f["name"] for f in doc["features"] if f["drifted"]] == ["b"]
    assert doc["prediction"]["verdict"] == "ok"  # the model does not look at b


def test_below_min_count_is_not_enough_data_not_a_verdict(where, baseline):
    root, db = where
    put_aggregates(db, fleet(baseline, 300, shift={"b": 2.0}))  # a huge shift, but 300 samples
    r = cli(root, db)
    assert r.exit_code == 0, r.output
    assert r.stdout.count("not enough data") == 5  # three features, predictions, confidence
    doc = report_json(cli(root, db, "--json"))
    assert doc["drift"] is False and {f["verdict"] for f in doc["features"]} == {"not_enough_data"}
    assert next(f for f in doc["features"] if f["name"] == "b")["psi"] > 0.5  # the score is still shown


def test_thresholds_change_the_verdict(where, baseline):
    root, db = where
    put_aggregates(db, fleet(baseline, 3000, shift={"c": 0.4}))
    doc = report_json(cli(root, db, "--json"))
    c = next(f for f in doc["features"] if f["name"] == "c")
    assert c["verdict"] == "warn" and 0.1 <= c["psi"] < 0.2, c  # the default thresholds warn only
    assert cli(root, db).exit_code == 0
    lower = cli(root, db, "--psi-drift", 0.1, "--psi-warn", 0.05)
    assert lower.exit_code == EXIT_DRIFT and "drift: 1.0.0 c" in lower.stderr
    assert cli(root, db, "--min-count", 5000).stdout.count("not enough data") == 5
    higher = report_json(cli(root, db, "--json", "--psi-warn", c["psi"] + 0.01, "--psi-drift", 0.5))
    assert next(f for f in higher["features"] if f["name"] == "c")["verdict"] == "ok"
    bad = cli(root, db, "--psi-warn", 0.3, "--psi-drift", 0.2)
    assert bad.exit_code == 2 and "warn_psi <= drift_psi" in bad.stderr


def test_json_round_trips_through_the_contract(where, baseline):
    root, db = where
    put_baseline(root, "m", "1.1.0", baseline)
    put_aggregates(db, fleet(baseline, 1000, shift={"a": 1.0}, version="1.1.0"))
    put_aggregates(db, fleet(baseline, 800, channel="beta"))
    report = monitor(db, root=root, model="m")
    assert [v.version for v in report.versions] == ["1.1.0", "1.0.0"] and report.drift
    again = parse_document(MonitorReport, json.loads(json.dumps(document_dict(report))), where="report")
    assert again == report
    doc = document_dict(report)
    doc["drift"] = False
    with pytest.raises(UserError, match="drift"):
        parse_document(MonitorReport, doc, where="report")
    beta = monitor(db, root=root, model="m", channel="beta")  # 1.1.0 was counted on stable only
    assert [v.version for v in beta.versions] == ["1.0.0"] and beta.current.count == 800
    only = monitor(db, root=root, model="m", version="1.0.0", thresholds=Thresholds(min_count=100))
    assert only.current.count == 800 and not only.other_versions and not only.drift


def test_funnel_and_latency_by_device_come_from_the_events(where, baseline):
    root, db = where
    put_aggregates(db, fleet(baseline, 600))
    put_events(
        db,
        [
            {"event": "update_applied", "version": "1.0.0", "install_id_hash": "cd" * 16},
            {"event": "update_failed", "error_code": "hash_mismatch", "install_id_hash": "ef" * 16},
            {"event": "update_failed", "error_code": "network", "install_id_hash": "ef" * 16},
            {"event": "update_check", "error_code": "app_too_old"},
            *({"event": "inference", "latency_ms": ms, "device_model": "pixel-7"} for ms in (4.0, 5.0, 6.0)),
            {"event": "inference", "latency_ms": 30.0, "device_model": "galaxy-a14"},
        ],
    )
    report = monitor(db, root=root, model="m")
    f = report.funnel
    assert (f.checks, f.downloads, f.installed, f.failed, f.skipped, f.devices) == (5, 2, 1, 2, 1, 3)
    assert f.failure_reasons == {"hash_mismatch": 1, "network": 1}
    by_device = {d.device_model: d for d in report.latency_by_device}
    assert by_device["pixel-7"].count == 3 and by_device["pixel-7"].p50_ms == 5.0
    assert by_device["galaxy-a14"].p90_ms == 30.0
    lat = report.current.latency  # the aggregates' histogram (lognormal around e^1.5 ≈ 4.5 ms)
    assert sum(lat.counts) == 600 and lat.p50_le_ms == 5.0
    r = cli(root, db)
    assert "5 checks → 2 downloads → 1 installed, 2 failed" in r.stdout and "galaxy-a14" in r.stdout


def test_since_leaves_out_older_uploads(where, baseline):
    root, db = where
    put_aggregates(db, fleet(baseline, 700, shift={"b": 1.0}), received_at="2026-11-01T00:00:00Z")
    put_aggregates(db, fleet(baseline, 900))
    assert cli(root, db).exit_code == EXIT_DRIFT
    doc = report_json(cli(root, db, "--json", "--since", "2026-11-15"))
    assert doc["count"] == 900 and doc["drift"] is False and doc["since"] == "2026-11-15T00:00:00Z"
    assert cli(root, db, "--since", "yesterday").exit_code == 2


def test_unknown_model_or_version_is_one_line_exit_2(where, tmp_path):
    root, db = where
    r = subprocess.run(
        [sys.executable, "-m", "mobile_ml", "monitor", "--db", db, "--root", root, "--model", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"error: no model 'nope' is published in {root}" and lines[1].startswith("hint:")
    v = cli(root, db, "--version", "9.9.9")
    assert v.exit_code == 2 and "m has no release 9.9.9" in v.stderr


def test_a_release_without_baseline_is_exit_2(where, tmp_path):
    root, db = where
    put_baseline(root, "m", "2.0.0", None)
    r = cli(root, db, "--version", "2.0.0")
    assert r.exit_code == 2 and "no baseline.json" in r.stderr


def test_aggregates_counted_against_other_bins_are_exit_2_naming_the_field(where):
    root, db = where
    other = make_baseline(seed=5, test=600)
    other = type(other)(**{**other.__dict__, "features": tuple(f for f in other.features[::-1])})
    put_aggregates(db, fleet(other, 600))  # counted against another baseline, stored under 1.0.0
    r = cli(root, db)
    assert r.exit_code == 2 and "features[0].name" in r.stderr


def test_a_prediction_shift_alone_is_drift(where, baseline, tmp_path):
    root, db = where

    def says_yes(x):  # another model's behaviour on the same inputs
        return np.tile([0.05, 0.95], (len(x), 1))

    put_aggregates(db, fleet(baseline, 1000, model=says_yes))
    r = cli(root, db, "--out", tmp_path / "plots")
    assert r.exit_code == EXIT_DRIFT and "drift: 1.0.0 (prediction), 1.0.0 (confidence)" in r.stderr
    rows = table_rows(r.stdout)
    assert {rows[n][0] for n in "abc"} == {"ok"} and rows["(predicted class)"][0] == "drift"
    assert not (tmp_path / "plots").exists()  # plots are of features
    assert len(LABELS) == len(report_json(cli(root, db, "--json"))["prediction"]["fleet"])


@pytest.fixture(scope="module")
def postgres():
    server = pg.start()
    yield server
    server.stop()


def test_a_postgres_store_gives_the_report_a_sqlite_store_gives(where, baseline, postgres):
    root, db = where
    url = postgres.create("monitor_report")
    events = [
        {"event": "update_applied", "install_id_hash": "cd" * 16},
        {"event": "update_failed", "error_code": "health_check"},
        {"event": "inference", "latency_ms": 7.5, "device_model": "galaxy-a14"},
    ]
    for target in (db, url):
        if target == url:  # the SQLite store has the fixture's check already
            put_events(url, [{"event": "update_check"}])
        put_events(target, events)
        put_aggregates(target, fleet(baseline, 900, shift={"b": 1.0}))
        put_aggregates(target, fleet(baseline, 600, channel="beta"), received_at="2026-11-01T00:00:00Z")
    for options in ({}, {"channel": "beta"}, {"since": datetime(2026, 11, 15, tzinfo=timezone.utc)}):
        assert monitor(url, root=root, model="m", **options) == monitor(db, root=root, model="m", **options)
    r = cli(root, url, "--json")
    assert r.exit_code == EXIT_DRIFT and report_json(r)["funnel"]["downloads"] == 2
