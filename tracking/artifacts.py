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


def write_curves_png(
    path: Path,
    epochs: Sequence[int],
    history: Mapping[str, Sequence[float]],
    best_epoch: int | None = None,
    title: str = "",
) -> Path:
    """Loss on the left axis and accuracy on the right, train solid and validation dashed.

    Uses matplotlib's object API (no pyplot state), so it is safe off the main thread.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=72)
    FigureCanvasAgg(fig)
    # Fixed margins: tight_layout() would cost more than the rest of the plot.
    fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=0.9)
    loss_ax = fig.add_subplot()
    acc_ax = loss_ax.twinx()
    styles = {
        "loss": ("tab:red", "-"),
        "val_loss": ("tab:red", "--"),
        "accuracy": ("tab:blue", "-"),
        "val_accuracy": ("tab:blue", "--"),
    }
    for key, (color, line) in styles.items():
        if key in history and len(history[key]) == len(epochs):
            ax = loss_ax if key.endswith("loss") else acc_ax
            ax.plot(epochs, history[key], color=color, linestyle=line, label=key)
    if best_epoch:
        loss_ax.axvline(best_epoch, color="gray", linewidth=1, linestyle=":", label="best epoch")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    acc_ax.set_ylabel("accuracy")
    handles = [h for ax in (loss_ax, acc_ax) for h in ax.get_legend_handles_labels()[0]]
    if handles:
        loss_ax.legend(handles=handles, loc="center right", fontsize="small")
    if title:
        loss_ax.set_title(title, fontsize="medium")
    fig.savefig(path)
    return path
