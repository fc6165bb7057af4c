import json

import numpy as np
import pytest
from PIL import Image

from mobile_ml.data.images import ImageOptions, parse_size
from mobile_ml.data.prepare import prepare, profile
from mobile_ml.data.spec import load_spec, load_split
from mobile_ml.errors import ConfigError, DataError, InputFileError
from tests.conftest import leftovers


def make_folder(root, per_class=6, size=(20, 12), corrupt=False):
    rng = np.random.default_rng(0)
    for c, value in (("cat", 40), ("dog", 200)):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = np.clip(rng.normal(value, 10, size=(*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.{'png' if i % 2 else 'jpg'}")
    (root / "dog" / "notes.txt").write_text("ignored: not an image suffix")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def test_digits_builtin(digits_dir):
    spec = load_spec(digits_dir)
    assert spec.kind == "image" and spec.input_shape == (8, 8, 1) and spec.labels == [str(i) for i in range(10)]
    assert sum(spec.counts.values()) == 1797
    x, y = load_split(digits_dir, spec, "train")
    assert x.shape == (spec.counts["train"], 8, 8, 1) and x.max() == 16 and x.dtype == np.float32
    # normalization statistics come from the train split only
    assert np.isclose(spec.normalization.mean[0], x.mean(), rtol=1e-6)
    assert np.isclose(spec.normalization.std[0], x.std(), rtol=1e-5)
    assert spec.image.value_range == (0.0, 16.0)


def test_image_folder_resized_and_labelled(tmp_path):
    src = make_folder(tmp_path / "imgs")
    spec = prepare(src, tmp_path / "data", image=ImageOptions((10, 14), "rgb"))
    assert spec.labels == ["cat", "dog"] and spec.input_shape == (10, 14, 3)
    assert spec.counts == {"train": 8, "validation": 2, "test": 2}
    x, y = load_split(tmp_path / "data", spec, "test")
    # cats are dark, dogs are bright: the label follows the folder
    assert all((img.mean() < 100) == (lab == 0) for img, lab in zip(x, y, strict=True))
    data = json.loads((tmp_path / "data" / "data.json").read_text())
    assert data["schema"] == "mobile_ml.data" and data["source"]["type"] == "image_folder"


def test_unreadable_image_named_and_nothing_written(tmp_path):
    src = make_folder(tmp_path / "imgs", corrupt=True)
    with pytest.raises(InputFileError, match=r"cannot read image .*broken\.png"):
        prepare(src, tmp_path / "data")
    assert not (tmp_path / "data").exists() and leftovers(tmp_path) == []


def test_one_class_folder_rejected(tmp_path):
    (tmp_path / "imgs" / "only").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "only" / "a.png")
    with pytest.raises(DataError, match="at least 2"):
        prepare(tmp_path / "imgs", tmp_path / "data")


def test_image_profile(tmp_path):
    report = profile(make_folder(tmp_path / "imgs"), image=ImageOptions((8, 8)))
    assert report["images"] == 12 and report["shape"] == [8, 8, 1]
    assert report["target"]["classes"] == {"cat": 6, "dog": 6}


def test_parse_size():
    assert parse_size("32x24") == (32, 24) and parse_size("16") == (16, 16)
    with pytest.raises(ConfigError):
        parse_size("big")
    with pytest.raises(ConfigError):
        ImageOptions((0, 5))
    with pytest.raises(ConfigError):
        ImageOptions(color="sepia")
