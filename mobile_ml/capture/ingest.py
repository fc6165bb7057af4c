"""``POST /v1/capture``: a batch checked whole against what the publish root says, before anything is stored.

The channel's current manifest (from the root this server serves) gives the policy: a channel whose policy is off
refuses every batch, so a device cannot send raw inputs the publisher did not sign a policy for. Each sample must
come from a version that manifest names (release or fallback), and match that version's published metadata.json:
the number of input values, their range for image inputs, the labels of the prediction and of the user's answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mobile_ml.contracts import ContractError, StrictJSONError, parse_document
from mobile_ml.contracts.capture import CaptureBatch, CapturePolicy, CaptureSample, is_on
from mobile_ml.contracts.manifest import Manifest
from mobile_ml.contracts.model_metadata import InputKind, ModelMetadata
from mobile_ml.errors import UserError

MAX_BODY_BYTES = 64 * 1024  # telemetry's bound: one request, one batch


class Invalid(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Accepted:
    batch: CaptureBatch
    policy: CapturePolicy


def validate(body: bytes, root: str | Path) -> Accepted:
    """The batch and the policy it is stored under; ``Invalid`` (4xx) for anything else."""
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(f"body over {MAX_BODY_BYTES} bytes", 413)
    try:
        batch = parse_document(CaptureBatch, body, where="capture batch")
    except (ContractError, StrictJSONError) as e:
        raise Invalid(str(getattr(e, "message", e))) from None
    if not batch.consent:
        raise Invalid("the batch carries no consent: raw inputs are accepted only from users who consented", 403)
    manifest = _manifest(Path(root), batch)
    policy = manifest.capture
    if policy is None or not is_on(policy):
        raise Invalid(f"capture is off for {batch.model}/{batch.channel}", 403)
    metas: dict[str, ModelMetadata] = {}
    for i, s in enumerate(batch.samples):
        if s.version not in metas:
            metas[s.version] = _metadata(Path(root), manifest, s.version)
        problem = check_sample(s, metas[s.version])
        if problem:
            raise Invalid(f"samples[{i}]: {problem}", 422)
    return Accepted(batch, policy)


def _manifest(root: Path, batch: CaptureBatch) -> Manifest:
    from mobile_ml.publish import manifest as mf

    path = root / batch.model / "channels" / f"{batch.channel}.json"  # both names matched NAME: no path escapes
    try:
        return mf.parse(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise Invalid(f"no channel {batch.model}/{batch.channel} here", 404) from None
    except (OSError, UserError) as e:
        raise Invalid(f"the channel's manifest cannot be read: {e}", 503) from None


def _metadata(root: Path, m: Manifest, version: str) -> ModelMetadata:
    release = next((r for r in (m.release, m.fallback) if r is not None and r.version == version), None)
    if release is None:
        raise Invalid(f"version {version} is not served on {m.model}/{m.channel}", 422)
    path = root / release.file("metadata.json").url
    try:
        return parse_document(ModelMetadata, path.read_bytes(), where=str(path))
    except (OSError, ContractError) as e:
        raise Invalid(f"the metadata of {version} cannot be read: {e}", 503) from None


def check_sample(s: CaptureSample, meta: ModelMetadata) -> str | None:
    """What is wrong with ``s`` for the model ``meta`` describes, or None."""
    shape = [int(d) for d in meta.input.tensor.shape[1:]]
    expected = math.prod(shape) if meta.input.features == () else len(meta.input.features)
    if len(s.input) != expected:
        return f"input has {len(s.input)} values; the model takes {expected} ({shape})"
    vr = meta.input.value_range
    if vr is not None and not all(vr[0] <= v <= vr[1] for v in s.input):
        return f"input values outside the model's range [{vr[0]:g}, {vr[1]:g}]"
    if meta.input.kind is InputKind.IMAGE and not all(float(v).is_integer() for v in s.input):
        return "image input values must be whole pixel values (the prepared data stores uint8)"
    labels = [str(lab) for lab in meta.labels]
    if s.prediction not in labels:
        return f"prediction {s.prediction[:60]!r} is not one of the model's labels"
    if s.label is not None and s.label not in labels:
        return f"label {s.label[:60]!r} is not one of the model's labels"
    return None
