"""Run directories: where every file of a run lives, and reading a run back for the stages after training.

The one place that knows the layout. A run directory (``mobile-ml train --out RUN``) holds:
    run.json, metrics.json, data.json, history.csv, history.png, model.keras, saved_model/   (training)
    exports/                                                                            (export)
    benchmark/                                                                          (benchmark)
A pipeline output directory (``quickstart``, ``pipeline``) holds ``profile.json``, ``data/`` and the run in ``run/``;
every command that takes a run also takes a pipeline output directory (``RunLayout.of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mobile_ml.contracts import read_document
from mobile_ml.contracts.run import MetricsReport, RunRecord
from mobile_ml.data.spec import DataSpec, load_spec, load_split
from mobile_ml.errors import InputFileError
from mobile_ml.outputs import sha256_file

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory's files, whether or not they exist yet."""

    dir: Path

    @classmethod
    def of(cls, path: str | Path) -> RunLayout:
        """The run ``path`` names: ``path`` itself, or ``path/run`` when ``path`` is a pipeline output directory."""
        path = Path(path)
        if not (path / "run.json").is_file() and PipelineLayout(path).run.dir.is_dir():
            return PipelineLayout(path).run
        return cls(path)

    @property
    def run_json(self) -> Path:
        return self.dir / "run.json"

    @property
    def metrics_json(self) -> Path:
        return self.dir / "metrics.json"

    @property
    def data_json(self) -> Path:
        return self.dir / "data.json"  # the copy of the data description trained on

    @property
    def history_csv(self) -> Path:
        return self.dir / "history.csv"

    @property
    def history_png(self) -> Path:
        return self.dir / "history.png"

    @property
    def exports(self) -> Path:
        return self.dir / "exports"  # written by `mobile-ml export`

    @property
    def benchmark(self) -> Path:
        return self.dir / "benchmark"  # written by `mobile-ml benchmark`


@dataclass(frozen=True)
class PipelineLayout:
    """A pipeline output directory: the profile, the prepared data and the run, side by side."""

    dir: Path

    @property
    def profile_json(self) -> Path:
        return self.dir / "profile.json"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def run(self) -> RunLayout:
        return RunLayout(self.dir / "run")


@dataclass(frozen=True)
class Run:
    dir: Path
    info: RunRecord  # run.json
    spec: DataSpec  # the run's copy of data.json: labels, input spec, normalization
    data_dir: Path  # where the splits are

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.dir)

    @property
    def model_path(self) -> Path:
        return self.dir / self.info.model.files.keras

    @property
    def exports_dir(self) -> Path:
        return self.layout.exports

    @property
    def benchmark_dir(self) -> Path:
        return self.layout.benchmark

    def metrics(self) -> MetricsReport:
        """``metrics.json``: the selected model's test-split metrics."""
        return read_document(MetricsReport, self.layout.metrics_json)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return load_split(self.data_dir, self.spec, name)

    def load_model(self):
        """The trained ``tf_keras`` model, or an ``InputFileError`` naming what is wrong with the file."""
        from mobile_ml import _tf

        keras = _tf.keras()
        try:
            with _tf.quiet_stderr():
                return keras.models.load_model(self.model_path)
        except Exception as e:  # zip, h5py and deserialization errors all mean the same thing to a user
            raise InputFileError(
                f"cannot load the model {self.model_path}: {str(e).splitlines()[0][:200]}",
                hint="the file is damaged; train the run again",
            ) from e


def load_run(rundir: str | Path, data_dir: str | Path | None = None) -> Run:
    """Check ``rundir`` (or a pipeline output directory) and locate its data; ``data_dir`` overrides the data
    directory recorded in run.json."""
    hint = "pass a run directory made by `mobile-ml train` or `mobile-ml quickstart` (e.g. runs/quickstart/run)"
    if not Path(rundir).is_dir():
        raise InputFileError(f"run directory {rundir} does not exist", hint=hint)
    layout = RunLayout.of(rundir)
    if not layout.run_json.is_file():
        raise InputFileError(f"{rundir} is not a run directory (no run.json)", hint=hint)
    info = read_document(RunRecord, layout.run_json)
    model = layout.dir / info.model.files.keras
    if not model.is_file():
        raise InputFileError(
            f"{layout.dir} has no model: {model.name} is missing",
            hint="the training run did not finish or the file was removed; train again",
        )
    spec = load_spec(layout.dir)  # the run's own copy: what the model was trained on
    data = Path(data_dir) if data_dir else (layout.dir / info.data.dir)
    if not (data / "data.json").is_file():
        raise InputFileError(
            f"the run's data directory {data} is missing",
            hint="pass --data DIR with the prepared data the run was trained on",
        )
    expected = info.data.data_json_sha256
    if expected and sha256_file(data / "data.json") != expected:
        raise InputFileError(
            f"{data} is not the data this run was trained on (data.json differs)",
            hint="pass --data DIR with the prepared data the run was trained on",
        )
    return Run(layout.dir.absolute(), info, spec, data.absolute())
