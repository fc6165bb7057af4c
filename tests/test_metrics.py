import numpy as np

from mobile_ml.train.metrics import classification_metrics


def test_metrics_match_hand_computed_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = classification_metrics(y, probs, ["a", "b", "c"])
    assert m.accuracy == 4 / 6
    assert m.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    a, b, c = m.per_class
    assert (a.precision, a.recall) == (0.5, 0.5)
    assert (b.precision, b.recall) == (2 / 3, 1.0)
    assert (c.precision, c.recall) == (1.0, 0.5)
    assert np.isclose(m.macro_recall, (0.5 + 1 + 0.5) / 3)
    assert np.isclose(b.f1, 2 * (2 / 3) / (2 / 3 + 1))
    assert m.examples == 6 and m.loss > 0


def test_never_predicted_class_has_zero_precision():
    m = classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.9, 0.1]]), ["a", "b"])
    assert m.per_class[1].precision == 0.0 and m.per_class[1].recall == 0.0
