import os

import pytest

from mobile_ml.errors import OutputError
from mobile_ml.outputs import atomic_dir, dumps, write_json
from tests.conftest import leftovers


def test_atomic_dir_appears_only_on_success(tmp_path):
    dest = tmp_path / "out"
    with atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not dest.exists()
    assert (dest / "a.txt").read_text() == "a"
    assert leftovers(tmp_path) == []


def test_failure_leaves_nothing_and_keeps_old_result(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "good.txt").write_text("earlier good result")
    with pytest.raises(RuntimeError), atomic_dir(dest, force=True) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(os.listdir(dest)) == ["good.txt"]
    assert leftovers(tmp_path) == []


def test_keyboard_interrupt_cleans_up(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_dir(tmp_path / "out"):
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_existing_nonempty_needs_force(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "x").write_text("keep me")
    with pytest.raises(OutputError, match="already exists"), atomic_dir(dest):
        pass
    assert (dest / "x").read_text() == "keep me"
    with atomic_dir(dest, force=True) as tmp:
        (tmp / "y").write_text("new")
    assert sorted(os.listdir(dest)) == ["y"]
    assert leftovers(tmp_path) == []


def test_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file"), atomic_dir(tmp_path / "file" / "sub"):
        pass


def test_output_permissions_follow_umask(tmp_path):
    with atomic_dir(tmp_path / "out") as tmp:
        write_json(tmp / "r.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~mask
    assert (tmp_path / "out" / "r.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_dumps_handles_numpy_and_nan():
    import numpy as np

    text = dumps({"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")})
    assert '"a": 0.5' in text and '"c": null' in text and "NaN" not in text
