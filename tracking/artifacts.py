"""Files written for each trial run: the history as CSV and the seeds' twin-axis curves."""

from __future__ import annotations

import csv
import threading
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

    Uses matplotlib's object API (no pyplot state), so it is safe off the main thread; each
    thread keeps one figure and redraws it with the next trial's data (building the figure
    and its ticks anew cost 40% of a plot).
    """
    figure = getattr(_local, "figure", None)
    if figure is None:
        figure = _local.figure = _CurvesFigure()
    figure.draw(path, epochs, history, best_epoch, title, curve_metric(history, metric))
    return path


_local = threading.local()


class _CurvesFigure:
    """The twin-axis figure, its four curves and the best-epoch line, redrawn per trial."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(7, 4), dpi=72)
        FigureCanvasAgg(self.fig)
        # Fixed margins: tight_layout() would cost more than the rest of the plot.
        self.fig.subplots_adjust(left=0.1, right=0.88, bottom=0.12, top=0.9)
        self.loss_ax = self.fig.add_subplot()
        self.metric_ax = self.loss_ax.twinx()
        self.loss_ax.set_xlabel("epoch")
        self.loss_ax.set_ylabel("loss")
        # A title at a fixed height: its automatic placement measures every tick label.
        self.title = self.loss_ax.set_title("", fontsize="medium", y=1.0)
        self.metric_ax.set_title("", y=1.0)
        self.lines = {}
        for role, (ax, color, style) in {
            "loss": (self.loss_ax, "tab:red", "-"),
            "val_loss": (self.loss_ax, "tab:red", "--"),
            "metric": (self.metric_ax, "tab:blue", "-"),
            "val_metric": (self.metric_ax, "tab:blue", "--"),
        }.items():
            (self.lines[role],) = ax.plot([], [], color=color, linestyle=style)
        self.best = self.loss_ax.axvline(1, color="gray", linewidth=1, linestyle=":", label="best epoch")

    def draw(
        self,
        path: Path,
        epochs: Sequence[int],
        history: Mapping[str, Sequence[float]],
        best_epoch: int | None,
        title: str,
        shown: str | None,
    ) -> None:
        keys = {"loss": "loss", "val_loss": "val_loss"}
        if shown is not None:
            keys.update({"metric": shown, "val_metric": f"val_{shown}"})
        handles = []
        for role, line in self.lines.items():
            key = keys.get(role)
            drawn = key is not None and key in history and len(history[key]) == len(epochs)
            line.set_visible(drawn)
            if drawn:
                line.set_data(list(epochs), list(history[key]))
                line.set_label(key)
                handles.append(line)
            else:
                line.set_data([], [])
        self.best.set_visible(bool(best_epoch))
        if best_epoch:
            self.best.set_xdata([best_epoch, best_epoch])
            handles.insert(sum(1 for h in handles if h.axes is self.loss_ax), self.best)
        for ax in (self.loss_ax, self.metric_ax):
            ax.relim(visible_only=True)
            ax.autoscale_view()
        self.metric_ax.set_ylabel(shown or "")
        legend = self.loss_ax.get_legend()
        if legend is not None:
            legend.remove()
        if handles:
            self.loss_ax.legend(handles=handles, loc="center right", fontsize="small")
        self.title.set_text(title)
        self.fig.savefig(path)
