"""``bundle.json``: the model an app ships with (``android_demo/bundle_model.py`` writes it), run when nothing
downloaded is healthy. Its two files sit beside it and are checked against these hashes before use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from mobile_ml.contracts._fields import Fields
from mobile_ml.contracts.manifest import NAME, SEMVER, SHA256


@dataclass(frozen=True)
class AppBundle:
    SCHEMA: ClassVar[str] = "mobile_ml.app_bundle"
    SCHEMA_VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "a mobile-ml app bundle description"
    REDO: ClassVar[str] = "python android_demo/bundle_model.py RUN"

    version: str
    variant: str
    model_sha256: str
    metadata_sha256: str

    @classmethod
    def from_dict(cls, f: Fields) -> AppBundle:
        b = cls(
            version=f.string("version", pattern=SEMVER, max_len=64),
            variant=f.string("variant", pattern=NAME),
            model_sha256=f.string("model_sha256", pattern=SHA256, max_len=64),
            metadata_sha256=f.string("metadata_sha256", pattern=SHA256, max_len=64),
        )
        f.done()
        return b

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "variant": self.variant,
            "model_sha256": self.model_sha256,
            "metadata_sha256": self.metadata_sha256,
        }
