"""Data files for a model that came without a run: evaluation, calibration and fine-tuning rows, and class names.

Three forms, each checked against the model's inputs before anything runs (a wrong file should fail in a line, not
as a LiteRT shape error deep in an export):
    DATA.npz        arrays ``x`` and ``y``; a model with several inputs takes ``x_<input name>`` for each
    DATA/           one sub-folder per class of .png/.jpg images, resized to the input's height × width
    DATA.csv        a header row; ``--target COL`` is the label, the other columns (in order) the features of a
                    single 1-D input
Every error names the option the path came from (``--eval``, ``--calibration``, ``--finetune-data``).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_ml.errors import DataError, InputFileError
from mobile_ml.export.model_file import IOSpec

MAX_ROWS = 5_000_000  # rows of one data file: more is not evaluation data for a phone model
MAX_BYTES = 4 << 30  # 4 GiB of arrays in one .npz, checked from the headers before anything is read
MAX_LABELS = 100_000
FORMS = ".npz with arrays x and y, a folder of class sub-folders of images, or a .csv with --target COL"


@dataclass(frozen=True)
class Examples:
    x: dict[str, np.ndarray]  # input name → rows, already in the model input's dtype and shape
    y: np.ndarray | None  # class indices (int64) for classification, float targets for regression; None: unlabelled
    source: str  # what the user passed (for messages)

    def __len__(self) -> int:
        return len(next(iter(self.x.values()))) if self.x else 0

    def take(self, n: int, seed: int) -> Examples:
        """Up to ``n`` rows without replacement, in an order fixed by ``seed``."""
        idx = np.random.default_rng(seed).permutation(len(self))[: max(0, n)]
        return Examples({k: v[idx] for k, v in self.x.items()}, None if self.y is None else self.y[idx], self.source)


def load_examples(
    path: str | Path,
    inputs: Sequence[IOSpec],
    *,
    option: str,
    labelled: bool,
    target: str | None = None,
    labels: Sequence[str] | None = None,
    input_range: tuple[float, float] | None = None,
) -> Examples:
    """Rows for ``inputs`` from ``path`` (see the module docstring), checked and cast to each input's dtype."""
    path = Path(path)
    if not inputs:
        raise DataError(f"{option}: the model has no inputs", hint="check the model file")
    if not path.exists():
        raise InputFileError(f"{option} {path} does not exist", hint=f"pass {FORMS}")
    y: np.ndarray | None
    if path.is_dir():
        x, y = _from_images(path, inputs, option, labels, input_range)
    elif path.suffix.lower() == ".npz":
        x, y = _from_npz(path, inputs, option, labelled)
    elif path.suffix.lower() == ".csv":
        x, y = _from_csv(path, inputs, option, labelled, target)
    else:
        raise DataError(f"{option} {path} is none of the accepted forms", hint=f"pass {FORMS}")
    rows = {len(v) for v in x.values()}
    if len(rows) != 1:
        raise DataError(f"{option} {path}: the inputs have different numbers of rows", hint="give each input one row")
    n = rows.pop()
    if n == 0:
        raise DataError(f"{option} {path} has no rows", hint="pass a file with at least one example")
    if n > MAX_ROWS:
        raise DataError(f"{option} {path} has {n} rows (more than {MAX_ROWS})", hint="pass a sample of the data")
    checked = {spec.name: _cast(x[spec.name], spec, option) for spec in inputs}
    if not labelled:
        return Examples(checked, None, str(path))
    if y is None:
        raise DataError(
            f"{option} {path} has no labels",
            hint="an .npz needs an array y, a .csv --target COL, an image folder one sub-folder per class",
        )
    return Examples(checked, _labels_of(y, n, option, labels), str(path))


