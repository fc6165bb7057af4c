"""One PNG per drifted feature: the baseline's test-split frequency per bin beside the fleet's."""

from __future__ import annotations

import re
from pathlib import Path

from mobile_ml.contracts.monitor import FeatureDrift, MonitorReport
from mobile_ml.errors import OutputError


def plot_drifted(report: MonitorReport, out: str | Path) -> list[Path]:
    """Write ``<out>/drift-<version>-<feature>.png`` for each drifted feature of each version; the paths."""
    out = Path(out)
    drifted = [(v.version, f) for v in report.versions for f in v.features if f.drifted]
    if not drifted:
        return []
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {out}: {e.strerror}", hint="pass a writable --out directory") from None
    written = []
    for version, feature in drifted:
        path = out / f"drift-{version}-{_file_name(feature.name)}.png"
        plot_feature(path, feature, title=f"{report.model} {version}: {feature.name}")
        written.append(path)
    return written


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:80] or "feature"


def bin_labels(edges: tuple[float, ...]) -> list[str]:
    """``<e0``, ``[e0, e1)``, …, ``>=ek``: the bin rule of monitor/bins.py."""
    if not edges:
        return ["all"]
    inner = [f"[{a:.3g}, {b:.3g})" for a, b in zip(edges, edges[1:], strict=False)]
    return [f"<{edges[0]:.3g}", *inner, f">={edges[-1]:.3g}"]


def plot_feature(path: Path, feature: FeatureDrift, *, title: str) -> None:
    from mobile_ml.plotting import pyplot

    plt = pyplot()
    h = feature.histogram
    base_total, fleet_total = sum(h.baseline) or 1, sum(h.fleet) or 1
    xs = range(len(h.fleet))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(h.fleet) + 2), 4.0))
    try:
        ax.bar([x - 0.2 for x in xs], [n / base_total for n in h.baseline], width=0.4, label="baseline (test split)")
        ax.bar([x + 0.2 for x in xs], [n / fleet_total for n in h.fleet], width=0.4, label=f"fleet (n={h.count})")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(bin_labels(feature.edges), rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of samples per bin")
        ax.set_title(f"{title}\nPSI {h.psi:.3f} · JS {h.js:.3f}" if h.psi is not None and h.js is not None else title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror}", hint="pass a writable --out directory") from None
    finally:
        plt.close(fig)
