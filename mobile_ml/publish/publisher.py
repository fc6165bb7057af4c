"""Release commands: publish an export, promote between channels, stage a rollout, halt, roll back, refresh.

Every command reads the channel (verifying its signature with the signing key's public half), decides, and commits
one new manifest through ``channel.commit``. Refusals happen before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mobile_ml.contracts.export import ExportResult
from mobile_ml.contracts.lineage import KEY as LINEAGE_KEY
from mobile_ml.contracts.lineage import Lineage, SourceKind
from mobile_ml.contracts.manifest import FileEntry, Manifest, Parity, Release, Runtime
from mobile_ml.errors import InputFileError
from mobile_ml.outputs import sha256_file
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.channel import KEEP, ChannelState, RefusedError, commit, read_state
from mobile_ml.publish.storage import open_root
from mobile_ml.train.rundir import RunLayout

DEFAULT_CAPTURE_PER_DAY = 20  # samples per install and UTC day: a few, enough to label, not a user's whole day
RUNTIME = Runtime("litert", "1.0.0")  # .tflite builtin ops: any LiteRT / TFLite 2.x runtime


@dataclass(frozen=True)
class ReleaseResult:
    root: str
    action: str
    manifest: Manifest

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "schema": "mobile_ml.release_result",
            "schema_version": 1,
            "root": self.root,
            "action": self.action,
            "model": m.model,
            "channel": m.channel,
            "manifest_version": m.manifest_version,
            "version": m.release.version,
            "rollout": m.rollout.to_dict(),
            "fallback": m.fallback.version if m.fallback else None,
            "expires": mf.utc(m.expires),
            "manifest": f"{m.model}/channels/{m.channel}.json",
            "capture": m.capture.to_dict() if m.capture else None,
        }


@dataclass(frozen=True)
class ExportedVariant:
    variant: str
    model_bytes: bytes
    metadata_bytes: bytes
    metadata: dict[str, Any]
    passed: bool
    parity: dict[str, Any]
    lineage: Lineage


def exports_dir_of(path: str | Path) -> Path:
    """The directory holding export.json: ``path`` itself (an export directory, from a run or a model file), or a
    run's (or pipeline output's) ``exports/``."""
    path = Path(path)
    if (path / "export.json").is_file():
        return path
    exports = RunLayout.of(path).exports
    if not (exports / "export.json").is_file():
        raise InputFileError(
            f"{path} has no exports: neither {path.name}/export.json nor {path.name}/exports/export.json",
            hint="pass an export directory, or a run directory after `mobile-ml export RUNDIR`",
        )
    return exports


def load_variant(path: str | Path, variant: str | None) -> ExportedVariant:
    """The exported variant to publish (default: the recommended one), checked against its own records.

    ``path`` is an export directory (holding export.json) or a run directory with ``exports/``.
    """
    exports = exports_dir_of(path)
    from mobile_ml.contracts.export import read_export
    from mobile_ml.export.metadata import read as read_metadata

    report = read_export(exports / "export.json")
    rows = {v.variant.value: v for v in report.variants}
    name = variant or report.recommended
    if name is None:
        raise RefusedError(
            "the export recommends no variant (none met the accuracy budget)",
            hint="pass --variant NAME --force to publish one anyway, or export again",
        )
    if name not in rows:
        raise InputFileError(f"variant '{name}' was not exported", hint=f"exported: {', '.join(rows)}")
    model_path, meta_path = exports / name / "model.tflite", exports / name / "metadata.json"
    if not model_path.is_file() or not meta_path.is_file():
        raise InputFileError(
            f"the {name} export is incomplete ({model_path.name} or {meta_path.name} missing)",
            hint="export the model again",
        )
    model, meta_bytes = model_path.read_bytes(), meta_path.read_bytes()
    meta = read_metadata(meta_path)
    if hashlib.sha256(model).hexdigest() != meta.model.sha256 or len(model) != meta.model.bytes:
        raise InputFileError(
            f"{model_path} does not match its metadata.json (sha256 or size differs)",
            hint="the export was modified or damaged; export the model again",
        )
    row = rows[name]
    parity = row.parity.summary() if row.parity else {}
    lineage = export_lineage(report, str(name), parity, sha256_file(exports / "export.json"))
    return ExportedVariant(str(name), model, meta_bytes, meta.to_dict(), row.passed, parity, lineage)


def export_lineage(report: ExportResult, variant: str, parity: dict[str, Any], export_sha256: str) -> Lineage:
    """Where the exported model came from. The one place that reads the source from export.json: an export that
    records its ``source`` (model-file exports do) says it; an older one came from its ``run_dir``."""
    figures = {k: float(v) for k, v in parity.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    source = report.source
    if source is not None and source.sha256:
        return Lineage(source.kind, source.path.name, source.form, source.sha256, variant, export_sha256, figures)
    # An export.json written before sources were recorded (or a run source without a digest): from its run_dir.
    run_dir = report.run_dir if report.run_dir is not None else Path(".")
    return Lineage(SourceKind.RUN, run_dir.name, "run", _run_model_sha256(run_dir), variant, export_sha256, figures)


def _run_model_sha256(run_dir: Path) -> str | None:
    """sha256 of the run's model.keras, None when the run is gone (its exports copied elsewhere)."""
    from mobile_ml.contracts import read_document
    from mobile_ml.contracts.run import RunRecord

    if not (run_dir / "run.json").is_file():
        return None
    model = run_dir / read_document(RunRecord, run_dir / "run.json").model.files.keras
    return sha256_file(model) if model.is_file() else None


