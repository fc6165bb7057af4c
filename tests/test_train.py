import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from mobile_ml.contracts import read_document, write_document
from mobile_ml.contracts.run import RunRecord
from mobile_ml.data.spec import load_spec, load_split
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.train.config import GridConfig, TrainConfig
from mobile_ml.train.metrics import classification_metrics
from mobile_ml.train.rundir import load_run
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
    raw = json.loads((run / "run.json").read_text())
    assert raw["schema"] == "mobile_ml.run" and raw["schema_version"] == 1  # the on-disk names other tools read
    meta = read_document(RunRecord, run / "run.json")
    assert meta.seed == TINY.seed and meta.config == TINY
    assert meta.model.family == "cnn" and meta.model.input_shape == [8, 8, 1]
    assert meta.selection.selected == result.selected.candidate.name
    assert len(meta.data.data_json_sha256 or "") == 64 and meta.data.source["type"] == "builtin"
    assert {"tensorflow", "tf_keras", "numpy", "python"} <= set(meta.environment)
    assert meta.timings["total_s"] >= meta.timings["train_s"] > 0
    metrics = load_run(run).metrics()
    assert metrics.split == "test" and metrics.metrics == result.test and len(metrics.metrics.confusion_matrix) == 10
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


def _validation_scores(run):
    """Accuracy and loss of the saved model on the run's validation split, recomputed here."""
    x, y = run.split("validation")
    return classification_metrics(y, run.load_model().predict(x, batch_size=256, verbose=0), run.spec.labels)


def test_recorded_validation_scores_are_the_saved_models_on_validation(tiny_run):
    """run.json's validation figures are the kept weights' scores on the validation split, not the test split's."""
    run = load_run(tiny_run[0])
    kept = run.info.selection.kept
    recomputed = _validation_scores(run)
    assert kept.val_accuracy == pytest.approx(recomputed.accuracy, abs=1e-6)
    assert kept.val_loss == pytest.approx(recomputed.loss, rel=1e-4)
    # Early stopping kept the epoch with the lowest validation loss, and those are the weights saved.
    history = tiny_run[1].selected.history
    best = min(history, key=lambda row: row["val_loss"])
    assert kept.best_epoch == best["epoch"] and kept.val_loss == pytest.approx(best["val_loss"], rel=1e-4)


@pytest.mark.slow
def test_selection_and_early_stopping_never_look_at_the_test_split(digits_dir, tmp_path):
    """A test split that disagrees with validation (its labels shifted by one) must not change what is kept.

    On this test split the good candidate scores about 0 and the diverged one (lr 0.9, one class for everything)
    about 0.1: selecting or early-stopping on test would keep the wrong model and record the wrong scores.
    """
    import shutil

    data = tmp_path / "data"
    shutil.copytree(digits_dir, data)
    spec = load_spec(data)
    x_val, y_val = load_split(data, spec, "validation")
    y_shifted = (y_val + 1) % spec.num_classes
    np.savez_compressed(data / spec.files["test"], x=x_val.astype(np.uint8), y=y_shifted)
    counts = {**spec.counts, "test": len(y_val)}
    class_counts = {**spec.class_counts, "test": np.bincount(y_shifted, minlength=spec.num_classes).tolist()}
    write_document(data / "data.json", replace(spec, counts=counts, class_counts=class_counts))
    cfg = replace(TINY, grid=GridConfig(width=(8,), depth=(1,), learning_rate=(0.9, 0.01), dropout=(0.0,)))

    result = train(data, tmp_path / "run", cfg)
    run = load_run(tmp_path / "run")
    scores = run.info.selection.candidates
    assert (
        run.info.selection.selected == min(scores, key=lambda c: (-c.val_accuracy, c.val_loss, c.params)).candidate.name
    )
    assert result.selected.candidate.learning_rate == 0.01
    assert run.info.selection.kept.val_accuracy == pytest.approx(_validation_scores(run).accuracy, abs=1e-6)
    assert run.info.selection.kept.val_accuracy > 0.5 > result.test.accuracy  # the shifted test split, scored once
    assert run.metrics().metrics.accuracy == run.info.test.accuracy == result.test.accuracy


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
