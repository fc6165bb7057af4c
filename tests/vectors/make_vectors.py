"""Regenerate the protocol test vectors: `python tests/vectors/make_vectors.py`.

The vectors are for clients in other languages (the Android updater's tests read the same files). They are signed
with `test-key.pem`, a key made for these vectors only: it protects nothing and must never sign a real release.
ECDSA signatures are randomized, so regenerating changes the signature bytes; every vector stays valid.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mobile_ml.contracts.manifest import MAX_SAFE_INT, FileEntry, Release, Runtime
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


def _release(version: str, blob: bytes, meta: bytes) -> Release:
    def entry(name: str, data: bytes) -> FileEntry:
        digest = hashlib.sha256(data).hexdigest()
        return FileEntry(name, f"blobs/sha256/{digest}", digest, len(data))

    return Release(
        model="digits",
        version=version,
        variant="int8",
        files=(entry("model.tflite", blob), entry("metadata.json", meta)),
        min_app_version="1.0.0",
        runtime=Runtime("litert", "1.0.0"),
    )


def main() -> None:
    key, other = _key("test-key.pem"), _key("other-key.pem")
    kid = keys.key_id(key.public_key())
    blob, meta = b"model bytes for the vectors\n", b'{"schema": "mobile_ml.model_metadata"}\n'
    release = _release("1.2.0", blob, meta)
    fallback = _release("1.1.0", blob[::-1], meta)
    entry = release.files[0].to_dict()
    issued = datetime(2026, 11, 20, tzinfo=timezone.utc)

    def manifest(version=5, channel="stable", expires_days=30.0, when=issued, key_id=kid, release=release, fb=None):
        m = mf.build(
            model="digits",
            channel=channel,
            manifest_version=version,
            key_id=key_id,
            release=release,
            rollout_percent=25.0,
            salt="0123456789abcdef",
            fallback=fb,
            action="publish",
            now=when,
            expires_days=expires_days,
        )
        return mf.dumps(m)

    good = manifest()
    base = json.loads(good)
    cases = []

    def case(name, raw, sig, expect, last_version=None, last_sha256=None, channel="stable", field=None):
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
                "field": field,  # for "malformed": the value the validator refuses (null: the JSON itself)
            }
        )

    def signed(name, raw, expect="malformed", field=None):
        case(name, raw, keys.sign(key, raw), expect, field=field)

    def edited(name, edit, expect="malformed", field=None):
        """The valid manifest with one edit to its parsed form, serialized canonically and signed."""
        doc = copy.deepcopy(base)
        edit(doc)
        signed(name, mf.dumps(doc), expect, field)

    def text(name, old, new, expect="malformed", field=None):
        """The valid manifest with one edit to its bytes (for what a JSON serializer would not write), signed."""
        assert good.count(old) == 1, old
        signed(name, good.replace(old, new), expect, field)

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
    f0 = "release.files[0]"
    edited("file_name_escapes", lambda d: d["release"]["files"][0].update(name="../model.tflite"), field=f"{f0}.name")
    edited("file_sha256_not_hex", lambda d: d["release"]["files"][0].update(sha256="../../state"), field=f"{f0}.sha256")
    signed("signed_but_malformed", b"this is not json\n")
    _strict_json_cases(good, text, signed)
    _field_cases(edited, text, fallback.to_dict())
    signed("valid_with_fallback", manifest(fb=fallback), "accept")
    signed("valid_largest_manifest_version", manifest(version=MAX_SAFE_INT), "accept")
    edited("valid_percent_as_integer", lambda d: d["rollout"].update(percent=25), "accept")
    edited("valid_halted", lambda d: d["rollout"].update(halted=True), "accept")

    files = [
        {"name": "exact", "data_b64": b64(blob), "entry": entry, "expect": "accept"},
        {"name": "other_valid_blob", "data_b64": b64(blob[::-1]), "entry": entry, "expect": "hash_mismatch"},
        {"name": "one_byte_longer", "data_b64": b64(blob + b"x"), "entry": entry, "expect": "length_mismatch"},
        {"name": "truncated", "data_b64": b64(blob[:-1]), "entry": entry, "expect": "length_mismatch"},
        {"name": "empty", "data_b64": "", "entry": entry, "expect": "length_mismatch"},
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
    doc = json.loads(statement)
    other_b64 = b64(keys.public_der(other.public_key()))
    for name, edit in [
        ("unknown_key", {"valid_until": NOW}),
        ("old_public_key_of_another_key", {"old_public_key_b64": other_b64}),  # old_key_id no longer its sha256
        ("issued_at_not_a_time", {"issued_at": "yesterday"}),
        ("schema_version_2", {"schema_version": 2}),
    ]:
        bad = mf.dumps({**doc, **edit})
        rotations.append(
            {
                "name": name,
                "statement_b64": b64(bad),
                "signature_b64": b64(keys.sign(key, bad)),
                "model": "digits",
                "new_key_id": keys.key_id(new.public_key()),
                "expect": "reject",
            }
        )
    dup = statement.replace(b'"model": "digits",', b'"model": "faces",\n  "model": "digits",')
    rotations.append(
        {
            "name": "duplicate_key",
            "statement_b64": b64(dup),
            "signature_b64": b64(keys.sign(key, dup)),
            "model": "digits",
            "new_key_id": keys.key_id(new.public_key()),
            "expect": "reject",
        }
    )
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


def _strict_json_cases(good, text, signed) -> None:
    """What strict JSON refuses before any field is read: every parser must refuse it the same way."""
    text("duplicate_key", b'"manifest_version": 5,', b'"manifest_version": 5,\n  "manifest_version": 6,')
    text("duplicate_key_nested", b'"halted": false,', b'"halted": true,\n    "halted": false,')
    text("manifest_version_2_pow_70", b'"manifest_version": 5,', f'"manifest_version": {2**70},'.encode())
    text("manifest_version_5000_digits", b'"manifest_version": 5,', b'"manifest_version": ' + b"9" * 5000 + b",")
    text("manifest_version_1e400", b'"manifest_version": 5,', b'"manifest_version": 1e400,')
    text("percent_nan", b'"percent": 25.0', b'"percent": NaN')
    text("percent_infinity", b'"percent": 25.0', b'"percent": Infinity')
    text("percent_minus_infinity", b'"percent": 25.0', b'"percent": -Infinity')
    text("lone_surrogate", b'"action": "publish"', b'"action": "pub\\ud800lish"')
    text("not_utf8", b'"action": "publish"', b'"action": "pub\xfflish"')
    text("nested_41_levels", b'"metadata": {}', b'"metadata": ' + b'{"a": ' * 40 + b"{}" + b"}" * 40)
    signed("utf8_bom", b"\xef\xbb\xbf" + good)
    signed("top_level_array", b"[" + good + b"]")
    signed("trailing_data", good + b"{}\n")
    signed("empty_document", b"")


def _at(path, value):
    """An edit that sets (or with DELETE removes) the value at a dotted path; list indexes are numbers."""

    def edit(d):
        *parents, last = path.split(".")
        for p in parents:
            d = d[int(p)] if isinstance(d, list) else d[p]
        if value is DELETE:
            del d[last]
        elif isinstance(d, list):
            d[int(last)] = value
        else:
            d[last] = value

    return edit


def _field_cases(edited, text, fallback) -> None:
    """One field broken at a time: the validator must refuse it and name it (docs/update-protocol.md §3)."""

    def bad(name, path, value, field=None):
        edited(name, _at(path, value), field=path if field is None else field)

    _scalar_cases(bad)
    _file_cases(bad, edited)
    _fallback_cases(bad, fallback)
    _document_cases(bad)
    _capture_cases(bad, edited)


def _capture_cases(bad, edited) -> None:
    """The optional capture policy (§3.3): absent means off; present, every field is required, typed and bounded."""
    policy = {"rate": 0.05, "max_per_day": 20, "requires_consent": True}

    def with_policy(**changes):
        return lambda d: d.update(capture={**policy, **changes})

    edited("valid_capture_policy", with_policy(), "accept")
    edited("valid_capture_rate_zero_is_off", with_policy(rate=0), "accept")
    edited("valid_capture_rate_one", with_policy(rate=1, max_per_day=10_000), "accept")
    for name, changes, field in [
        ("rate_above_1", {"rate": 1.5}, "capture.rate"),
        ("rate_negative", {"rate": -0.01}, "capture.rate"),
        ("rate_string", {"rate": "0.05"}, "capture.rate"),
        ("rate_boolean", {"rate": True}, "capture.rate"),
        ("max_per_day_over_10000", {"max_per_day": 10_001}, "capture.max_per_day"),
        ("max_per_day_negative", {"max_per_day": -1}, "capture.max_per_day"),
        ("max_per_day_fraction", {"max_per_day": 2.5}, "capture.max_per_day"),
        ("max_per_day_string", {"max_per_day": "20"}, "capture.max_per_day"),
        ("requires_consent_false", {"requires_consent": False}, "capture.requires_consent"),
        ("requires_consent_string", {"requires_consent": "true"}, "capture.requires_consent"),
        ("unknown_key", {"upload_url": "https://evil.example/"}, "capture.upload_url"),
    ]:
        edited(f"capture_{name}", with_policy(**changes), field=field)
    bad("capture_missing_rate", "capture", {k: v for k, v in policy.items() if k != "rate"}, "capture.rate")
    bad("capture_null", "capture", None)
    bad("capture_not_an_object", "capture", "on")
    bad("capture_list", "capture", [policy])


def _scalar_cases(bad) -> None:
    for name, value in [("string_false", "false"), ("number_zero", 0), ("null", None), ("missing", DELETE)]:
        bad(f"halted_{name}", "rollout.halted", value)
    for name, value in [
        ("fraction", 50.9), ("string", "50"), ("integral_float", 5.0), ("zero", 0), ("negative", -1),
        ("2_pow_53", 2**53), ("boolean", True), ("null", None),
    ]:  # fmt: skip
        bad(f"manifest_version_{name}", "manifest_version", value)
    for name, value in [("above_100", 100.01), ("negative", -0.01), ("string", "25"), ("boolean", True)]:
        bad(f"percent_{name}", "rollout.percent", value)
    for name, value in [("missing", DELETE), ("uppercase", "AB" * 32), ("short", "ab" * 31), ("number", 5)]:
        bad(f"key_id_{name}", "key_id", value)
    for name, value in [("empty", ""), ("number", 7), ("with_space", "a b"), ("missing", DELETE)]:
        bad(f"salt_{name}", "rollout.salt", value)
    for name, value in [("invalid_date", "2026-02-30T00:00:00Z"), ("offset", "2026-12-20T00:00:00+00:00"),
                        ("number", 1800000000), ("missing", DELETE),
                        ("non_ascii_digit", "2026-12-2\u0663T00:00:00Z")]:  # fmt: skip
        bad(f"expires_{name}", "expires", value)
    bad("issued_at_missing", "issued_at", DELETE)
    for name, value in [("two_parts", "1.2"), ("trailing_newline", "1.2.0\n"), ("leading_zero", "01.2.0"),
                        ("empty_prerelease", "1.2.0-"), ("a_path", "../1.2.0"), ("number", 120),
                        ("non_ascii_digit", "1\u0663.0.0")]:  # fmt: skip
        bad(f"version_{name}", "release.version", value)
    bad("min_app_version_not_semver", "release.min_app_version", "latest")
    bad("min_app_version_missing", "release.min_app_version", DELETE)
    bad("channel_uppercase", "channel", "Stable")
    bad("model_missing", "model", DELETE)
    bad("action_with_newline", "action", "publish\nrollback")
    bad("action_missing", "action", DELETE)


def _file_cases(bad, edited) -> None:
    def files(fn):
        def edit(d):
            d["release"]["files"] = fn(d["release"]["files"])

        return edit

    edited("release_without_model_tflite", files(lambda fs: fs[1:]), field="release.files")
    edited("release_without_metadata_json", files(lambda fs: fs[:1]), field="release.files")
    edited("release_files_empty", files(lambda fs: []), field="release.files")
    edited("release_duplicate_file_names", files(lambda fs: [fs[0], *fs]), field="release.files")
    bad("release_files_not_a_list", "release.files", "model.tflite")
    bad("file_entry_not_an_object", "release.files.0", "model.tflite", field="release.files[0]")
    for name, value in [
        ("dotdot", ".."), ("with_slash", "models/model.tflite"), ("hidden", ".model.tflite"), ("empty", ""),
        ("too_long", "m" * 129), ("backslash", "..\\model.tflite"),
    ]:  # fmt: skip
        bad(f"file_name_{name}", "release.files.0.name", value, field="release.files[0].name")
    bad("file_sha256_uppercase", "release.files.0.sha256", "AB" * 32, field="release.files[0].sha256")
    for name, value in [("negative", -1), ("string", "28"), ("fraction", 28.5), ("over_4_gib", 2**33)]:
        bad(f"file_length_{name}", "release.files.0.length", value, field="release.files[0].length")
    for name, value in [("absolute", "https://evil.example/blob"), ("dotdot", "blobs/../../x"), ("rooted", "/etc/x")]:
        bad(f"file_url_{name}", "release.files.0.url", value, field="release.files[0].url")
    bad("file_unknown_key", "release.files.0.mode", "0777", field="release.files[0].mode")


def _fallback_cases(bad, fallback) -> None:
    for name, value in [("string", "1.1.0"), ("list", []), ("number", 1), ("boolean", True)]:
        bad(f"fallback_{name}", "fallback", value)
    escaping = copy.deepcopy(fallback)
    escaping["files"][0]["name"] = "../../../pwned.txt"
    bad("fallback_file_escapes_the_state_dir", "fallback", escaping, field="fallback.files[0].name")
    bad("fallback_of_another_model", "fallback", {**fallback, "model": "faces"}, field="fallback.model")
    bad("fallback_without_model_tflite", "fallback", {**fallback, "files": fallback["files"][1:]}, "fallback.files")


def _document_cases(bad) -> None:
    bad("unknown_top_level_key", "extensions", {})
    bad("unknown_key_in_rollout", "rollout.max_percent", 100)
    bad("unknown_key_in_release", "release.signature", "x")
    bad("schema_version_string", "schema_version", "1", field="")
    bad("schema_version_2", "schema_version", 2, field="")
    bad("schema_version_float", "schema_version", 1.0)
    bad("schema_of_a_release", "schema", "mobile_ml.release", field="")
    bad("schema_missing", "schema", DELETE, field="")
    bad("runtime_not_an_object", "release.runtime", "litert")
    bad("runtime_name_missing", "release.runtime.name", DELETE)
    bad("release_of_another_model", "release.model", "faces")
    bad("release_missing", "release", DELETE)
    bad("release_null", "release", None)
    bad("rollout_missing", "rollout", DELETE)


DELETE = object()


if __name__ == "__main__":
    main()
