"""What `mobile-ml serve` may hand out: exactly the files of the update protocol (docs/update-protocol.md, section 2).

A publish root is an ordinary directory, so operators put other things in it: a key pair from ``keys generate``, the
telemetry database, notes, backups. Anything whose path does not match one of the protocol's name patterns is 404,
even when the file exists, so a secret that lands in the root by mistake is never served.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from mobile_ml.errors import ConfigError

_NAME = r"[a-z0-9][a-z0-9._-]{0,63}"  # model and channel names (publish.manifest.check_name)
_SEMVER = r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)(?:-[0-9A-Za-z.-]+)?"
_HEX64 = r"[0-9a-f]{64}"
# One per kind of file in section 2; also the locations of `serve --print-nginx-config` (mobile_ml.deliver.nginx).
PATTERNS: tuple[str, ...] = (
    rf"blobs/sha256/{_HEX64}",
    rf"{_NAME}/releases/{_SEMVER}\.json",
    rf"{_NAME}/history/{_NAME}/[0-9]{{8,20}}\.json(?:\.sig)?",
    rf"{_NAME}/channels/{_NAME}\.json(?:\.sig)?",
    rf"{_NAME}/keys/{_HEX64}\.json(?:\.sig)?",  # key rotation statements
)
PROTOCOL_PATHS = re.compile("|".join(PATTERNS))


def is_protocol_path(rel: str) -> bool:
    """True for a path (relative to the root, ``/``-separated) that the update protocol defines."""
    # fullmatch, never match + "$": "$" also matches before a trailing newline.
    return PROTOCOL_PATHS.fullmatch(rel) is not None


def resolve(root: Path, rel: str) -> tuple[Path, os.stat_result] | None:
    """The regular file ``rel`` names inside ``root`` if the protocol defines that path, else None (404)."""
    if not is_protocol_path(rel):
        return None
    try:
        real = (root / rel).resolve(strict=True)
        st = real.stat()
    except (OSError, RuntimeError):
        return None
    if root not in real.parents:
        return None  # a symlink that leaves the root
    if not stat.S_ISREG(st.st_mode):
        return None  # directories: no listings
    return real, st


def check_outside(root: Path, telemetry_db: Path) -> None:
    """Refuse a telemetry database (and so its -wal and -shm files) inside the served root."""
    root, db = root.resolve(), telemetry_db.resolve()
    if db == root or root in db.parents:
        raise ConfigError(
            f"the telemetry database {telemetry_db} is inside the served root {root}",
            hint="pass --telemetry-db a path outside the publish root, e.g. --telemetry-db ../telemetry.db",
        )
