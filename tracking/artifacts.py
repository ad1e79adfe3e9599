"""Files written for each trial run: the history as CSV and the seeds' twin-axis curves."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_history_csv(path: Path, epochs: Sequence[int], history: Mapping[str, Sequence[float]]) -> Path:
    """One row per epoch (1-based, as Keras prints them), one column per metric."""
    keys = sorted(history)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *keys])
        for i, epoch in enumerate(epochs):
            writer.writerow([epoch, *(history[k][i] if i < len(history[k]) else "" for k in keys)])
    return path


def curve_metric(history: Mapping[str, Sequence[float]], metric: str | None) -> str | None:
    """The metric drawn beside the loss: the objective's (without `val_`), or, when that is the
    loss itself, the first other metric the model logged."""
    base = (metric or "").removeprefix("val_")
    if base and base != "loss" and (base in history or f"val_{base}" in history):
        return base
    others = sorted({key.removeprefix("val_") for key in history} - {"loss"})
    return others[0] if others else None


def write_curves_png(
    path: Path,
    epochs: Sequence[int],
    history: Mapping[str, Sequence[float]],
    best_epoch: int | None = None,
    title: str = "",
    metric: str | None = None,
) -> Path:
    """Loss on the left axis and a metric on the right (`curve_metric`: the objective's, e.g.
    accuracy, auc or mae), train solid and validation dashed.

    Uses matplotlib's object API (no pyplot state), so it is safe off the main thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=72)
    FigureCanvasAgg(fig)
    # Fixed margins: tight_layout() would cost more than the rest of the plot.
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=0.9)
    loss_ax = fig.add_subplot()
    metric_ax = loss_ax.twinx()
    shown = curve_metric(history, metric)
    styles = {"loss": ("tab:red", "-"), "val_loss": ("tab:red", "--")}
    if shown is not None:
        styles.update({shown: ("tab:blue", "-"), f"val_{shown}": ("tab:blue", "--")})
    for key, (color, line) in styles.items():
        if key in history and len(history[key]) == len(epochs):
            ax = loss_ax if key.endswith("loss") else metric_ax
            ax.plot(epochs, history[key], color=color, linestyle=line, label=key)
    if best_epoch:
        loss_ax.axvline(best_epoch, color="gray", linewidth=1, linestyle=":", label="best epoch")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    metric_ax.set_ylabel(shown or "")
    handles = [h for ax in (loss_ax, metric_ax) for h in ax.get_legend_handles_labels()[0]]
    if handles:
        loss_ax.legend(handles=handles, loc="center right", fontsize="small")
    if title:
        loss_ax.set_title(title, fontsize="medium")
    fig.savefig(path)
    return path
