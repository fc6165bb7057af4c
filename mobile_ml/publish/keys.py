"""Signing keys: ECDSA P-256, SHA-256, DER signatures, detached.

Chosen for the phone: ``SHA256withECDSA`` over P-256 is in every Android ``java.security`` since API 11 (Ed25519 is
not reliably there), and ``openssl dgst -sha256 -verify pub.pem -signature m.sig m`` checks the same bytes.

Key files written by ``generate``:
    private.pem     PKCS#8 PEM, mode 0600, never overwritten
    public.pem      SubjectPublicKeyInfo PEM
    public.b64      base64 of the SubjectPublicKeyInfo DER: what an app embeds (X509EncodedKeySpec)
    key.json        key id (sha256 of the public key DER, hex) and creation time
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mobile_ml.errors import InputFileError, OutputError
from mobile_ml.outputs import write_json, write_text


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    private_path: Path
    public_path: Path
    public_b64: str


def _serialization():
    from cryptography.hazmat.primitives import serialization

    return serialization


def public_der(public_key) -> bytes:
    s = _serialization()
    return public_key.public_bytes(s.Encoding.DER, s.PublicFormat.SubjectPublicKeyInfo)


def key_id(public_key) -> str:
    return hashlib.sha256(public_der(public_key)).hexdigest()


def generate(out: str | Path) -> KeyInfo:
    """Create a new key pair in ``out``; refuses to touch an existing private key."""
    from cryptography.hazmat.primitives.asymmetric import ec

    s = _serialization()
    out = Path(out)
    private_path, public_path = out / "private.pem", out / "public.pem"
    if private_path.exists():
        raise OutputError(
            f"{private_path} already exists; a signing key is never overwritten",
            hint="choose another --out, or move the old key away yourself if you mean to replace it",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out}: {e.strerror}", hint="choose a writable --out") from e
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    # O_EXCL: two generators racing cannot both win, and the file is 0600 from its first byte.
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OutputError(
            f"{private_path} already exists; a signing key is never overwritten", hint="choose another --out"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    pub = key.public_key()
    b64 = base64.b64encode(public_der(pub)).decode()
    write_text(public_path, pub.public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode())
    write_text(out / "public.b64", b64 + "\n")
    kid = key_id(pub)
    write_json(
        out / "key.json",
        {
            "schema": "mobile_ml.key",
            "schema_version": 1,
            "key_id": kid,
            "algorithm": "ECDSA P-256 SHA-256 (DER signature)",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return KeyInfo(kid, private_path, public_path, b64)


def load_private(path: str | Path):
    from cryptography.hazmat.primitives.asymmetric import ec

    path = _key_file(path, "private.pem")
    try:
        key = _serialization().load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as e:
        raise InputFileError(
            f"{path} is not an unencrypted PEM private key: {str(e).splitlines()[0][:120]}",
            hint="pass the private.pem written by `mobile-ml keys generate`",
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputFileError(f"{path} is not an ECDSA P-256 key", hint="create one with `mobile-ml keys generate`")
    return key


def load_public(path: str | Path):
    from cryptography.hazmat.primitives.asymmetric import ec

    path = _key_file(path, "public.pem")
    data = path.read_bytes()
    try:
        s = _serialization()
        key = (
            s.load_pem_public_key(data)
            if data.lstrip().startswith(b"-----")
            else s.load_der_public_key(base64.b64decode(data.strip(), validate=True))
        )
    except (ValueError, TypeError) as e:
        raise InputFileError(
            f"{path} is not a public key (PEM or base64 DER)",
            hint="pass the public.pem written by `mobile-ml keys generate`",
        ) from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InputFileError(f"{path} is not an ECDSA P-256 public key", hint="pass public.pem")
    return key


def _key_file(path: str | Path, default: str) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / default
    if not path.is_file():
        raise InputFileError(f"key file {path} not found", hint="create keys with `mobile-ml keys generate --out DIR`")
    return path


def sign(private_key, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify(public_key, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False
