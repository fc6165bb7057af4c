"""`mobile-ml release status` and the `telemetry summary` fixes (issue 15, item 7): devices counted once, at the
version of their latest report (a rollback once showed 1.0.0 at 100 % and 1.1.0 at 23 %), a channel column,
`device sync --device-model`, inference latency from the reference client, and the release manager's overview per
channel. The fleet is the real reference client against a real server on loopback."""

from __future__ import annotations

import json
import sys
import time
import types
from collections import Counter
from datetime import timedelta

import pytest

from mobile_ml.client import inference_reports
from mobile_ml.client import sync as client
from mobile_ml.contracts import document_dict, parse_document
from mobile_ml.contracts.release_status import ReleaseStatus, Signature
from mobile_ml.deliver import telemetry
from mobile_ml.errors import UserError
from mobile_ml.publish import keys, publisher
from mobile_ml.publish.status import drift_flag, release_status
from tests.test_cli import run as cli
from tests.test_client import device, world  # noqa: F401  (the fixture: a root with 1.0.0 on beta, served)
from tests.test_telemetry_pg import body, postgres, store_events, target  # noqa: F401  (both stores)


def _sync_all(cfgs) -> dict[str, str]:
    """One check on each device; install id → the version it runs after it (the client's own word)."""
    return {cfg.install_id: client.sync(cfg).current for cfg in cfgs}


