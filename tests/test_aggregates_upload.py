"""Device aggregates on the wire and in the store (issue 15, item 2): `POST /v1/aggregates` against the baseline of
the release it names, stored in SQLite and PostgreSQL alike and read back equal; refusals (bins, schema, unknown
version, size, token) store nothing; a retried snapshot is stored once; `device sync` uploads the counts and
forgets them only after a 202, so a failed or lost upload is retried and nothing is counted twice."""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import urlparse

import numpy as np
import pytest

from mobile_ml.client import sync as client
from mobile_ml.client.upload import UploadOutcome, device_baseline
from mobile_ml.contracts import document_dict, read_document
from mobile_ml.contracts.aggregates import Aggregates, AggregatorState
from mobile_ml.deliver import telemetry
from mobile_ml.deliver.server import create_app
from mobile_ml.deliver.telemetry_store import open_store
from mobile_ml.monitor.aggregate import Aggregator, state_file
from mobile_ml.monitor.baseline import build_baseline
from mobile_ml.publish import keys, publisher
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.channel import commit, read_state
from mobile_ml.publish.storage import open_root
from tests import test_telemetry_pg
from tests.test_client import Faults, device, serving

postgres = test_telemetry_pg.postgres  # fixtures: a PostgreSQL server; `target`, a fresh store of each kind
target = test_telemetry_pg.target

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
INSTALL = "ab" * 32  # sha256 hex of an install id
FEATURES = ["f0", "f1", "f2"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make_baseline(labels, bins=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (400, len(FEATURES)))
    probs = rng.dirichlet(np.ones(len(labels)), 100)
    return build_baseline(
        x[:300], x[300:], features=FEATURES, kind="tabular", test_probs=probs, labels=labels, bins=bins
    )


def publish_with_baseline(root, run, key, baseline, *, version="1.0.0", channel="beta"):
    """Publish the run's export as `version` with `baseline.json` as a third file of the release (what loop-device's
    publish does; built here from the publisher's own parts so these tests need only this branch)."""
    ev = publisher.load_variant(run, None)
    data = mf.dumps(document_dict(baseline))
    release = publisher._release_doc("digits", version, ev, "0.0.0")
    release = replace(release, files=(*release.files, publisher._blob("baseline.json", data)))
    storage = open_root(str(root))
    for f, blob in zip(release.files, (ev.model_bytes, ev.metadata_bytes, data), strict=True):
        storage.create(f.url, blob)
    storage.create(f"digits/releases/{version}.json", mf.dumps(release))
    private = keys.load_private(key)
    state = read_state(storage, "digits", channel, private.public_key())
    commit(storage, state, private, release=release, fallback=None, percent=100.0, salt=mf.new_salt(), action="publish")


def counts(baseline, n, *, seed=1, version="1.0.0", channel="beta", path=None) -> Aggregator:
    """An aggregator for digits `version` that has seen `n` inferences (seeded), saved to `path` when given."""
    rng = random.Random(seed)
    agg = Aggregator(baseline, model="digits", version=version, channel=channel, path=path, clock=Clock())
    if path is not None and path.exists():
        agg = Aggregator.open(path, baseline, model="digits", version=version, channel=channel, clock=Clock())
    for _ in range(n):
        p = [rng.random() for _ in baseline.labels]
        agg.observe([rng.gauss(0, 1.3) for _ in FEATURES], [v / sum(p) for v in p], rng.expovariate(0.2))
    agg.save()
    return agg


def snapshot(baseline, n, seed=1, **kw) -> Aggregates:
    snap = counts(baseline, n, seed=seed, **kw).snapshot()
    assert snap is not None
    return snap


def body(doc: Aggregates) -> bytes:
    return json.dumps(document_dict(doc)).encode()


def post(url, data, *, install=INSTALL, token=None, content_type="application/json"):
    u = urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    headers = {"Content-Type": content_type}
    if install is not None:
        headers["X-Install-Id-Hash"] = install
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        c.request("POST", "/v1/aggregates", body=data, headers=headers)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        c.close()


@pytest.fixture()
def root(digits_export, tmp_path):
    """A publish root with digits 1.0.0 (with a baseline) on beta; yields (root, key dir, baseline)."""
    run, report = digits_export
    labels = json.loads((run / "exports" / "int8" / "metadata.json").read_text())["labels"]
    baseline = make_baseline(labels)
    keys.generate(tmp_path / "keys")
    publish_with_baseline(tmp_path / "root", run, tmp_path / "keys", baseline)
    return tmp_path / "root", tmp_path / "keys", baseline


def stored(db) -> list[Aggregates]:
    return telemetry.read_aggregates(str(db), model="digits")


# -- the endpoint and both stores -------------------------------------------------------------------------------------


def test_posted_aggregates_land_in_the_store_and_read_back_equal(root, target, digits_export):
    publish_root, key, baseline = root
    other = make_baseline(baseline.labels, seed=3)  # 1.1.0 counts against its own baseline
    publish_with_baseline(publish_root, digits_export.run, key, other, version="1.1.0")
    a = snapshot(baseline, 40, seed=1)
    b = snapshot(other, 25, seed=2, version="1.1.0")
    c = snapshot(baseline, 7, seed=3, channel="stable")
    with serving(create_app(publish_root, target, telemetry_rate=0)) as url:
        for i, doc in enumerate((a, b, c)):
            status, reply = post(url, body(doc), install=f"{i:02x}" * 16)
            assert (status, reply) == (202, {"snapshot_id": doc.snapshot_id, "duplicate": False})
    assert telemetry.read_aggregates(target, model="digits") == [a, b, c]  # every field, in received order
    assert telemetry.read_aggregates(target, model="digits", channel="beta") == [a, b]
    assert telemetry.read_aggregates(target, model="digits", version="1.1.0") == [b]
    assert c.window_end < b.window_end < a.window_end  # 7, 25 and 40 inferences, one clock second each
    assert telemetry.read_aggregates(target, model="digits", since=a.window_end) == [a]  # windows ending since
    assert telemetry.read_aggregates(target, model="digits", since=b.window_end) == [a, b]
    assert telemetry.read_aggregates(target, model="iris") == []


def test_a_retried_snapshot_is_stored_once(root, target):
    """A device that lost the 202 sends the same snapshot again: accepted, not stored again. The same id from
    another install is another device's snapshot."""
    publish_root, _, baseline = root
    doc = snapshot(baseline, 30)
    with serving(create_app(publish_root, target, telemetry_rate=0)) as url:
        assert post(url, body(doc)) == (202, {"snapshot_id": doc.snapshot_id, "duplicate": False})
        assert post(url, body(doc)) == (202, {"snapshot_id": doc.snapshot_id, "duplicate": True})
        assert post(url, body(doc), install="cd" * 32)[0] == 202
    assert telemetry.read_aggregates(target, model="digits") == [doc, doc]
    with open_store(target, read_only=True) as s:
        assert s.query("SELECT install_id_hash FROM aggregates ORDER BY id") == [(INSTALL,), ("cd" * 32,)]


def _mismatched(baseline) -> Aggregates:
    """A document that is valid on its own but counted over other bins (5 per feature, the baseline has more)."""
    coarse = make_baseline(baseline.labels, bins=4)
    assert coarse.features[0].bins != baseline.features[0].bins
    return snapshot(coarse, 20)


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("bins", 400, "aggregates.features[0].counts"),
        ("classes", 400, "aggregates.predictions"),
        ("sums", 400, "add up to"),
        ("unknown field", 400, "raw_inputs: unknown field"),
        ("not json", 400, "aggregates"),
        ("unknown version", 404, "no release 9.9.9 of model digits"),
        ("unknown model", 404, "of model iris"),
        ("no install", 400, "X-Install-Id-Hash"),
        ("bad install", 400, "X-Install-Id-Hash"),
        ("type", 415, "Content-Type"),
    ],
)
def test_a_refused_upload_is_4xx_with_a_reason_and_stores_nothing(root, target, case, status, error):
    publish_root, _, baseline = root
    doc = snapshot(baseline, 20)
    raw = document_dict(doc)
    kw: dict = {}
    if case == "bins":
        data = body(_mismatched(baseline))
    elif case == "classes":
        data = body(snapshot(make_baseline([*baseline.labels, "extra"]), 20))
    elif case == "sums":
        data = json.dumps({**raw, "count": doc.count + 1}).encode()
    elif case == "unknown field":
        data = json.dumps({**raw, "raw_inputs": [[1, 2, 3]]}).encode()
    elif case == "not json":
        data = b'{"schema": "mobile_ml.aggregates", "schema_version": 1, "count": NaN}'
    elif case == "unknown version":
        data = json.dumps({**raw, "version": "9.9.9"}).encode()
    elif case == "unknown model":
        data = json.dumps({**raw, "model": "iris"}).encode()
    else:
        data = body(doc)
        kw = {
            "no install": {"install": None},
            "bad install": {"install": "NOT-HEX"},
            "type": {"content_type": "text/plain"},
        }[case]
    with serving(create_app(publish_root, target, telemetry_rate=0)) as url:
        got, reply = post(url, data, **kw)
    assert got == status and error in reply["error"], reply
    with open_store(target, read_only=True) as s:
        assert s.query("SELECT COUNT(*) FROM aggregates") == [(0,)]


