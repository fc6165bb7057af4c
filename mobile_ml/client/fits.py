"""Does a release fit this device? App version, runtime (name and ``min_version``), and free space for everything
the install writes. A release that does not fit is skipped, not failed: the current model stays."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from mobile_ml.client.download import Failed
from mobile_ml.contracts import document_dict
from mobile_ml.contracts.manifest import Release, version_key
from mobile_ml.contracts.state import Failure
from mobile_ml.outputs import dumps

STATE_FILES = 6  # state.json, its backup, current.json, each written beside its old copy before the rename


def litert_version() -> str | None:
    """The installed ai-edge-litert's version, or None if LiteRT is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:
        return None


def runtime_key(text: str) -> tuple[Any, ...] | None:
    """A runtime's version as a semver key: ``2.3.0`` as is; a PEP 440 ``2.3.0.dev20251101`` or ``2.3.0rc1`` sorts
    just before ``2.3.0``. None when it has no MAJOR.MINOR.PATCH."""
    m = re.match(r"([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})", text)
    if m is None:
        return None
    core = ".".join(str(int(p)) for p in m.groups())
    return version_key(core if m.end() == len(text) else f"{core}-0")


def check_fits(
    release: Release, *, app_version: str, runtime_version: str | None, state_dir: Path, state_size: int
) -> None:
    """Raise ``Failed`` with a skip reason (app_too_old, runtime, no_space) when the release cannot go on here."""
    from mobile_ml.publish.manifest import parse_version  # a bad --app-version is the user's error (exit 2)

    if version_key(release.min_app_version) > parse_version(app_version):
        raise Failed(Failure.APP_TOO_OLD.value, f"{release.version} needs app ≥ {release.min_app_version}")
    if release.runtime.name != "litert":
        raise Failed(Failure.RUNTIME.value, f"{release.version} needs runtime {release.runtime.name}")
    have = runtime_key(runtime_version) if runtime_version else None
    if have is None or version_key(release.runtime.min_version) > have:
        raise Failed(
            Failure.RUNTIME.value,
            f"{release.version} needs LiteRT ≥ {release.runtime.min_version}, this device has {runtime_version}",
        )
    need = space_needed(release, state_dir, state_size)
    free = shutil.disk_usage(state_dir).free
    if free < need:
        raise Failed(Failure.NO_SPACE.value, f"{need} bytes needed, {free} free")


def space_needed(release: Release, state_dir: Path, state_size: int) -> int:
    """Every byte the install writes, in whole filesystem blocks: what is left to download into staging (a partial
    file counts as already there), its .etag, the version copy with .release.json, and the state files, each
    written as a new file before the old one goes."""
    try:
        block = os.statvfs(state_dir).f_frsize or 4096
    except (OSError, AttributeError):
        block = 4096

    def blocks(n: int) -> int:
        return -(-n // block) * block

    staging = state_dir / "staging"
    need = 0
    for e in release.files:
        part = staging / f"{e.sha256}.part"
        have = part.stat().st_size if part.is_file() else 0
        need += max(0, blocks(e.length) - blocks(have)) + block  # the rest of it, and its .etag
        need += blocks(e.length)  # its copy under versions/
    need += blocks(len(dumps(document_dict(release)).encode()))  # .release.json
    return need + STATE_FILES * blocks(max(state_size, 1))
