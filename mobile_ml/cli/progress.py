"""Progress bars on stderr for the library's reporter events (train, export, benchmark, the whole pipeline)."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from mobile_ml.cli import console


def kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


class _LiveProgress:
    """Bars on stderr, redrawn only when an event arrives (never by rich's refresh thread).

    rich's default 10 Hz refresh thread competes with Keras's Python training loop for the GIL and cost up to a
    third of training throughput on 2 cores (benchmarks/train_throughput.py).
    """

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console.err(),
            transient=True,
            auto_refresh=False,
        )

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def stage(self, name: str) -> None:
        self.progress.console.print(f"[bold]▸ {name}[/]")

    def _task(self, task: TaskID | None, description: str, total: int) -> TaskID:
        return self.progress.add_task(description, total=total, status="") if task is None else task


class TrainProgress(_LiveProgress):
    """A bar for the candidate grid and one for the current candidate's epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.grid: TaskID | None = None
        self.epochs: TaskID | None = None

    def candidate_started(self, candidate, total, max_epochs) -> None:
        self.grid = self._task(self.grid, "candidates", total)
        if self.epochs is not None:
            self.progress.remove_task(self.epochs)
        self.epochs = self.progress.add_task(f"  {candidate.name}", total=max_epochs, status="")
        self.progress.refresh()

    def epoch_finished(self, candidate, epoch, logs) -> None:
        status = (
            f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  val_loss {logs.get('val_loss', float('nan')):.4f}"
        )
        if self.epochs is not None:
            self.progress.update(self.epochs, completed=epoch, status=status, refresh=True)

    def candidate_finished(self, result) -> None:
        if self.grid is not None:
            self.progress.update(self.grid, advance=1, refresh=True)
        self.progress.console.print(
            f"  trained {escape(result.candidate.name)}: val_accuracy {result.val_accuracy:.4f}, "
            f"val_loss {result.val_loss:.4f}, best epoch {result.best_epoch}/{result.epochs_run}, "
            f"{result.seconds:.1f} s",
            soft_wrap=True,
        )


class _ExportEvents(_LiveProgress):
    """Export progress: one bar over the variants, fine-tuning in the status."""

    export_task: TaskID | None = None

    def variant_started(self, variant, index, total) -> None:
        self.export_task = self._task(self.export_task, "variants", total)
        self.progress.update(self.export_task, completed=index, status=f"building {variant}", refresh=True)

    def variant_note(self, note: str) -> None:
        """A requested variant that cannot be built here (no calibration rows, no tf_keras equivalent, ...)."""
        self.progress.console.print(f"  {note}", soft_wrap=True)

    def finetune_epoch(self, variant, epoch, epochs, logs) -> None:
        if self.export_task is not None:
            self.progress.update(
                self.export_task,
                status=f"{variant}: fine-tuning epoch {epoch}/{epochs}, "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}",
                refresh=True,
            )

    def variant_finished(self, result) -> None:
        if self.export_task is not None:
            self.progress.update(self.export_task, advance=1, status="", refresh=True)
        p, r = result.parity, result.regression
        figures = (
            f"accuracy {p.metrics.accuracy:.4f} (drop {p.accuracy_drop_pp:.2f} pt), agreement {p.agreement:.4f}"
            if p
            else f"mean |Δ| {r.mae:.4g}, max |Δ| {r.max_abs_diff:.4g}"
            if r
            else result.note
        )
        self.progress.console.print(
            f"  exported {result.variant}: {kib(result.bytes)}, {figures}, {sum(result.seconds.values()):.1f} s",
            soft_wrap=True,
        )


class _BenchmarkEvents(_LiveProgress):
    """One bar over the measurements (each is a fresh process of a second or more)."""

    benchmark_task: TaskID | None = None

    def measuring(self, target, threads, repeat, index, total) -> None:
        self.benchmark_task = self._task(self.benchmark_task, "benchmark", total)
        self.progress.update(
            self.benchmark_task,
            completed=index,
            refresh=True,
            status=f"{target.name}, {threads} thread(s), repeat {repeat + 1}",
        )


class ExportProgress(_ExportEvents):
    """One bar over the variants."""


class BenchmarkProgress(_BenchmarkEvents):
    """One bar over the measurements."""


class PipelineProgress(TrainProgress, _ExportEvents, _BenchmarkEvents):
    """Training bars, then export bars, then benchmark bars, in one live display."""
