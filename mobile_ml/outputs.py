"""Writing results so that nothing is ever half-written and no good result is lost.

Every stage writes its output directory through ``atomic_dir``: it fills a hidden temporary sibling and renames it
into place only when the work succeeded. A crash, an error or Ctrl-C leaves the destination exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mobile_ml.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create 0600/0700 entries; results should get the permissions any other new file would.
_FILE_MODE = 0o666 & ~_umask()
_DIR_MODE = 0o777 & ~_umask()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from dataclasses, enums, paths and numpy scalars/arrays (NaN becomes null)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return to_jsonable(obj.tolist())
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, dumps(obj))


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike[str], data: bytes, *, create_only: bool = False) -> None:
    """Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory.

    A reader sees the old file or the whole new one, never half; after a crash the new content is on disk or not at
    all. ``create_only``: link instead of rename, so an existing ``path`` is never replaced (``FileExistsError``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if create_only:
            os.link(tmp, path)  # atomic and create-only: fails if the name exists
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in ``path`` durable (best effort: not every filesystem lets a directory be fsynced)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def check_destination(path: Path, force: bool) -> None:
    """Fail early, before any work, if ``path`` cannot become our output directory."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path {path} exists and is not a directory", hint="choose another --out")
    if path.exists() and any(path.iterdir()) and not force:
        raise OutputError(
            f"output directory {path} already exists and is not empty",
            hint="choose another --out, or pass --force to replace it (the old one is kept until the new one is done)",
        )
    parent = path.parent
    ancestor = parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot create {path}: {ancestor} is a file, not a directory", hint="choose another --out")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {ancestor}: permission denied", hint="choose a writable --out")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``path`` only if the block succeeds.

    With ``force`` an existing ``path`` is replaced, but only after the new content is complete: the old directory
    is moved aside, the new one renamed in, and only then is the old one deleted.
    """
    path = Path(path).absolute()
    check_destination(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        os.chmod(tmp, _DIR_MODE)
    except OSError as e:
        raise OutputError(f"cannot create output directory {path}: {e.strerror}", hint="choose a writable --out") from e
    try:
        yield tmp
        # Re-check: another process may have created it while we worked.
        if path.exists():
            if not force and any(path.iterdir()):
                raise OutputError(f"{path} appeared while this run was working", hint="rerun with another --out")
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
