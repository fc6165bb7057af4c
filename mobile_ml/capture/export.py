"""``mobile-ml capture export``: stored capture batches → a prepared-data directory with the run's schema.

The directory is what ``mobile-ml data prepare`` writes (``data.json`` + train / validation / test splits: ``.npz``
for images, Parquet for tables), so ``mobile-ml train`` and ``mobile-ml retrain --captured`` read it as they read any
other. The schema is the run's own ``data.json``: the same labels, features (or image shape) and normalization the
model was trained with; only the rows, their counts and the source differ. Only samples the user labelled go into the
splits (a prediction is not a label); samples seen twice (a batch re-sent after a lost reply) count once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from mobile_ml.capture.store import CaptureStore
from mobile_ml.contracts import read_document, write_document
from mobile_ml.contracts.data import DataKind, DataSpec, SplitFormat
from mobile_ml.data.split import SplitOptions
from mobile_ml.errors import DataError, InputFileError
from mobile_ml.outputs import atomic_dir

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class ExportCounts:
    out: str
    batches: int
    samples: int  # distinct samples of the model in the store (since the given day)
    labelled: int  # of them with the user's label: the rows of the splits
    unlabelled: int
    skipped: int  # labelled, but not of this schema (another input size, a label the run does not know)
    splits: dict[str, int]
    class_counts: dict[str, list[int]]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "mobile_ml.capture_export", "schema_version": 1, **self.__dict__}


def export(store: str, *, model: str, run: str | Path, out: str | Path, since: datetime | None = None,
           seed: int = 42, force: bool = False) -> ExportCounts:  # fmt: skip
    import numpy as np

    spec = _run_spec(run)
    width = int(np.prod(spec.input_shape))
    index = {label: i for i, label in enumerate(spec.labels)}
    cs = CaptureStore(store)
    seen: set[str] = set()
    rows: list[tuple[float, ...]] = []
    ys: list[int] = []
    batches = unlabelled = skipped = 0
    for _, batch in cs.batches(model, since):
        batches += 1
        for s in batch.samples:
            if s.sample_id in seen:
                continue
            seen.add(s.sample_id)
            if s.label is None:
                unlabelled += 1
            elif s.label not in index or len(s.input) != width:
                skipped += 1
            else:
                rows.append(s.input)
                ys.append(index[s.label])
    if len(ys) < 3:
        raise DataError(
            f"{len(ys)} labelled samples of {model} in {cs.url}; a train/validation/test split needs at least 3",
            hint="wait for more labelled samples (`device run --label`), or widen --since",
        )
    x, y = np.asarray(rows, dtype=np.float64), np.asarray(ys, dtype=np.int64)
    split = _split_options(spec, seed)
    idx = _split(y, split, spec.labels)
    source = {"type": "capture", "store": cs.url, "model": model, "since": since.isoformat() if since else None,
              "batches": batches, "samples": len(seen)}  # fmt: skip
    with atomic_dir(out, force=force) as tmp:
        files = _write_splits(tmp, spec, x, y, idx)
        n = len(spec.labels)
        new = replace(
            spec,
            source=source,
            counts={k: int(len(v)) for k, v in idx.items()},
            class_counts={k: np.bincount(y[v], minlength=n).tolist() for k, v in idx.items()},
            split=split.to_dict(),
            files=files,
            split_format=SplitFormat.PARQUET if spec.kind == DataKind.TABULAR else spec.split_format,
        )
        write_document(tmp / "data.json", new)
    return ExportCounts(str(out), batches, len(seen), len(ys), unlabelled, skipped, new.counts, new.class_counts)


def _run_spec(run: str | Path) -> DataSpec:
    from mobile_ml.train.rundir import RunLayout

    path = RunLayout.of(run).data_json
    if not path.is_file():
        raise InputFileError(f"{run} has no data.json", hint="pass the run directory the published model came from")
    return read_document(DataSpec, path)


def _split_options(spec: DataSpec, seed: int) -> SplitOptions:
    r = spec.split
    try:
        return SplitOptions(float(r["train"]), float(r["validation"]), float(r["test"]), seed, bool(r["stratified"]))
    except (KeyError, TypeError, ValueError):
        return SplitOptions(seed=seed)


def _split(y: Any, split: SplitOptions, labels: list[str]) -> dict[str, Any]:
    """Stratified like the run's data when every class has enough rows; a plain seeded split otherwise (captured
    labels are few and uneven)."""
    from mobile_ml.data.split import stratified_split

    try:
        parts = stratified_split(y, split, labels)
    except DataError:
        parts = stratified_split(y, replace(split, stratify=False), labels)
    return dict(zip(SPLITS, parts, strict=True))


def _write_splits(tmp: Path, spec: DataSpec, x: Any, y: Any, idx: dict[str, Any]) -> dict[str, str]:
    import numpy as np

    files: dict[str, str] = {}
    for name, rows in idx.items():
        if spec.kind == DataKind.IMAGE:
            files[name] = f"{name}.npz"
            images = x[rows].reshape((len(rows), *spec.input_shape))
            np.savez_compressed(tmp / files[name], x=np.clip(np.rint(images), 0, 255).astype(np.uint8), y=y[rows])
        else:
            from mobile_ml.data.parquet import SplitWriter

            files[name] = f"{name}.parquet"
            writer = SplitWriter(tmp / files[name], list(spec.features))
            try:
                writer.write(x[rows], y[rows])
            finally:
                writer.close()
    return files
