"""Capture, with consent: the signed policy, the device's queue, POST /v1/capture, the store and `capture export`.

Real publish roots, a real uvicorn server on loopback, the real reference client and LiteRT model, moto for S3.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from mobile_ml.capture.store import CaptureStore, OverBudget
from mobile_ml.cli import app
from mobile_ml.client import capture
from mobile_ml.client import sync as client
from mobile_ml.contracts import document_dict, read_document
from mobile_ml.contracts.capture import CaptureBatch, CapturePolicy, CaptureSample
from mobile_ml.publish import keys, publisher
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import open_root
from tests.conftest import TINY
from tests.test_client import device, serving

runner = CliRunner()
MODEL, CHANNEL = "digits", "beta"


def _manifest(root):
    return mf.parse((root / MODEL / "channels" / f"{CHANNEL}.json").read_bytes(), "manifest")


@pytest.fixture()
def world(digits_export, tmp_path):
    """digits 1.0.0 on beta with capture at rate 1 (every inference), 5 a day; served with a capture store."""
    from mobile_ml.deliver.server import create_app

    key_dir = tmp_path / "keys"
    keys.generate(key_dir)
    root = tmp_path / "root"
    publisher.publish(
        str(root), digits_export.run, model=MODEL, version="1.0.0", channel=CHANNEL, key=key_dir,
        capture_rate=1.0, capture_max_per_day=5,
    )  # fmt: skip
    store = tmp_path / "capture"
    with serving(create_app(root, tmp_path / "telemetry.db", capture_store=str(store))) as url:
        yield {"root": root, "key": key_dir, "url": url, "tmp": tmp_path, "store": store}


def _stored(store) -> list[str]:
    return sorted(p.name for p in (store / "capture").rglob("*.json") if "batches" in p.parts) if store.exists() else []


def _run(state, *extra):
    return runner.invoke(app, ["device", "run", "--state", str(state), *map(str, extra)])


# --- the policy in the signed manifest -----------------------------------------------------------------------------


def test_the_policy_is_signed_kept_by_other_commands_and_switched_off_by_rate_zero(world):
    root, key = world["root"], world["key"]
    assert _manifest(root).capture == CapturePolicy(1.0, 5, True)
    publisher.set_rollout(str(root), MODEL, CHANNEL, percent=50, key=key)
    publisher.refresh(str(root), MODEL, CHANNEL, key=key)
    assert _manifest(root).capture == CapturePolicy(1.0, 5, True)  # rollout and refresh never touch it
    r = runner.invoke(
        app, ["release", "capture", MODEL, "-c", CHANNEL, "--rate", "0.1", "--max-per-day", "3", "--root", str(root),
              "--key", str(key), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["capture"] == {"rate": 0.1, "max_per_day": 3, "requires_consent": True}
    assert _manifest(root).rollout.percent == 50  # the rest of the manifest stays
    publisher.set_capture(str(root), MODEL, CHANNEL, rate=0, key=key)
    raw = (root / MODEL / "channels" / f"{CHANNEL}.json").read_bytes()
    assert b'"capture"' not in raw and _manifest(root).capture is None  # off is the absent key: old clients read it
    bad = runner.invoke(
        app, ["release", "capture", MODEL, "-c", CHANNEL, "--rate", "1.5", "--root", str(root), "--key", str(key)]
    )
    assert bad.exit_code == 2 and "capture rate must be 0 to 1" in bad.output


def test_publish_without_capture_rate_leaves_a_new_channel_off(digits_export, tmp_path):
    keys.generate(tmp_path / "k")
    publisher.publish(str(tmp_path / "r"), digits_export.run, model=MODEL, version="1.0.0", channel="stable",
                      key=tmp_path / "k")  # fmt: skip
    assert b"capture" not in (tmp_path / "r" / MODEL / "channels" / "stable.json").read_bytes()


# --- the device ------------------------------------------------------------------------------------------------------


def test_without_consent_nothing_is_queued_or_sent(world):
    cfg = device(world)
    assert client.sync(cfg).current == "1.0.0"
    for _ in range(4):
        assert _run(cfg.state_dir, "--label", "3").exit_code == 0
    assert capture.load(cfg.state_dir).queue == ()
    client.sync(cfg)
    assert _stored(world["store"]) == []


def test_with_policy_off_a_consenting_device_queues_nothing(world):
    publisher.set_capture(str(world["root"]), MODEL, CHANNEL, rate=0, key=world["key"])
    cfg = device(world, capture_consent=True)
    client.sync(cfg)
    assert _run(cfg.state_dir).exit_code == 0
    assert capture.load(cfg.state_dir).queue == ()
    assert _stored(world["store"]) == []


def test_consent_then_labelled_runs_are_uploaded_and_the_queue_cleared_on_202(world):
    cfg = device(world, capture_consent=True)
    client.sync(cfg)
    assert _run(cfg.state_dir, "--label", "7").exit_code == 0
    assert _run(cfg.state_dir).exit_code == 0
    queued = capture.load(cfg.state_dir).queue
    assert [s.label for s in queued] == ["7", None] and len(queued[0].input) == 64
    client.sync(client.DeviceConfig(**{**cfg.__dict__, "capture_consent": None}))  # consent is remembered
    assert capture.load(cfg.state_dir).queue == ()
    (name,) = _stored(world["store"])
    stored = [b for _, b in CaptureStore(str(world["store"])).batches(MODEL)]
    assert [s.sample_id for s in stored[0].samples] == [s.sample_id for s in queued]
    assert queued[0].sample_id not in name and stored[0].install_id_hash not in name  # the server's own name


def test_a_refused_upload_keeps_the_queue_and_a_policy_switched_off_drops_it(world):
    import hashlib

    cfg = device(world, capture_consent=True)
    client.sync(cfg)
    _run(cfg.state_dir, "--label", "2")
    install = hashlib.sha256(cfg.install_id.encode()).hexdigest()
    assert _post(world["url"], _batch(5, install=install))[0] == 202  # the install's budget for today is spent
    client.sync(cfg)
    assert len(capture.load(cfg.state_dir).queue) == 1  # 429: kept for a later sync
    publisher.set_capture(str(world["root"]), MODEL, CHANNEL, rate=0, key=world["key"])
    client.sync(cfg)
    assert capture.load(cfg.state_dir).queue == ()  # taken under a policy that no longer holds: deleted, not sent
    assert len(_stored(world["store"])) == 1


def test_revoking_consent_deletes_the_queue_and_stops_sending(world):
    cfg = device(world, capture_consent=True)
    client.sync(cfg)
    _run(cfg.state_dir, "--label", "1")
    client.sync(client.DeviceConfig(**{**cfg.__dict__, "capture_consent": False, "server": "http://127.0.0.1:9/"}))
    assert capture.load(cfg.state_dir).queue == () and not capture.load(cfg.state_dir).consent
    _run(cfg.state_dir, "--label", "1")
    client.sync(client.DeviceConfig(**{**cfg.__dict__, "capture_consent": None}))
    assert capture.load(cfg.state_dir).queue == () and _stored(world["store"]) == []


def test_a_label_the_model_does_not_have_is_refused(world):
    cfg = device(world, capture_consent=True)
    client.sync(cfg)
    r = _run(cfg.state_dir, "--label", "eleven")
    assert r.exit_code == 2 and "not one of the model's labels" in r.output
    assert capture.load(cfg.state_dir).queue == ()


def test_rate_and_max_per_day_follow_the_seeded_draws(tmp_path):
    install = "a" * 64
    st = capture.CaptureState(consent=True, model=MODEL, channel=CHANNEL, install_id_hash=install,
                              policy=CapturePolicy(0.3, 4, True))  # fmt: skip
    capture.save(tmp_path, st)
    day = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    got = [capture.offer(tmp_path, values=[0.0] * 4, version="1.0.0", prediction="0", confidence=0.9, now=day)
           for _ in range(40)]  # fmt: skip
    draws = [capture.draw(install, n) < 0.3 for n in range(40)]
    expected, taken = [], 0
    for d in draws:  # under the rate, and only while today's budget lasts
        expected.append(d and taken < 4)
        taken += expected[-1]
    assert got == expected and sum(got) == 4 and 4 < sum(draws) < 40
    nxt = capture.offer(tmp_path, values=[0.0] * 4, version="1.0.0", prediction="0", confidence=0.9,
                        now=day + timedelta(days=1))  # fmt: skip
    assert nxt == (capture.draw(install, 40) < 0.3)  # a new day, a new budget
    assert len(capture.load(tmp_path).queue) == 4 + nxt


def test_a_non_finite_input_is_never_queued_and_consent_survives(tmp_path):
    st = capture.CaptureState(consent=True, model=MODEL, channel=CHANNEL, install_id_hash="a" * 64,
                              policy=CapturePolicy(1.0, 100, True))  # fmt: skip
    capture.save(tmp_path, st)
    nan = [0.0, float("nan"), 1.0, float("inf")]
    assert capture.offer(tmp_path, values=nan, version="1.0.0", prediction="0", confidence=0.9) is False
    after = capture.load(tmp_path)  # still readable: strict JSON would refuse a NaN
    assert after.consent and after.queue == () and after.inferences == 1  # the draw is counted, as in Kotlin
    assert capture.offer(tmp_path, values=[0.0] * 4, version="1.0.0", prediction="0", confidence=0.9) is True


# --- the server ------------------------------------------------------------------------------------------------------


def _batch(n=1, *, version="1.0.0", values=64, label="3", consent=True, install="b" * 64, **kw):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    samples = tuple(CaptureSample(f"{i:032x}", now, version, tuple([1.0] * values), "3", 0.5, label) for i in range(n))
    return CaptureBatch(kw.get("model", MODEL), kw.get("channel", CHANNEL), install, consent, samples)


def _post(url, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(document_dict(body)).encode()
    req = urllib.request.Request(url + "v1/capture", data=data, method="POST",
                                 headers={"Content-Type": "application/json", **headers})  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.parametrize(
    "batch, status, why",
    [
        (_batch(values=63), 422, "the model takes 64"),
        (_batch(values=65), 422, "the model takes 64"),
        (_batch(label="eleven"), 422, "not one of the model's labels"),
        (_batch(version="9.9.9"), 422, "not served"),
        (_batch(consent=False), 403, "no consent"),
        (_batch(channel="stable"), 404, "no channel"),
    ],
)
def test_a_batch_that_does_not_fit_is_refused_and_nothing_is_stored(world, batch, status, why):
    code, reply = _post(world["url"], batch)
    assert (code, why in reply["error"]) == (status, True), reply
    assert _stored(world["store"]) == []


def test_malformed_bodies_are_400_and_a_policy_off_channel_is_403(world):
    good = document_dict(_batch())
    for body in [
        b"{",
        json.dumps({**good, "extra": 1}).encode(),
        json.dumps({**good, "install_id_hash": "x"}).encode(),
    ]:
        assert _post(world["url"], body)[0] == 400
    image = document_dict(_batch())
    image["samples"][0]["input"][0] = 0.5  # pixels are whole numbers: the prepared data stores uint8
    assert _post(world["url"], json.dumps(image).encode())[0] == 422
    publisher.set_capture(str(world["root"]), MODEL, CHANNEL, rate=0, key=world["key"])
    code, reply = _post(world["url"], _batch())
    assert code == 403 and "capture is off" in reply["error"]
    _sign_policy(world, CapturePolicy(0.0, 5, True))  # present but rate 0: off as well
    assert _manifest(world["root"]).capture == CapturePolicy(0.0, 5, True)
    assert _post(world["url"], _batch())[0] == 403
    assert _stored(world["store"]) == []


def _sign_policy(world, policy):
    """A manifest whose policy the CLI would not write (rate 0 kept as a policy), signed by the channel's key."""
    from mobile_ml.publish.channel import commit, read_state

    private, storage = keys.load_private(world["key"]), open_root(str(world["root"]))
    st = read_state(storage, MODEL, CHANNEL, private.public_key())
    m = st.current
    commit(storage, st, private, release=m.release, fallback=m.fallback, percent=m.rollout.percent,
           salt=m.rollout.salt, action="capture", capture=policy)  # fmt: skip


