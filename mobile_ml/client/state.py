"""The device's state directory: what it accepted, which model is live, and the installed versions.

    state.json              a ``DeviceState`` (mobile_ml.contracts.state): per model/channel the last accepted
                            manifest (version, sha256, ETag); the trusted key; current and previous release
    versions/<version>/     model.tflite + metadata.json of the current and the previous release
    current.json            a ``CurrentPointer``: the version directory the app loads (fsync + atomic rename)
    staging/                partial downloads (<sha256>.part + .etag), removed once installed

Every write is atomic (``outputs.write_bytes``), so a crash leaves the old file or the new one.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from mobile_ml.contracts import ContractError, document_dict, read_document
from mobile_ml.contracts.model_metadata import ModelMetadata
from mobile_ml.contracts.state import CurrentPointer, DeviceState, read_pointer, read_state
from mobile_ml.outputs import dumps, write_bytes

STATE = "state.json"
POINTER = "current.json"


def load(state_dir: Path) -> DeviceState:
    """The device's state; a fresh one if it never checked. A damaged state.json raises ``ContractError``: starting
    over from an empty state would forget the anti-rollback versions and a rotated key."""
    return read_state(state_dir / STATE) or DeviceState()


def save(state_dir: Path, state: DeviceState) -> None:
    write_bytes(state_dir / STATE, dumps(document_dict(state)).encode())


def write_pointer(state_dir: Path, version: str) -> None:
    """The switch: one atomic rename of the pointer. A crash before it leaves the old model live."""
    write_bytes(state_dir / POINTER, dumps(document_dict(CurrentPointer(version))).encode())


def install_version(state_dir: Path, version: str, files: Mapping[str, bytes], keep: set[str | None]) -> None:
    """Write ``files`` as ``versions/<version>/``, point current.json at it, and delete versions not in ``keep``.

    File names and the version come from a verified, strictly parsed manifest (plain names, semver): never a path.
    """
    versions = state_dir / "versions"
    versions.mkdir(exist_ok=True)
    final, tmp = versions / version, versions / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, data in files.items():
        write_bytes(tmp / name, data)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    write_pointer(state_dir, version)
    for d in versions.iterdir():
        if d.name not in keep | {version}:
            shutil.rmtree(d, ignore_errors=True)


def current_model(state_dir: Path) -> tuple[Path, ModelMetadata] | None:
    """The live version directory and its metadata, as the app would read them; None if there is none."""
    try:
        pointer = read_pointer(state_dir / POINTER)
        vdir = state_dir / "versions" / pointer.version
        return vdir, read_document(ModelMetadata, vdir / "metadata.json")
    except (ContractError, OSError):
        return None
