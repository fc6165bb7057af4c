"""Rich tables and progress bars for the library's result objects."""

from __future__ import annotations

from rich.markup import escape  # noqa: F401  (re-exported for commands)
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mobile_ml.cli import console


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


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


class TrainProgress(_LiveProgress):
    """A bar for the candidate grid and one for the current candidate's epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.grid = None
        self.epochs = None

    def candidate_started(self, candidate, total, max_epochs) -> None:
        if self.grid is None:
            self.grid = self.progress.add_task("candidates", total=total, status="")
        if self.epochs is not None:
            self.progress.remove_task(self.epochs)
        self.epochs = self.progress.add_task(f"  {candidate.name}", total=max_epochs, status="")
        self.progress.refresh()

    def epoch_finished(self, candidate, epoch, logs) -> None:
        status = (
            f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  val_loss {logs.get('val_loss', float('nan')):.4f}"
        )
        self.progress.update(self.epochs, completed=epoch, status=status, refresh=True)

    def candidate_finished(self, result) -> None:
        self.progress.update(self.grid, advance=1, refresh=True)
        self.progress.console.print(
            f"  trained {escape(result.candidate.name)}: val_accuracy {result.val_accuracy:.4f}, "
            f"val_loss {result.val_loss:.4f}, best epoch {result.best_epoch}/{result.epochs_run}, "
            f"{result.seconds:.1f} s"
        )


def profile_tables(report: dict) -> list:
    tables = []
    if report.get("kind") == "image":
        t = Table(title="Image dataset", show_header=False)
        for k, v in (
            ("source", report["source"].get("path")),
            ("images", report["images"]),
            ("shape", "×".join(map(str, report["shape"]))),
            ("pixel range", f"{report['pixels']['min']:g} – {report['pixels']['max']:g}"),
            ("duplicate images", report["duplicate_images"]),
        ):
            t.add_row(k, escape(str(v)))
        tables.append(t)
    else:
        t = Table(
            title=f"{report['rows']} rows × {report['columns']} columns  ·  {report['duplicate_rows']} duplicate rows"
        )
        for col in ("column", "dtype", "kind", "missing", "unique", "min", "median", "max", "outliers", "note"):
            t.add_column(
                col, justify="right" if col in ("missing", "unique", "min", "median", "max", "outliers") else "left"
            )
        for c in report["column_profiles"]:
            num = c.get("numeric") or {}
            missing = f"{c['missing']} ({c['missing_fraction']:.0%})" if c["missing"] else "0"
            t.add_row(
                escape(c["name"]),
                c["dtype"],
                c["kind"],
                missing,
                str(c["unique"]),
                _fmt(num.get("min")),
                _fmt(num.get("median")),
                _fmt(num.get("max")),
                _fmt(num.get("outliers")),
                escape(c.get("reason", "")),
            )
        tables.append(t)
    target = report.get("target")
    if target:
        t = Table(
            title=f"Target classes ({target['num_classes']}, minority/majority {target['minority_majority_ratio']:.2f})"
        )
        t.add_column("class")
        t.add_column("rows", justify="right")
        total = sum(target["classes"].values()) or 1
        t.add_column("share", justify="right")
        for name, n in target["classes"].items():
            t.add_row(escape(str(name)), str(n), f"{n / total:.1%}")
        tables.append(t)
    return tables


def data_spec_tables(spec, out) -> list:
    t = Table(title=f"Prepared {spec.kind} data → {escape(str(out))}")
    t.add_column("split")
    t.add_column("rows", justify="right")
    t.add_column("per class", overflow="fold")
    for name in ("train", "validation", "test"):
        per = ", ".join(f"{lab}:{n}" for lab, n in zip(spec.labels, spec.class_counts[name]))
        t.add_row(name, str(spec.counts[name]), escape(per))
    tables = [t]
    if spec.dropped_columns:
        d = Table(title="Dropped columns")
        d.add_column("column")
        d.add_column("reason")
        for c in spec.dropped_columns:
            d.add_row(escape(c["name"]), escape(c["reason"]))
        tables.append(d)
    return tables


def train_tables(result) -> list:
    t = Table(title="Candidates (selected by validation accuracy)")
    for col in ("", "candidate", "params", "val_accuracy", "val_loss", "best epoch", "seconds"):
        t.add_column(col, justify="right" if col not in ("", "candidate") else "left")
    for r in result.candidates:
        mark = "★" if r is result.selected else ""
        t.add_row(
            mark,
            escape(r.candidate.name),
            f"{r.params:,}",
            f"{r.val_accuracy:.4f}",
            f"{r.val_loss:.4f}",
            f"{r.best_epoch}/{r.epochs_run}",
            f"{r.seconds:.1f}",
        )
    m = result.test
    c = Table(title=f"Test split: accuracy {m.accuracy:.4f} · macro F1 {m.macro_f1:.4f} · {m.examples} examples")
    for col in ("class", "precision", "recall", "f1", "support"):
        c.add_column(col, justify="right")
    for pc in m.per_class:
        c.add_row(escape(pc.label), f"{pc.precision:.3f}", f"{pc.recall:.3f}", f"{pc.f1:.3f}", str(pc.support))
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for lab in result.test.per_class:
        cm.add_column(escape(lab.label), justify="right")
    for i, (lab, row) in enumerate(zip(m.per_class, m.confusion_matrix)):
        cells = [f"[bold]{v}[/]" if i == j else (str(v) if v else "·") for j, v in enumerate(row)]
        cm.add_row(escape(lab.label), *cells)
    return [t, c, cm]


def run_files(run_dir) -> str:
    return f"wrote {escape(str(run_dir))}/: model.keras, saved_model/, metrics.json, history.csv, history.png, run.json"


class _ExportEvents:
    """Export progress on an existing rich ``Progress``: one bar over the variants, fine-tuning in the status."""

    progress: Progress
    export_task = None

    def variant_started(self, variant, index, total) -> None:
        if self.export_task is None:
            self.export_task = self.progress.add_task("variants", total=total, status="")
        self.progress.update(self.export_task, completed=index, status=f"building {variant}", refresh=True)

    def finetune_epoch(self, variant, epoch, epochs, logs) -> None:
        self.progress.update(
            self.export_task,
            status=f"{variant}: fine-tuning epoch {epoch}/{epochs}, "
            f"val_acc {logs.get('val_accuracy', float('nan')):.4f}",
            refresh=True,
        )

    def variant_finished(self, result) -> None:
        self.progress.update(self.export_task, advance=1, status="", refresh=True)
        p = result.parity
        figures = (
            f"accuracy {p.metrics.accuracy:.4f} (drop {p.accuracy_drop_pp:.2f} pt), agreement {p.agreement:.4f}"
            if p
            else result.note
        )
        self.progress.console.print(
            f"  exported {result.variant}: {_kib(result.bytes)}, {figures}, {sum(result.seconds.values()):.1f} s"
        )


class ExportProgress(_LiveProgress, _ExportEvents):
    """One bar over the variants."""


class PipelineProgress(TrainProgress, _ExportEvents):
    """Training bars, then export bars, in one live display."""


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def export_table(result) -> Table:
    from rich import box

    budget = result.options.max_accuracy_drop
    t = Table(
        title=f"Exported variants: LiteRT on {result.keras.examples} test rows, Keras accuracy "
        f"{result.keras.accuracy:.4f}, budget {budget:g} pt",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for col in ("", "variant", "KiB", "ratio", "gzip KiB", "accuracy", "drop pt", "agreement", "gate"):
        t.add_column(col, justify="left" if col in ("", "variant", "gate") else "right", no_wrap=True)
    for v in result.variants:
        p = v.parity
        mark = "★" if v.variant == result.recommended else ""
        gate = "[green]pass[/]" if v.passed else "[red]fail[/]"
        if not v.ops.builtin_only:
            gate += " [yellow](Select-TF)[/]"
        cells = [f"{p.metrics.accuracy:.4f}", f"{p.accuracy_drop_pp:.2f}", f"{p.agreement:.4f}"] if p else ["—"] * 3
        t.add_row(
            mark, v.variant, f"{v.bytes / 1024:.1f}", f"{v.size_ratio:.2f}", f"{v.gzip_bytes / 1024:.1f}", *cells, gate
        )
    if result.recommended:
        t.caption = f"★ recommended: {result.recommended}, the smallest variant within budget"
    else:
        t.caption = "[red]no variant is within budget[/]"
    return t


def export_files(result) -> str:
    return (
        f"wrote {escape(str(result.exports_dir))}/: <variant>/model.tflite + metadata.json, export.json, "
        f"export.csv, export.png ({result.seconds:.1f} s)"
    )


def evaluation_table(r: dict) -> Table:
    t = Table(
        title=f"{escape(r['model'])} on the {r['split']} split ({r['metrics']['examples']} rows)", show_header=False
    )
    for k, v in (
        ("size", _kib(r["bytes"])),
        ("accuracy (LiteRT)", f"{r['accuracy']:.4f}"),
        ("accuracy (Keras)", f"{r['keras_accuracy']:.4f}"),
        ("drop", f"{r['accuracy_drop_pp']:+.2f} pt"),
        ("top-1 agreement", f"{r['agreement']:.4f}"),
        ("max |Δp|", f"{r['max_abs_diff']:.3g}"),
        ("macro F1", f"{r['macro_f1']:.4f}"),
        ("ops", ", ".join(r["ops"])),
        ("input", ", ".join(f"{i['name']} {i['shape']} {i['dtype']}" for i in r["inputs"])),
    ):
        t.add_row(k, escape(str(v)))
    return t


def release_summary(r: dict) -> str:
    roll = r["rollout"]
    state = "halted" if roll.get("halted") else f"{roll['percent']:g}% of devices"
    fallback = (
        f", others keep {r['fallback']}"
        if r.get("fallback") and (roll["percent"] < 100 or roll.get("halted"))
        else (f" (fallback {r['fallback']})" if r.get("fallback") else "")
    )
    return (
        f"{r['action']}: {escape(r['model'])}/{escape(r['channel'])} → {r['version']} for {state}{fallback}\n"
        f"  manifest_version {r['manifest_version']}, expires {r['expires']}\n"
        f"  {escape(r['root'])}/{escape(r['manifest'])} (+ .sig)"
    )


def history_table(model: str, channel: str, entries: list) -> Table:
    t = Table(title=f"{escape(model)}/{escape(channel)}: every manifest issued")
    for col in ("manifest", "issued", "action", "version", "rollout", "fallback", "signature"):
        t.add_column(col, justify="right" if col in ("manifest", "rollout") else "left")
    for e in entries:
        if e.get("damaged"):
            t.add_row("?", "", "[red]damaged[/]", "", "", "", escape(e["path"]))
            continue
        rollout = "halted" if e["halted"] else f"{e['percent']:g}%"
        t.add_row(
            str(e["manifest_version"]),
            e["issued_at"],
            escape(str(e["action"])),
            e["version"],
            rollout,
            e["fallback"] or "—",
            "[green]ok[/]" if e["signature_ok"] else "[red]BAD[/]",
        )
    return t


def verify_summary(report) -> str:
    lines = [
        f"{escape(report.root)}: {report.manifests} channel manifest(s), {report.history_entries} history "
        f"entries, {report.releases} release(s), {report.blobs} blob(s); key {report.key_id[:16]}…"
    ]
    lines += [f"  [red]problem[/]: {escape(p)}" for p in report.problems]
    lines += [f"  [yellow]warning[/]: {escape(w)}" for w in report.warnings]
    if report.ok:
        lines.append("  [green]all signatures, hashes, lengths and references check out[/]")
    return "\n".join(lines)


class BenchmarkProgress(_LiveProgress):
    """One bar over the measurements (each is a fresh process of a second or more)."""

    task = None

    def measuring(self, target, threads, repeat, index, total) -> None:
        if self.task is None:
            self.task = self.progress.add_task("benchmark", total=total, status="")
        self.progress.update(
            self.task, completed=index, refresh=True, status=f"{target.name}, {threads} thread(s), repeat {repeat + 1}"
        )


def _ms(v) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:.1f} µs" if v < 1 else f"{v:.2f} ms"


def benchmark_table(result) -> Table:
    from rich import box

    d = result.device
    where = d.get("device") or d["cpu"]
    centers = [m.latency_ms.p50 if m.latency_ms.p50 is not None else m.latency_ms.mean for m in result.measurements]
    unit, k = ("µs", 1000.0) if max(centers, default=1) < 1 else ("ms", 1.0)

    def f(v) -> str:
        return "—" if v is None else f"{v * k:.1f}" if v * k < 100 else f"{v * k:.0f}"

    t = Table(
        title=f"Latency per inference ({unit}): {escape(str(where))}, {d.get('cores') or '?'} cores, "
        f"{d['runtime']}, {'XNNPACK' if result.options.xnnpack else 'no XNNPACK'}",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for col in ("variant", "thr", "init ms", "first", "p50", "p90", "p99", "std", "runs", "GOP/s", "MiB"):
        t.add_column(col, justify="left" if col == "variant" else "right", no_wrap=True)
    for m in result.measurements:
        s = m.latency_ms
        mem = m.memory_mib.get("init_growth")
        t.add_row(
            m.variant + (f" #{m.repeat + 1}" if result.options.repeats > 1 else ""),
            str(m.threads),
            f"{m.init_ms:.2f}",
            f(m.first_ms),
            f(s.p50),
            f(s.p90),
            f(s.p99),
            f(s.std),
            str(s.count),
            f"{m.gops:.1f}",
            "—" if mem is None else f"{mem:.1f}",
        )
    if result.keras:
        kr = result.keras
        t.caption = (
            f"Keras on the same example: predict() p50 {_ms(kr['predict']['p50'])}, direct call p50 "
            f"{_ms(kr['call']['p50'])}"
        )
    return t


def compare_table(deltas, limit: float) -> Table:
    t = Table(title=f"p50 change (limit +{limit:g}%, noise-aware)")
    for col in ("variant", "threads", "base", "new", "change", "noise", "verdict"):
        t.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    colors = {"regressed": "red", "faster": "green", "within noise": "yellow"}
    for d in deltas:
        change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
        noise = "—" if d.noise_pct is None else f"±{d.noise_pct:.1f}%"
        verdict = f"[{colors[d.verdict]}]{d.verdict}[/]" if d.verdict in colors else d.verdict
        t.add_row(escape(d.variant), str(d.threads), _ms(d.base_p50), _ms(d.new_p50), change, noise, verdict)
    return t


def telemetry_table(rows) -> Table:
    from rich import box

    t = Table(
        title="Telemetry: per model version and device model",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for col in (
        "model",
        "version",
        "device",
        "devices",
        "adopt",
        "p50 ms",
        "p90 ms",
        "runs",
        "applied",
        "failed",
        "fail %",
    ):
        t.add_column(col, justify="left" if col in ("model", "version", "device") else "right")
    for r in rows:
        t.add_row(
            escape(r.model),
            escape(r.version),
            escape(r.device_model),
            str(r.devices),
            f"{r.adoption:.0%}",
            _fmt(r.latency_p50_ms),
            _fmt(r.latency_p90_ms),
            str(r.inferences),
            str(r.updates_applied),
            str(r.updates_failed),
            "—" if r.failure_rate is None else f"{r.failure_rate:.1%}",
        )
    return t
