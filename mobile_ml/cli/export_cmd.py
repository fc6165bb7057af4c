"""``mobile-ml export`` (``mobile-ml evaluate`` is in ``evaluate_cmd``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def export(
    rundir: Annotated[Path, typer.Argument(help="A run directory (or a quickstart/pipeline output directory).")],
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
