"""Data files for a model without a run (mobile_ml.export.eval_data): every form, every refusal, no TensorFlow."""

import numpy as np
import pytest
from PIL import Image

from mobile_ml.errors import DataError, InputFileError, UserError
from mobile_ml.export import eval_data
from mobile_ml.export.eval_data import load_examples, load_labels
from mobile_ml.export.model_file import IOSpec

IMAGE = IOSpec("input", (8, 8, 1), "float32")
FEATURES = IOSpec("features", (3,), "float32")


def _load(path, *inputs, labelled=True, **kw):
    return load_examples(path, inputs or (IMAGE,), option="--eval", labelled=labelled, **kw)


def test_npz_rows_are_cast_to_the_input_dtype_and_labels_to_int64(tmp_path):
    x = np.random.default_rng(0).integers(0, 17, (20, 8, 8, 1)).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 10)
    ex = _load(tmp_path / "d.npz")
    assert ex.x["input"].dtype == np.float32 and np.array_equal(ex.x["input"], x.astype(np.float32))
    assert ex.y is not None and ex.y.dtype == np.int64 and list(ex.y[:3]) == [0, 1, 2]
    assert len(ex) == 20 and ex.source == str(tmp_path / "d.npz")


def test_npz_for_several_inputs_takes_x_per_input_name_and_names_unknown_and_missing_arrays(tmp_path):
    a, b = IOSpec("a", (2,), "float32"), IOSpec("b", (3,), "int32")
    np.savez(tmp_path / "ok.npz", x_a=np.ones((4, 2)), x_b=np.ones((4, 3), np.int64), y=np.zeros(4, np.int64))
    ex = _load(tmp_path / "ok.npz", a, b)
    assert ex.x["a"].shape == (4, 2) and ex.x["b"].dtype == np.int32
    np.savez(tmp_path / "missing.npz", x_a=np.ones((4, 2)), y=np.zeros(4))
    with pytest.raises(DataError, match=r"has no array x_b"):
        _load(tmp_path / "missing.npz", a, b)
    np.savez(tmp_path / "extra.npz", x_a=np.ones((4, 2)), x_b=np.ones((4, 3)), x_c=np.ones(4), y=np.zeros(4))
    with pytest.raises(DataError, match=r"does not take: x_c"):
        _load(tmp_path / "extra.npz", a, b)
    np.savez(tmp_path / "uneven.npz", x_a=np.ones((4, 2)), x_b=np.ones((5, 3)), y=np.zeros(4))
    with pytest.raises(DataError, match="different numbers of rows"):
        _load(tmp_path / "uneven.npz", a, b)


def test_a_single_input_also_takes_x_named_after_it(tmp_path):
    np.savez(tmp_path / "d.npz", x_features=np.ones((3, 3)), y=np.zeros(3, np.int64))
    assert _load(tmp_path / "d.npz", FEATURES).x["features"].shape == (3, 3)


def test_shape_mismatch_says_both_shapes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((5, 13)), y=np.zeros(5, np.int64))
    spec = IOSpec("features", (8,), "float32")
    with pytest.raises(DataError) as e:
        _load(tmp_path / "d.npz", spec)
    assert e.value.message == "--eval x has rows of shape [13] but the model's input 'features' is [8]"
    # a dynamic dimension takes any size, the rank still has to match
    assert _load(tmp_path / "d.npz", IOSpec("features", (None,), "float32")).x["features"].shape == (5, 13)
    with pytest.raises(DataError, match=r"shape \[13\] but .* is \[\?, 13\]"):
        _load(tmp_path / "d.npz", IOSpec("features", (None, 13), "float32"))


def test_dtype_mismatch_says_both_dtypes(tmp_path):
    np.savez(tmp_path / "frac.npz", x=np.full((2, 3), 0.5), y=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"--eval x is float64 but the model's input 'ids' is int32"):
        _load(tmp_path / "frac.npz", IOSpec("ids", (3,), "int32"))
    np.savez(tmp_path / "big.npz", x=np.full((2, 3), 300), y=np.zeros(2, np.int64))
    with pytest.raises(DataError, match=r"is int64 but the model's input 'q' is int8"):
        _load(tmp_path / "big.npz", IOSpec("q", (3,), "int8"))
    np.savez(tmp_path / "text.npz", x=np.array([["a", "b", "c"]]), y=np.zeros(1, np.int64))
    with pytest.raises(DataError, match=r"x is <U1 but the model's input 'features' is float32"):
        _load(tmp_path / "text.npz", FEATURES)
    np.savez(tmp_path / "whole.npz", x=np.full((2, 3), 7.0), y=np.zeros(2, np.int64))
    assert _load(tmp_path / "whole.npz", IOSpec("ids", (3,), "int32")).x["ids"].dtype == np.int32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_naming_the_option(tmp_path, bad):
    x = np.ones((4, 3))
    x[2, 1] = bad
    np.savez(tmp_path / "d.npz", x=x)
    with pytest.raises(DataError, match=r"^--calibration x has NaN or infinite values \(row 2\)"):
        load_examples(tmp_path / "d.npz", [FEATURES], option="--calibration", labelled=False)