def _blob(name: str, data: bytes) -> FileEntry:
    digest = hashlib.sha256(data).hexdigest()
    return FileEntry(name, f"blobs/sha256/{digest}", digest, len(data))


def _release_doc(model: str, version: str, ev: ExportedVariant, min_app_version: str) -> Release:
    meta = ev.metadata
    summary: dict[str, Any] = {k: meta[k] for k in ("labels", "input", "output", "preprocessing") if k in meta}
    summary[LINEAGE_KEY] = ev.lineage.to_dict()  # in the free-form metadata every client accepts (contracts.lineage)
    figures = {k: ev.parity.get(k) for k in ("accuracy", "accuracy_drop_pp", "agreement")}
    # No timestamps: the same version published again must produce the same immutable document.
    return Release(
        model=model,
        version=version,
        variant=ev.variant,
        files=(_blob("model.tflite", ev.model_bytes), _blob("metadata.json", ev.metadata_bytes)),
        metadata=summary,
        parity=Parity(**{k: None if v is None else float(v) for k, v in figures.items()}),
        min_app_version=min_app_version,
        runtime=RUNTIME,
    )


def _fallback_for(state: ChannelState) -> Release | None:
    """What devices outside a new rollout keep: the release the whole channel has now."""
    m = state.manifest
    if m is None:
        return None
    whole = m.rollout.percent >= 100 and not m.rollout.halted
    return m.release if whole else m.fallback


def _check_newer(version: str, state: ChannelState) -> None:
    if state.version is not None and mf.parse_version(version) <= mf.parse_version(state.version):
        raise RefusedError(
            f"version {version} is not greater than {state.model}/{state.channel}'s current {state.version}",
            hint="publish a higher semantic version (or use `release rollback`)",
        )


def publish(
    root: str,
    source: str | Path,
    *,
    model: str,
    version: str,
    channel: str,
    key: str | Path,
    variant: str | None = None,
    rollout: float = 100.0,
    min_app_version: str = "0.0.0",
    force: bool = False,
    expires_days: float = mf.DEFAULT_EXPIRY_DAYS,
    capture_rate: float | None = None,
    capture_max_per_day: int = DEFAULT_CAPTURE_PER_DAY,
    now=None,
) -> ReleaseResult:
    """``capture_rate`` None keeps the channel's capture policy (off for a new channel); 0 switches it off."""
    mf.check_name("model", model), mf.check_name("channel", channel)
    mf.parse_version(version), mf.parse_version(min_app_version), mf.check_percent(rollout)
    mf.check_expiry_days(expires_days)
    capture = KEEP if capture_rate is None else mf.capture_policy(capture_rate, capture_max_per_day)
    private = keys.load_private(key)
    ev = load_variant(source, variant)
    if not ev.passed and not force:
        raise RefusedError(
            f"variant {ev.variant} failed the export's accuracy gate",
            hint="publish a passing variant, or pass --force if you accept its accuracy",
        )
    storage = open_root(root)
    state = read_state(storage, model, channel, private.public_key())
    _check_newer(version, state)
    release = _release_doc(model, version, ev, min_app_version)
    # Blobs first, then the release document: nothing refers to them until the manifest does.
    for f, data in zip(release.files, (ev.model_bytes, ev.metadata_bytes), strict=True):
        storage.create(f.url, data)
    storage.create(f"{model}/releases/{version}.json", mf.dumps(release))
    new = commit(
        storage,
        state,
        private,
        release=release,
        fallback=_fallback_for(state),
        percent=rollout,
        salt=mf.new_salt(),
        action="publish",
        expires_days=expires_days,
        now=now,
        capture=capture,
    )
    return ReleaseResult(storage.url, "publish", new)


def _current(storage: Any, model: str, channel: str, private: Any) -> ChannelState:
    mf.check_name("model", model), mf.check_name("channel", channel)
    state = read_state(storage, model, channel, private.public_key())
    if state.manifest is None:
        raise RefusedError(
            f"channel {model}/{channel} does not exist in {storage.url}",
            hint="publish to it first: `mobile-ml publish RUNDIR --model ... --channel ...`",
        )
    return state


def promote(
    root: str, model: str, *, source: str, target: str, key: str | Path, rollout: float = 100.0, now=None
) -> ReleaseResult:
    private, storage = keys.load_private(key), open_root(root)
    mf.check_percent(rollout)
    src = _current(storage, model, source, private)
    dst = read_state(storage, model, mf.check_name("channel", target), private.public_key())
    _check_newer(src.current.release.version, dst)
    new = commit(
        storage,
        dst,
        private,
        release=src.current.release,
        fallback=_fallback_for(dst),
        percent=rollout,
        salt=mf.new_salt(),
        action=f"promote from {source}",
        now=now,
    )
    return ReleaseResult(storage.url, "promote", new)