def test_max_per_day_per_install_is_enforced_by_the_server(world):
    assert _post(world["url"], _batch(3))[0] == 202
    code, reply = _post(world["url"], _batch(3))
    assert code == 429 and "over the policy's 5 a day" in reply["error"]
    assert _post(world["url"], _batch(2))[0] == 202  # exactly the budget
    assert _post(world["url"], _batch(2, install="c" * 64))[0] == 202  # another install has its own
    assert len(_stored(world["store"])) == 3


def test_the_telemetry_token_guards_capture_too(digits_export, tmp_path):
    from mobile_ml.deliver.server import create_app

    keys.generate(tmp_path / "k")
    publisher.publish(str(tmp_path / "r"), digits_export.run, model=MODEL, version="1.0.0", channel=CHANNEL,
                      key=tmp_path / "k", capture_rate=1.0)  # fmt: skip
    token = "t" * 32
    app_ = create_app(tmp_path / "r", None, telemetry_token=token, capture_store=str(tmp_path / "cap"))
    with serving(app_) as url:
        assert _post(url, _batch())[0] == 401
        assert _post(url, _batch(), Authorization=f"Bearer {token}")[0] == 202
    no_store = create_app(tmp_path / "r", None)
    with serving(no_store) as url:
        assert _post(url, _batch())[0] == 404  # capture is off unless the server has a store


