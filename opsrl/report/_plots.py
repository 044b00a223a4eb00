"""Figures of the report, as matplotlib ``Figure`` objects (Agg canvas, no pyplot state).

Every function takes plain data (DataFrames, dicts) and returns the Figure, so that tests
can check what is drawn (line data, bar extents, image arrays) and the report can render it
with :func:`png_bytes`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from opsrl.report._stats import pareto_mask

__all__ = [
    "png_bytes",
    "plot_aggregate",
    "plot_gantt",
    "plot_kpis_over_day",
    "plot_learning_curves",
    "plot_lot_sizing_trace",
    "plot_pareto_2d",
    "plot_pareto_3d",
    "plot_performance_profile",
    "plot_portfolio_values",
    "plot_portfolio_weights",
    "policy_colors",
]

#: dots per inch of the report's PNGs
DPI = 100


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, ``figsize * dpi`` pixels (no tight cropping, so the size is
    known in advance)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """One colour per policy, stable across the report's figures."""
    palette = [f"C{i}" for i in range(10)]
    return {policy: palette[i % len(palette)] for i, policy in enumerate(policies)}


# --------------------------------------------------------------------------------------------
# Learning curves and aggregates
# --------------------------------------------------------------------------------------------


def plot_learning_curves(
    bands: Mapping[str, pd.DataFrame],
    references: Sequence[tuple[str, float]] = (),
    bound: float | None = None,
    title: str = "",
    ylabel: str = "return",
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """One line per agent (the mean over seeds) with its bootstrap band, and horizontal lines
    for the baselines' mean returns (``references``, dashed) and the OR bound (solid black).

    ``bands`` maps an agent to a frame with ``step, mean, low, high`` (see
    :func:`opsrl.report.curve_bands`).
    """
    colors = dict(colors or {})
    figure = _figure(7.0, 4.2)
    ax = figure.add_subplot()
    for agent, band in bands.items():
        color = colors.get(agent)
        line = ax.plot(band["step"], band["mean"], label=agent, color=color, linewidth=1.8)[0]
        defined = band["low"].notna().to_numpy()
        if defined.any():
            ax.fill_between(
                band["step"],
                band["low"],
                band["high"],
                where=defined,
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    for label, value in references:
        ax.axhline(
            value,
            linestyle="--",
            linewidth=1.2,
            color=colors.get(label, "0.4"),
            label=f"{label} (baseline)",
        )
    if bound is not None and np.isfinite(bound):
        ax.axhline(bound, color="black", linewidth=1.2, label="OR bound")
    ax.set_title(title)
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def plot_aggregate(aggregate: pd.DataFrame, colors: Mapping[str, str] | None = None) -> Figure:
    """IQM of the normalised scores per policy (dot) with its 95% CI (bar), best on top."""
    colors = dict(colors or {})
    rows = aggregate.sort_values("iqm").reset_index(drop=True)
    figure = _figure(7.0, 0.9 + 0.45 * max(len(rows), 1))
    ax = figure.add_subplot()
    for y, row in rows.iterrows():
        color = colors.get(row["agent"], "C0")
        if np.isfinite(row["ci_low"]):
            ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, linewidth=6, alpha=0.35)
        ax.plot([row["iqm"]], [y], "o", color=color)
    ax.set_yticks(range(len(rows)), [str(a) for a in rows["agent"]])
    ax.axvline(0.0, color="0.5", linewidth=0.8, linestyle=":")
    ax.axvline(1.0, color="0.5", linewidth=0.8, linestyle=":")
    ax.set_xlabel("IQM of normalised score (0 = random/worst, 1 = OR bound/best baseline)")
    ax.grid(axis="x", alpha=0.3)
    return figure


def plot_performance_profile(
    profile: pd.DataFrame, colors: Mapping[str, str] | None = None
) -> Figure:
    """Fraction of runs with a normalised score above tau, one line per policy."""
    colors = dict(colors or {})
    figure = _figure(7.0, 4.0)
    ax = figure.add_subplot()
    for agent in profile.columns:
        ax.plot(profile.index, profile[agent], label=agent, color=colors.get(agent))
    ax.set_xlabel("normalised score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if len(profile.columns):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


# --------------------------------------------------------------------------------------------
# Job shop
# --------------------------------------------------------------------------------------------

GANTT_COLUMNS = ("kind", "job", "op", "machine", "start", "end", "leave", "paused", "swap")


def plot_gantt(schedule: pd.DataFrame, title: str = "") -> Figure:
    """Gantt chart of a job shop schedule: one row per machine, a bar per operation coloured
    by job over ``[start, end)``, its blocked time ``[end, leave)`` hatched in the job's
    colour, machine down windows in grey, jobs that left by a swap marked, and the makespan
    (the last ``leave``) as a vertical line.

    ``schedule`` has the columns ``kind`` ("op" or "down"), ``job`` (-1 for down), ``op``,
    ``machine``, ``start``, ``end``, ``leave``, ``paused``, ``swap``. The bars are in
    ``ax.containers`` labelled ``processing``, ``blocked`` and ``down``.
    """
    missing = [c for c in GANTT_COLUMNS if c not in schedule.columns]
    if missing:
        raise ValueError(f"schedule lacks the columns {missing}")
    ops = schedule[schedule["kind"] == "op"]
    down = schedule[schedule["kind"] == "down"]
    n_machines = int(schedule["machine"].max()) + 1 if len(schedule) else 0
    n_jobs = int(ops["job"].max()) + 1 if len(ops) else 0
    palette = "tab20" if n_jobs > 10 else "tab10"
    from matplotlib import colormaps

    cmap = colormaps[palette]
    job_colors = [cmap(j % cmap.N) for j in ops["job"].astype(int)]
    makespan = float(ops[["end", "leave"]].max().max()) if len(ops) else 0.0
    if makespan > 0:
        # Downtime is sampled ahead of the schedule; windows after the makespan do not matter.
        down = down[down["start"] < makespan]

    figure = _figure(10.0, 1.4 + 0.42 * max(n_machines, 1))
    ax = figure.add_subplot()
    height = 0.7
    ax.barh(
        ops["machine"],
        ops["end"] - ops["start"],
        left=ops["start"],
        height=height,
        color=job_colors,
        edgecolor="black",
        linewidth=0.4,
        label="processing",
    )
    blocked = ops[ops["leave"] > ops["end"]]
    ax.barh(
        blocked["machine"],
        blocked["leave"] - blocked["end"],
        left=blocked["end"],
        height=height,
        color="white",
        edgecolor=[cmap(j % cmap.N) for j in blocked["job"].astype(int)],
        hatch="////",
        linewidth=0.8,
        label="blocked",
    )
    ax.barh(
        down["machine"],
        down["end"] - down["start"],
        left=down["start"],
        height=height * 0.5,
        color="0.55",
        alpha=0.8,
        hatch="xx",
        edgecolor="0.3",
        linewidth=0.0,
        label="down",
    )
    if makespan > 0 and n_jobs <= 30:
        for (_, row), color in zip(ops.iterrows(), job_colors, strict=True):
            if row["end"] - row["start"] >= makespan / 35:
                ax.text(
                    (row["start"] + row["end"]) / 2,
                    row["machine"],
                    str(int(row["job"])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if sum(color[:3]) > 1.4 else "white",
                )
    swapped = ops[ops["swap"].astype(bool)]
    if len(swapped):
        ax.plot(
            swapped["leave"],
            swapped["machine"] - height / 2,
            "v",
            color="black",
            markersize=5,
            label="left by swap",
        )
    if makespan > 0:
        ax.axvline(makespan, color="red", linewidth=1.2, label=f"makespan {makespan:g}")
        ax.set_xlim(0, makespan * 1.03)
    ax.set_yticks(range(n_machines), [f"M{m}" for m in range(n_machines)])
    ax.invert_yaxis()
    ax.set_xlabel("time")
    ax.set_title(title)
    handles = [
        Patch(facecolor="C0", edgecolor="black", label="processing (colour = job)"),
        Patch(facecolor="white", edgecolor="C0", hatch="////", label="blocked"),
        Patch(facecolor="0.55", hatch="xx", label="machine down"),
    ]
    lines = [h for h in ax.get_lines() if not h.get_label().startswith("_")]
    ax.legend(handles=handles + lines, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


# --------------------------------------------------------------------------------------------
# Lot sizing
# --------------------------------------------------------------------------------------------


def _numbered_columns(trace: pd.DataFrame, prefix: str) -> list[str]:
    columns = [c for c in trace.columns if c.startswith(f"{prefix}/")]
    return sorted(columns, key=lambda c: int(c.split("/", 1)[1]))


def plot_lot_sizing_trace(trace: pd.DataFrame, title: str = "") -> Figure:
    """Three panels over the periods of one lot-sizing episode: inventory of every item,
    the item each machine runs (a machine x period image, 0 = idle, dots = changeovers), and
    the period's setup, holding and lost-sales costs (stacked bars).

    ``trace`` is the env's ``episode_trace()``: ``period``, ``inventory/i``, ``machine/m``,
    ``changeover/m``, ``setup_cost``, ``holding_cost``, ``lost_sales_cost``.
    """
    from matplotlib import colormaps

    periods = trace["period"].to_numpy()
    inventory = _numbered_columns(trace, "inventory")
    machines = _numbered_columns(trace, "machine")
    n_items = len(inventory)
    figure = _figure(10.0, 8.0)
    ax_inv, ax_setup, ax_cost = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.2 + 0.15 * len(machines), 2]}
    )
    item_cmap = colormaps["tab20"] if n_items > 10 else colormaps["tab10"]
    for i, column in enumerate(inventory):
        ax_inv.plot(
            periods,
            trace[column],
            color=item_cmap(i % item_cmap.N),
            linewidth=1.0,
            label=f"item {column.split('/')[1]}",
        )
    ax_inv.set_ylabel("inventory (units)")
    ax_inv.set_title(title)
    ax_inv.grid(alpha=0.3)
    if 0 < n_items <= 12:
        ax_inv.legend(fontsize=7, ncol=min(n_items, 6), loc="upper right")

    runs = trace[machines].to_numpy(dtype=float).T  # (machines, periods)
    shown = np.where(runs > 0, runs, np.nan)  # idle periods stay blank
    # The same colour for an item in the inventory lines and in the setup image.
    palette = ListedColormap([item_cmap(i % item_cmap.N) for i in range(max(n_items, 1))])
    step = periods[1] - periods[0] if len(periods) > 1 else 1
    image = ax_setup.imshow(
        shown,
        aspect="auto",
        interpolation="nearest",
        cmap=palette,
        vmin=0.5,
        vmax=max(n_items, 1) + 0.5,
        extent=(
            periods[0] - step / 2 if len(periods) else 0,
            periods[-1] + step / 2 if len(periods) else 1,
            len(machines) - 0.5,
            -0.5,
        ),
    )
    changeovers = _numbered_columns(trace, "changeover")
    if changeovers:
        flags = trace[changeovers].to_numpy().T.astype(bool)
        machine_index, period_index = np.nonzero(flags)
        ax_setup.plot(
            periods[period_index],
            machine_index,
            "o",
            color="black",
            markeredgecolor="white",
            markersize=4,
        )
    ax_setup.set_yticks(range(len(machines)), [f"M{c.split('/')[1]}" for c in machines])
    ax_setup.set_ylabel("item run\n(blank = idle)")
    colorbar = figure.colorbar(image, ax=ax_setup, label="item", pad=0.01)
    colorbar.locator = MaxNLocator(integer=True)
    colorbar.update_ticks()

    setup = trace["setup_cost"].to_numpy()
    holding = trace["holding_cost"].to_numpy()
    lost = trace["lost_sales_cost"].to_numpy()
    ax_cost.bar(periods, setup, width=0.9, label="setup", color="0.3")
    ax_cost.bar(periods, holding, width=0.9, bottom=setup, label="holding", color="0.65")
    ax_cost.bar(
        periods, lost, width=0.9, bottom=setup + holding, label="lost sales", color="firebrick"
    )
    ax_cost.set_ylabel("cost per period")
    ax_cost.set_xlabel("period")
    ax_cost.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_cost.legend(fontsize=8, ncol=3, loc="upper right")
    ax_cost.grid(axis="y", alpha=0.3)
    return figure


# --------------------------------------------------------------------------------------------
# Portfolio
# --------------------------------------------------------------------------------------------


def _dates(trace: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(trace["date"]) if "date" in trace else pd.Series(range(len(trace)))


def plot_portfolio_values(traces: Mapping[str, pd.DataFrame], title: str = "") -> Figure:
    """Portfolio value over the evaluation period, one line per policy (same market path)."""
    figure = _figure(9.0, 4.2)
    ax = figure.add_subplot()
    for label, trace in traces.items():
        ax.plot(_dates(trace), trace["portfolio_value"], label=label, linewidth=1.4)
    ax.set_ylabel("portfolio value")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if traces:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.autofmt_xdate()
    return figure


def plot_portfolio_weights(trace: pd.DataFrame, title: str = "", largest: int = 10) -> Figure:
    """Portfolio weights over time (stacked), the ``largest`` assets by mean weight shown
    apart and the rest summed into "other"; below, the cumulative transaction cost, grant
    and tax."""
    weights = trace[[c for c in trace.columns if c.startswith("weight/")]]
    order = weights.mean().sort_values(ascending=False).index
    shown = list(order[:largest])
    stacked = [weights[c].to_numpy() for c in shown]
    labels = [c.split("/", 1)[1] for c in shown]
    rest = list(order[largest:])
    if rest:
        stacked.append(weights[rest].sum(axis=1).to_numpy())
        labels.append(f"other ({len(rest)})")
    dates = _dates(trace)
    figure = _figure(9.0, 6.0)
    ax_weights, ax_flows = figure.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    colors = [f"C{i}" for i in range(len(shown))] + (["0.75"] if rest else [])
    if stacked:
        ax_weights.stackplot(dates, *stacked, labels=labels, colors=colors, alpha=0.9)
    ax_weights.set_ylim(0, 1)
    ax_weights.set_ylabel("weight")
    ax_weights.set_title(title)
    ax_weights.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for column, color in (("transaction_cost", "C3"), ("grant", "C2"), ("tax", "C1")):
        if column in trace:
            label = column.replace("_", " ")
            ax_flows.plot(dates, trace[column].cumsum(), label=label, color=color)
    ax_flows.set_ylabel("cumulative")
    ax_flows.grid(alpha=0.3)
    ax_flows.legend(fontsize=8, loc="upper left")
    figure.autofmt_xdate()
    return figure


# --------------------------------------------------------------------------------------------
# KPIs over the day (UAM, ride sharing) and Pareto fronts
# --------------------------------------------------------------------------------------------

TIME_COLUMNS = ("time", "hour", "minute", "t", "step", "period")


def plot_kpis_over_day(
    trace: pd.DataFrame,
    time_column: str | None = None,
    kpis: Sequence[str] | None = None,
    title: str = "",
) -> Figure:
    """One small panel per KPI column against the time of day.

    ``time_column`` defaults to the first of ``time, hour, minute, t, step, period`` in the
    trace; ``kpis`` to every other numeric column.
    """
    if time_column is None:
        time_column = next((c for c in TIME_COLUMNS if c in trace.columns), None)
        if time_column is None:
            raise ValueError(f"trace has no time column (one of {', '.join(TIME_COLUMNS)})")
    if kpis is None:
        kpis = [
            c for c in trace.columns if c != time_column and pd.api.types.is_numeric_dtype(trace[c])
        ]
    if not kpis:
        raise ValueError("trace has no KPI column to plot")
    columns = min(3, len(kpis))
    rows = int(np.ceil(len(kpis) / columns))
    figure = _figure(3.6 * columns, 2.6 * rows)
    axes = np.atleast_1d(figure.subplots(rows, columns, sharex=True, squeeze=False)).ravel()
    for ax, kpi in zip(axes, kpis, strict=False):
        ax.plot(trace[time_column], trace[kpi], linewidth=1.2)
        ax.set_title(kpi.replace("_", " "), fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xlabel(time_column)
    for ax in axes[len(kpis) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def _front_order(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    front = np.flatnonzero(mask)
    return front[np.argsort(points[front, 0], kind="stable")]


def plot_pareto_2d(
    points: pd.DataFrame,
    objectives: Sequence[str],
    maximize: Sequence[bool] | None = None,
    label_column: str = "agent",
    title: str = "",
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Points of two objectives (one colour per policy) and their Pareto front, the
    non-dominated points joined in order of the first objective (the line labelled
    ``Pareto front``)."""
    if len(objectives) != 2:
        raise ValueError(f"plot_pareto_2d takes two objectives, got {list(objectives)}")
    figure = _figure(6.0, 4.8)
    ax = figure.add_subplot()
    _pareto_panel(ax, points, list(objectives), maximize, label_column, colors or {}, True)
    ax.set_title(title)
    return figure


def _pareto_panel(ax, points, objectives, maximize, label_column, colors, legend) -> None:
    values = points[objectives].to_numpy(dtype=float)
    mask = pareto_mask(values, maximize)
    for label, group in points.groupby(label_column, sort=False):
        ax.scatter(
            group[objectives[0]],
            group[objectives[1]],
            label=str(label),
            color=colors.get(str(label)),
            s=22,
            alpha=0.8,
        )
    order = _front_order(values, mask)
    ax.plot(
        values[order, 0],
        values[order, 1],
        color="black",
        linewidth=1.2,
        marker="o",
        markerfacecolor="none",
        markersize=9,
        label="Pareto front",
    )
    ax.set_xlabel(objectives[0])
    ax.set_ylabel(objectives[1])
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def plot_pareto_3d(
    points: pd.DataFrame,
    objectives: Sequence[str],
    maximize: Sequence[bool] | None = None,
    label_column: str = "agent",
    title: str = "",
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """Three objectives: a 3-D scatter with the points of the 3-objective Pareto front
    circled, and the three 2-D projections, each with the front of its two objectives."""
    if len(objectives) != 3:
        raise ValueError(f"plot_pareto_3d takes three objectives, got {list(objectives)}")
    colors = dict(colors or {})
    objectives = list(objectives)
    maximize = list(maximize) if maximize is not None else [True] * 3
    values = points[objectives].to_numpy(dtype=float)
    mask = pareto_mask(values, maximize)
    figure = _figure(15.0, 4.4)
    grid = figure.add_gridspec(1, 4, width_ratios=[1.4, 1, 1, 1])
    ax3d = figure.add_subplot(grid[0, 0], projection="3d")
    for label, group in points.groupby(label_column, sort=False):
        ax3d.scatter(*(group[o] for o in objectives), label=str(label), color=colors.get(label))
    ax3d.scatter(
        *(values[mask, j] for j in range(3)),
        facecolors="none",
        edgecolors="black",
        s=80,
        label="Pareto front",
    )
    ax3d.set_box_aspect(None, zoom=0.85)
    ax3d.set_xlabel(objectives[0], fontsize=8)
    ax3d.set_ylabel(objectives[1], fontsize=8)
    ax3d.set_zlabel(objectives[2], fontsize=8)
    ax3d.legend(fontsize=7, loc="upper left")
    for panel, (a, b) in enumerate(combinations(range(3), 2), start=2):
        ax = figure.add_subplot(grid[0, panel - 1])
        _pareto_panel(
            ax,
            points,
            [objectives[a], objectives[b]],
            [maximize[a], maximize[b]],
            label_column,
            colors,
            legend=False,
        )
    if title:
        figure.suptitle(title)
    return figure
