"""``mobile-ml evaluate``: a .tflite file in LiteRT, against a run (``--run``) or on labelled data (``--eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mobile_ml.cli import console, render


def evaluate(
    model: Annotated[Path, typer.Argument(help="A .tflite file.")],
    run: Annotated[
        Path | None, typer.Option("--run", "-r", help="The run directory whose Keras model and test split to use.")
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option("--eval", help="Labelled data instead of a run: .npz (x, y), an image folder, or a CSV."),
    ] = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Class names, one per line, in output order (with --eval).")
    ] = None,
    target: Annotated[str | None, typer.Option("--target", help="The label column of a CSV --eval.")] = None,
    input_range: Annotated[
        str | None, typer.Option("--input-range", metavar="A,B", help="Image folders: map pixels 0..255 to A..B.")
    ] = None,
    task: Annotated[str, typer.Option("--task", help="classification, regression or auto (with --eval).")] = "auto",
    keras: Annotated[
        Path | None, typer.Option("--keras", help="A Keras model to measure parity against (with --eval).")
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Prepared data directory, if not where run.json says.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to evaluate on (with --run): train, validation or test.")] = "test",
    json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON to stdout.")] = False,
) -> None:
    """Check a .tflite file with LiteRT: against a run's Keras model (--run), or on labelled data (--eval)."""
    from mobile_ml.errors import ConfigError
    from mobile_ml.outputs import dumps

    if (run is None) == (eval_data is None):
        raise ConfigError(
            "evaluate needs exactly one of --run RUNDIR and --eval FILE",
            hint="--run compares with a run's Keras model; --eval evaluates on a labelled data file",
        )
    if eval_data is None and run is not None:
        result = _with_run(model, run, data, split, (labels, target, input_range, keras, task != "auto"))
    elif eval_data is not None:
        from mobile_ml.export.evaluate import Task, evaluate_tflite, parse_range

        choices = [t.value for t in Task]
        if task not in choices:
            raise ConfigError(f"unknown --task '{task}'", hint=f"choose one of {', '.join(choices)}")
        result = evaluate_tflite(
            model, eval_data, labels_path=labels, target=target, input_range=parse_range(input_range),
            task=Task(task), keras_path=keras,
        )  # fmt: skip
    if json:
        typer.echo(dumps(result), nl=False)
        return
    console.out.print(render.evaluation_table(result) if run is not None else _data_table(result))


def _with_run(model: Path, run: Path, data: Path | None, split: str, eval_only: tuple) -> dict:
    from mobile_ml.data.spec import SPLITS
    from mobile_ml.errors import ConfigError
    from mobile_ml.export.evaluate import evaluate_file

    if any(eval_only):
        raise ConfigError(
            "--labels, --target, --input-range, --keras and --task go with --eval, not --run",
            hint="the run has its own labels and Keras model",
        )
    if split not in SPLITS:
        raise ConfigError(f"unknown split '{split}'", hint=f"choose one of {', '.join(SPLITS)}")
    return evaluate_file(model, run, data_dir=data, split=split)


def _data_table(r: dict) -> render.Fit:
    from rich.table import Table

    t = Table(title=f"{render.escape(r['model'])} on {render.escape(r['eval'])} ({r['examples']} rows)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    rows = [("task", r["task"]), ("size", render.kib(r["bytes"]))]
    figures = ("accuracy", "macro_f1", "keras_accuracy", "accuracy_drop_pp", "agreement", "mae", "rmse",
               "max_abs_error", "keras_mae", "keras_rmse", "max_abs_diff", "mean_abs_diff")  # fmt: skip
    rows += [(k, f"{r[k]:.4g}") for k in figures if k in r]
    rows.append(("input", ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in r["inputs"])))
    for k, v in rows:
        t.add_row(k, render.escape(str(v)))
    return render.Fit(t)
