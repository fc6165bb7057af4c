"""The data.json, run.json and metrics.json contracts: old files still load, damage is named, paths stay relative."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from mobile_ml.contracts import ContractError, document_dict, parse_document
from mobile_ml.contracts.data import ColumnKind, DataKind, DataSpec
from mobile_ml.contracts.run import MetricsReport, RunRecord, SelectionMetric
from mobile_ml.outputs import dumps
from mobile_ml.train.rundir import PipelineLayout, RunLayout

V1 = Path(__file__).parent / "fixtures" / "v1_documents"
DOCS = [
    (RunRecord, "run.json"),
    (MetricsReport, "metrics.json"),
    (DataSpec, "image_data.json"),
    (DataSpec, "tabular_data.json"),
]


def raw(name: str) -> dict:
    return json.loads((V1 / name).read_text())


@pytest.mark.parametrize(("cls", "name"), DOCS)
def test_v1_documents_load_and_write_back_unchanged(cls, name):
    """Files written before the contracts existed load, and writing them again gives the same JSON, key order too."""
    text = (V1 / name).read_text()
    doc = parse_document(cls, text.encode(), where=name)
    assert dumps(document_dict(doc)) == text


def test_v1_run_reads_as_typed_values():
    run = parse_document(RunRecord, raw("run.json"), where="run.json")
    assert run.selection.metric is SelectionMetric.VAL_ACCURACY
    assert [c.candidate.learning_rate for c in run.selection.candidates] == [0.01, 0.003]
    assert run.selection.kept.candidate.name == run.model.name == run.selection.selected
    assert run.config.grid.learning_rate == (0.01, 0.003) and run.config.epochs == 2
    assert run.model.files.keras == "model.keras" and run.data.dir == "../digits"
    tab = parse_document(DataSpec, raw("tabular_data.json"), where="d")
    assert tab.kind is DataKind.TABULAR and f"{tab.kind}" == "tabular"
    assert [c.kind for c in tab.columns] == [ColumnKind.NUMERIC, ColumnKind.CATEGORICAL, ColumnKind.DATE]
    assert isinstance(tab.columns[2].impute, dict) and tab.input_shape == (len(tab.features),)


def test_run_json_without_the_deterministic_key_still_loads():
    # Runs written before the switch existed always trained deterministically.
    d = raw("run.json")
    del d["config"]["deterministic"]
    assert parse_document(RunRecord, d, where="run.json").config.deterministic is True


def _damaged(name: str, change) -> dict:
    d = copy.deepcopy(raw(name))
    change(d)
    return d


@pytest.mark.parametrize(
    ("cls", "name", "change", "message"),
    [
        (RunRecord, "run.json", lambda d: d["model"]["files"].update(keras="/abs/model.keras"), r"model\.files\.keras"),
        (RunRecord, "run.json", lambda d: d["model"]["files"].update(keras="../x.keras"), "inside the run directory"),
        (RunRecord, "run.json", lambda d: d["data"].update(dir="/somewhere/data"), "relative to the run directory"),
        (RunRecord, "run.json", lambda d: d["selection"].update(metric="test_accuracy"), r"selection\.metric"),
        (RunRecord, "run.json", lambda d: d["selection"].update(selected="nope"), "not one of the candidates"),
        (RunRecord, "run.json", lambda d: d["selection"]["candidates"][0].update(width=99), "does not match"),
        (RunRecord, "run.json", lambda d: d["config"].update(epochs=0), r"config: epochs = 0"),
        (RunRecord, "run.json", lambda d: d["model"].update(params="many"), r"model\.params: expected an integer"),
        (RunRecord, "run.json", lambda d: d.update(extra=1), "extra: unknown field"),
        (MetricsReport, "metrics.json", lambda d: d["confusion_matrix"].pop(), "confusion_matrix"),
        (MetricsReport, "metrics.json", lambda d: d.update(accuracy=1.5), "accuracy: 1.5 is outside"),
        (DataSpec, "image_data.json", lambda d: d["files"].update(train="../../etc/passwd"), r"files\.train"),
        (DataSpec, "image_data.json", lambda d: d["files"].pop("test"), r"files\.test: missing"),
        (DataSpec, "image_data.json", lambda d: d["normalization"].update(std=[0.0]), "positive"),
        (DataSpec, "image_data.json", lambda d: d["class_counts"]["train"].pop(), "9 counts for 10 labels"),
        (DataSpec, "image_data.json", lambda d: d.update(kind="audio"), "kind"),
        (DataSpec, "tabular_data.json", lambda d: d["columns"][1]["features"].pop(), "categorical column"),
        (
            DataSpec,
            "tabular_data.json",
            lambda d: [d["normalization"][k].pop() for k in ("mean", "std")],
            "means for an input of",
        ),
    ],
)
def test_damage_is_named_by_field(cls, name, change, message):
    with pytest.raises(ContractError, match=message):
        parse_document(cls, _damaged(name, change), where=name)


def test_layout_resolves_a_pipeline_directory_to_its_run(tmp_path):
    (tmp_path / "p" / "run").mkdir(parents=True)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text("{}")
    assert RunLayout.of(tmp_path / "p") == PipelineLayout(tmp_path / "p").run == RunLayout(tmp_path / "p" / "run")
    assert RunLayout.of(tmp_path / "p").exports == tmp_path / "p" / "run" / "exports"
    assert RunLayout.of(tmp_path / "r").benchmark == tmp_path / "r" / "benchmark"
    assert RunLayout.of(tmp_path / "missing").dir == tmp_path / "missing"
