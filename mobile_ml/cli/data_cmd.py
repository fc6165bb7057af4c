"""``mobile-ml data profile`` and ``mobile-ml data prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render

app = typer.Typer(
    help="Profile, clean, encode and split a dataset (CSV, image folder, or builtin:digits).", no_args_is_help=True
)

SOURCE_HELP = "A CSV file, a folder with one sub-folder of PNG/JPEG images per class, or builtin:digits."


@app.command("profile")
def profile(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    target: Annotated[
        str | None, typer.Option("--target", "-t", help="Target column, for the class balance (CSV).")
    ] = None,
    json_path: Annotated[
        str | None,
        typer.Option("--json", metavar="PATH", help="Also write the report as JSON to PATH ('-' for stdout only)."),
    ] = None,
    image_size: Annotated[str, typer.Option(help="Image folders: resize every image to HEIGHTxWIDTH.")] = "32x32",
    color: Annotated[str, typer.Option(help="Image folders: grayscale or rgb.")] = "grayscale",
) -> None:
    """Report rows, types, missing values, outliers, ID-like and free-text columns, and class balance."""
    from mobile_ml.data.images import ImageOptions, parse_size
    from mobile_ml.data.prepare import profile as run_profile
    from mobile_ml.outputs import dumps, write_text

    report = run_profile(source, target=target, image=ImageOptions(parse_size(image_size), color))
    if json_path == "-":
        typer.echo(dumps(report), nl=False)
        return
    if json_path:
        write_text(_writable_file(json_path), dumps(report))
    for t in render.profile_tables(report):
        console.out.print(t)
    for w in report.get("warnings", []):
        console.out.print(f"[yellow]warning:[/] {render.escape(w)}")
    if json_path:
        console.out.print(f"wrote {json_path}")


def _writable_file(path: str) -> Path:
    from mobile_ml.errors import OutputError

    p = Path(path)
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {p}: directory {p.parent} does not exist", hint="create it first")
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is a directory", hint="give a file path, e.g. profile.json")
    return p


@app.command("prepare")
def prepare(
    source: Annotated[str, typer.Argument(help=SOURCE_HELP)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Data directory to create (data.json + splits).")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="Target column (required for CSV).")] = None,
    missing: Annotated[str, typer.Option(help="Missing values: impute, or drop the rows.")] = "impute",
    numeric_impute: Annotated[
        str, typer.Option(help="Numeric imputation: median or mean (train split only).")
    ] = "median",
    categorical_impute: Annotated[
        str, typer.Option(help="Categorical imputation: most_frequent or unknown.")
    ] = "most_frequent",
    dates: Annotated[str, typer.Option(help="Date columns: parse into year/month/day/dayofweek, or drop.")] = "parse",
    outliers: Annotated[str, typer.Option(help="Outliers (IQR rule, train split only): keep or remove.")] = "keep",
    outlier_factor: Annotated[float, typer.Option(help="IQR multiplier for the outlier fences.")] = 1.5,
    drop: Annotated[list[str] | None, typer.Option("--drop", help="Column to drop (repeatable).")] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="Column to keep even if it looks like an ID or constant (repeatable)."),
    ] = None,
    max_categories: Annotated[
        int, typer.Option(help="One-hot at most this many categories per column; the rest → unknown.")
    ] = 20,
    drop_duplicates: Annotated[bool, typer.Option(help="Drop exact duplicate rows before splitting.")] = True,
    split: Annotated[str, typer.Option(help="Train,validation,test ratios.")] = "0.7,0.15,0.15",
    seed: Annotated[int, typer.Option(help="Random seed of the split.")] = 42,
    stratify: Annotated[bool, typer.Option(help="Keep class proportions equal across splits.")] = True,
    image_size: Annotated[str, typer.Option(help="Image folders: resize every image to HEIGHTxWIDTH.")] = "32x32",
    color: Annotated[str, typer.Option(help="Image folders: grayscale or rgb.")] = "grayscale",
    force: Annotated[
        bool, typer.Option("--force", help="Replace OUT if it exists (only once the new one is complete).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print data.json to stdout instead of tables.")] = False,
) -> None:
    """Clean, encode and split a dataset into a data directory for `mobile-ml train`."""
    from mobile_ml.contracts import document_dict
    from mobile_ml.data.images import ImageOptions, parse_size
    from mobile_ml.data.prepare import prepare as run_prepare
    from mobile_ml.data.split import SplitOptions, parse_ratios
    from mobile_ml.data.tabular import TabularOptions
    from mobile_ml.outputs import dumps

    train, val, test = parse_ratios(split)
    spec = run_prepare(
        source,
        out,
        target=target,
        force=force,
        clean=TabularOptions(
            missing=missing,
            numeric_impute=numeric_impute,
            categorical_impute=categorical_impute,
            dates=dates,
            outliers=outliers,
            outlier_factor=outlier_factor,
            drop_columns=tuple(drop or ()),
            keep_columns=tuple(keep or ()),
            max_categories=max_categories,
            drop_duplicates=drop_duplicates,
        ),
        image=ImageOptions(parse_size(image_size), color),
        split=SplitOptions(train, val, test, seed=seed, stratify=stratify),
    )
    if json:
        typer.echo(dumps(document_dict(spec)), nl=False)
        return
    for t in render.data_spec_tables(spec, out):
        console.out.print(t)
    features = f"{len(spec.features)} features" if spec.kind == "tabular" else "×".join(map(str, spec.input_shape))
    console.out.print(f"{len(spec.labels)} classes · input {features} · wrote {out}/data.json")
