"""Publish roots: a local directory or S3-compatible object storage, behind three write primitives.

    create(path, data)              create-only: never overwrites (identical bytes already there are fine)
    replace(path, data, expected)   compare-and-swap on the current content's tag (None: must not exist yet)
    put(path, data)                 plain overwrite, only for the detached signature that follows a manifest

Local writes go to a temporary file, are fsynced and renamed (``os.link`` for create-only), so a reader never sees
half a file; compare-and-swap holds an ``flock`` while it checks. On S3 the same guarantees come from conditional
writes (``If-None-Match: *`` and ``If-Match: <etag>``), which AWS S3, MinIO and moto honour. Endpoint and credentials
come from the usual places (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``~/.aws/config``, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from mobile_ml.errors import InputFileError, OutputError, UserError
from mobile_ml.outputs import write_bytes

IMMUTABLE = "public, max-age=31536000, immutable"  # content-addressed blobs, releases, history
SHORT = "public, max-age=60, must-revalidate"  # channel manifests: a stale CDN copy lives a minute at most


class ConcurrentUpdate(UserError):
    """Someone else wrote the channel between our read and our write; nothing of ours became current."""


class ExistsDifferent(UserError):
    """A create-only path already holds different bytes."""


def cache_control(path: str) -> str:
    return SHORT if "/channels/" in f"/{path}" else IMMUTABLE


class LocalStorage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _p(self, path: str) -> Path:
        return self.root / path

    def read(self, path: str) -> bytes | None:
        try:
            return self._p(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InputFileError(f"cannot read {self._p(path)}: {e.strerror}", hint="check the publish root") from e

    def tag(self, path: str) -> str | None:
        data = self.read(path)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def list(self, prefix: str, *, hidden: bool = False) -> list[str]:
        """Files under ``prefix``; ``hidden``: also dotfiles and files in dot-directories (locks, temp files)."""
        base = self._p(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and (hidden or not p.name.startswith("."))
        )

    def age(self, path: str) -> float | None:
        """Seconds since ``path`` was last written (None: it does not exist)."""
        import time

        try:
            return time.time() - self._p(path).stat().st_mtime
        except FileNotFoundError:
            return None

    def _write(self, path: str, data: bytes, *, create_only: bool = False) -> None:
        target = self._p(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(target, data, create_only=create_only)
        except FileExistsError:
            raise
        except OSError as e:
            raise OutputError(
                f"cannot write {target}: {e.strerror}", hint="check the publish root's permissions"
            ) from e

    def create(self, path: str, data: bytes) -> bool:
        """Returns True if written, False if identical bytes were already there."""
        try:
            self._write(path, data, create_only=True)
            return True
        except FileExistsError:
            return _already_there(self, path, data, str(self._p(path)))

    def replace(self, path: str, data: bytes, expected: str | None) -> None:
        with self._lock(path):
            if self.tag(path) != expected:
                raise ConcurrentUpdate(
                    f"{self._p(path)} changed while this command ran",
                    hint="another publisher wrote the channel; check `release history` and rerun",
                )
            self._write(path, data)

    def put(self, path: str, data: bytes) -> None:
        self._write(path, data)

    @contextlib.contextmanager
    def _lock(self, path: str) -> Iterator[None]:
        import fcntl

        lock = self._p(path).with_name(f".{self._p(path).name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


class S3Storage:
    def __init__(self, url: str) -> None:
        import s3fs

        self.url = url.rstrip("/")
        self.bucket, _, self.prefix = self.url[len("s3://") :].partition("/")
        if not self.bucket:
            raise InputFileError(f"'{url}' names no bucket", hint="use s3://BUCKET/PREFIX")
        self.fs = s3fs.S3FileSystem()

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _call(self, method: str, **kwargs):
        try:
            return self.fs.call_s3(method, Bucket=self.bucket, **kwargs)
        except OSError:  # s3fs maps S3 errors to FileNotFoundError, FileExistsError, PermissionError, OSError
            raise
        except Exception as e:  # botocore's credential and endpoint errors
            raise InputFileError(
                f"S3 {method} on {self.url} failed: {e}", hint="check AWS_ENDPOINT_URL, the credentials and the bucket"
            ) from e

    def read(self, path: str) -> bytes | None:
        return self._read(path)[0]

    def tag(self, path: str) -> str | None:
        return self._read(path)[1]

    def _read(self, path: str) -> tuple[bytes | None, str | None]:
        # The tag is read before the bytes: if a writer slips in between, the bytes are newer than the tag and a
        # compare-and-swap built on them fails (safe), never the other way round (a lost update).
        full = f"{self.bucket}/{self._key(path)}"
        try:
            self.fs.invalidate_cache()
            etag = self.fs.info(full).get("ETag")
            return self.fs.cat_file(full), etag
        except FileNotFoundError:
            return None, None
        except OSError as e:
            raise InputFileError(f"cannot read {self.url}/{path}: {e}", hint="check the bucket and credentials") from e

    def age(self, path: str) -> float | None:
        """Seconds since ``path`` was last written, by the object's LastModified (None: it does not exist)."""
        from datetime import datetime, timezone

        self.fs.invalidate_cache()
        try:
            modified = self.fs.info(f"{self.bucket}/{self._key(path)}").get("LastModified")
        except FileNotFoundError:
            return None
        if not isinstance(modified, datetime):
            return None
        return (datetime.now(timezone.utc) - modified).total_seconds()

    def list(self, prefix: str, *, hidden: bool = False) -> list[str]:
        """Every object under ``prefix`` (``hidden`` is accepted for the local backend's sake: S3 hides nothing)."""
        self.fs.invalidate_cache()
        try:
            found = self.fs.find(f"{self.bucket}/{self._key(prefix)}".rstrip("/"))
        except FileNotFoundError:
            return []
        strip = f"{self.bucket}/{self.prefix}/" if self.prefix else f"{self.bucket}/"
        return sorted(p[len(strip) :] for p in found)

    def create(self, path: str, data: bytes) -> bool:
        try:
            self._call(
                "put_object",
                Key=self._key(path),
                Body=data,
                IfNoneMatch="*",
                CacheControl=cache_control(path),
                ContentType=_content_type(path),
            )
            return True
        except FileExistsError:
            return _already_there(self, path, data, f"{self.url}/{path}")
        except OSError as e:
            raise OutputError(f"cannot write {self.url}/{path}: {e}", hint="check the bucket and credentials") from e

    def replace(self, path: str, data: bytes, expected: str | None) -> None:
        condition = {"IfNoneMatch": "*"} if expected is None else {"IfMatch": expected}
        try:
            self._call(
                "put_object",
                Key=self._key(path),
                Body=data,
                CacheControl=cache_control(path),
                ContentType=_content_type(path),
                **condition,
            )
        except OSError as e:
            if isinstance(e, FileExistsError) or "pre-condition" in str(e) or "PreconditionFailed" in str(e):
                raise ConcurrentUpdate(
                    f"{self.url}/{path} changed while this command ran",
                    hint="another publisher wrote the channel; check `release history` and rerun",
                ) from e
            raise OutputError(f"cannot write {self.url}/{path}: {e}", hint="check the bucket and credentials") from e

    def put(self, path: str, data: bytes) -> None:
        try:
            self._call(
                "put_object",
                Key=self._key(path),
                Body=data,
                CacheControl=cache_control(path),
                ContentType=_content_type(path),
            )
        except OSError as e:
            raise OutputError(f"cannot write {self.url}/{path}: {e}", hint="check the bucket and credentials") from e


def _already_there(storage, path: str, data: bytes, where: str) -> bool:
    """A create-only write found the name taken: fine (False) if the bytes are ours, a refusal otherwise."""
    if storage.read(path) == data:
        return False
    raise ExistsDifferent(
        f"{where} already exists with different content", hint="published files are immutable; choose a new version"
    )


def _content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


def open_root(root: str | os.PathLike[str]):
    text = str(root)
    if text.startswith("s3://"):
        return S3Storage(text)
    if "://" in text:
        raise InputFileError(f"unsupported publish root '{text}'", hint="use a local directory or s3://BUCKET/PREFIX")
    return LocalStorage(text)
