"""A published release's lineage: which model it came from, through which export, with which figures.

It travels in the release's free-form ``metadata`` object, under ``"lineage"``: every client already accepts any
JSON there (``docs/update-protocol.md`` §3, "never acted on"), so releases that carry it stay readable by the apps
in the field, whose parsers refuse unknown keys everywhere else. Publishers read it back through ``Lineage.from_dict``
(``release history``, ``release verify``), so a malformed lineage is still seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mobile_ml.contracts._fields import Fields
from mobile_ml.contracts.export_figures import SourceKind  # the export's own kinds: lineage copies them

KEY = "lineage"  # the key in ``Release.metadata``
SHA256 = r"[0-9a-f]{64}"


@dataclass(frozen=True)
class Lineage:
    kind: SourceKind
    name: str  # the run directory's or the model file's name (a name, not a path: paths are the publisher's)
    form: str  # a ModelForm value: run, keras3, tf_keras, h5, saved_model, keras3_export
    sha256: str | None  # of the model file (a run: its model.keras); None when the run's model is no longer there
    variant: str
    export_sha256: str  # of the export.json the variant was published from
    parity: dict[str, float]  # that export's figures for the variant (accuracy, agreement, max_abs_diff, ...)

    @classmethod
    def from_dict(cls, f: Fields) -> Lineage:
        parity = f.mapping("parity")
        for k, v in parity.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise f.error(f"parity.{k}", "expected a number")
        lineage = cls(
            kind=f.choice("kind", SourceKind),
            name=f.string("name", max_len=255),
            form=f.string("form", pattern=r"[a-z0-9_]{1,32}"),
            sha256=f.opt_string("sha256", pattern=SHA256, max_len=64),
            variant=f.string("variant", max_len=64),
            export_sha256=f.string("export_sha256", pattern=SHA256, max_len=64),
            parity={k: float(v) for k, v in parity.items()},
        )
        f.done()
        return lineage

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "form": self.form,
            "sha256": self.sha256,
            "variant": self.variant,
            "export_sha256": self.export_sha256,
            "parity": dict(self.parity),
        }


def lineage_of(metadata: dict[str, Any], where: str) -> Lineage | None:
    """The lineage in a release's ``metadata``, None for releases published before lineage existed."""
    raw = metadata.get(KEY)
    return None if raw is None else Lineage.from_dict(Fields(raw, f"{where}.metadata.{KEY}"))


__all__ = ["KEY", "Lineage", "SourceKind", "lineage_of"]
