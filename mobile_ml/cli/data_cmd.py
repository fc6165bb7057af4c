"""``mobile-ml data profile`` and ``mobile-ml data prepare``."""

from __future__ import annotations

from pathlib import Path

import typer

from mobile_ml.cli import console, render

app = typer.Typer(
    help="Profile, clean, encode and split a dataset (CSV, image folder, or builtin:digits).", no_args_is_help=True
)

SOURCE_HELP = "A CSV file, a folder with one sub-folder of PNG/JPEG images per class, or builtin:digits."


@app.command("profile")
def profile(
    source: str = typer.Argument(..., help=SOURCE_HELP),
    target: str | None = typer.Option(None, "--target", "-t", help="Target column, for the class balance (CSV)."),
    json_path: str | None = typer.Option(
        None, "--json", metavar="PATH", help="Also write the report as JSON to PATH ('-' for stdout only)."
    ),
    image_size: str = typer.Option("32x32", help="Image folders: resize every image to HEIGHTxWIDTH."),
    color: str = typer.Option("grayscale", help="Image folders: grayscale or rgb."),
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
    source: str = typer.Argument(..., help=SOURCE_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Data directory to create (data.json + splits)."),
    target: str | None = typer.Option(None, "--target", "-t", help="Target column (required for CSV)."),
    missing: str = typer.Option("impute", help="Missing values: impute, or drop the rows."),
    numeric_impute: str = typer.Option("median", help="Numeric imputation: median or mean (train split only)."),
    categorical_impute: str = typer.Option("most_frequent", help="Categorical imputation: most_frequent or unknown."),
    dates: str = typer.Option("parse", help="Date columns: parse into year/month/day/dayofweek, or drop."),
    outliers: str = typer.Option("keep", help="Outliers (IQR rule, train split only): keep or remove."),
    outlier_factor: float = typer.Option(1.5, help="IQR multiplier for the outlier fences."),
    drop: list[str] = typer.Option([], "--drop", help="Column to drop (repeatable)."),
    keep: list[str] = typer.Option(
        [], "--keep", help="Column to keep even if it looks like an ID or constant (repeatable)."
    ),
    max_categories: int = typer.Option(20, help="One-hot at most this many categories per column; the rest → unknown."),
    drop_duplicates: bool = typer.Option(True, help="Drop exact duplicate rows before splitting."),
    split: str = typer.Option("0.7,0.15,0.15", help="Train,validation,test ratios."),
    seed: int = typer.Option(42, help="Random seed of the split."),
    stratify: bool = typer.Option(True, help="Keep class proportions equal across splits."),
    image_size: str = typer.Option("32x32", help="Image folders: resize every image to HEIGHTxWIDTH."),
    color: str = typer.Option("grayscale", help="Image folders: grayscale or rgb."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists (only once the new one is complete)."),
    json: bool = typer.Option(False, "--json", help="Print data.json to stdout instead of tables."),
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
            drop_columns=tuple(drop),
            keep_columns=tuple(keep),
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