def test_labels_are_required_only_when_labelled(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 3)))
    assert load_examples(tmp_path / "d.npz", [FEATURES], option="--calibration", labelled=False).y is None
    with pytest.raises(DataError, match=r"--eval .* has no labels"):
        _load(tmp_path / "d.npz", FEATURES)


def test_class_indices_outside_the_labels_and_unknown_class_names_are_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 3)), y=np.array([0, 1, 3]))
    with pytest.raises(DataError, match=r"class index 3, outside 0\.\.2 \(3 classes\)"):
        _load(tmp_path / "d.npz", FEATURES, labels=("a", "b", "c"))
    np.savez(tmp_path / "neg.npz", x=np.ones((3, 3)), y=np.array([0, -1, 1]))
    with pytest.raises(DataError, match=r"class index -1"):
        _load(tmp_path / "neg.npz", FEATURES, labels=("a", "b", "c"))
    np.savez(tmp_path / "names.npz", x=np.ones((3, 3)), y=np.array(["b", "a", "b"]))
    assert list(_load(tmp_path / "names.npz", FEATURES, labels=("a", "b")).y) == [1, 0, 1]
    with pytest.raises(DataError, match=r"not classes of the model: b"):
        _load(tmp_path / "names.npz", FEATURES, labels=("a", "c"))
    with pytest.raises(DataError, match="no class list"):
        _load(tmp_path / "names.npz", FEATURES)
    np.savez(tmp_path / "count.npz", x=np.ones((3, 3)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="3 rows of x but 2 labels"):
        _load(tmp_path / "count.npz", FEATURES)


def test_float_targets_stay_float_for_regression(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((3, 3)), y=np.array([0.5, 1.25, -2.0]))
    ex = _load(tmp_path / "d.npz", FEATURES)
    assert ex.y is not None and ex.y.dtype == np.float64 and ex.y[1] == 1.25
    np.savez(tmp_path / "nan.npz", x=np.ones((3, 3)), y=np.array([0.5, np.nan, 1.0]))
    with pytest.raises(DataError, match="labels have NaN"):
        _load(tmp_path / "nan.npz", FEATURES)


def test_npz_is_bounded_and_never_unpickled(tmp_path, monkeypatch):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="holds Python objects"):
        _load(tmp_path / "obj.npz", FEATURES)
    np.savez(tmp_path / "d.npz", x=np.ones((10, 3)), y=np.zeros(10, np.int64))
    monkeypatch.setattr(eval_data, "MAX_BYTES", 100)  # the headers say 320 bytes: refused before reading
    with pytest.raises(DataError, match="holds more than"):
        _load(tmp_path / "d.npz", FEATURES)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputFileError, match="not a readable .npz"):
        _load(tmp_path / "junk.npz", FEATURES)


def _image_folder(root, classes=("cat", "dog"), size=(12, 10), mode="L", value=255):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.new(mode, size, value if i == 0 else 0).save(root / c / f"{i}.png")
    return root


