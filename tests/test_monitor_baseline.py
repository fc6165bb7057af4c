"""baseline.json: bin edges from train quantiles, discrete and constant features, image summaries, strictness."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from mobile_ml.contracts import ContractError, document_dict, parse_document, read_document
from mobile_ml.contracts.baseline import MAX_FEATURES, Baseline, BaselineKind, image_feature_names
from mobile_ml.errors import DataError
from mobile_ml.monitor import bins as B
from mobile_ml.monitor.baseline import baseline_for_run, build_baseline, write_baseline

LABELS = ["a", "b", "c"]


def _table(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.c_[rng.normal(3, 2, n), rng.integers(0, 2, n), np.full(n, 4.5), rng.exponential(1.0, n)].astype(
        np.float32
    )


def _tabular(bins: int = 10, seed: int = 0) -> tuple[Baseline, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = _table(rng, 2000), _table(rng, 400)
    probs = rng.dirichlet([0.5, 0.5, 0.5], 400)
    features = ["height", "is_red", "version", "wait"]
    return (
        build_baseline(train, test, features=features, kind="tabular", test_probs=probs, labels=LABELS, bins=bins),
        train,
        test,
        probs,
    )


def test_continuous_features_get_train_quantile_edges():
    baseline, train, test, _ = _tabular()
    height = baseline.features[0]
    assert not height.discrete and height.bins == 10
    assert height.edges == pytest.approx(np.quantile(train[:, 0].astype(np.float64), np.arange(1, 10) / 10))
    assert max(height.train) - min(height.train) <= 2  # about a tenth of the train rows each
    # Counted under the documented rule, as numpy's digitize (left-closed) counts them.
    assert list(height.test) == np.bincount(np.digitize(test[:, 0], height.edges), minlength=10).tolist()
    assert sum(height.train) == baseline.train_rows == 2000 and sum(height.test) == baseline.test_rows == 400


def test_one_hot_and_constant_features_get_one_bin_per_value():
    baseline, train, _, _ = _tabular()
    is_red, version = baseline.features[1], baseline.features[2]
    assert is_red.discrete and is_red.edges == (0.0, 1.0, math.nextafter(1.0, 2.0))
    assert is_red.train == (0, int((train[:, 1] == 0).sum()), int((train[:, 1] == 1).sum()), 0)
    assert version.discrete and version.bins == 3 and version.train == (0, 2000, 0)
    for value, expected in ((4.4, 0), (4.5, 1), (4.6, 2)):  # below, the constant, above: each its own bin
        assert B.bin_index(version.edges, value) == expected


def test_tied_values_give_fewer_bins_not_empty_duplicates():
    values = np.r_[np.zeros(700), np.arange(1, 301)]
    edges, discrete = B.fit_edges(values, 10)
    assert not discrete and len(set(edges)) == len(edges) and edges[0] == 0.0 and len(edges) < 9


def test_predictions_and_confidence_come_from_the_test_probabilities():
    baseline, _, _, probs = _tabular()
    assert list(baseline.predictions) == np.bincount(probs.argmax(1), minlength=3).tolist()
    assert baseline.confidence_edges == B.CONFIDENCE_EDGES
    assert (
        list(baseline.confidence) == np.bincount(np.digitize(probs.max(1), B.CONFIDENCE_EDGES), minlength=12).tolist()
    )
    assert baseline.latency_edges_ms == B.LATENCY_EDGES_MS


def test_round_trip_through_baseline_json(tmp_path):
    baseline, *_ = _tabular(bins=5)
    write_baseline(tmp_path / "baseline.json", baseline)
    assert read_document(Baseline, tmp_path / "baseline.json") == baseline


def test_image_baselines_monitor_mean_intensity_and_contrast_per_channel():
    rng = np.random.default_rng(3)
    train = rng.integers(0, 256, (200, 6, 5, 3)).astype(np.float32)
    test = rng.integers(0, 256, (50, 6, 5, 3)).astype(np.float32)
    baseline = build_baseline(
        train, test, features=[], kind="image", test_probs=rng.dirichlet([1, 1, 1], 50), labels=LABELS
    )
    assert baseline.kind is BaselineKind.IMAGE and baseline.image_channels == 3
    assert (
        baseline.feature_names
        == image_feature_names(3)
        == ("mean_intensity[0]", "mean_intensity[1]", "mean_intensity[2]", "contrast[0]", "contrast[1]", "contrast[2]")
    )
    summaries = B.image_summaries(train, 3)
    np.testing.assert_allclose(summaries[:, :3], train.astype(np.float64).mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(summaries[:, 3:], train.astype(np.float64).std(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(B.image_summaries(train[7], 3), summaries[7])
    assert parse_document(Baseline, document_dict(baseline), where="b") == baseline


def test_bad_inputs_are_data_errors():
    rng = np.random.default_rng(0)
    train, test = _table(rng, 50), _table(rng, 10)
    ok = dict(features=["a", "b", "c", "d"], kind="tabular", test_probs=np.full((10, 3), 1 / 3), labels=LABELS)
    build_baseline(train, test, **ok)
    for change, message in (
        (dict(test_probs=np.full((9, 3), 1 / 3)), "one row per test input"),
        (dict(test_probs=np.full((10, 3), np.nan)), "NaN"),
        (dict(features=["a", "b"]), "rows × 2 features"),
        (dict(labels=["only"]), "2 to"),
    ):
        with pytest.raises(DataError, match=message):
            build_baseline(train, test, **{**ok, **change})
    wide = np.zeros((5, MAX_FEATURES + 1))
    with pytest.raises(DataError, match=f"at most {MAX_FEATURES}"):
        build_baseline(
            wide,
            wide,
            **{**ok, "features": [f"f{i}" for i in range(MAX_FEATURES + 1)], "test_probs": np.full((5, 3), 1 / 3)},
        )
    with pytest.raises(ValueError):
        B.fit_edges(train[:, 0], B.MAX_REQUESTED_BINS + 1)


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("features", 0, "edges"), [2.0, 1.0], "edges"),
        (("features", 0, "edges"), [1.0, 1.0], "edges"),
        (("features", 0, "train"), [1, 2], "train"),  # not one count per bin
        (("features", 0, "test", 0), -1, "test[0]"),
        (("features", 0, "test", 0), True, "test[0]"),
        (("features", 0, "edges", 0), "NaN", "edges[0]"),
        (("predictions",), [400, 0], "predictions"),
        (("confidence", 0), 401, "confidence"),  # no longer adds up to test_rows
        (("features", 1, "name"), "height", "features"),  # duplicate name
        (("image_channels",), 3, "image_channels"),
        (("features", 0, "surprise"), 1, "surprise"),
        (("features", 0, "edges"), list(range(100)), "edges"),  # over the bound
    ],
)
def test_the_contract_refuses_inconsistent_documents(path, value, field):
    baseline, *_ = _tabular()
    doc = copy.deepcopy(document_dict(baseline))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ContractError) as e:
        parse_document(Baseline, doc, where="baseline.json")
    assert field in e.value.field


def test_baseline_for_run_reads_the_runs_splits_and_model(tiny_run):
    from mobile_ml.train.rundir import load_run

    run = load_run(tiny_run[0])
    baseline = baseline_for_run(run)
    assert baseline.kind is BaselineKind.IMAGE and baseline.labels == tuple(run.spec.labels)
    assert baseline.train_rows == run.spec.counts["train"] and baseline.test_rows == run.spec.counts["test"]
    # The model's test predictions follow the test labels closely, even for a tiny run.
    assert sum(baseline.predictions) == baseline.test_rows and max(baseline.predictions) < baseline.test_rows
    x_test, _ = run.split("test")
    fixed = baseline_for_run(run, test_probs=np.eye(len(run.spec.labels))[np.zeros(len(x_test), dtype=int)])
    assert fixed.predictions[0] == baseline.test_rows and fixed.features == baseline.features