# --- S3 ----------------------------------------------------------------------------------------------------------


@pytest.fixture()
def s3_bucket(monkeypatch):
    import logging

    moto_server = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"capture-{os.getpid()}-{threading.get_ident() % 100000}"
    s3fs.S3FileSystem().mkdir(bucket)
    yield bucket
    server.stop()


def test_the_s3_store_keeps_batches_and_the_daily_bound(s3_bucket):
    import boto3

    store = CaptureStore(f"s3://{s3_bucket}/cap")
    first = store.add(_batch(2), max_per_day=3)
    with pytest.raises(OverBudget):
        store.add(_batch(2), max_per_day=3)
    store.add(_batch(1), max_per_day=3)
    ids = [i for i, _ in store.batches(MODEL)]
    assert first in ids and len(ids) == 2
    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="cap/capture/digits/batches/")
    assert len(listed["Contents"]) == 2  # independently, over S3's own HTTP API


# --- capture export --------------------------------------------------------------------------------------------------


def test_capture_export_makes_a_data_dir_that_train_accepts(digits_dir, tmp_path):
    import numpy as np

    from mobile_ml.data.spec import load_spec, load_split
    from mobile_ml.train.trainer import train

    x, y = load_split(digits_dir, load_spec(digits_dir), "test")
    spec = load_spec(digits_dir)
    store = CaptureStore(str(tmp_path / "store"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for start in range(0, 60, 20):
        samples = tuple(
            CaptureSample(f"{i:032x}", now, "1.0.0", tuple(float(v) for v in x[i].ravel()), "0", 0.5,
                          spec.labels[int(y[i])] if i % 3 else None)
            for i in range(start, start + 20)
        )  # fmt: skip
        store.add(CaptureBatch(MODEL, CHANNEL, "d" * 64, True, samples), max_per_day=1000)
    odd = CaptureSample("f" * 32, now, "1.0.0", (1.0,) * 63, "0", 0.5, "1")  # not this schema: 63 values
    store.add(CaptureBatch(MODEL, CHANNEL, "d" * 64, True, (odd,)), max_per_day=1000)
    again = [b for _, b in store.batches(MODEL)][0]
    store.add(again, max_per_day=1000)  # a batch re-sent after a lost reply: its samples count once
    r = runner.invoke(
        app, ["capture", "export", "--store", str(tmp_path / "store"), "--model", MODEL, "--run", str(digits_dir),
              "--out", str(tmp_path / "captured"), "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    counts = json.loads(r.output)
    assert (counts["samples"], counts["labelled"], counts["unlabelled"], counts["batches"]) == (61, 40, 20, 5)
    assert counts["skipped"] == 1
    assert sum(counts["splits"].values()) == 40
    out = tmp_path / "captured"
    exported = load_spec(out)
    assert exported.labels == spec.labels and exported.normalization == spec.normalization
    assert exported.source["type"] == "capture"
    tx, ty = load_split(out, exported, "train")
    assert tx.shape[1:] == x.shape[1:] and np.isin(ty, np.arange(10)).all()
    result = train(out, tmp_path / "run", TINY)
    assert read_document is not None and result is not None and (tmp_path / "run" / "model.keras").is_file()
    empty = runner.invoke(
        app, ["capture", "export", "--store", str(tmp_path / "nothing"), "--model", MODEL, "--run", str(digits_dir),
              "--out", str(tmp_path / "none")],
    )  # fmt: skip
    assert empty.exit_code == 2 and "0 labelled samples" in empty.output
    assert not (tmp_path / "none").exists() and open_root(str(tmp_path / "nothing")).list("capture") == []
