"""The data stage's facade: any source (CSV, image folder, built-in) → a prepared data directory."""

from __future__ import annotations

from pathlib import Path

from mobile_ml.contracts import write_document
from mobile_ml.data.images import ImageOptions, load_builtin, load_folder, prepare_images, profile_images
from mobile_ml.data.spec import DataSpec
from mobile_ml.data.split import SplitOptions
from mobile_ml.errors import ConfigError, InputFileError
from mobile_ml.outputs import atomic_dir

BUILTIN_PREFIX = "builtin:"


def source_type(source: str | Path) -> str:
    """``"builtin"``, ``"image_folder"`` or ``"csv"``: how ``source`` will be read."""
    text = str(source)
    if text.startswith(BUILTIN_PREFIX):
        return "builtin"
    path = Path(text)
    if path.is_dir():
        return "image_folder"
    if not path.exists():
        raise InputFileError(
            f"{path} does not exist", hint="check the path (a CSV file, an image folder, or builtin:digits)"
        )
    return "csv"


def load_images(source: str | Path, image: ImageOptions | None = None):
    """``(images, labels, label_names, source_record, value_range)`` for a built-in name or an image folder."""
    if source_type(source) == "builtin":
        return (*load_builtin(str(source)[len(BUILTIN_PREFIX) :]), (0.0, 16.0))
    return (*load_folder(Path(source), image or ImageOptions()), (0.0, 255.0))


def profile(source: str | Path, *, target: str | None = None, image: ImageOptions | None = None, loaded=None) -> dict:
    """The profile report of any source, as a JSON-able dict (schema ``mobile_ml.profile``).

    ``loaded`` is what ``load_images`` returned for this source, so a caller that also prepares it decodes once.
    """
    if source_type(source) == "csv":
        from mobile_ml.data.csv_reader import ReadAhead  # pyarrow only: pyarrow parses while pandas is imported

        ahead = ReadAhead(Path(source), held=True)  # profile_csv keeps the table: see csv_reader._prefer_jemalloc
        from mobile_ml.data.profile import profile_csv

        return profile_csv(Path(source), target, ahead).to_dict()
    x, y, names, src, _ = loaded or load_images(source, image)
    return profile_images(x, y, names, src)


def prepare(
    source: str | Path,
    out: str | Path,
    *,
    target: str | None = None,
    clean=None,
    image: ImageOptions | None = None,
    split: SplitOptions | None = None,
    force: bool = False,
    loaded=None,
) -> DataSpec:
    """Prepare ``source`` into the data directory ``out`` (written atomically) and return its ``DataSpec``.

    ``clean`` is a ``TabularOptions`` for CSV sources; ``image`` an ``ImageOptions`` for image folders; ``loaded``
    as in ``profile``.
    """
    split = split or SplitOptions()
    kind = source_type(source)
    with atomic_dir(out, force=force) as tmp:
        if kind == "csv":
            from mobile_ml.data.tabular import TabularOptions, prepare_tabular

            if not target:
                raise ConfigError("a CSV source needs a target column", hint="pass --target COLUMN")
            spec = prepare_tabular(Path(source), target, clean or TabularOptions(), split, tmp)
        else:
            x, y, names, src, value_range = loaded or load_images(source, image)
            spec = prepare_images(x, y, names, src, value_range, split, tmp)
        write_document(tmp / "data.json", spec)
    return spec
