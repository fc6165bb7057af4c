"""``mobile-ml export`` and ``mobile-ml evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from mobile_ml.cli import console, render


def export(
    rundir: Path = typer.Argument(..., help="A run directory (or a quickstart/pipeline output directory)."),
    variants: str = typer.Option(
        "all", "--variants", "-v", help="Comma-separated: fp32,fp16,dynamic,int8,qat-int8,pruned-int8, or all."
    ),
    max_accuracy_drop: float = typer.Option(
        1.0, "--max-accuracy-drop", metavar="PP", help="Accuracy budget: percentage points below the Keras model."
    ),
    require: str | None = typer.Option(
        None, "--require", metavar="VARIANT", help="Exit 3 unless this variant meets the budget."
    ),
    allow_flex: bool = typer.Option(False, "--allow-flex", help="Allow Select-TF ops (the app then needs Flex)."),
    int8_io: str = typer.Option("int8", "--int8-io", help="Input/output type of integer variants: int8 or float."),
    per_tensor: bool = typer.Option(
        False, "--per-tensor", help="One quantization scale per tensor, not per channel: smaller, coarser."
    ),
    calibration_samples: int = typer.Option(200, help="Train rows used to calibrate integer variants."),
    finetune_epochs: int = typer.Option(3, help="Epochs of QAT / pruning fine-tuning."),
    prune_sparsity: float = typer.Option(0.5, help="Target fraction of zero weights for pruned-int8."),
    data: Path | None = typer.Option(None, "--data", help="Prepared data directory, if not where run.json says."),
    force: bool = typer.Option(
        False, "--force", help="Re-export the --variants named and keep the other variants already in RUNDIR/exports."
    ),
    clean: bool = typer.Option(False, "--clean", help="Replace every variant in RUNDIR/exports."),
    json: bool = typer.Option(False, "--json", help="Print export.json to stdout instead of tables."),
) -> None:
    """Convert the run's model to TFLite variants, check each on the test split with LiteRT, recommend one.

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
    )
    with render.ExportProgress() as progress:
        result = run_export(rundir, options, data_dir=data, force=force, clean=clean, reporter=progress)
    if json:
        typer.echo(dumps(document_dict(result)), nl=False)
    else:
        console.out.print(render.export_table(result))
        console.out.print(render.export_files(result))
    check_gate(result)  # after the evidence is written and shown: exit 3 names the best variant


def evaluate(
    model: Path = typer.Argument(..., help="A .tflite file."),
    run: Path = typer.Option(..., "--run", "-r", help="The run directory whose Keras model and test split to use."),
    data: Path | None = typer.Option(None, "--data", help="Prepared data directory, if not where run.json says."),
    split: str = typer.Option("test", help="Split to evaluate on: train, validation or test."),
    json: bool = typer.Option(False, "--json", help="Print the figures as JSON to stdout."),
) -> None:
    """Check any .tflite file against a run's Keras model with LiteRT (accuracy, agreement, output difference)."""
    from mobile_ml.data.spec import SPLITS
    from mobile_ml.errors import ConfigError
    from mobile_ml.export.exporter import evaluate_file
    from mobile_ml.outputs import dumps

    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'", hint=f"choose one of {', '.join(SPLITS)}")
    result = evaluate_file(model, run, data_dir=data, split=split)
    if json:
        typer.echo(dumps(result), nl=False)
        return
    console.out.print(render.evaluation_table(result))
