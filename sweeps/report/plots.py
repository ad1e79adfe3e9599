"""The report's figures, as PNG bytes.

matplotlib's object API on the Agg canvas (no pyplot, no global state), so a report can be
built in any thread or process. Each optimizer keeps one colour in every figure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from sweeps.report.build import Report
    from sweeps.spec.space import Param, Range

DPI = 100


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: plots/NAME.png
    title: str
    caption: str
    png: bytes


def _figure(width: float = 7.5, height: float = 4.2) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def optimizer_colors(report: Report) -> dict[str, str]:
    """One colour per optimizer, in the order the space lists them."""
    from sweeps.spec.space import Choice, Fixed

    param = report.spec.space.params.get("optimizer")
    names: list[str] = []
    if isinstance(param, Choice):
        names = [str(c) for c in param.choices]
    elif isinstance(param, Fixed):
        names = [str(param.value)]
    if "optimizer" in report.trials:
        names += [str(o) for o in report.trials["optimizer"].dropna().unique() if str(o) not in names]
    palette = [f"C{i}" for i in range(10)]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def span(params: list[Param]) -> Range | None:
    """One range over every searched range a parameter has (the top-level one and its
    sub-spaces'), log if any is; None when none is a range."""
    from sweeps.spec.space import Range

    ranges = [p for p in params if isinstance(p, Range)]
    if not ranges:
        return None
    return Range(
        min(r.low for r in ranges),
        max(r.high for r in ranges),
        log=any(r.log for r in ranges),
        integer=all(r.integer for r in ranges),
    )


def _space_x(ax: Axes, param: Param | None) -> None:
    """An x axis spanning the parameter's searched range, so a reader sees where in it the
    trials fell; a log range is labelled at powers of ten only (minor labels collide)."""
    from matplotlib.ticker import NullFormatter

    from sweeps.spec.space import Range

    if not isinstance(param, Range):
        return
    if param.log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(param.low / 1.25, param.high * 1.25)
        return
    margin = 0.04 * (param.high - param.low)
    ax.set_xlim(param.low - margin, param.high + margin)
    if param.integer:
        ax.xaxis.get_major_locator().set_params(integer=True)


def _by_optimizer(ax: Axes, report: Report, x: pd.Series, colors: dict[str, str]) -> None:
    """Complete trials at `x` (aligned with `report.ranked`; NaN: not shown) against the
    objective, one colour per optimizer; the best trial ringed by a star."""
    ranked = report.ranked[x.notna()]
    for optimizer, group in ranked.groupby("optimizer", sort=False):
        ax.scatter(
            x[group.index],
            group["value"],
            s=36,
            color=colors.get(str(optimizer), "gray"),
            label=str(optimizer),
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
        )
    if 0 in ranked.index:  # ranked is best first
        ax.scatter(
            [x[0]],
            [ranked.loc[0, "value"]],
            marker="*",
            s=220,
            facecolors="none",
            edgecolors="black",
            linewidths=1.2,
            zorder=4,
            label="best",
        )
    ax.grid(alpha=0.3)


def objective_by_trial(report: Report) -> Plot | None:
    """Every trial's value in trial order, and the best so far: how the search progressed."""
    trials = report.trials
    if report.ranked.empty:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    done = report.ranked.sort_values("trial")
    ax.scatter(done["trial"], done["value"], s=30, color="C0", label="complete", zorder=3)
    best = done["value"].cummax() if report.maximize else done["value"].cummin()
    ax.step(done["trial"], best, where="post", color="C3", linewidth=1.8, label="best so far")
    pruned = trials[(trials["state"] == "pruned") & trials["value"].notna()]
    if not pruned.empty:
        ax.scatter(
            pruned["trial"],
            pruned["value"],
            marker="x",
            s=30,
            color="gray",
            label="pruned (value when stopped)",
        )
    # Trials with no value are marked along the bottom edge (x in data, y in axes units).
    unfinished = {"failed": ("v", "C3"), "interrupted": ("v", "gray"), "running": ("^", "C2")}
    for state, (marker, color) in unfinished.items():
        rows = trials[trials["state"] == state]
        if not rows.empty:
            ax.scatter(
                rows["trial"],
                np.full(len(rows), 0.03),
                marker=marker,
                s=36,
                color=color,
                label=state,
                transform=ax.get_xaxis_transform(),
                clip_on=False,
                zorder=3,
            )
    ax.set_xlim(trials["trial"].min() - 0.5, trials["trial"].max() + 0.5)  # the bottom markers too
    ax.set_xlabel("trial")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(report.metric)
    ax.set_title(f"{report.metric} by trial ({'higher' if report.maximize else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    caption = (
        "Each complete trial's value and the best so far; pruned trials show their value when stopped, "
        "failed and running ones are marked along the bottom."
    )
    return Plot("objective_by_trial", f"Objective ({report.metric}) by trial", caption, _png(fig))


def learning_rate(report: Report, colors: dict[str, str]) -> Plot | None:
    """Learning rate (log axis) against the objective, coloured by optimizer."""
    if report.ranked.empty or "learning_rate" not in report.params:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    _by_optimizer(ax, report, pd.to_numeric(report.ranked["learning_rate"], errors="coerce"), colors)
    searched = span(report.spec.space.variants("learning_rate"))
    ax.set_xscale("log")
    _space_x(ax, searched)
    ax.set_ylabel(report.metric)
    ax.set_xlabel("learning rate (log scale" + (", the searched range)" if searched else ")"))
    ax.set_title(f"learning rate against {report.metric}, by optimizer")
    ax.legend(fontsize="small", loc="best")
    caption = (
        "Complete trials; each optimizer has its own good range of learning rates (a sub-space per "
        "optimizer searches each in its own)."
    )
    return Plot("learning_rate", f"Learning rate against {report.metric}", caption, _png(fig))


def other_params(report: Report, colors: dict[str, str]) -> Plot | None:
    """Each other searched parameter (dropout, patience, ...) against the objective."""
    from sweeps.spec.space import Choice, Fixed

    names = [n for n in report.params if n not in ("optimizer", "learning_rate")]
    if report.ranked.empty or not names:
        return None
    fig = _figure(width=min(4.0 * len(names), 12.0), height=3.8)
    axes = fig.subplots(1, len(names), squeeze=False, sharey=True)[0]
    for ax, name in zip(axes, names, strict=True):
        variants = report.spec.space.variants(name)
        values = report.ranked[name]
        if all(isinstance(p, Choice | Fixed) for p in variants):
            labels = list(dict.fromkeys(str(v) for p in variants for v in _choices(p)))
            x = values.map(lambda v, labels=labels: labels.index(str(v)) if str(v) in labels else np.nan)
            ax.set_xticks(range(len(labels)), labels)
        else:
            x = pd.to_numeric(values, errors="coerce")
            _space_x(ax, span(variants))
        _by_optimizer(ax, report, x.astype(float), colors)
        ax.set_xlabel(name)
    axes[0].set_ylabel(report.metric)
    legend = {
        label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)
    }
    if "best" in legend:  # absent when the best trial has none of these parameters
        legend["best"] = legend.pop("best")  # last, as in the other plots
    fig.legend(legend.values(), legend.keys(), loc="outside right upper", fontsize="small")
    title = " and ".join(names) if len(names) <= 2 else ", ".join(names)
    caption = "Complete trials, coloured by optimizer; conditional parameters show only where they apply."
    return Plot("other_params", f"{title.capitalize()} against {report.metric}", caption, _png(fig))


