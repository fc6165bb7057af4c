"""The committed model fixture (tests/fixtures/digits_export/) is a real export the stages accept, and the script
that makes it still works."""

import importlib.util
from pathlib import Path

import pytest

from mobile_ml.export.metadata import health_check
from mobile_ml.publish import publisher
from tests.conftest import FIXTURES, CommittedExport


def check_export(fixture: CommittedExport) -> None:
    run, report = fixture
    exports = run / "exports"
    names = [v["variant"] for v in report["variants"]]
    assert sorted(p.name for p in exports.iterdir() if p.is_dir()) == sorted(names) == ["fp32", "int8"]
    assert report["recommended"] in names
    for name in names:
        ev = publisher.load_variant(run, name)  # what publish reads: export.json, metadata.json, sha256 and size
        assert ev.passed and ev.metadata["variant"] == name
        assert ev.baseline_bytes is not None  # baseline.json, parsed and checked by load_variant: publish ships it
        result = health_check(ev.model_bytes, ev.metadata_bytes, name)  # the model runs in LiteRT as its metadata says
        assert result.ok, result.detail
    # no path of the machine that made it: the fixture is read wherever the repository is checked out
    assert not [k for k in ("run_dir", "exports_dir") if Path(str(report.get(k, "."))).is_absolute()]


def test_committed_export_is_consistent_small_and_healthy(digits_export):
    check_export(digits_export)
    size = sum(p.stat().st_size for p in (FIXTURES / "digits_export").rglob("*") if p.is_file())
    assert size < 100_000, f"{size:,} bytes in git"


@pytest.mark.slow
def test_make_fixtures_rebuilds_an_equivalent_export(tmp_path):
    """The script the integrator reruns after a format change: train, export, copy, and the result checks out."""
    import json

    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec and spec.loader
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    out = tmp_path / "run" / "exports"
    (out / "stale").mkdir(parents=True)  # a previous fixture is replaced as a whole, not merged into
    assert make.main(["--out", str(out)]) == 0
    check_export(CommittedExport(out.parent, json.loads((out / "export.json").read_text())))
