"""Key rotation: the old key signs a statement that names the new one (threat 8 of UPDATE-THREATS.md).

    <model>/keys/<new_key_id>.json (+ .sig, signed by the OLD key): a ``KeyRotation`` (mobile_ml.contracts.manifest)

A device that trusts the old key and meets a manifest naming an unknown key id fetches that statement, verifies it
with the key it trusts, checks both ids, and from then on trusts only the new key: a manifest signed by the old key
is refused afterwards. Chains (A → B → C) are followed one statement at a time.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mobile_ml.contracts import ContractError, parse_document
from mobile_ml.contracts.manifest import KeyRotation
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.publish import keys
from mobile_ml.publish import manifest as mf
from mobile_ml.publish.storage import open_root

SCHEMA = KeyRotation.SCHEMA
MAX_STATEMENT_BYTES = 16 * 1024


def statement_path(model: str, new_key_id: str) -> str:
    return f"{model}/keys/{new_key_id}.json"


def rotate(
    root: str, model: str, *, old_key: str | Path, new_key: str | Path, now: datetime | None = None
) -> KeyRotation:
    """Publish a statement, signed by ``old_key``, that ``new_key`` now signs ``model``'s channels."""
    mf.check_name("model", model)
    old_private, new_private = keys.load_private(old_key), keys.load_private(new_key)
    old_pub, new_pub = old_private.public_key(), new_private.public_key()
    if keys.key_id(old_pub) == keys.key_id(new_pub):
        raise ConfigError("the old and the new key are the same key", hint="generate a new key first")
    doc = KeyRotation(
        model=model,
        old_key_id=keys.key_id(old_pub),
        old_public_key_b64=base64.b64encode(keys.public_der(old_pub)).decode(),
        new_key_id=keys.key_id(new_pub),
        new_public_key_b64=base64.b64encode(keys.public_der(new_pub)).decode(),
        issued_at=(now or datetime.now(timezone.utc)).replace(microsecond=0),
    )
    data = mf.dumps(doc)
    storage = open_root(root)
    path = statement_path(model, doc.new_key_id)
    storage.create(path, data)
    storage.create(path + ".sig", keys.sign(old_private, data))
    return doc


def load_b64_key(text: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(base64.b64decode(text))


def parse_statement(data: bytes, where: str = "key rotation") -> tuple[KeyRotation, Any, Any]:
    """The statement and its two public keys; ``ContractError`` if it is not a well-formed statement."""
    if len(data) > MAX_STATEMENT_BYTES:
        raise ContractError(f"{where} is over {MAX_STATEMENT_BYTES} bytes", hint="run `mobile-ml release verify`")
    doc = parse_document(KeyRotation, data, where=where)
    try:
        return doc, load_b64_key(doc.old_public_key_b64), load_b64_key(doc.new_public_key_b64)
    except (ValueError, TypeError) as e:
        raise ContractError(f"{where}: a public key does not load ({e})", hint="run `mobile-ml release verify`") from e


def check_statement(data: bytes, sig: bytes, trusted_public: Any, *, model: str, new_key_id: str) -> Any:
    """The new public key, if ``data`` is a valid rotation from ``trusted_public`` to ``new_key_id``; else None.

    The signature is checked over the exact bytes before anything is parsed.
    """
    if len(data) > MAX_STATEMENT_BYTES or not keys.verify(trusted_public, data, sig):
        return None
    try:
        doc, _, new_pub = parse_statement(data)
    except ContractError:
        return None
    ok = (
        doc.model == model
        and doc.old_key_id == keys.key_id(trusted_public)
        and doc.new_key_id == new_key_id == keys.key_id(new_pub)  # the key as loaded, not only its DER as sent
    )
    return new_pub if ok else None


def old_key_for(storage: Any, model: str, new_public: Any, claimed_old_id: str) -> Any:
    """Publisher side: the old public key a statement for ``new_public`` vouches for, if it names ``claimed_old_id``.

    The statement is verified with the old key it carries, whose id must be the one the channel's manifest names.
    """
    path = statement_path(model, keys.key_id(new_public))
    data, sig = storage.read(path), storage.read(path + ".sig")
    if data is None or sig is None:
        return None
    try:
        doc, old_pub, _ = parse_statement(data, f"{storage.url}/{path}")
    except ContractError as e:
        raise InputFileError(f"{e.message}: the statement is damaged", hint="run `mobile-ml release verify`") from None
    if doc.old_key_id != claimed_old_id:
        return None
    return old_pub if check_statement(data, sig, old_pub, model=model, new_key_id=keys.key_id(new_public)) else None


def trusted_keys(storage: Any, model: str, public_key: Any) -> dict[str, Any]:
    """Key id → public key for ``public_key`` and every key linked to it by valid rotation statements in the root
    (forward: keys it handed over to; backward: keys that handed over to it), so history signed before a rotation
    still verifies."""
    statements = []
    for path in storage.list(f"{model}/keys"):
        if path.endswith(".json"):
            data, sig = storage.read(path), storage.read(path + ".sig")
            if data is not None and sig is not None:
                try:
                    _, old, new = parse_statement(data, path)
                except ContractError:
                    continue  # `release verify` names it; a damaged statement links nothing
                statements.append((data, sig, old, new))
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