def set_rollout(root: str, model: str, channel: str, *, percent: float, key: str | Path, now=None) -> ReleaseResult:
    private, storage = keys.load_private(key), open_root(root)
    mf.check_percent(percent)
    st = _current(storage, model, channel, private)
    new = _recommit(storage, st, private, action="rollout", percent=percent, halted=False, now=now)
    return ReleaseResult(storage.url, "rollout", new)


def halt(root: str, model: str, channel: str, *, key: str | Path, now=None) -> ReleaseResult:
    private, storage = keys.load_private(key), open_root(root)
    st = _current(storage, model, channel, private)
    m = st.current
    if m.fallback is None:
        raise RefusedError(
            f"{model}/{channel} has no fallback release to hold devices on",
            hint="a channel's first release has nothing to fall back to; stage the next release "
            "with `publish --rollout PCT` and halt that",
        )
    new = _recommit(storage, st, private, action="halt", percent=m.rollout.percent, halted=True, now=now)
    return ReleaseResult(storage.url, "halt", new)


def rollback(root: str, model: str, channel: str, *, key: str | Path, now=None) -> ReleaseResult:
    """A new, higher manifest pointing at the fallback release (replaying the old manifest stays refused)."""
    from mobile_ml.publish.channel import history

    private, storage = keys.load_private(key), open_root(root)
    st = _current(storage, model, channel, private)
    target = st.current.fallback
    if target is None:
        raise RefusedError(
            f"{model}/{channel} has no earlier release to roll back to",
            hint="`mobile-ml release history` shows what the channel served",
        )
    # The new fallback is what devices kept when `target` itself was the channel's release.
    earlier = None
    for entry in history(storage, model, channel, private.public_key()):
        if entry.get("version") == target.version and entry.get("signature_ok"):
            earlier = mf.parse(storage.read(entry["path"]) or b"", entry["path"]).fallback
    new = commit(
        storage,
        st,
        private,
        release=target,
        fallback=earlier,
        percent=100.0,
        salt=mf.new_salt(),
        action=f"rollback from {st.version}",
        now=now,
    )
    return ReleaseResult(storage.url, "rollback", new)


def refresh(
    root: str, model: str, channel: str, *, key: str | Path, expires_days: float = mf.DEFAULT_EXPIRY_DAYS, now=None
) -> ReleaseResult:
    mf.check_expiry_days(expires_days)
    private, storage = keys.load_private(key), open_root(root)
    st = _current(storage, model, channel, private)
    m = st.current
    new = _recommit(
        storage, st, private, action="refresh", percent=m.rollout.percent, halted=m.rollout.halted,
        expires_days=expires_days, now=now,
    )  # fmt: skip
    return ReleaseResult(storage.url, "refresh", new)


def set_capture(
    root: str,
    model: str,
    channel: str,
    *,
    rate: float,
    max_per_day: int = DEFAULT_CAPTURE_PER_DAY,
    key: str | Path,
    now=None,
) -> ReleaseResult:
    """Re-sign the channel's current manifest with a new capture policy (rate 0: off); release, rollout and salt
    stay as they are."""
    policy = mf.capture_policy(rate, max_per_day)
    private, storage = keys.load_private(key), open_root(root)
    st = _current(storage, model, channel, private)
    m = st.current
    new = commit(
        storage, st, private, release=m.release, fallback=m.fallback, percent=m.rollout.percent,
        salt=m.rollout.salt, action="capture" if policy else "capture off", halted=m.rollout.halted, now=now,
        capture=policy,
    )  # fmt: skip
    return ReleaseResult(storage.url, "capture", new)


def _recommit(
    storage: Any,
    st: ChannelState,
    private: Any,
    *,
    action: str,
    percent: float,
    halted: bool,
    expires_days: float = mf.DEFAULT_EXPIRY_DAYS,
    now: datetime | None = None,
) -> Manifest:
    """A new manifest for the channel's current release and fallback: same salt, so raising the percentage keeps
    every device that was already in."""
    m = st.current
    return commit(
        storage,
        st,
        private,
        release=m.release,
        fallback=m.fallback,
        percent=percent,
        salt=m.rollout.salt,
        action=action,
        halted=halted,
        expires_days=expires_days,
        now=now,
    )


def publish_dev(root: str, rundir: str | Path, *, model: str, channel: str, key_dir: str | Path) -> ReleaseResult:
    """quickstart's publish: a development key if there is none, the next patch version, the recommended variant."""
    key_dir = Path(key_dir)
    if not (key_dir / "private.pem").is_file():
        keys.generate(key_dir)
    private = keys.load_private(key_dir)
    state = read_state(open_root(root), model, channel, private.public_key())
    version = "1.0.0"
    if state.version:
        major, minor, patch = (int(p) for p in state.version.split("-")[0].split("."))
        version = f"{major}.{minor}.{patch + 1}"
    return publish(root, rundir, model=model, version=version, channel=channel, key=key_dir)
