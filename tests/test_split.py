import numpy as np
import pytest

from mobile_ml.data.split import SplitOptions, parse_ratios, stratified_split
from mobile_ml.errors import ConfigError, DataError


def test_stratified_split_keeps_proportions_and_partitions():
    y = np.array([0] * 700 + [1] * 200 + [2] * 100)
    tr, va, te = stratified_split(y, SplitOptions())
    assert len(np.intersect1d(tr, va)) == len(np.intersect1d(tr, te)) == len(np.intersect1d(va, te)) == 0
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(1000))
    assert (len(tr), len(va), len(te)) == (700, 150, 150)
    for part in (tr, va, te):
        share = np.bincount(y[part]) / len(part)
        assert np.allclose(share, [0.7, 0.2, 0.1], atol=0.01)


def test_seed_reproducible_and_different():
    y = np.arange(300) % 3
    a = stratified_split(y, SplitOptions(seed=1))
    b = stratified_split(y, SplitOptions(seed=1))
    c = stratified_split(y, SplitOptions(seed=2))
    assert all((x == z).all() for x, z in zip(a, b, strict=True))
    assert not (a[2] == c[2]).all()


def test_small_class_rejected_with_name():
    y = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataError, match="class 'b' has only 2"):
        stratified_split(y, SplitOptions(), label_names=["a", "b"])


def test_too_few_rows():
    with pytest.raises(DataError, match="only 2 usable rows"):
        stratified_split(np.array([0, 1]), SplitOptions(stratify=False))


@pytest.mark.parametrize("ratios", [(0.8, 0.15, 0.15), (1.0, 0.0, 0.0), (0.5, -0.1, 0.6)])
def test_bad_ratios(ratios):
    with pytest.raises(ConfigError):
        SplitOptions(*ratios)


def test_parse_ratios():
    assert parse_ratios("70,15,15") == (0.7, 0.15, 0.15)
    assert parse_ratios("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    with pytest.raises(ConfigError, match="three"):
        parse_ratios("0.8,0.2")


def test_class_too_small_for_the_ratios_is_named():
    y = np.array([0] * 50 + [1] * 4)
    with pytest.raises(DataError, match="class 'b' has 4 rows: too few"):
        stratified_split(y, SplitOptions(0.2, 0.4, 0.4), label_names=["a", "b"])
