import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from mobile_ml.data.spec import load_spec, load_split
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.train.config import GridConfig, TrainConfig
from mobile_ml.train.trainer import NullReporter, train
from tests.conftest import TINY, leftovers


def test_run_directory_contents(tiny_run):
    run, result = tiny_run
    names = {p.name for p in run.iterdir()}
    assert {
        "run.json",
        "metrics.json",
        "data.json",
        "history.csv",
        "history.png",
        "model.keras",
        "saved_model",
    } <= names
    meta = json.loads((run / "run.json").read_text())
    assert meta["schema"] == "mobile_ml.run" and meta["schema_version"] == 1
    assert meta["seed"] == TINY.seed and meta["config"]["epochs"] == TINY.epochs
    assert meta["model"]["family"] == "cnn" and meta["model"]["input_shape"] == [8, 8, 1]
    assert meta["selection"]["selected"] == result.selected.candidate.name
    assert len(meta["data"]["data_json_sha256"]) == 64 and meta["data"]["source"]["type"] == "builtin"
    assert {"tensorflow", "tf_keras", "numpy", "python"} <= set(meta["environment"])
    assert meta["timings"]["total_s"] >= meta["timings"]["train_s"] > 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] == result.test.accuracy and len(metrics["confusion_matrix"]) == 10
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result.selected.epochs_run and float(rows[0]["val_loss"]) > 0
    assert (run / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_is_the_evaluated_one(tiny_run, digits_dir):
    """Reloading model.keras and the SavedModel reproduces the reported test accuracy."""
    from mobile_ml import _tf
    from mobile_ml.train.metrics import classification_metrics

    run, result = tiny_run
    spec = load_spec(digits_dir)
    x, y = load_split(digits_dir, spec, "test")
    model = _tf.keras().models.load_model(run / "model.keras")
    probs = model.predict(x, verbose=0)
    assert classification_metrics(y, probs, spec.labels).accuracy == result.test.accuracy
    # the model takes raw pixels: normalization is inside it
    assert model.layers[1].name == "normalize"
    loaded = _tf.tensorflow().saved_model.load(str(run / "saved_model"))
    sm = loaded.signatures["serving_default"](_tf.tensorflow().constant(x[:5]))
    np.testing.assert_allclose(next(iter(sm.values())).numpy(), probs[:5], atol=1e-5)


def test_same_seed_same_metrics(digits_dir, tiny_run, tmp_path):
    _, first = tiny_run
    again = train(digits_dir, tmp_path / "again", TINY)
    assert again.selected.val_loss == first.selected.val_loss
    assert again.test.confusion_matrix == first.test.confusion_matrix


@pytest.mark.slow
def test_best_candidate_selected_on_validation(digits_dir, tmp_path):
    # lr 0.9 makes Adam diverge; the grid search must notice and pick the sane candidate.
    cfg = replace(TINY, grid=GridConfig(width=(8,), depth=(1,), learning_rate=(0.9, 0.01), dropout=(0.0,)))
    result = train(digits_dir, tmp_path / "run", cfg)
    assert len(result.candidates) == 2
    assert result.selected.candidate.learning_rate == 0.01
    assert result.selected.val_accuracy > result.candidates[0].val_accuracy


@pytest.mark.slow
def test_interrupt_mid_training_leaves_nothing(digits_dir, tmp_path):
    class Interrupt(NullReporter):
        def epoch_finished(self, candidate, epoch, logs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(digits_dir, tmp_path / "run", TINY, reporter=Interrupt())
    assert list(tmp_path.iterdir()) == [] and leftovers(tmp_path) == []


def test_not_a_data_directory(tmp_path):
    with pytest.raises(InputFileError, match="not a prepared data directory"):
        train(tmp_path, tmp_path / "run", TINY)
    assert not (tmp_path / "run").exists()


def test_cnn_needs_images(digits_dir):
    from mobile_ml.train.models import resolve_family

    spec = replace(load_spec(digits_dir), kind="tabular", image=None)
    with pytest.raises(ConfigError, match="needs image data"):
        resolve_family("cnn", spec)
    assert resolve_family("auto", spec) == "mlp"


def test_grid_validation():
    with pytest.raises(ConfigError, match="learning_rate"):
        GridConfig(learning_rate=(0.0,))
    with pytest.raises(ConfigError, match="family"):
        TrainConfig(family="transformer")
    assert len(TrainConfig(grid=GridConfig(width=(1, 2), depth=(1, 2), learning_rate=(0.1,))).candidates("mlp")) == 4