def load_labels(path: str | Path) -> tuple[str, ...]:
    """Class names, one per line, in output order: blank lines and duplicates are refused."""
    path = Path(path)
    try:
        if path.stat().st_size > 16 << 20:
            raise InputFileError(f"--labels {path} is larger than 16 MiB", hint="pass one class name per line")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(
            f"--labels {path} does not exist", hint="pass a text file, one class name per line"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read --labels {path}: {e}", hint="pass a UTF-8 text file") from e
    names = [line.strip() for line in text.splitlines()]
    if not names:
        raise DataError(f"--labels {path} is empty", hint="write one class name per line, in output order")
    if len(names) > MAX_LABELS:
        raise DataError(f"--labels {path} has {len(names)} lines (more than {MAX_LABELS})", hint="one name a line")
    for i, name in enumerate(names, 1):
        if not name:
            raise DataError(f"--labels {path}: line {i} is blank", hint="remove blank lines; one class name per line")
    seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        if name in seen:
            raise DataError(f"--labels {path}: {name!r} is on lines {seen[name]} and {i}", hint="class names differ")
        seen[name] = i
    return tuple(names)


def _shape(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _cast(rows: np.ndarray, spec: IOSpec, option: str) -> np.ndarray:
    """``rows`` in ``spec``'s dtype, refusing what a cast would change: other shapes, NaN, fractions, overflow."""
    got, want = tuple(rows.shape[1:]), tuple(spec.shape)
    if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want, strict=False)):
        raise DataError(
            f"{option} x has rows of shape {_shape(got)} but the model's input '{spec.name}' is {_shape(want)}",
            hint="pass data shaped as the model takes it (one row per example, without the batch dimension)",
        )
    dtype = np.dtype(spec.dtype)
    src = rows.dtype
    mismatch = DataError(
        f"{option} x is {src} but the model's input '{spec.name}' is {dtype}",
        hint=f"save the data as {dtype}" if src.kind not in "iuf" else "save numbers the input's dtype can hold",
    )
    if src.kind not in "iuf" or dtype.kind not in "iuf":
        raise mismatch
    if src.kind == "f" and not np.isfinite(rows).all():
        bad = int(np.argwhere(~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1))[0][0])
        raise DataError(f"{option} x has NaN or infinite values (row {bad})", hint="drop or impute those rows")
    if dtype.kind in "iu":
        if src.kind == "f" and not np.array_equal(rows, np.round(rows)):
            raise mismatch
        info = np.iinfo(dtype)
        if rows.size and (rows.min() < info.min or rows.max() > info.max):
            raise mismatch
    return np.ascontiguousarray(rows, dtype=dtype)


def _labels_of(y: np.ndarray, n: int, option: str, labels: Sequence[str] | None) -> np.ndarray:
    if len(y) != n:
        raise DataError(f"{option} has {n} rows of x but {len(y)} labels", hint="give every row one label")
    if y.dtype.kind in "US":
        if labels is None:
            raise DataError(f"{option} has class names as labels but no class list", hint="pass --labels FILE")
        index = {name: i for i, name in enumerate(labels)}
        unknown = sorted({str(v) for v in y.astype(str)} - index.keys())
        if unknown:
            raise DataError(
                f"{option} has labels that are not classes of the model: {', '.join(unknown[:5])}",
                hint=f"the classes are {', '.join(labels[:10])}{' …' if len(labels) > 10 else ''}",
            )
        return np.asarray([index[str(v)] for v in y.astype(str)], dtype=np.int64)
    if y.dtype.kind not in "iuf":
        raise DataError(f"{option} labels are {y.dtype}, not numbers or class names", hint="save y as integers")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DataError(f"{option} labels have NaN or infinite values", hint="drop or fix those rows")
        if labels is None:
            return y.astype(np.float64)  # regression targets
        if not np.array_equal(y, np.round(y)):
            raise DataError(f"{option} labels are fractions, not class indices", hint="save y as class indices")
    if y.ndim != 1:
        raise DataError(f"{option} class labels have shape {list(y.shape)}", hint="one class index per row")
    y = y.astype(np.int64)
    if labels is not None and len(y) and (y.min() < 0 or y.max() >= len(labels)):
        raise DataError(
            f"{option} has class index {int(y.min() if y.min() < 0 else y.max())}, outside 0..{len(labels) - 1}"
            f" ({len(labels)} classes)",
            hint="labels are indices into the class list, in output order",
        )
    return y


