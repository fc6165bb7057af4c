"""tests/vectors/capture.json is what mobile_ml.client.capture decides today: regenerating it changes nothing, and
every draw in it follows the rule of docs/update-protocol.md §3.3 written out independently here. The Android
CaptureQueue replays the same file (VectorsTest)."""

import hashlib
import importlib.util
import json
from pathlib import Path

VECTORS = Path(__file__).parent / "vectors"


def _generator():
    spec = importlib.util.spec_from_file_location("make_capture_vectors", VECTORS / "make_capture_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_the_capture_vectors_changes_nothing(tmp_path, monkeypatch):
    gen = _generator()
    monkeypatch.setattr(gen, "OUT", tmp_path / "capture.json")
    gen.main()
    assert (tmp_path / "capture.json").read_bytes() == (VECTORS / "capture.json").read_bytes()


def test_every_draw_follows_the_documented_rule_and_the_sessions_cover_each_limit():
    doc = json.loads((VECTORS / "capture.json").read_text())
    for case in doc["draws"]:
        assert case["install_id_hash"] == hashlib.sha256(case["install_id"].encode()).hexdigest()
        for n, u in zip(case["n"], case["u"], strict=True):
            digest = hashlib.sha256(f"capture:{case['install_id_hash']}:{n}".encode()).digest()
            assert u == int.from_bytes(digest[:8], "big") / 2**64
    draws = [u for c in doc["draws"] for u in c["u"]]
    assert min(draws) < 0.01 and max(draws) > 0.99  # the ends, where a rounding slip would flip a decision
    steps = {s["name"]: s["steps"] for s in doc["sessions"]}
    budget = steps["budget_and_midnight"]
    start_day = next(s for s in doc["sessions"] if s["name"] == "budget_and_midnight")["start"][:10]
    crossing = next(s for s in budget if s["op"] == "offer" and s["expect"]["day"] not in (None, start_day))
    assert crossing["chosen"].count(True) == 2 * 3  # 3 a day, on each side of a UTC midnight
    assert any(s["op"] == "offer" and not any(s["chosen"]) and s["expect"]["taken_today"] == 3 for s in budget)
    assert any(s["op"] == "consent" and not s["value"] and s["expect"]["queue"] == 0 for s in budget)
    bound = steps["queue_bound"][-1]
    assert bound["expect"]["queue"] == doc["max_queue"] and bound["chosen"].count(False) == 5