def test_image_folders_are_resized_to_the_input_and_mapped_to_the_input_range(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    ex = _load(root, IMAGE)
    assert ex.x["input"].shape == (4, 8, 8, 1) and ex.x["input"].dtype == np.float32
    assert ex.x["input"].max() == 255.0 and ex.x["input"].min() == 0.0
    assert list(ex.y) == [0, 0, 1, 1]
    ranged = _load(root, IMAGE, input_range=(-1.0, 1.0))
    assert ranged.x["input"].max() == 1.0 and ranged.x["input"].min() == -1.0
    rgb = _load(_image_folder(tmp_path / "rgb", mode="RGB", value=(255, 0, 0)), IOSpec("img", (6, 4, 3), "float32"))
    assert rgb.x["img"].shape == (4, 6, 4, 3) and rgb.x["img"][0, 0, 0].tolist() == [255.0, 0.0, 0.0]


def test_image_class_folders_follow_the_labels_and_unknown_folders_are_refused(tmp_path):
    root = _image_folder(tmp_path / "imgs")
    ex = _load(root, IMAGE, labels=("dog", "bird", "cat"))
    assert list(ex.y) == [2, 2, 0, 0]
    with pytest.raises(DataError, match=r"class folders that are not classes of the model: dog"):
        _load(root, IMAGE, labels=("cat", "bird"))
    with pytest.raises(DataError, match=r"folder of images but the model's input 'features' is \[3\]"):
        _load(root, FEATURES)


def test_csv_features_in_column_order_with_the_target_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,label,b,c\n1,x,2,3\n4,y,5,6\n7,x,8,9.5\n")
    ex = _load(tmp_path / "d.csv", FEATURES, target="label", labels=("x", "y"))
    assert ex.x["features"].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9.5]] and list(ex.y) == [0, 1, 0]
    (tmp_path / "n.csv").write_text("a,b,c,t\n1,2,3,0\n4,5,6,2\n")
    assert list(_load(tmp_path / "n.csv", FEATURES, target="t").y) == [0, 2]
    # unlabelled (calibration): every column is a feature
    (tmp_path / "u.csv").write_text("a,b,c\n1,2,3\n")
    assert load_examples(tmp_path / "u.csv", [FEATURES], option="--calibration", labelled=False).x[
        "features"
    ].shape == (
        1,
        3,
    )


def test_csv_refusals(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,c,t\n1,2,3,0\n4,,6,1\n")
    with pytest.raises(DataError, match=r"--eval x has NaN or infinite values \(row 1\)"):
        _load(tmp_path / "d.csv", FEATURES, target="t")
    with pytest.raises(DataError, match="no label column was named") as e:
        _load(tmp_path / "d.csv", FEATURES)
    assert e.value.hint == "pass --target COL"
    with pytest.raises(DataError, match="has no column 'label'"):
        _load(tmp_path / "d.csv", FEATURES, target="label")
    with pytest.raises(DataError, match=r"x has rows of shape \[3\] but the model's input 'f' is \[2\]"):
        _load(tmp_path / "d.csv", IOSpec("f", (2,), "float32"), target="t")
    with pytest.raises(DataError, match="model has 2 inputs") as e:
        _load(tmp_path / "d.csv", FEATURES, IOSpec("other", (1,), "float32"), target="t")
    assert e.value.hint and ".npz" in e.value.hint
    (tmp_path / "s.csv").write_text("a,b,c,t\n1,red,3,0\n")
    with pytest.raises(DataError, match="column 'b' is not numeric"):
        _load(tmp_path / "s.csv", FEATURES, target="t")


def test_paths_that_are_none_of_the_forms_are_refused(tmp_path):
    (tmp_path / "d.txt").write_text("1 2 3\n")
    with pytest.raises(DataError, match="none of the accepted forms") as e:
        _load(tmp_path / "d.txt", FEATURES)
    assert ".npz" in (e.value.hint or "") and "--target" in (e.value.hint or "")
    with pytest.raises(InputFileError, match=r"--finetune-data .* does not exist"):
        load_examples(tmp_path / "nope.npz", [FEATURES], option="--finetune-data", labelled=True)


def test_take_is_without_replacement_and_fixed_per_seed(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(30.0).reshape(10, 3), y=np.arange(10))
    ex = _load(tmp_path / "d.npz", FEATURES)
    a, b, c = ex.take(6, seed=1), ex.take(6, seed=1), ex.take(6, seed=2)
    assert len(a) == 6 and np.array_equal(a.x["features"], b.x["features"]) and list(a.y) == list(b.y)
    assert list(a.y) != list(c.y) and len(set(a.y.tolist())) == 6
    assert np.array_equal(a.x["features"][:, 0] / 3, a.y)  # rows and labels stay together
    assert len(ex.take(50, seed=0)) == 10


def test_load_labels(tmp_path):
    (tmp_path / "l.txt").write_text("cat\ndog\nbird\n")
    assert load_labels(tmp_path / "l.txt") == ("cat", "dog", "bird")
    (tmp_path / "blank.txt").write_text("cat\n\ndog\n")
    with pytest.raises(DataError, match="line 2 is blank"):
        load_labels(tmp_path / "blank.txt")
    (tmp_path / "dup.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(DataError, match="'cat' is on lines 1 and 3"):
        load_labels(tmp_path / "dup.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_labels(tmp_path / "empty.txt")
    with pytest.raises(UserError, match="does not exist"):
        load_labels(tmp_path / "none.txt")
