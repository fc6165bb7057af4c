"""Training curves as PNG (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path


def plot_history(histories: dict[str, list[dict]], selected: str, best_epoch: int, path: Path) -> None:
    """Loss and accuracy per epoch: the selected candidate bold (train dashed, validation solid), others faint,
    and a dotted line at the epoch whose weights were kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for ax, metric, title in ((axes[0], "loss", "Loss"), (axes[1], "accuracy", "Accuracy")):
        for name, rows in histories.items():
            if name == selected or not rows:
                continue
            ax.plot([r["epoch"] for r in rows], [r[f"val_{metric}"] for r in rows], color="0.75", linewidth=1)
        rows = histories[selected]
        epochs = [r["epoch"] for r in rows]
        ax.plot(epochs, [r[metric] for r in rows], "--", color="C0", label=f"train ({selected})")
        ax.plot(epochs, [r[f"val_{metric}"] for r in rows], color="C1", linewidth=2, label="validation")
        ax.axvline(best_epoch, color="0.3", linestyle=":", linewidth=1, label=f"kept weights (epoch {best_epoch})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].plot([], [], color="0.75", label="other candidates (validation)")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
