"""The inputs ``mobile-ml device run --input FILE`` reads, as rows of the model input in raw units (what the app has
before the numeric preprocessing metadata.json asks for, and what the monitoring baseline was fitted on).

- ``.json``: nested lists of numbers: one input shaped like the model input, or a list of them;
- ``.npz``: an array ``x``, one row per input;
- ``.csv``: raw table rows with a header, for tabular models: each column encoded as the installed metadata.json's
  ``input.columns`` say (the fitted vocabulary, imputation values and date parts ``mobile-ml data prepare`` wrote),
  by the same code that encoded the training data (``mobile_ml.data.encoding``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mobile_ml.contracts import ContractError, StrictJSONError, loads
from mobile_ml.contracts._fields import Fields
from mobile_ml.contracts.model_metadata import InputKind, ModelMetadata
from mobile_ml.errors import InputFileError

if TYPE_CHECKING:
    import numpy as np

FORMS = ".json (one input or a list), .npz (array x, one row per input) or .csv (raw table rows)"
MAX_INPUT_BYTES = 256 << 20  # a file of inputs for a phone model; larger is a mistake, not a batch


def read_inputs(path: Path | None, meta: ModelMetadata) -> np.ndarray:
    """Rows × (values of one input), float32; ``path`` None: the model's own health-check input."""
    import numpy as np

    shape = [int(d) for d in meta.input.tensor.shape[1:]]
    per = int(np.prod(shape))
    if path is None:
        return _rows(meta.health_check.input, per, shape, meta, "the health-check input")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _rows(_json(path), per, shape, meta, str(path))
    if suffix == ".npz":
        return _rows(_npz(path), per, shape, meta, str(path), batched=True)
    if suffix == ".csv":
        return _csv(path, meta)
    raise InputFileError(f"input {path}: unknown file type {path.suffix or '(none)'}", hint=f"pass {FORMS}")


def _rows(value: Any, per: int, shape: list[int], meta: ModelMetadata, where: str, batched: bool = False):
    import numpy as np

    try:
        x = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as e:  # ragged lists, strings
        raise InputFileError(f"input {where} is not an array of numbers: {e}", hint=_HINT) from e
    unit = "features" if meta.input.kind is InputKind.TABULAR else "values"
    whole = x.size == per or (x.ndim > 0 and x.shape[0] > 0 and x.size == x.shape[0] * per)
    if batched:
        whole = x.ndim > 0 and x.shape[0] > 0 and x.size == x.shape[0] * per
    if not whole or x.size == 0:
        raise InputFileError(
            f"input {where} has {x.size} values ({list(x.shape)}), not a whole number of inputs: the model takes "
            f"{per} {unit} per input ({shape})",
            hint="see input in the model's metadata.json",
        )
    rows = x.reshape(-1, per)
    if not np.isfinite(rows).all():
        raise InputFileError(f"input {where} holds NaN or infinite values", hint="feed finite numbers")
    return rows


_HINT = "a JSON array shaped like the model input, or a list of them"


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InputFileError(f"input {path} is larger than {MAX_INPUT_BYTES >> 20} MiB", hint="split it")
        return path.read_bytes()
    except OSError as e:
        raise InputFileError(f"cannot read input {path}: {e.strerror}", hint=f"pass {FORMS}") from e


def _json(path: Path) -> Any:
    try:
        return loads(_read(path))
    except StrictJSONError as e:
        raise InputFileError(f"input {path} is not valid JSON: {e}", hint=_HINT) from e


def _npz(path: Path) -> Any:
    import io
    import zipfile

    import numpy as np

    try:
        with np.load(io.BytesIO(_read(path)), allow_pickle=False) as npz:
            if "x" not in npz.files:
                raise InputFileError(f"input {path} has no array x", hint="save the inputs as x, one row per input")
            return npz["x"]
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise InputFileError(f"input {path} is not a readable .npz: {e}", hint="np.savez(path, x=rows)") from e


def _csv(path: Path, meta: ModelMetadata):
    """Raw table rows → encoded feature rows, column by column as data.json (copied into metadata.json) says."""
    import io

    import numpy as np
    import pandas as pd

    from mobile_ml.data.encoding import convert, transform
    from mobile_ml.data.spec import ColumnSpec

    spec = meta.input
    if spec.kind is not InputKind.TABULAR or not spec.columns:
        raise InputFileError(
            f"input {path} is a table, but the model's metadata.json describes no table columns",
            hint="a .csv input is for tabular models from `mobile-ml data prepare`; pass .json or .npz",
        )
    try:
        columns = [
            ColumnSpec.from_dict(Fields(c, f"metadata.json input.columns[{i}]")) for i, c in enumerate(spec.columns)
        ]
    except ContractError as e:
        raise InputFileError(f"the model's metadata.json: {e.message}", hint="export the model again") from e
    try:  # every cell as text, as `data prepare` read the original file; convert() parses numbers and dates
        df = pd.read_csv(io.BytesIO(_read(path)), dtype=str, keep_default_na=True)
    except (ValueError, pd.errors.ParserError) as e:
        raise InputFileError(
            f"input {path} is not a readable CSV: {e}", hint="a header row, then one row per input"
        ) from e
    missing = [c.name for c in columns if c.name not in df.columns]
    if missing:
        raise InputFileError(
            f"input {path} has no column {', '.join(repr(m) for m in missing[:5])}",
            hint=f"the model reads the columns {', '.join(c.name for c in columns)}",
        )
    if len(df) == 0:
        raise InputFileError(f"input {path} has a header but no rows", hint="one row per input")
    encoded = {}
    for c in columns:
        block, _ = transform(c, convert(df[c.name], c.kind.value))
        for name, values in zip(c.features, block.T, strict=True):
            encoded[name] = values
    rows = np.stack([encoded[name] for name in spec.features], axis=1).astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        raise InputFileError(
            f"input {path}: row {int(bad[0]) + 1} has a missing or unreadable value, and the model was trained "
            "without imputing",
            hint="fill it in (the training data dropped such rows)",
        )
    return rows