def _choices(param: Param) -> tuple[object, ...]:
    from sweeps.spec.space import Choice, Fixed

    if isinstance(param, Choice):
        return param.choices
    return (param.value,) if isinstance(param, Fixed) else ()


def validation_curves(report: Report, colors: dict[str, str]) -> Plot | None:
    """The per-epoch validation metric of each optimizer's best trial, on one chart."""
    if report.optimizers.empty or not any(report.curves.values()):
        return None
    fig = _figure()
    ax = fig.add_subplot()
    best_epochs = report.ranked.set_index("run_id")["best_epoch"]
    for _, row in report.optimizers.iterrows():
        points = report.curves.get(row["best_run_id"], [])
        if not points:
            continue
        epochs, values = zip(*points, strict=True)
        color = colors.get(str(row["optimizer"]), "gray")
        ax.plot(
            epochs,
            values,
            marker="o",
            markersize=3,
            color=color,
            label=f"{row['optimizer']} (trial {row['best_trial']})",
        )
        best_epoch = best_epochs[row["best_run_id"]]
        if best_epoch in epochs:
            ax.scatter(
                [best_epoch],
                [values[epochs.index(best_epoch)]],
                s=70,
                facecolors="none",
                edgecolors=color,
                linewidths=1.5,
                zorder=4,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(report.curve_metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"{report.curve_metric} of the best trial per optimizer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    caption = "Circles mark the epoch each trial kept (its best epoch)."
    title = f"Validation curves ({report.curve_metric}) of the best trial per optimizer"
    return Plot("validation_curves", title, caption, _png(fig))


def importance(report: Report) -> Plot | None:
    """Parameter importances as horizontal bars, the most important on top."""
    if not report.importances:
        return None
    names = list(report.importances)[::-1]
    values = [report.importances[n] for n in names]
    fig = _figure(height=1.2 + 0.45 * len(names))
    ax = fig.add_subplot()
    ax.barh(names, values, color="C0")
    for y, value in enumerate(values):
        ax.text(value, y, f" {value:.2f}", va="center", fontsize="small")
    ax.set_xlim(0, max(values) * 1.15 or 1)
    ax.set_xlabel("importance (fANOVA, sums to 1)")
    ax.set_title(f"parameter importance for {report.metric}")
    from sweeps.report.importance import METHOD

    return Plot("importance", "Parameter importance", f"{METHOD}.", _png(fig))


def expected_best_plot(report: Report) -> Plot | None:
    """Expected best score against the number of trials, with one standard deviation."""
    table = report.expected
    if table.empty:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(
        table["n"], table["mean"], color="C0", marker="o", markersize=3, label="expected best of n trials"
    )
    done = report.ranked.sort_values("trial")["value"]
    # The best of n draws never leaves the range of the scores, so neither does the band.
    low, high = (
        (table["mean"] - table["std"]).clip(done.min()),
        (table["mean"] + table["std"]).clip(None, done.max()),
    )
    ax.fill_between(table["n"], low, high, color="C0", alpha=0.2, label="± 1 std (within the scores' range)")
    observed = (done.cummax() if report.maximize else done.cummin()).to_numpy()
    ax.step(
        range(1, len(observed) + 1),
        observed,
        where="post",
        color="C3",
        linewidth=1,
        linestyle="--",
        label="this sweep's best so far",
    )
    ax.set_xlabel("number of trials n")
    ax.set_ylabel(f"best {report.metric}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_title(f"expected best {report.metric} by budget (Dodge et al., 2019)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    caption = (
        "E[best of n] over the sweep's complete trials drawn with replacement; the band is one "
        "standard deviation, the dashed line what this sweep found in trial order."
    )
    return Plot("expected_best", "Expected best score by number of trials", caption, _png(fig))


def render_plots(report: Report) -> list[Plot]:
    """Every figure that has data to show, in report order."""
    colors = optimizer_colors(report)
    made = [
        objective_by_trial(report),
        learning_rate(report, colors),
        validation_curves(report, colors),
        other_params(report, colors),
        importance(report),
        expected_best_plot(report),
    ]
    return [plot for plot in made if plot is not None]
