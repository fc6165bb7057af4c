"""The tables of ``mobile-ml monitor``: every raw score beside its verdict."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from mobile_ml.cli import console
from mobile_ml.cli.layout import Fit
from mobile_ml.contracts.manifest import format_time
from mobile_ml.contracts.monitor import Histogram, MonitorReport, VersionReport

_STYLE = {"drift": "[bold red]drift[/]", "warn": "[yellow]warn[/]", "ok": "[green]ok[/]"}


def _verdict(h: Histogram) -> str:
    return _STYLE.get(h.verdict.value, "not enough data")


def _score(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def version_table(report: MonitorReport, v: VersionReport) -> Fit:
    window = f"{format_time(v.window_start)} – {format_time(v.window_end)}" if v.window_start and v.window_end else ""
    channel = f" · channel {report.channel}" if report.channel else ""
    t = Table(
        title=f"{escape(report.model)} {v.version}{channel} · {v.count} inferences in {v.uploads} uploads {window}",
        caption=f"against the baseline's test split · drift: PSI >= {report.thresholds.drift_psi:g}, "
        f"warn: >= {report.thresholds.warn_psi:g}, no verdict under {report.thresholds.min_count} samples",
    )
    for name, justify in (("histogram", "left"), ("verdict", "left"), ("PSI", "right"), ("JS", "right")):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    t.add_column("count", justify="right")
    t.add_column("missing", justify="right")
    for f in v.features:
        h = f.histogram
        t.add_row(escape(f.name), _verdict(h), _score(h.psi), _score(h.js), str(h.count), str(f.missing))
    for name, h in (("(predicted class)", v.prediction), ("(top-1 confidence)", v.confidence)):
        t.add_row(name, _verdict(h), _score(h.psi), _score(h.js), str(h.count), "")
    return Fit(t)


def latency_table(report: MonitorReport) -> Fit:
    t = Table(title="latency by device model (telemetry inference events)")
    t.add_column("device model")
    for name in ("inferences", "p50 ms", "p90 ms"):
        t.add_column(name, justify="right")
    for d in report.latency_by_device:
        t.add_row(escape(d.device_model), str(d.count), f"{d.p50_ms:.2f}", f"{d.p90_ms:.2f}")
    return Fit(t)


def print_report(report: MonitorReport) -> None:
    out = console.out
    for v in report.versions:
        out.print(version_table(report, v))
        lat = v.latency
        if sum(lat.counts):
            p50 = "–" if lat.p50_le_ms is None else f"<= {lat.p50_le_ms:g} ms"
            p90 = "–" if lat.p90_le_ms is None else f"<= {lat.p90_le_ms:g} ms"
            out.print(f"fleet latency (aggregates, to a bin): p50 {p50}, p90 {p90}")
    if report.latency_by_device:
        out.print(latency_table(report))
    else:
        out.print("latency by device model: no inference events with a latency in the telemetry")
    f = report.funnel
    reasons = ", ".join(f"{k} {n}" for k, n in f.failure_reasons.items())
    out.print(
        f"update funnel ({f.devices} devices): {f.checks} checks → {f.downloads} downloads → {f.installed} installed, "
        f"{f.failed} failed{f' ({escape(reasons)})' if reasons else ''}, {f.skipped} skipped"
    )
    out.print("[bold red]drift found[/]" if report.drift else "no drift")
