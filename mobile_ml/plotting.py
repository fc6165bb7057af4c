"""Small matplotlib helpers shared by the stages' PNG plots (Agg backend: no display needed)."""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def label_points(ax, points: list[tuple[float, float, str]], *, y_close: float, x_ratio: float = 0.15) -> None:
    """Name each point; points of nearly the same x (within ``x_ratio``) and y (within ``y_close``) stack their
    labels instead of printing them on top of each other."""
    placed: list[tuple[float, float]] = []
    for x, y, text in points:
        near = sum(1 for px, py in placed if abs(px / x - 1) < x_ratio and abs(py - y) < y_close) if x else 0
        placed.append((x, y))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(7, 4 + 11 * near), fontsize=9)


def plain_log_ticks(axis) -> None:
    """Log-scale ticks as plain numbers (20, 30, 50) rather than 2×10¹; call after set_xscale/set_yscale."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
