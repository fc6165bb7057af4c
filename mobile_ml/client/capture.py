"""Capture on the device, with consent: sample inputs into a bounded local queue, upload it at the next sync.

    <state>/capture.json    a ``CaptureState`` (mobile_ml.contracts.capture): the user's consent, the policy
                            of the last manifest this device accepted, today's count and the queue itself

Nothing is queued unless the user consented (``device sync --consent-capture``) *and* the channel's signed manifest
has a capture policy that is on; revoking consent (``--revoke-capture``) deletes the queue at once. Which inferences
are sampled is decided by a hash of the install and the inference's number, so a device's choices can be replayed
(tests, the Kotlin twin) but not predicted by anyone without the install id. At most ``max_per_day`` samples per UTC
day are taken, at most ``MAX_QUEUE`` wait. The queue is cleared only once the server answered 202.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts import ContractError, document_dict, read_document
from mobile_ml.contracts.capture import CaptureBatch, CapturePolicy, CaptureSample, CaptureState, is_on
from mobile_ml.outputs import dumps, write_bytes

FILE = "capture.json"
MAX_QUEUE = 200  # samples waiting for an upload; past it nothing more is taken until the queue drains
MAX_BODY_BYTES = 64 * 1024  # the server's bound on one POST (telemetry's): batches are cut to fit
MAX_REPLY = 64 * 1024


def load(state_dir: Path) -> CaptureState:
    """The device's capture state; a missing or damaged file is no consent and an empty queue (fail closed)."""
    path = state_dir / FILE
    if not path.is_file():
        return CaptureState()
    try:
        return read_document(CaptureState, path)
    except ContractError:
        return CaptureState()


def save(state_dir: Path, st: CaptureState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    write_bytes(state_dir / FILE, dumps(document_dict(st)).encode())


def set_consent(state_dir: Path, consent: bool) -> CaptureState:
    """Record the user's choice; revoking it deletes every queued sample."""
    st = load(state_dir)
    st = replace(st, consent=consent, queue=st.queue if consent else ())
    save(state_dir, st)
    return st


def note_manifest(
    state_dir: Path, *, model: str, channel: str, install_id: str, policy: CapturePolicy | None
) -> CaptureState:
    """After a verified manifest: remember its policy. A policy switched off (or another channel) drops the queue:
    those samples were taken under terms that no longer hold, and the server would refuse them."""
    st = load(state_dir)
    same = (st.model, st.channel) == (model, channel)
    queue = st.queue if same and is_on(policy) else ()
    st = replace(st, model=model, channel=channel, install_id_hash=_hash(install_id), policy=policy, queue=queue)
    save(state_dir, st)
    return st


def _hash(install_id: str) -> str:
    return hashlib.sha256(install_id.encode()).hexdigest()


def draw(install_id_hash: str, n: int) -> float:
    """The ``n``-th inference's uniform draw in [0, 1): sha256("capture:" hash ":" n), first 8 bytes big-endian."""
    digest = hashlib.sha256(f"capture:{install_id_hash}:{n}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def offer(
    state_dir: Path,
    *,
    values: Any,
    version: str,
    prediction: str,
    confidence: float,
    label: str | None = None,
    now: datetime | None = None,
) -> bool:
    """One inference: queue it when the user consented, the policy is on, the draw falls under the rate and today's
    budget is not spent. Returns whether it was queued."""
    st = load(state_dir)
    policy, install = st.policy, st.install_id_hash
    if not st.consent or policy is None or not policy.on or not install:
        return False
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    day = now.strftime("%Y-%m-%d")
    taken = st.taken_today if st.day == day else 0
    n = st.inferences
    st = replace(st, inferences=n + 1, day=day, taken_today=taken)
    chosen = draw(install, n) < policy.rate and taken < policy.max_per_day and len(st.queue) < MAX_QUEUE
    if chosen:
        import numpy as np

        flat = tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
        if not all(math.isfinite(v) for v in flat):  # strict JSON has no NaN: it would spoil capture.json, consent too
            save(state_dir, st)  # the draw is still counted, as in the Kotlin queue
            return False
        sample = CaptureSample(secrets.token_hex(16), now, version, flat, prediction, float(confidence), label)
        if len(json.dumps(sample.to_dict())) > MAX_BODY_BYTES - 1024:
            chosen = False  # an input too large for one request is never captured
        else:
            st = replace(st, taken_today=taken + 1, queue=(*st.queue, sample))
    save(state_dir, st)
    return chosen


def batches(st: CaptureState) -> list[CaptureBatch]:
    """The queue cut into batches that each fit one request."""
    out: list[CaptureBatch] = []
    current: list[CaptureSample] = []
    size = 512  # the envelope
    for s in st.queue:
        n = len(json.dumps(s.to_dict())) + 2
        if current and (size + n > MAX_BODY_BYTES or len(current) >= 100):
            out.append(_batch(st, current))
            current, size = [], 512
        current.append(s)
        size += n
    if current:
        out.append(_batch(st, current))
    return out


def _batch(st: CaptureState, samples: list[CaptureSample]) -> CaptureBatch:
    return CaptureBatch(st.model or "", st.channel or "", st.install_id_hash or "", st.consent, tuple(samples))


def upload(state_dir: Path, conn: Any, token: str | None) -> int:
    """Send the queue to ``POST /v1/capture``; each batch the server stored (202) leaves the queue. Without consent
    or with the policy off nothing is sent. Returns the samples stored. Network or server problems keep the queue."""
    from mobile_ml.client.download import Failed
    from mobile_ml.publish.trust import Rejected

    st = load(state_dir)
    if not st.consent or not is_on(st.policy) or not st.queue:
        return 0
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    sent: set[str] = set()
    for batch in batches(st):
        body = json.dumps(document_dict(batch)).encode()
        try:
            resp = conn.post("v1/capture", body, headers)
            try:
                conn.read_capped(resp, MAX_REPLY, "capture reply")
                ok = getattr(resp, "status", None) == 202
            finally:
                resp.close()
        except (Failed, Rejected, OSError, ValueError):
            break  # kept for the next sync
        if not ok:
            break
        sent.update(s.sample_id for s in batch.samples)
    if sent:
        st = load(state_dir)  # as now, then without what the server holds
        save(state_dir, replace(st, queue=tuple(s for s in st.queue if s.sample_id not in sent)))
    return len(sent)
