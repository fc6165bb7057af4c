"""Reading a run directory back: what later stages (export, benchmark) need from a training run."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mobile_ml.data.spec import DataSpec, load_spec, load_split
from mobile_ml.errors import InputFileError
from mobile_ml.outputs import sha256_file
from mobile_ml.train.trainer import RUN_SCHEMA


@dataclass(frozen=True)
class Run:
    dir: Path
    info: dict[str, Any]  # run.json
    spec: DataSpec  # the run's copy of data.json: labels, input spec, normalization
    data_dir: Path  # where the splits are

    @property
    def model_path(self) -> Path:
        return self.dir / self.info["model"]["files"]["keras"]

    def split(self, name: str):
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
    """Check ``rundir`` and locate its data; ``data_dir`` overrides the data directory recorded in run.json."""
    rundir = Path(rundir)
    hint = "pass a run directory made by `mobile-ml train` or `mobile-ml quickstart` (e.g. runs/quickstart/run)"
    if not rundir.is_dir():
        raise InputFileError(f"run directory {rundir} does not exist", hint=hint)
    run_json = rundir / "run.json"
    if not run_json.is_file():
        nested = rundir / "run" / "run.json"
        if nested.is_file():  # a pipeline output directory: the run is one level down
            return load_run(rundir / "run", data_dir)
        raise InputFileError(f"{rundir} is not a run directory (no run.json)", hint=hint)
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
        files = info["model"]["files"]
        recorded = info["data"]["dir"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputFileError(f"{run_json} is damaged: {e}", hint="train the run again") from e
    if info.get("schema") != RUN_SCHEMA:
        raise InputFileError(f"{run_json} is not a mobile-ml run description", hint=hint)
    model = rundir / files["keras"]
    if not model.is_file():
        raise InputFileError(
            f"{rundir} has no model: {model.name} is missing",
            hint="the training run did not finish or the file was removed; train again",
        )
    spec = load_spec(rundir)  # the run's own copy: what the model was trained on
    data = Path(data_dir) if data_dir else (rundir / recorded)
    if not (data / "data.json").is_file():
        raise InputFileError(
            f"the run's data directory {data} is missing",
            hint="pass --data DIR with the prepared data the run was trained on",
        )
    expected = info["data"].get("data_json_sha256")
    if expected and sha256_file(data / "data.json") != expected:
        raise InputFileError(
            f"{data} is not the data this run was trained on (data.json differs)",
            hint="pass --data DIR with the prepared data the run was trained on",
        )
    return Run(rundir.absolute(), info, spec, data.absolute())
