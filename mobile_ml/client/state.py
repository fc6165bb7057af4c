"""The device's state directory: what it accepted, which model is live, and the installed versions.

    state.json              a ``DeviceState`` (mobile_ml.contracts.state): per model/channel the last accepted
                            manifest (version, sha256, ETag); the trusted key; current and previous release
    state.backup.json       the same document, written (atomically) right after state.json: the second copy that
                            rebuilds a damaged state.json without losing the anti-rollback floor or a rotated key
    versions/<version>/     model.tflite + metadata.json of the current and the previous release, and
                            .release.json: the verified release they came from, checked on every check
    current.json            a ``CurrentPointer``: the version directory the app loads (fsync + atomic rename)
    staging/                partial downloads (<sha256>.part + .etag), removed once installed

Every write is atomic (``outputs.write_bytes``), so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from mobile_ml.contracts import ContractError, document_dict, parse_document, read_document
from mobile_ml.contracts.manifest import Release
from mobile_ml.contracts.model_metadata import ModelMetadata
from mobile_ml.contracts.state import CurrentPointer, DeviceState, read_pointer, read_state
from mobile_ml.outputs import dumps, write_bytes

STATE = "state.json"
BACKUP = "state.backup.json"
POINTER = "current.json"
RELEASE = ".release.json"  # a manifest file name starts with a letter or digit: never this one
DAMAGED = ".damaged"  # suffix of a damaged state.json set aside, for inspection


def load(state_dir: Path) -> tuple[DeviceState, str | None]:
    """The device's state (a fresh one if it never checked), and why it had to be rebuilt (None if it did not).

    A damaged or missing state.json is rebuilt from state.backup.json, and the damaged file is set aside as
    state.json.damaged. When neither copy can be read this raises ``ContractError``: starting over from an empty
    state would forget the anti-rollback versions and a rotated key."""
    try:
        primary = read_state(state_dir / STATE)
    except ContractError as e:
        damaged, problem = True, e.message
    else:
        if primary is not None:
            return primary, None
        damaged, problem = False, f"{state_dir / STATE} is missing"
    try:
        backup = read_state(state_dir / BACKUP)
    except ContractError as e:
        raise ContractError(f"{problem}; its backup too: {e.message}", hint="the device state is damaged") from None
    if backup is None:
        if damaged:
            raise ContractError(problem, hint="the device state is damaged")
        return DeviceState(), None  # never checked
    set_aside(state_dir / STATE)
    save(state_dir, backup)
    return backup, f"{problem}: rebuilt from {BACKUP}"


def set_aside(path: Path) -> None:
    """Move a damaged file or directory out of the way (to NAME.damaged), kept for inspection."""
    aside = path.with_name(path.name + DAMAGED)
    if not path.exists() and not path.is_symlink():
        return
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)
    elif aside.exists() or aside.is_symlink():
        aside.unlink()
    os.replace(path, aside)


def save(state_dir: Path, state: DeviceState) -> None:
    """state.json, then its backup: a crash between the two leaves one copy of each version, both readable."""
    data = dumps(document_dict(state)).encode()
    write_bytes(state_dir / STATE, data)
    write_bytes(state_dir / BACKUP, data)


def write_pointer(state_dir: Path, version: str) -> None:
    """The switch: one atomic rename of the pointer. A crash before it leaves the old model live."""
    write_bytes(state_dir / POINTER, dumps(document_dict(CurrentPointer(version))).encode())


def clean_leftovers(state_dir: Path) -> None:
    """Remove half-written version copies (``versions/.<v>.tmp``) a crash or a full disk left behind: they hold
    space the free-space check would otherwise count as taken, on every later check."""
    versions = state_dir / "versions"
    if versions.is_dir():
        for d in versions.glob(".*.tmp"):
            shutil.rmtree(d, ignore_errors=True)


def install_version(state_dir: Path, release: Release, files: Mapping[str, bytes], keep: set[str | None]) -> None:
    """Write ``files`` as ``versions/<version>/``, point current.json at it, and delete versions not in ``keep``.

    File names and the version come from a verified, strictly parsed manifest (plain names, semver): never a path.
    A failure (a full disk) removes the half-written copy; the current model stays as it was.
    """
    version = release.version
    versions = state_dir / "versions"
    versions.mkdir(exist_ok=True)
    final, tmp = versions / version, versions / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, data in files.items():
            write_bytes(tmp / name, data)
        write_bytes(tmp / RELEASE, dumps(document_dict(release)).encode())
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_pointer(state_dir, version)
    for d in versions.iterdir():
        if d.name not in keep | {version}:
            shutil.rmtree(d, ignore_errors=True)


def installed_problem(state_dir: Path) -> str | None:
    """What is wrong with the installed model the app would load (None: it is whole). Checks current.json, the
    version directory, and every file's size and sha256 against the release it was installed from (installs older
    than ``.release.json``: the model against its metadata.json)."""
    try:
        version = read_pointer(state_dir / POINTER).version
    except ContractError as e:
        return e.message
    vdir = state_dir / "versions" / version
    try:
        meta = read_document(ModelMetadata, vdir / "metadata.json")
        if (vdir / RELEASE).exists():
            release = parse_document(Release, (vdir / RELEASE).read_bytes(), where=str(vdir / RELEASE))
            expected = {e.name: (e.length, e.sha256) for e in release.files}
        else:
            expected = {"model.tflite": (meta.model.bytes, meta.model.sha256)}
        for name, (length, sha256) in expected.items():
            data = (vdir / name).read_bytes()
            if len(data) != length or hashlib.sha256(data).hexdigest() != sha256:
                return f"{vdir / name} is damaged ({len(data)} bytes, signed {length}, or another sha256)"
    except ContractError as e:
        return e.message
    except OSError as e:
        return f"{vdir}: {e.strerror or e}"
    return None


def current_model(state_dir: Path) -> tuple[Path, ModelMetadata] | None:
    """The live version directory and its metadata, as the app would read them; None if there is none or its
    files are damaged."""
    if installed_problem(state_dir) is not None:
        return None
    vdir = state_dir / "versions" / read_pointer(state_dir / POINTER).version
    return vdir, read_document(ModelMetadata, vdir / "metadata.json")
