"""The bundled fallback: a model shipped with the app (``bundle.json`` + ``model.tflite`` + ``metadata.json``),
what the app runs when nothing downloaded is healthy, as the Android app runs ``assets/bundle``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mobile_ml.contracts import ContractError, parse_document, read_document
from mobile_ml.contracts.bundle import AppBundle
from mobile_ml.contracts.model_metadata import ModelMetadata


def bundled_model(bundle_dir: Path) -> tuple[Path, ModelMetadata, str] | None:
    """The bundle's directory, metadata and version when its files match bundle.json; None otherwise (a damaged
    bundle is not run: the app then has no model, which it says, rather than a wrong one)."""
    try:
        bundle = read_document(AppBundle, bundle_dir / "bundle.json")
        model = (bundle_dir / "model.tflite").read_bytes()
        meta_bytes = (bundle_dir / "metadata.json").read_bytes()
        if hashlib.sha256(model).hexdigest() != bundle.model_sha256:
            return None
        if hashlib.sha256(meta_bytes).hexdigest() != bundle.metadata_sha256:
            return None
        meta = parse_document(ModelMetadata, meta_bytes, where=str(bundle_dir / "metadata.json"))
    except (ContractError, OSError):
        return None
    return bundle_dir, meta, bundle.version
