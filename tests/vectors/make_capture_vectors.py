"""Regenerate the capture vectors: `PYTHONPATH=. python tests/vectors/make_capture_vectors.py`.

`tests/vectors/capture.json` holds what the Android `CaptureQueue` (VectorsTest) and `mobile_ml.client.capture`
(tests/test_capture_vectors.py) must agree on, exactly: the seeded per-install draw of docs/update-protocol.md §3.3
(including draws near 0 and 1, where a rounding difference would change a decision), and scripted sessions of
consent, manifests and inferences replayed through `capture.offer`, with the state after every step (queue length,
inference counter, UTC day, today's count). Deterministic (fixed clock, no randomness in what is recorded; sample ids
are random and left out): regenerating gives the same bytes, which the Python test checks.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mobile_ml.client import capture
from mobile_ml.contracts.capture import CapturePolicy
from mobile_ml.contracts.manifest import format_time
from mobile_ml.outputs import dumps

OUT = Path(__file__).parent / "capture.json"
START = datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc)  # two hours before a UTC midnight


def draw_cases() -> list[dict[str, Any]]:
    cases = []
    for install_id in ("install-a", "install-b", "émoji-✓", ""):
        h = hashlib.sha256(install_id.encode()).hexdigest()
        ns = [*range(300), 10**6, 2**31, 2**53 - 1]
        cases.append({"install_id": install_id, "install_id_hash": h, "n": ns, "u": [capture.draw(h, n) for n in ns]})
    return cases


def _policy(rate: float, per_day: int) -> dict[str, Any]:
    return {"rate": rate, "max_per_day": per_day, "requires_consent": True}


# Each step: consent (True/False), a manifest (model, channel, policy or None) or a number of inferences, one every
# `every` minutes. Together they cross a UTC midnight, spend the daily budget, fill the queue, revoke consent and
# switch the policy off and the channel over.
SESSIONS: dict[str, list[dict[str, Any]]] = {
    "budget_and_midnight": [
        {"op": "offer", "count": 3, "every": 10},  # no consent, no policy: nothing
        {"op": "consent", "value": True},
        {"op": "offer", "count": 3, "every": 10},  # consent, but no manifest yet: nothing
        {"op": "manifest", "model": "digits", "channel": "stable", "policy": _policy(0.4, 3)},
        {"op": "offer", "count": 60, "every": 5},  # 22:30 → 03:25: two UTC days, 3 a day at most
        {"op": "consent", "value": False},  # revoked: the queue goes at once
        {"op": "offer", "count": 5, "every": 5},
        {"op": "consent", "value": True},
        {"op": "offer", "count": 20, "every": 5},
        {"op": "manifest", "model": "digits", "channel": "stable", "policy": _policy(0.0, 3)},  # off: queue dropped
        {"op": "offer", "count": 5, "every": 5},
        {"op": "manifest", "model": "digits", "channel": "stable", "policy": _policy(1.0, 5)},
        {"op": "offer", "count": 4, "every": 1},
        {"op": "manifest", "model": "digits", "channel": "stable", "policy": _policy(1.0, 5)},  # same terms: kept
        {"op": "manifest", "model": "digits", "channel": "beta", "policy": _policy(1.0, 5)},  # another channel: dropped
        {"op": "offer", "count": 3, "every": 1},
        {"op": "manifest", "model": "digits", "channel": "beta", "policy": None},  # no capture key: off
        {"op": "offer", "count": 2, "every": 1},
    ],
    "queue_bound": [
        {"op": "consent", "value": True},
        {"op": "manifest", "model": "digits", "channel": "stable", "policy": _policy(1.0, 10000)},
        {"op": "offer", "count": capture.MAX_QUEUE + 5, "every": 0},
    ],
}


def run_session(install_id: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    now = START
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        for step in steps:
            chosen: list[bool] = []
            if step["op"] == "consent":
                capture.set_consent(state, step["value"])
            elif step["op"] == "manifest":
                p = step["policy"]
                policy = None if p is None else CapturePolicy(p["rate"], p["max_per_day"], p["requires_consent"])
                capture.note_manifest(
                    state, model=step["model"], channel=step["channel"], install_id=install_id, policy=policy
                )
            else:
                for _ in range(step["count"]):
                    now += timedelta(minutes=step["every"])
                    chosen.append(
                        capture.offer(
                            state, values=[1.0, 2.0], version="1.0.0", prediction="a", confidence=0.5, now=now
                        )
                    )
            st = capture.load(state)
            expect = {"queue": len(st.queue), "inferences": st.inferences, "day": st.day, "taken_today": st.taken_today}
            out.append({**step, "clock_after": format_time(now), "chosen": chosen, "expect": expect})
    return out


def main() -> None:
    install_id = "vectors-install"
    sessions = [
        {"name": k, "install_id": install_id, "start": format_time(START), "steps": run_session(install_id, v)}
        for k, v in SESSIONS.items()
    ]
    doc = {
        "schema": "mobile_ml.test_vectors.capture",
        "schema_version": 1,
        "rule": 'u = uint64_be(sha256(utf8("capture:" + install_id_hash + ":" + n))[0:8]) / 2^64; taken when u < rate',
        "max_queue": capture.MAX_QUEUE,
        "draws": draw_cases(),
        "sessions": sessions,
    }
    OUT.write_text(dumps(doc))


if __name__ == "__main__":
    main()
