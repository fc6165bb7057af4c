import json
import os
import shutil
from pathlib import Path
from typing import Any, NamedTuple

# Before anything imports TensorFlow (mobile_ml does this too; tests may import tf_keras directly).
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from mobile_ml.train.config import GridConfig, TrainConfig  # noqa: E402

# One tiny candidate, few epochs: enough to exercise the whole training path in seconds.
TINY = TrainConfig(
    epochs=3, patience=2, batch_size=64, grid=GridConfig(width=(8,), depth=(1,), learning_rate=(0.01,), dropout=(0.0,))
)


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """The built-in digits, prepared once per session (no TensorFlow involved)."""
    from mobile_ml.data.prepare import prepare

    out = tmp_path_factory.mktemp("digits") / "data"
    prepare("builtin:digits", out)
    return out


@pytest.fixture(scope="session")
def tiny_run(digits_dir, tmp_path_factory):
    """A real but tiny training run on digits, shared by the tests that only read a run directory."""
    from mobile_ml.train.trainer import train

    out = tmp_path_factory.mktemp("run") / "run"
    result = train(digits_dir, out, TINY)
    return out, result


FAST = dict(calibration_samples=64, finetune_epochs=1)  # export options that keep QAT and pruning to seconds

# The session fixtures that train (directly or through another): a test that uses one is marked slow below.
TRAINING_FIXTURES = frozenset({"tiny_run", "exported"})
FIXTURES = Path(__file__).parent / "fixtures"


# Whole files the fast loop leaves to CI: many model conversions (model_file, export_model_file), LiteRT timing
# runs (benchmark), several real servers or processes per test (check_server: nginx and moto; serve_workers;
# aggregates_upload: both stores), streamed training (parquet_splits), deadlines and crash points that wait on real
# clocks (client_faults, publish_crash). Measured with --durations=0: together they were 109 of the fast subset's
# 182 test-seconds on 2 cores, which had grown to 113 s wall.
SLOW_FILES = frozenset(
    {
        "test_model_file.py",
        "test_export_model_file.py",
        "test_benchmark.py",
        "test_check_server.py",
        "test_serve_workers.py",
        "test_aggregates_upload.py",
        "test_parquet_splits.py",
        "test_client_faults.py",
        "test_publish_crash.py",
    }
)


def pytest_collection_modifyitems(items):
    """Mark `slow` every test whose fixture closure trains (and the files above), so `-m "not slow"` skips them
    without a hand-kept list of tests."""
    for item in items:
        if TRAINING_FIXTURES.intersection(getattr(item, "fixturenames", ())) or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def exported(tiny_run, digits_dir, tmp_path_factory):
    """A copy of the tiny run with every variant exported (read-only for the tests that use it)."""
    import shutil

    from mobile_ml.export.exporter import export
    from mobile_ml.export.options import ExportOptions

    run = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(tiny_run[0], run)
    result = export(run, ExportOptions(**FAST), data_dir=digits_dir)
    return run, result


class CommittedExport(NamedTuple):
    run: Path  # a run directory that holds only exports/ (no Keras model, no data)
    report: dict[str, Any]  # its exports/export.json


@pytest.fixture(scope="session")
def digits_export(tmp_path_factory):
    """The committed real export of the TINY digits model (fp32 and int8, see tests/fixtures/make_fixtures.py),
    copied so that a test which damages its run damages a copy. For publish, serve, client and benchmark tests:
    no training. Tests that need the Keras model, the data or every variant use `exported` (slow)."""
    run = tmp_path_factory.mktemp("committed") / "run"
    shutil.copytree(FIXTURES / "digits_export", run / "exports")
    return CommittedExport(run, json.loads((run / "exports" / "export.json").read_text(encoding="utf-8")))


def leftovers(parent):
    """Hidden temp entries our atomic writers would leave behind if they failed to clean up."""
    return sorted(
        p.name
        for p in parent.iterdir()
        if p.name.startswith(".") and (p.name.endswith(".partial") or p.name.endswith(".tmp") or ".old-" in p.name)
    )


def same_frames(a, b) -> None:
    """Two DataFrames hold the same columns, dtypes, missing values and values (the CSV readers against pandas)."""
    assert list(a.columns) == list(b.columns)
    for c in a.columns:
        assert str(a[c].dtype) == str(b[c].dtype), c
        assert a[c].isna().tolist() == b[c].isna().tolist(), c
        assert a[c].dropna().tolist() == b[c].dropna().tolist(), c
