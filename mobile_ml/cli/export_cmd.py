"""``mobile-ml export`` (``mobile-ml evaluate`` is in ``evaluate_cmd``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render
from mobile_ml.errors import ConfigError


def export(
    model: Annotated[
        Path,
        typer.Argument(
            help="A run directory (or quickstart/pipeline output), or a model file: .keras (Keras 3 or tf_keras), "
            ".h5, or a SavedModel directory.",
        ),
    ],
    variants: Annotated[
        str,
        typer.Option("--variants", "-v", help="Comma-separated: fp32,fp16,dynamic,int8,qat-int8,pruned-int8, or all."),
    ] = "all",
    max_accuracy_drop: Annotated[
        float,
        typer.Option(
            "--max-accuracy-drop", metavar="PP", help="Accuracy budget: percentage points below the Keras model."
        ),
    ] = 1.0,
    require: Annotated[
        str | None, typer.Option("--require", metavar="VARIANT", help="Exit 3 unless this variant meets the budget.")
    ] = None,
    allow_flex: Annotated[
        bool, typer.Option("--allow-flex", help="Allow Select-TF ops (the app then needs Flex).")
    ] = False,
    int8_io: Annotated[
        str, typer.Option("--int8-io", help="Input/output type of integer variants: int8 or float.")
    ] = "int8",
    per_tensor: Annotated[
        bool, typer.Option("--per-tensor", help="One quantization scale per tensor, not per channel: smaller, coarser.")
    ] = False,
    calibration_samples: Annotated[int, typer.Option(help="Train rows used to calibrate integer variants.")] = 200,
    finetune_epochs: Annotated[int, typer.Option(help="Epochs of QAT / pruning fine-tuning.")] = 3,
    prune_sparsity: Annotated[float, typer.Option(help="Target fraction of zero weights for pruned-int8.")] = 0.5,
    data: Annotated[
        Path | None, typer.Option("--data", help="Prepared data directory, if not where run.json says.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Re-export the --variants named and keep the other variants already in RUNDIR/exports."
        ),
    ] = False,
    clean: Annotated[bool, typer.Option("--clean", help="Replace every variant in RUNDIR/exports.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print export.json to stdout instead of tables.")] = False,
    eval: Annotated[
        Path | None,
        typer.Option("--eval", help="Model file: labelled data for parity (.npz with x and y, x_<input> for several)."),
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Model file: rows that calibrate integer variants.")
    ] = None,
    finetune_data: Annotated[
        Path | None, typer.Option("--finetune-data", help="Model file: labelled rows for QAT and pruning.")
    ] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="Model file: class names, one per line.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Model file: the label column of CSV data.")] = None,
    task: Annotated[
        str, typer.Option("--task", help="Model file: classification, regression or auto (from the outputs).")
    ] = "auto",
    max_error: Annotated[
        float | None,
        typer.Option(
            "--max-error",
            metavar="X",
            help="Regression budget: largest mean |Δ| against Keras, in the target's units "
            "(default: 1 % of the targets' standard deviation).",
        ),
    ] = None,
    input_range: Annotated[
        str | None, typer.Option("--input-range", metavar="LOW,HIGH", help="Model file: the values the app feeds.")
    ] = None,
    custom_objects: Annotated[
        Path | None, typer.Option("--custom-objects", help="Model file: a module.py defining its custom layers.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Model file: exports directory (default: <model>_exports/ beside it).")
    ] = None,
) -> None:
    """Convert a model to TFLite variants, check each on evaluation data with LiteRT, recommend one.

    MODEL is a run (its test split evaluates, its train split calibrates) or a model file with --eval data.
    The earlier export stays as it was until the new one is complete, whether it is kept (--force) or not (--clean).
    """
    from mobile_ml.contracts import document_dict
    from mobile_ml.export.exporter import check_gate
    from mobile_ml.export.exporter import export as run_export
    from mobile_ml.export.options import ExportOptions, check_variant, parse_variants
    from mobile_ml.outputs import dumps

    options = ExportOptions(
        variants=parse_variants(variants),
        max_accuracy_drop=max_accuracy_drop,
        require=check_variant(require) if require else None,
        allow_flex=allow_flex,
        int8_io=int8_io,
        per_channel=not per_tensor,
        calibration_samples=calibration_samples,
        finetune_epochs=finetune_epochs,
        prune_sparsity=prune_sparsity,
        max_error=max_error,
    )
    files = {
        "--eval": eval,
        "--calibration": calibration,
        "--finetune-data": finetune_data,
        "--labels": labels,
        "--target": target,
        "--input-range": input_range,
        "--custom-objects": custom_objects,
        "--out": out,
    }
    if _is_run(model):
        given = [k for k, v in files.items() if v is not None] + (["--task"] if task != "auto" else [])
        if given:
            raise ConfigError(
                f"{given[0]} applies to a model file; {model} is a run, evaluated on its own test split",
                hint="drop the option, or pass the model file itself (e.g. RUNDIR/model.keras with --eval FILE)",
            )
        with render.ExportProgress() as progress:
            result = run_export(model, options, data_dir=data, force=force, clean=clean, reporter=progress)
    else:
        from mobile_ml.export.exporter import export_model
        from mobile_ml.export.sources import parse_range

        with render.ExportProgress() as progress:
            result = export_model(
                model,
                options,
                force=force,
                clean=clean,
                reporter=progress,
                eval=eval,
                calibration=calibration,
                labels=labels,
                task=task,
                input_range=parse_range(input_range) if input_range is not None else None,
                finetune_data=finetune_data,
                target=target,
                custom_objects=custom_objects,
                data_dir=data,
                out=out,
            )
    if json:
        typer.echo(dumps(document_dict(result)), nl=False)
    else:
        console.out.print(render.export_table(result))
        console.out.print(render.export_files(result))
    check_gate(result)  # after the evidence is written and shown: exit 3 names the best variant


def _is_run(path: Path) -> bool:
    """A run directory (or pipeline output), or a path that names no model file: the run route and its messages."""
    from mobile_ml.train.rundir import RunLayout

    if path.is_dir():
        return RunLayout.of(path).run_json.is_file() or not (path / "saved_model.pb").is_file()
    return not path.exists() and path.suffix not in (".keras", ".h5")
