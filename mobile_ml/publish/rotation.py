"""Key rotation: the old key signs a statement that names the new one (threat 8 of UPDATE-THREATS.md).

    <model>/keys/<new_key_id>.json (+ .sig, signed by the OLD key)
    {"schema": "mobile_ml.key_rotation", "schema_version": 1, "model": ..., "old_key_id": ...,
     "old_public_key_b64": ..., "new_key_id": ..., "new_public_key_b64": ..., "issued_at": ...}

A device that trusts the old key and meets a manifest naming an unknown key id fetches that statement, verifies it
with the key it trusts, checks both ids, and from then on trusts only the new key: a manifest signed by the old key
is refused afterwards. Chains (A → B → C) are followed one statement at a time.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from mobile_ml.errors import InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import open_root

SCHEMA = "mobile_ml.key_rotation"
MAX_STATEMENT_BYTES = 16 * 1024


def statement_path(model: str, new_key_id: str) -> str:
    return f"{model}/keys/{new_key_id}.json"


def rotate(root: str, model: str, *, old_key, new_key, now: datetime | None = None) -> dict[str, Any]:
    """Publish a statement, signed by ``old_key``, that ``new_key`` now signs ``model``'s channels."""
    mf.check_name("model", model)
    old_private, new_private = keys.load_private(old_key), keys.load_private(new_key)
    old_pub, new_pub = old_private.public_key(), new_private.public_key()
    if keys.key_id(old_pub) == keys.key_id(new_pub):
        from mobile_ml.errors import ConfigError

        raise ConfigError("the old and the new key are the same key", hint="generate a new key first")
    doc = {
        "schema": SCHEMA,
        "schema_version": 1,
        "model": model,
        "old_key_id": keys.key_id(old_pub),
        "old_public_key_b64": base64.b64encode(keys.public_der(old_pub)).decode(),
        "new_key_id": keys.key_id(new_pub),
        "new_public_key_b64": base64.b64encode(keys.public_der(new_pub)).decode(),
        "issued_at": mf.utc(now or datetime.now(timezone.utc)),
    }
    data = mf.dumps(doc)
    storage = open_root(root)
    path = statement_path(model, doc["new_key_id"])
    storage.create(path, data)
    storage.create(path + ".sig", keys.sign(old_private, data))
    return doc


def load_b64_key(text: str):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(base64.b64decode(text))


def check_statement(data: bytes, sig: bytes, trusted_public, *, model: str, new_key_id: str):
    """The new public key, if ``data`` is a valid rotation from ``trusted_public`` to ``new_key_id``; else None."""
    if len(data) > MAX_STATEMENT_BYTES or not keys.verify(trusted_public, data, sig):
        return None
    try:
        doc = json.loads(data)
        new_pub = load_b64_key(doc["new_public_key_b64"])
    except (ValueError, KeyError, TypeError):
        return None
    ok = (
        doc.get("schema") == SCHEMA
        and doc.get("model") == model
        and doc.get("old_key_id") == keys.key_id(trusted_public)
        and doc.get("new_key_id") == new_key_id == keys.key_id(new_pub)
    )
    return new_pub if ok else None


def old_key_for(storage, model: str, new_public, claimed_old_id: str):
    """Publisher side: the old public key a statement for ``new_public`` vouches for, if it names ``claimed_old_id``.

    The statement is verified with the old key it carries, whose id must be the one the channel's manifest names.
    """
    path = statement_path(model, keys.key_id(new_public))
    data, sig = storage.read(path), storage.read(path + ".sig")
    if data is None or sig is None:
        return None
    try:
        doc = json.loads(data)
        old_pub = load_b64_key(doc["old_public_key_b64"])
    except (ValueError, KeyError, TypeError):
        raise InputFileError(f"{storage.url}/{path} is damaged", hint="run `mobile-ml release verify`") from None
    if keys.key_id(old_pub) != claimed_old_id:
        return None
    return old_pub if check_statement(data, sig, old_pub, model=model, new_key_id=keys.key_id(new_public)) else None


def trusted_keys(storage, model: str, public_key) -> dict[str, Any]:
    """Key id → public key for ``public_key`` and every key linked to it by valid rotation statements in the root
    (forward: keys it handed over to; backward: keys that handed over to it), so history signed before a rotation
    still verifies."""
    statements = []
    for path in storage.list(f"{model}/keys"):
        if path.endswith(".json"):
            data, sig = storage.read(path), storage.read(path + ".sig")
            if data is not None and sig is not None:
                try:
                    doc = json.loads(data)
                    statements.append(
                        (data, sig, load_b64_key(doc["old_public_key_b64"]), load_b64_key(doc["new_public_key_b64"]))
                    )
                except (ValueError, KeyError, TypeError):
                    continue
    trusted = {keys.key_id(public_key): public_key}
    changed = True
    while changed:
        changed = False
        for data, sig, old, new in statements:
            old_id, new_id = keys.key_id(old), keys.key_id(new)
            if (old_id in trusted) == (new_id in trusted):
                continue
            if check_statement(data, sig, old, model=model, new_key_id=new_id) is not None:
                trusted.setdefault(old_id, old)
                trusted.setdefault(new_id, new)
                changed = True
    return trusted


def verify_any(trusted: dict[str, Any], raw: bytes, sig: bytes) -> bool:
    """Verify with the trusted key the document claims (its key_id), never with a key it merely names."""
    from mobile_ml.publish.trust import claimed_key_id

    claimed = claimed_key_id(raw)
    key = trusted.get(claimed) if claimed else None
    return key is not None and keys.verify(key, raw, sig)