def _npz_headers(path: Path, option: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each array's shape and dtype from its .npy header, so a huge or pickled array is refused unread."""
    import numpy.lib.format as fmt

    out = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                with z.open(info) as f:
                    version = fmt.read_magic(f)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(f)
                out[info.filename.removesuffix(".npy")] = (tuple(shape), np.dtype(dtype))
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise InputFileError(f"{option} {path} is not a readable .npz: {e}", hint="save it with numpy.savez") from e
    if sum(int(np.prod(s)) * d.itemsize for s, d in out.values()) > MAX_BYTES:
        raise DataError(f"{option} {path} holds more than {MAX_BYTES >> 30} GiB", hint="pass a sample of the data")
    return out


def _from_npz(
    path: Path, inputs: Sequence[IOSpec], option: str, labelled: bool
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    headers = _npz_headers(path, option)
    if len(inputs) == 1 and "x" in headers:
        names = {"x": inputs[0].name}
    else:
        names = {f"x_{spec.name}": spec.name for spec in inputs}
    missing = [k for k in names if k not in headers]
    if missing:
        hint = "name the arrays x and y" if len(inputs) == 1 else "name them " + ", ".join([*names, "y"])
        raise DataError(f"{option} {path} has no array {', '.join(missing)}", hint=hint)
    unknown = sorted(set(headers) - set(names) - {"y"})
    if unknown:
        raise DataError(
            f"{option} {path} has arrays the model does not take: {', '.join(unknown)}",
            hint=f"keep only {', '.join([*names, 'y'])}",
        )
    if any(d.hasobject for d in (headers[k][1] for k in headers)):
        raise DataError(f"{option} {path} holds Python objects", hint="save plain numeric arrays (no pickles)")
    with np.load(path, allow_pickle=False) as z:
        x = {names[k]: z[k] for k in names}
        y = z["y"] if "y" in headers else None
    for k, rows in x.items():
        if rows.ndim == 0:
            raise DataError(f"{option} {path}: x for '{k}' is a single value", hint="one row per example")
    return x, y


def _from_images(
    root: Path,
    inputs: Sequence[IOSpec],
    option: str,
    labels: Sequence[str] | None,
    input_range: tuple[float, float] | None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from mobile_ml.data.images import ImageOptions, load_folder

    spec = inputs[0]
    if len(inputs) != 1 or len(spec.shape) != 3 or spec.shape[2] not in (1, 3) or None in spec.shape[:2]:
        what = f"'{spec.name}' is {_shape(spec.shape)}" if len(inputs) == 1 else f"has {len(inputs)} inputs"
        raise DataError(
            f"{option} {root} is a folder of images but the model's input {what}",
            hint="images need one input of shape [height, width, 1 or 3]; pass an .npz instead",
        )
    height, width, channels = (int(d or 0) for d in spec.shape)
    color = "grayscale" if channels == 1 else "rgb"
    pixels, y, classes, _ = load_folder(root, ImageOptions(size=(height, width), color=color))
    if labels is not None:
        index = {name: i for i, name in enumerate(labels)}
        unknown = [c for c in classes if c not in index]
        if unknown:
            raise DataError(
                f"{option} {root} has class folders that are not classes of the model: {', '.join(unknown[:5])}",
                hint="name each sub-folder after a line of --labels",
            )
        y = np.asarray([index[classes[i]] for i in y], dtype=np.int64)
    x = pixels.astype(np.float32)
    if input_range is not None:
        lo, hi = input_range
        x = (lo + (hi - lo) * (x / 255.0)).astype(np.float32)
    return {spec.name: x}, y


def _from_csv(
    path: Path, inputs: Sequence[IOSpec], option: str, labelled: bool, target: str | None
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    import pandas as pd

    if len(inputs) != 1:
        raise DataError(
            f"{option} {path} is a CSV, but the model has {len(inputs)} inputs",
            hint="a CSV feeds one 1-D input; save one array per input in an .npz (x_<input name>, y)",
        )
    if labelled and target is None:
        raise DataError(f"{option} {path} is a CSV and no label column was named", hint="pass --target COL")
    try:
        frame = pd.read_csv(path, nrows=MAX_ROWS + 1)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise InputFileError(f"cannot read {option} {path}: {str(e).splitlines()[0]}", hint="pass a CSV file") from e
    if target is not None and target not in frame.columns:
        raise DataError(
            f"{option} {path} has no column {target!r}",
            hint=f"columns: {', '.join(map(str, frame.columns[:20]))}",
        )
    features = [c for c in frame.columns if c != target]
    text = [str(c) for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise DataError(
            f"{option} {path}: column {text[0]!r} is not numeric",
            hint="the model takes numbers: encode the column as the model's training did",
        )
    x = frame[features].to_numpy()
    y = None
    if target is not None:
        col = frame[target]
        if col.isna().any():
            raise DataError(f"{option} {path}: column {target!r} has empty labels", hint="drop those rows")
        y = col.to_numpy().astype(str) if not pd.api.types.is_numeric_dtype(col) else col.to_numpy()
    return {inputs[0].name: x}, y