def test_an_oversized_body_is_413_and_stores_nothing(root, tmp_path):
    publish_root, _, baseline = root
    raw = document_dict(snapshot(baseline, 5))
    huge = json.dumps({**raw, "padding": "x" * (1 << 20)}).encode()
    db = tmp_path / "telemetry.db"
    with serving(create_app(publish_root, db, telemetry_rate=0)) as url:
        status, reply = post(url, huge)
        assert status == 413 and "body over 1048576 bytes" in reply["error"]
        # A chunked body declares no length: it is cut off at the cap all the same.
        u = urlparse(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
        c.request("POST", "/v1/aggregates", body=chunks, encode_chunked=True,
                  headers={"Content-Type": "application/json", "X-Install-Id-Hash": INSTALL})  # fmt: skip
        assert c.getresponse().status == 413
        c.close()
    assert stored(db) == []


def test_the_ingest_token_and_the_rate_limit_apply_as_for_telemetry(root, tmp_path):
    publish_root, _, baseline = root
    token, db = secrets.token_urlsafe(24), tmp_path / "telemetry.db"
    docs = [snapshot(baseline, 10, seed=s) for s in range(3)]
    with serving(create_app(publish_root, db, telemetry_token=token, telemetry_rate=0)) as url:
        assert post(url, body(docs[0]))[0] == 401
        assert post(url, body(docs[0]), token="y" * 32)[0] == 401
        assert post(url, body(docs[1]), token=token)[0] == 202
    assert stored(db) == [docs[1]]
    # One bucket per address for both ingest endpoints: a burst of 1 spent on telemetry leaves none for aggregates.
    with serving(create_app(publish_root, db, telemetry_rate=0.01, telemetry_burst=1)) as url:
        u = urlparse(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("POST", "/v1/telemetry", body=b'{"events": []}', headers={"Content-Type": "application/json"})
        assert c.getresponse().status == 400  # counted, then refused for having no events
        c.close()
        status, reply = post(url, body(docs[2]))
        assert status == 429 and "too many" in reply["error"]
    assert stored(db) == [docs[1]]


def test_a_store_from_before_aggregates_reads_as_none_and_migrates(tmp_path):
    """A telemetry.db written before migration 3 has no aggregates table: readers find none (and change
    nothing); `serve` migrates it."""
    import shutil

    db = tmp_path / "telemetry.db"
    shutil.copy(test_telemetry_pg.FIXTURES / "telemetry-v1.db", db)
    assert telemetry.read_aggregates(str(db), model="digits") == []
    with open_store(db) as s:
        assert s.query("SELECT COUNT(*) FROM aggregates") == [(0,)]


# -- device sync -------------------------------------------------------------------------------------------------------


class LoseReply(Faults):
    """Faults plus mode "lose": the server handles (and stores) the request, then the reply is lost (500)."""

    async def __call__(self, scope, receive, send):
        if self.mode == "lose" and scope["type"] == "http" and scope["path"].endswith(self.target):
            self.mode = None

            async def swallow(message):
                pass

            await self.app(scope, receive, swallow)
            await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if self.mode == "slow" and scope["type"] == "http" and scope["path"].endswith(self.target):
            self.mode = None
            await asyncio.sleep(self.stall_s)
        await super().__call__(scope, receive, send)


@pytest.fixture()
def fleet(root, tmp_path):
    publish_root, key, baseline = root
    db = tmp_path / "telemetry.db"
    faults = LoseReply(create_app(publish_root, db, telemetry_rate=0))
    with serving(faults) as url:
        world = {"url": url, "key": key, "tmp": tmp_path}
        cfg = device(world, "phone-1")
        first = client.sync(cfg)
        assert first.outcome == "installed" and first.aggregates.outcome == UploadOutcome.NOTHING
        assert device_baseline(cfg, "1.0.0") == baseline  # the release's baseline.json, installed beside the model
        yield {"cfg": cfg, "db": db, "faults": faults, "baseline": baseline, "world": world}


def _file(cfg):
    return state_file(cfg.state_dir, "digits", "beta", "1.0.0")


def total(docs) -> int:
    return sum(d.count for d in docs)


def test_device_sync_uploads_the_counts_and_clears_them_only_after_202(fleet):
    cfg, db, faults, baseline = fleet["cfg"], fleet["db"], fleet["faults"], fleet["baseline"]
    counts(baseline, 30, seed=1, path=_file(cfg))
    faults.target, faults.mode = "/v1/aggregates", "500"  # one failed upload
    r = client.sync(cfg)
    assert r.outcome == "not_modified" and r.aggregates.outcome == UploadOutcome.KEPT
    assert "http_500" in r.aggregates.detail and stored(db) == []
    kept = read_document(AggregatorState, _file(cfg))
    assert kept.pending is not None and kept.pending.count == 30 and kept.current.count == 0
    counts(baseline, 12, seed=2, path=_file(cfg))  # the app goes on counting into the new window
    r = client.sync(cfg)
    assert r.aggregates.to_dict() == {"outcome": "uploaded", "snapshots": 1, "observations": 30, "kept": 0,
                                      "detail": ""}  # fmt: skip
    assert stored(db) == [kept.pending]  # the very snapshot that failed, same id and counts
    after = read_document(AggregatorState, _file(cfg))
    assert after.pending is None and after.current.count == 12
    r = client.sync(cfg)
    assert r.aggregates.observations == 12 and total(stored(db)) == 42
    assert client.sync(cfg).aggregates.outcome == UploadOutcome.NOTHING
    assert total(stored(db)) == 42 and json.loads(json.dumps(r.to_dict()))["aggregates"]["outcome"] == "uploaded"


def test_a_lost_reply_is_uploaded_again_and_counted_once(fleet):
    cfg, db, faults, baseline = fleet["cfg"], fleet["db"], fleet["faults"], fleet["baseline"]
    counts(baseline, 25, seed=3, path=_file(cfg))
    faults.target, faults.mode = "/v1/aggregates", "lose"  # stored by the server, but the device never hears so
    assert client.sync(cfg).aggregates.outcome == UploadOutcome.KEPT
    assert total(stored(db)) == 25
    assert client.sync(cfg).aggregates.outcome == UploadOutcome.UPLOADED  # the same snapshot id again
    assert total(stored(db)) == 25 and len(stored(db)) == 1
    assert read_document(AggregatorState, _file(cfg)).pending is None


def test_a_dead_server_keeps_the_counts_and_the_next_sync_sends_them(fleet):
    cfg, db, baseline = fleet["cfg"], fleet["db"], fleet["baseline"]
    counts(baseline, 18, seed=4, path=_file(cfg))
    dead = replace(cfg, server=_dead_url())
    r = client.sync(dead)
    assert r.outcome == "failed" and r.reason == "network" and r.current == "1.0.0"  # the model stays
    assert r.aggregates.outcome == UploadOutcome.KEPT and r.aggregates.detail.endswith("network (counts kept)")
    assert stored(db) == []
    assert client.sync(cfg).aggregates.observations == 18 and total(stored(db)) == 18


def test_a_slow_aggregates_endpoint_is_cut_by_the_timeout_and_never_fails_the_sync(fleet):
    cfg, db, faults, baseline = fleet["cfg"], fleet["db"], fleet["faults"], fleet["baseline"]
    counts(baseline, 9, seed=5, path=_file(cfg))
    faults.target, faults.mode, faults.stall_s = "/v1/aggregates", "slow", 4.0
    t0 = time.monotonic()
    r = client.sync(replace(cfg, timeout=1.0))
    assert time.monotonic() - t0 < 3.5
    assert r.outcome == "not_modified" and r.aggregates.outcome == UploadOutcome.KEPT
    time.sleep(3.5)  # the slow request finishes on the server: it was stored after all, which the next sync finds
    assert client.sync(cfg).aggregates.outcome == UploadOutcome.UPLOADED and total(stored(db)) == 9


def test_no_telemetry_uploads_no_aggregates(fleet):
    cfg, db, baseline = fleet["cfg"], fleet["db"], fleet["baseline"]
    counts(baseline, 5, seed=6, path=_file(cfg))
    before = _file(cfg).read_bytes()
    r = client.sync(replace(cfg, send_telemetry=False))
    assert r.aggregates.outcome == UploadOutcome.OFF and _file(cfg).read_bytes() == before and stored(db) == []


def test_sync_sends_the_ingest_token_with_the_aggregates(root, tmp_path):
    publish_root, key, baseline = root
    token, db = secrets.token_urlsafe(24), tmp_path / "telemetry.db"
    with serving(create_app(publish_root, db, telemetry_token=token, telemetry_rate=0)) as url:
        world = {"url": url, "key": key, "tmp": tmp_path}
        cfg = device(world, "phone-2")
        client.sync(cfg)
        counts(baseline, 6, seed=7, path=_file(cfg))
        r = client.sync(cfg)
        assert r.aggregates.outcome == UploadOutcome.KEPT and "http_401" in r.aggregates.detail
        assert client.sync(replace(cfg, telemetry_token=token)).aggregates.outcome == UploadOutcome.UPLOADED
    assert total(stored(db)) == 6


def _dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_counts_of_a_version_the_update_removes_are_still_sent(fleet, root, digits_export):
    """The baselines are read before the update check: a version whose directory this check deletes (neither
    current nor previous any more) still has its last counts uploaded."""
    cfg, db = fleet["cfg"], fleet["db"]
    publish_root, key, baseline = root
    publish_with_baseline(publish_root, digits_export.run, key, baseline, version="1.1.0")
    assert client.sync(cfg).current == "1.1.0"
    counts(baseline, 11, seed=8, path=_file(cfg))  # 1.0.0's counts, not yet sent (an upload that failed before)
    publish_with_baseline(publish_root, digits_export.run, key, baseline, version="1.2.0")
    r = client.sync(cfg)
    assert r.outcome == "installed" and r.current == "1.2.0" and not (cfg.state_dir / "versions" / "1.0.0").exists()
    assert r.aggregates.outcome == UploadOutcome.UPLOADED
    assert [(d.version, d.count) for d in stored(db)] == [("1.0.0", 11)]