def _rollback_fleet(world):  # noqa: F811
    """Twenty devices on 1.0.0; 1.1.0 to half of them, and every device checks; rollback; every device checks
    again except half of those that took 1.1.0. Returns what each device runs at the end, as the devices said, and
    the devices that went back to 1.0.0."""
    root, key = str(world["root"]), world["key"]
    cfgs = [device(world, install_id=f"phone-{i}", device_model=f"model-{i % 2}") for i in range(20)]
    runs = _sync_all(cfgs)
    assert set(runs.values()) == {"1.0.0"}
    publisher.publish(root, world["run"], model="digits", version="1.1.0", channel="beta", key=key, rollout=50)
    runs |= _sync_all(cfgs)
    took = [c for c in cfgs if runs[c.install_id] == "1.1.0"]
    assert len(took) >= 2, runs  # 20 devices at 50 %: fewer than two in has odds of 2e-5
    time.sleep(1.05)  # manifest times have whole seconds: the reports above fall before the rollback's second
    publisher.rollback(root, "digits", "beta", key=key)
    stuck = took[: len(took) // 2]
    runs |= _sync_all([c for c in cfgs if c not in stuck])
    return runs, len(took) - len(stuck)


def test_a_rollback_counts_each_device_once_at_the_version_it_runs_now(world):  # noqa: F811
    runs, went_back = _rollback_fleet(world)
    truth = Counter(runs.values())
    assert truth["1.1.0"] > 0 and went_back > 0
    rows = telemetry.summary(world["db"])
    now: Counter[str] = Counter()
    for r in rows:
        now[r.version] += r.devices
        assert r.channel == "beta"
    assert now == truth  # before the fix: 1.0.0 counted all 20 devices, 1.1.0 every device that ever took it
    assert sum(r.adoption for r in rows) == pytest.approx(1.0)
    assert sum(r.adoption for r in rows if r.version == "1.0.0") == pytest.approx(truth["1.0.0"] / 20)

    status = release_status(str(world["root"]), "digits", str(world["db"]), public_key=keys.load_public(world["key"]))
    (beta,) = status.channels
    assert (beta.version, beta.action, beta.signature) == ("1.0.0", "rollback from 1.1.0", Signature.VERIFIED)
    assert {c.version: c.devices for c in beta.devices} == dict(truth)
    assert beta.devices[0].share == pytest.approx(truth["1.0.0"] / 20)
    (today,) = beta.adoption  # one day of reports: every device reported today, counted at its last report
    assert today.installs == 20 and {c.version: c.devices for c in today.versions} == dict(truth)
    # since the rollback manifest: the devices that went back applied 1.0.0; the others only checked
    assert (beta.updates_applied, beta.updates_failed, beta.failure_rate) == (went_back, 0, 0.0)


def test_the_summary_counts_the_latest_check_not_a_late_inference_report(target):  # noqa: F811
    """Inference reports recorded before a check arrive after it (the app and `device run` batch them): the
    check says what runs now. Events from clients that send no channel are a row of their own."""
    base = {"model": "digits", "app_version": "1.0", "device_model": "pixel", "channel": "beta"}
    evs = [
        {**base, "install_id_hash": "a" * 16, "version": "1.0.0", "event": "update_applied"},
        {**base, "install_id_hash": "a" * 16, "version": "1.1.0", "event": "update_applied"},
        {**base, "install_id_hash": "a" * 16, "version": "1.0.0", "event": "inference", "latency_ms": 4.0},
        {**base, "install_id_hash": "b" * 16, "version": "1.0.0", "event": "inference", "latency_ms": 6.0},
        {**base, "install_id_hash": "c" * 16, "version": "1.0.0", "event": "update_check", "channel": None},
    ]
    store_events(target, evs)
    rows = {(r.channel, r.version): r for r in telemetry.summary(target)}
    assert {k: r.devices for k, r in rows.items()} == {("beta", "1.0.0"): 1, ("beta", "1.1.0"): 1, (None, "1.0.0"): 1}
    assert rows["beta", "1.0.0"].latency_p50_ms == 5.0 and rows["beta", "1.0.0"].inferences == 2


def test_an_event_channel_must_be_a_channel_name():
    event = {"install_id_hash": "a" * 16, "model": "m", "version": "1", "app_version": "1", "device_model": "d"}
    with pytest.raises(telemetry.Invalid, match="channel"):
        telemetry.validate(body([{**event, "event": "update_check", "channel": "Not A Channel"}]))


def _sync_args(world, state, *extra):  # noqa: F811
    return [
        "device", "sync", "--server", world["url"], "--model", "digits", "--channel", "beta",
        "--public-key", world["key"] / "public.pem", "--state", state, "--install-id", state.name,
        "--app-version", "1.0.0", *extra,
    ]  # fmt: skip


def _summary(db) -> list[dict]:
    r = cli("telemetry", "summary", "--db", db, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["schema"], doc["schema_version"]) == ("mobile_ml.telemetry_summary", 2)
    return doc["rows"]


def test_device_model_round_trip_and_latency_from_device_run(world):  # noqa: F811
    """`device sync --device-model` reaches the summary; `device run` reports its latency with the next sync,
    only once the server took it, and the summary shows p50/p90 for it."""
    pixel, plain = world["tmp"] / "pixel-state", world["tmp"] / "plain-state"
    assert cli(*_sync_args(world, pixel, "--device-model", "Google Pixel 8")).exit_code == 0
    assert cli(*_sync_args(world, plain)).exit_code == 0
    latencies = []
    for _ in range(3):
        r = cli("device", "run", "--state", pixel, "--json")
        assert r.exit_code == 0, r.output
        latencies.append(json.loads(r.stdout)["latency_ms"])
    assert len(inference_reports.pending(pixel).events) == 3
    dead = _sync_args(world, pixel, "--device-model", "Google Pixel 8")
    dead[dead.index("--server") + 1] = "http://127.0.0.1:9/"  # nobody listens: the reports must wait
    assert cli(*dead).exit_code == 3
    assert len(inference_reports.pending(pixel).events) == 3
    assert cli(*_sync_args(world, pixel, "--device-model", "Google Pixel 8")).exit_code == 0
    assert inference_reports.pending(pixel).events == ()
    rows = {r["device_model"]: r for r in _summary(world["db"])}
    assert set(rows) == {"Google Pixel 8", "reference-client"}
    p = rows["Google Pixel 8"]
    assert (p["channel"], p["version"], p["devices"], p["inferences"]) == ("beta", "1.0.0", 1, 3)
    assert p["latency_p50_ms"] == pytest.approx(sorted(latencies)[1])
    assert min(latencies) <= p["latency_p90_ms"] <= max(latencies)
    assert rows["reference-client"]["latency_p50_ms"] is None  # it never ran an inference
    table = cli("telemetry", "summary", "--db", world["db"])
    assert "channel" in table.stdout and "Google Pixel 8" in table.stdout and "beta" in table.stdout
    r = cli(*_sync_args(world, plain, "--device-model", "x" * 129))
    assert r.exit_code == 2 and "--device-model" in r.stderr


def test_release_status_two_channels_halted_and_expiry(world):  # noqa: F811
    root, key = str(world["root"]), world["key"]
    publisher.promote(root, "digits", source="beta", target="stable", key=key)
    publisher.publish(root, world["run"], model="digits", version="1.1.0", channel="beta", key=key, rollout=30)
    halted = publisher.halt(root, "digits", "beta", key=key).manifest
    publisher.refresh(root, "digits", "stable", key=key, expires_days=2)
    cfgs = [device(world, install_id=f"d{i}") for i in range(6)] + [device(world, install_id="s0", channel="stable")]
    runs = _sync_all(cfgs)
    status = release_status(root, "digits", str(world["db"]), public_key=keys.load_public(key))
    beta, stable = status.channels
    assert (beta.channel, beta.version, beta.rollout_percent, beta.halted, beta.fallback) == (
        "beta", "1.1.0", 30.0, True, "1.0.0"
    )  # fmt: skip
    assert beta.manifest_version == halted.manifest_version and beta.action == "halt"
    assert (stable.version, stable.halted, stable.fallback, stable.expired) == ("1.0.0", False, None, False)
    assert stable.expires - stable.issued_at == timedelta(days=2)
    assert {c.version: c.devices for c in beta.devices} == dict(Counter(v for k, v in runs.items() if k != "s0"))
    assert [(c.version, c.devices) for c in stable.devices] == [("1.0.0", 1)]
    later = release_status(root, "digits", str(world["db"]), now=stable.issued_at + timedelta(days=3))
    assert [c.expired for c in later.channels] == [False, True]
    assert {c.signature for c in later.channels} == {Signature.UNCHECKED}  # no key given
    assert beta.drift is None or isinstance(beta.drift, bool)
    assert "halt" in cli("release", "status", "digits", "--root", root, "--db", world["db"]).stdout


def test_release_status_json_round_trip_and_table(world):  # noqa: F811
    _sync_all([device(world, install_id=f"j{i}") for i in range(3)])
    args = ["release", "status", "digits", "--root", world["root"], "--db", world["db"]]
    r = cli(*args, "--public-key", world["key"] / "public.pem", "--json")
    assert r.exit_code == 0, r.output
    raw = json.loads(r.stdout)
    doc = parse_document(ReleaseStatus, r.stdout, where="stdout")
    assert document_dict(doc) == raw and raw["schema"] == "mobile_ml.release_status" and raw["schema_version"] == 1
    assert doc.channels[0].devices[0].devices == 3 and doc.unassigned_devices == 0
    table = cli(*args)
    assert table.exit_code == 0 and "1.0.0 3 (100%)" in table.stdout and "adoption per day" in table.stdout


def test_release_status_refuses_an_unknown_model_and_flags_a_bad_signature(world):  # noqa: F811
    args = ["--root", world["root"], "--db", world["db"]]
    _sync_all([device(world)])
    r = cli("release", "status", "nosuch", *args)
    assert r.exit_code == 2 and "nosuch" in r.stderr and r.stdout == ""
    path = world["root"] / "digits/channels/beta.json"
    path.write_bytes(path.read_bytes().replace(b'"percent": 100.0', b'"percent": 10.0'))
    r = cli("release", "status", "digits", *args, "--public-key", world["key"] / "public.pem", "--json")
    assert r.exit_code == 3 and json.loads(r.stdout)["channels"][0]["signature"] == "failed"
    assert cli("release", "status", "digits", *args).exit_code == 0  # unchecked without a key


def test_the_drift_flag_is_the_monitors_verdict(monkeypatch):
    calls = []

    def monitor(db, *, root, model, channel, version):
        calls.append((db, root, model, channel, version))
        if version == "bad":
            raise UserError("no aggregates for digits 9.9.9 yet", hint="")
        return types.SimpleNamespace(drift=version == "drifted")

    monkeypatch.setitem(sys.modules, "mobile_ml.monitor.report", types.SimpleNamespace(monitor=monitor))
    assert drift_flag("t.db", "root", "digits", "beta", "drifted")[0] is True
    assert drift_flag("t.db", "root", "digits", "beta", "fine")[0] is False
    assert drift_flag("t.db", "root", "digits", "beta", "bad") == (None, "no aggregates for digits 9.9.9 yet")
    assert calls[0] == ("t.db", "root", "digits", "beta", "drifted")
    monkeypatch.setitem(sys.modules, "mobile_ml.monitor.report", None)  # not importable: n/a
    assert drift_flag("t.db", "root", "digits", "beta", "fine")[0] is None


def test_pending_inference_reports_are_bounded_and_survive_damage(tmp_path):
    """At most one request's worth waits (the newest); a damaged queue is dropped, never a failed run."""
    inference_reports.record_many(tmp_path, "1.0.0", [float(i) for i in range(150)])
    kept = inference_reports.pending(tmp_path).events
    assert [e.latency_ms for e in kept] == [float(i) for i in range(150 - 99, 150)]
    (tmp_path / inference_reports.PENDING).write_text("{not json")
    assert inference_reports.pending(tmp_path).events == ()
    inference_reports.record(tmp_path, "1.0.1", 2.5)
    assert [(e.version, e.latency_ms) for e in inference_reports.pending(tmp_path).events] == [("1.0.1", 2.5)]
