"""Rich tables for the library's result objects, each wrapped in :class:`layout.Fit` so no cell is ever cut."""

from __future__ import annotations

from rich.markup import escape  # noqa: F401  (re-exported for commands)
from rich.table import Table

from mobile_ml.cli.layout import Fit
from mobile_ml.cli.progress import (  # noqa: F401  (re-exported for commands)
    BenchmarkProgress,
    ExportProgress,
    PipelineProgress,
    TrainProgress,
    kib,
)


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _compact(title: str) -> Table:
    """A table without side borders and with single-space gutters: wide tables fit 80 columns across."""
    from rich import box

    return Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False, show_edge=False)


def profile_tables(report: dict) -> list[Fit]:
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
        tables.append(Fit(t))
    else:
        t = _compact(
            f"{report['rows']} rows × {report['columns']} columns  ·  {report['duplicate_rows']} duplicate rows"
        )
        for col in ("column", "dtype", "kind", "missing", "unique", "min", "median", "max", "outliers", "note"):
            t.add_column(
                col,
                justify="right" if col in ("missing", "unique", "min", "median", "max", "outliers") else "left",
                overflow="fold" if col == "note" else "ellipsis",  # only the free-text note may wrap
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
        tables.append(Fit(t))
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
        tables.append(Fit(t))
    return tables


def data_spec_tables(spec, out) -> list[Fit]:
    t = Table(title=f"Prepared {spec.kind} data → {escape(str(out))}")
    t.add_column("split")
    t.add_column("rows", justify="right")
    t.add_column("per class", overflow="fold")
    for name in ("train", "validation", "test"):
        per = ", ".join(f"{lab}:{n}" for lab, n in zip(spec.labels, spec.class_counts[name], strict=True))
        t.add_row(name, str(spec.counts[name]), escape(per))
    tables = [Fit(t)]
    if spec.dropped_columns:
        d = Table(title="Dropped columns")
        d.add_column("column")
        d.add_column("reason", overflow="fold")
        for c in spec.dropped_columns:
            d.add_row(escape(c["name"]), escape(c["reason"]))
        tables.append(Fit(d))
    return tables


def train_tables(result) -> list[Fit]:
    t = _compact("Candidates (selected by validation accuracy)")
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
    c = _compact(f"Test split: accuracy {m.accuracy:.4f} · macro F1 {m.macro_f1:.4f} · {m.examples} examples")
    for col in ("class", "precision", "recall", "f1", "support"):
        c.add_column(col, justify="right")
    for pc in m.per_class:
        c.add_row(escape(pc.label), f"{pc.precision:.3f}", f"{pc.recall:.3f}", f"{pc.f1:.3f}", str(pc.support))
    cm = _compact("Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for lab in result.test.per_class:
        cm.add_column(escape(lab.label), justify="right")
    for i, (lab, row) in enumerate(zip(m.per_class, m.confusion_matrix, strict=True)):
        cells = [f"[bold]{v}[/]" if i == j else (str(v) if v else "·") for j, v in enumerate(row)]
        cm.add_row(escape(lab.label), *cells)
    return [Fit(t, name_columns=2), Fit(c), Fit(cm)]


def run_files(run_dir) -> str:
    return f"wrote {escape(str(run_dir))}/: model.keras, saved_model/, metrics.json, history.csv, history.png, run.json"


def export_table(result) -> Fit:
    if result.keras is None:
        return _regression_table(result)
    from rich import box

    budget = result.options.max_accuracy_drop
    t = Table(
        title=f"Exported variants: LiteRT on {result.keras.examples} test rows, Keras accuracy "
        f"{result.keras.accuracy:.4f}, budget {budget:g} pt",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
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
    return Fit(t, name_columns=2)


def _regression_table(result) -> Fit:
    from rich import box

    kr = result.keras_regression
    t = Table(
        title=f"Exported variants: LiteRT on {kr.examples} rows, Keras MAE {kr.mae:.4g}, "
        f"budget mean |Δ| {result.options.max_error:g}",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )
    for col in ("", "variant", "KiB", "ratio", "mean |Δ|", "RMSE", "max |Δ|", "MAE", "gate"):
        t.add_column(col, justify="left" if col in ("", "variant", "gate") else "right", no_wrap=True)
    for v in result.variants:
        r = v.regression
        cells = [f"{r.mae:.4g}", f"{r.rmse:.4g}", f"{r.max_abs_diff:.4g}"] if r else ["—"] * 3
        cells.append(f"{r.target.mae:.4g}" if r and r.target else "—")
        gate = "[green]pass[/]" if v.passed else "[red]fail[/]"
        mark = "★" if v.variant == result.recommended else ""
        t.add_row(mark, v.variant, f"{v.bytes / 1024:.1f}", f"{v.size_ratio:.2f}", *cells, gate)
    t.caption = (
        f"★ recommended: {result.recommended}, the smallest variant within budget"
        if result.recommended
        else "[red]no variant is within budget[/]"
    )
    return Fit(t, name_columns=2)


def export_files(result) -> str:
    notes = "".join(f"\n{escape(n)}" for n in result.notes)
    return (
        f"wrote {escape(str(result.exports_dir))}/: <variant>/model.tflite + metadata.json, export.json, "
        f"export.csv, export.png ({result.seconds:.1f} s){notes}"
    )


def pipeline_files(result) -> str:
    lines = [
        f"wrote {escape(str(result.out))}/ in {result.seconds:.1f} s:",
        "  profile.json    data profile",
        "  data/           data.json + train/validation/test splits",
        "  run/            model.keras, saved_model/, metrics.json, history.png, run.json",
        "  run/exports/    <variant>/model.tflite + metadata.json, export.json/csv/png",
    ]
    if result.benchmark is not None:
        lines.append("  run/benchmark/  benchmark.json/csv, latency.png, tradeoff.png")
    return "\n".join(lines)


def deliver_commands(r: dict, root: str, key_dir: str) -> str:
    """How to serve what was just published and sync a device to it: whole command lines, to copy as they are.

    ``root`` and ``key_dir`` as the user gave them (relative stays relative), not as the publisher resolved them.
    """
    root, key = escape(root), escape(key_dir)
    model, channel = escape(r["model"]), escape(r["channel"])
    return (
        f"deliver it (any static web server or CDN can serve {root}/ too):\n"
        f"  mobile-ml serve {root} --port 8000\n"
        f"  mobile-ml device sync --server http://127.0.0.1:8000/ --model {model} --channel {channel} "
        f"--public-key {key}/public.pem --state device-state --install-id demo-device --app-version 1.0.0\n"
        f"  mobile-ml device run --state device-state\n"
        f"  check the root: mobile-ml release verify --root {root} --public-key {key}/public.pem\n"
        f"  app key: {key}/public.b64 (a development key: make your own with `mobile-ml keys generate`)"
    )


def evaluation_table(r: dict) -> Fit:
    t = Table(
        title=f"{escape(r['model'])} on the {r['split']} split ({r['metrics']['examples']} rows)", show_header=False
    )
    for k, v in (
        ("size", kib(r["bytes"])),
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
    return Fit(t)


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
        f"  {escape(r['root'])}/{escape(r['manifest'])} (+ .sig)" + _capture_line(r.get("capture"))
    )


def _capture_line(capture: dict | None) -> str:
    if not capture:
        return ""
    return (
        f"\n  capture: {capture['rate']:g} of inferences, at most {capture['max_per_day']} per device a day, "
        "only from devices whose user consented"
    )


def history_table(model: str, channel: str, entries: list) -> Fit:
    t = Table(title=f"{escape(model)}/{escape(channel)}: every manifest issued")
    for col in ("manifest", "issued", "action", "version", "rollout", "fallback", "signature", "from"):
        t.add_column(col, justify="right" if col in ("manifest", "rollout") else "left")
    for e in entries:
        if e.get("damaged"):
            t.add_row("?", "", "[red]damaged[/]", "", "", "", escape(e["path"]), "")
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
            escape(_lineage_line(e.get("lineage"))),
        )
    return Fit(t)


def _lineage_line(lineage: dict | None) -> str:
    """``file model.keras (keras3) 1a2b3c4d5e6f`` for a release's lineage; "—" before lineage was recorded."""
    if not lineage:
        return "—"
    sha = lineage["sha256"][:12] if lineage.get("sha256") else "sha256 unknown"
    return f"{lineage['kind']} {lineage['name']} ({lineage['form']}) {sha}"


def verify_summary(report) -> str:
    lines = [
        f"{escape(report.root)}: {report.manifests} channel manifest(s), {report.history_entries} history "
        f"entries, {report.releases} release(s), {report.blobs} blob(s); key {report.key_id[:16]}…"
    ]
    lines += [f"  {escape(p)}: from {escape(_lineage_line(v))}" for p, v in sorted(report.lineage.items())]
    lines += [f"  [red]problem[/]: {escape(p)}" for p in report.problems]
    lines += [f"  [yellow]warning[/]: {escape(w)}" for w in report.warnings]
    if report.ok:
        lines.append("  [green]all signatures, hashes, lengths and references check out[/]")
    return "\n".join(lines)


def _ms(v) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:.1f} µs" if v < 1 else f"{v:.2f} ms"


def benchmark_table(result) -> Fit:
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
        show_edge=False,
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
    return Fit(t)


def compare_table(deltas, limit: float) -> Fit:
    t = Table(title=f"p50 change (limit +{limit:g}%, noise-aware)")
    for col in ("variant", "threads", "base", "new", "change", "noise", "verdict"):
        t.add_column(col, justify="left" if col in ("variant", "verdict") else "right")
    colors = {"regressed": "red", "faster": "green", "within noise": "yellow"}
    for d in deltas:
        change = "—" if d.change_pct is None else f"{d.change_pct:+.1f}%"
        noise = "—" if d.noise_pct is None else f"±{d.noise_pct:.1f}%"
        verdict = f"[{colors[d.verdict]}]{d.verdict}[/]" if d.verdict in colors else d.verdict
        t.add_row(escape(d.variant), str(d.threads), _ms(d.base_p50), _ms(d.new_p50), change, noise, verdict)
    return Fit(t)


def telemetry_table(rows) -> Fit:
    from rich import box

    t = Table(
        title="Telemetry: per model, channel, version and device model (devices: running it now)",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
    )
    for col in (
        "model",
        "channel",
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
        t.add_column(col, justify="left" if col in ("model", "channel", "version", "device") else "right")
    for r in rows:
        t.add_row(
            escape(r.model),
            "—" if r.channel is None else escape(r.channel),
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
    return Fit(t)
