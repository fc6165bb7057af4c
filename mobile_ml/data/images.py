"""Image datasets: a folder with one sub-folder per class, and the built-in digits.

Images are stored as uint8 in ``train.npz`` / ``validation.npz`` / ``test.npz`` (keys ``x`` and ``y``), in the raw
pixel units the phone will feed; normalization lives inside the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobile_ml.data.spec import SPLITS, DataKind, DataSpec, ImageSpec, Normalization, NormalizationAxis
from mobile_ml.data.split import SplitOptions, stratified_split
from mobile_ml.errors import ConfigError, DataError, InputFileError
from mobile_ml.outputs import sha256_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
BUILTIN = {"digits": "8×8 handwritten digits (1,797 images, 10 classes), shipped inside the package"}
_DIGITS_SHA256 = "b2dab7b501728c22e9119ad76740b2e17c77a231e42d1e592380d90886f1a05e"


@dataclass(frozen=True)
class ImageOptions:
    size: tuple[int, int] = (32, 32)  # (height, width) every image is resized to; ignored for built-in datasets
    color: str = "grayscale"  # "grayscale" (1 channel) | "rgb" (3 channels)

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(s, int) and 1 <= s <= 4096 for s in size):
            raise ConfigError(
                f"image size {self.size!r} must be two whole numbers between 1 and 4096", hint="e.g. --image-size 32x32"
            )
        object.__setattr__(self, "size", size)
        if self.color not in ("grayscale", "rgb"):
            raise ConfigError(f"image color {self.color!r} must be 'grayscale' or 'rgb'", hint="e.g. --color rgb")

    @property
    def channels(self) -> int:
        return 1 if self.color == "grayscale" else 3


def parse_size(text: str) -> tuple[int, int]:
    """``"32x32"`` or ``"32"`` → (32, 32)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2:
        raise ConfigError(f"image size {text!r} is not HEIGHTxWIDTH", hint="e.g. --image-size 32x32")
    return nums[0], nums[1]


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """The built-in dataset ``name``: images (N, H, W, 1) uint8, labels, label names, source record."""
    if name not in BUILTIN:
        raise InputFileError(f"unknown built-in dataset {name!r}", hint=f"available: {', '.join(sorted(BUILTIN))}")
    path = Path(__file__).resolve().parent.parent / "datasets" / f"{name}.npz"
    digest = sha256_file(path)
    if digest != _DIGITS_SHA256:
        raise InputFileError(f"built-in dataset file {path} is damaged (sha256 mismatch)", hint="reinstall mobile-ml")
    with np.load(path) as z:
        images, labels = z["images"], z["labels"].astype(np.int64)
    source = {"type": "builtin", "name": name, "path": f"builtin:{name}", "sha256": digest}
    return images[..., None], labels, [str(i) for i in range(10)], source


def load_folder(root: Path, options: ImageOptions) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """Every image under ``root/<class>/``, resized; raises on the first file that cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise InputFileError(f"image folder {root} does not exist", hint="give a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c: sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) for c in classes}
    classes = [c for c in classes if files[c]]
    if len(classes) < 2:
        raise DataError(
            f"{root} has {len(classes)} class folder(s) with images; classification needs at least 2",
            hint="lay the data out as ROOT/<class name>/<image>.png, one folder per class",
        )
    mode = "L" if options.color == "grayscale" else "RGB"
    height, width = options.size
    xs, ys = [], []
    for label, c in enumerate(classes):
        for p in files[c]:
            try:
                with Image.open(p) as im:
                    im = im.convert(mode).resize((width, height), Image.Resampling.BILINEAR)
                    xs.append(np.asarray(im, dtype=np.uint8).reshape(height, width, options.channels))
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise InputFileError(
                    f"cannot read image {p}: {e}", hint="remove or replace the file, then run again"
                ) from e
            ys.append(label)
    source = {
        "type": "image_folder",
        "path": str(root.resolve()),
        "images": len(xs),
        "sha256": _tree_digest(files, root),
    }
    return np.stack(xs), np.asarray(ys, dtype=np.int64), classes, source


def _tree_digest(files: dict[str, list[Path]], root: Path) -> str:
    """One sha256 over every image's relative path and content digest, so lineage covers the whole folder."""
    import hashlib

    h = hashlib.sha256()
    for c in sorted(files):
        for p in files[c]:
            h.update(f"{p.relative_to(root).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def prepare_images(
    images: np.ndarray,
    labels: np.ndarray,
    label_names: list[str],
    source: dict,
    value_range: tuple[float, float],
    split: SplitOptions,
    out: Path,
) -> DataSpec:
    """Split, compute per-channel normalization on train, write the ``.npz`` splits into ``out``."""
    idx = dict(zip(SPLITS, stratified_split(labels, split, label_names), strict=True))
    train = images[idx["train"]].astype(np.float64)
    axes = tuple(range(train.ndim - 1))
    mean = train.mean(axis=axes)
    std = train.std(axis=axes)
    std[std == 0] = 1.0
    files = {}
    for name, rows in idx.items():
        files[name] = f"{name}.npz"
        np.savez_compressed(out / files[name], x=images[rows], y=labels[rows])
    n_classes = len(label_names)
    return DataSpec(
        kind=DataKind.IMAGE,
        source=source,
        target="label",
        labels=label_names,
        normalization=Normalization(mean=mean.tolist(), std=std.tolist(), axis=NormalizationAxis.CHANNEL),
        counts={k: int(len(v)) for k, v in idx.items()},
        class_counts={k: np.bincount(labels[v], minlength=n_classes).tolist() for k, v in idx.items()},
        split=split.to_dict(),
        image=ImageSpec(
            height=images.shape[1], width=images.shape[2], channels=images.shape[3], value_range=value_range
        ),
        files=files,
    )


def profile_images(images: np.ndarray, labels: np.ndarray, label_names: list[str], source: dict) -> dict:
    """What ``data profile`` reports for image data: shape, pixel range, class balance, exact duplicates."""
    counts = np.bincount(labels, minlength=len(label_names))
    flat = images.reshape(len(images), -1)
    duplicates = len(flat) - len(np.unique(flat, axis=0))
    warnings = []
    ratio = float(counts.min() / counts.max()) if counts.max() else 0.0
    if ratio < 0.2:
        warnings.append(f"classes are imbalanced: the smallest has {ratio:.0%} of the largest's images")
    if duplicates:
        warnings.append(f"{duplicates} image(s) are exact duplicates of another")
    return {
        "schema": "mobile_ml.profile",
        "schema_version": 1,
        "kind": "image",
        "source": source,
        "images": int(len(images)),
        "shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "pixels": {
            "min": float(images.min()),
            "max": float(images.max()),
            "mean": float(images.mean()),
            "std": float(images.std()),
        },
        "duplicate_images": int(duplicates),
        "target": {
            "classes": {name: int(c) for name, c in zip(label_names, counts, strict=True)},
            "num_classes": len(label_names),
            "minority_majority_ratio": ratio,
        },
        "warnings": warnings,
    }
