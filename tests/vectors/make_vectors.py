"""Regenerate the protocol test vectors: `python tests/vectors/make_vectors.py`.

The vectors are for clients in other languages (the Android updater's tests read the same files). They are signed
with `test-key.pem`, a key made for these vectors only: it protects nothing and must never sign a real release.
ECDSA signatures are randomized, so regenerating changes the signature bytes; every vector stays valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf

HERE = Path(__file__).parent
NOW = "2026-11-23T00:00:00Z"


def _key(name: str):
    path = HERE / name
    if not path.exists():
        k = ec.generate_private_key(ec.SECP256R1())
        path.write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return keys.load_private(path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main() -> None:
    key, other = _key("test-key.pem"), _key("other-key.pem")
    kid = keys.key_id(key.public_key())
    blob = b"model bytes for the vectors\n"
    entry = {
        "name": "model.tflite",
        "url": f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}",
        "sha256": hashlib.sha256(blob).hexdigest(),
        "length": len(blob),
    }
    release = {
        "model": "digits",
        "version": "1.2.0",
        "variant": "int8",
        "files": [entry],
        "metadata": {},
        "parity": {},
        "min_app_version": "1.0.0",
        "runtime": {"name": "litert", "min_version": "1.0.0"},
    }
    issued = datetime(2026, 11, 20, tzinfo=timezone.utc)

    def manifest(version=5, channel="stable", expires_days=30.0, when=issued, key_id=kid, release=release):
        m = mf.build(
            model="digits",
            channel=channel,
            manifest_version=version,
            key_id=key_id,
            release=release,
            rollout_percent=25.0,
            salt="0123456789abcdef",
            fallback=None,
            action="publish",
            now=when,
            expires_days=expires_days,
        )
        return mf.dumps(m)

    good = manifest()
    cases = []

    def case(name, raw, sig, expect, last_version=None, last_sha256=None, channel="stable"):
        cases.append(
            {
                "name": name,
                "manifest_b64": b64(raw),
                "signature_b64": b64(sig),
                "model": "digits",
                "channel": channel,
                "last_version": last_version,
                "last_sha256": last_sha256,
                "expect": expect,
            }
        )

    case("valid", good, keys.sign(key, good), "accept")
    flipped = bytearray(good)
    flipped[good.index(b'"1.2.0"') + 1] ^= 0x01  # "1.2.0" → "0.2.0": one bit
    case("one_bit_flipped", bytes(flipped), keys.sign(key, good), "bad_signature")
    case("signed_by_another_key", good, keys.sign(other, good), "bad_signature")
    case("unsigned", good, b"", "bad_signature")
    case("truncated_signature", good, keys.sign(key, good)[:-4], "bad_signature")
    old = manifest(expires_days=1, when=datetime(2026, 10, 1, tzinfo=timezone.utc))
    case("expired", old, keys.sign(key, old), "expired")
    case("rollback_to_older_version", good, keys.sign(key, good), "rollback", last_version=6)
    other_content = manifest(when=datetime(2026, 11, 21, tzinfo=timezone.utc))
    case(
        "replay_same_version_other_content",
        other_content,
        keys.sign(key, other_content),
        "replay_different",
        last_version=5,
        last_sha256=hashlib.sha256(good).hexdigest(),
    )
    case(
        "same_manifest_again",
        good,
        keys.sign(key, good),
        "accept",
        last_version=5,
        last_sha256=hashlib.sha256(good).hexdigest(),
    )
    beta = manifest(channel="beta")
    case("manifest_of_another_channel", beta, keys.sign(key, beta), "wrong_channel")
    names_other = manifest(key_id=keys.key_id(other.public_key()))
    case("names_another_key_id", names_other, keys.sign(key, names_other), "wrong_key")
    # File names and hashes become file names on the device: a signed manifest still may not escape its directory.
    escaping = manifest(release={**release, "files": [{**entry, "name": "../model.tflite"}]})
    case("file_name_escapes", escaping, keys.sign(key, escaping), "malformed")
    bad_hash = manifest(release={**release, "files": [{**entry, "sha256": "../../state"}]})
    case("file_sha256_not_hex", bad_hash, keys.sign(key, bad_hash), "malformed")
    not_json = b"this is not json\n"
    case("signed_but_malformed", not_json, keys.sign(key, not_json), "malformed")

    files = [
        {"name": "exact", "data_b64": b64(blob), "entry": entry, "expect": "accept"},
        {"name": "other_valid_blob", "data_b64": b64(blob[::-1]), "entry": entry, "expect": "hash_mismatch"},
        {"name": "one_byte_longer", "data_b64": b64(blob + b"x"), "entry": entry, "expect": "length_mismatch"},
        {"name": "truncated", "data_b64": b64(blob[:-1]), "entry": entry, "expect": "length_mismatch"},
    ]
    new = _key("rotated-key.pem")
    statement = mf.dumps(
        {
            "schema": "mobile_ml.key_rotation",
            "schema_version": 1,
            "model": "digits",
            "old_key_id": kid,
            "old_public_key_b64": b64(keys.public_der(key.public_key())),
            "new_key_id": keys.key_id(new.public_key()),
            "new_public_key_b64": b64(keys.public_der(new.public_key())),
            "issued_at": NOW,
        }
    )
    rotations = [
        {
            "name": "valid_rotation",
            "statement_b64": b64(statement),
            "signature_b64": b64(keys.sign(key, statement)),
            "model": "digits",
            "new_key_id": keys.key_id(new.public_key()),
            "expect": "accept",
        },
        {
            "name": "signed_by_another_key",
            "statement_b64": b64(statement),
            "signature_b64": b64(keys.sign(other, statement)),
            "model": "digits",
            "new_key_id": keys.key_id(new.public_key()),
            "expect": "reject",
        },
        {
            "name": "for_another_model",
            "statement_b64": b64(statement),
            "signature_b64": b64(keys.sign(key, statement)),
            "model": "faces",
            "new_key_id": keys.key_id(new.public_key()),
            "expect": "reject",
        },
    ]
    pub = key.public_key()
    doc = {
        "schema": "mobile_ml.test_vectors.manifests",
        "schema_version": 1,
        "now": NOW,
        "key_id": kid,
        "public_key_pem": pub.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "public_key_b64": b64(keys.public_der(pub)),
        "cases": cases,
        "files": files,
        "rotations": rotations,
    }
    (HERE / "manifests.json").write_text(json.dumps(doc, indent=2) + "\n")

    buckets = []
    for salt in ("0123456789abcdef", "salt-2"):
        for install_id in ["device-0", "device-1", "a1b2c3", "ÜNICODE-✓", "", "x" * 64]:
            for percent in (0, 0.01, 10, 25.5, 50, 100):
                buckets.append(
                    {
                        "salt": salt,
                        "install_id": install_id,
                        "bucket": mf.bucket(salt, install_id),
                        "percent": percent,
                        "in_rollout": mf.in_rollout(percent, salt, install_id),
                    }
                )
    (HERE / "bucketing.json").write_text(
        json.dumps(
            {
                "schema": "mobile_ml.test_vectors.bucketing",
                "schema_version": 1,
                "rule": "bucket = uint64_be(sha256(utf8(salt + ':' + install_id))[0:8]) mod 10000; "
                "in_rollout = bucket < round(percent * 100)",
                "cases": buckets,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
