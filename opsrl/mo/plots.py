"""Pareto-front figures saved to a file (matplotlib Agg canvas, no pyplot state).

Two objectives: a scatter with each group's front drawn as the staircase that bounds the
region it dominates (maximisation). Three or more: a grid of the pairwise 2-D projections
and a 3-D scatter of the first three objectives, in one figure.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from opsrl.mo.pareto import as_points, non_dominated

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_pareto_front"]

#: dots per inch of the saved images
DPI = 100


def plot_pareto_front(
    points: Any,
    *,
    path: str | os.PathLike[str],
    labels: Sequence[Any] | None = None,
    objective_names: Sequence[str] | None = None,
    reference_point: Any = None,
    title: str | None = None,
) -> Path:
    """Draw the return vectors ``points`` (n, m), maximised, and save the figure to ``path``.

    - ``labels``: one group name per point (e.g. the algorithm or run that found it); each
      group gets a colour and its own front. None: one group.
    - ``objective_names``: m axis names (default ``objective 0``, ...).
    - ``reference_point``: the hypervolume reference (m,); drawn as a marker and, with two
      objectives, closes the staircase down to it.
    - ``title``: the figure title.

    With m = 2 dominated points are drawn faded and each group's non-dominated points are
    joined by a step line. With m >= 3: one panel per pair of objectives (projections; a
    projection of a front is not a front, so no line) plus a 3-D scatter of objectives 0-2
    with the non-dominated points circled. The format follows the suffix of ``path``
    (``.png``, ``.pdf``, ``.svg``); parent folders are created. Returns the path.
    """
    values = as_points(points, "points")
    n, m = values.shape
    if n == 0:
        raise ValueError("points is empty: nothing to plot")
    if m < 2:
        raise ValueError(f"a Pareto front needs at least 2 objectives, got {m}")
    groups = _groups(labels, n)
    names = _objective_names(objective_names, m)
    reference = None
    if reference_point is not None:
        reference = as_points(reference_point, "reference_point", m)[0]

    if m == 2:
        figure = _figure(6.4, 4.8)
        ax = figure.add_subplot()
        _front_panel(ax, values, groups, names, reference)
        ax.legend(fontsize=8, loc="best")
    else:
        figure = _projection_figure(values, groups, names, reference)
    if title:
        figure.suptitle(title)

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=DPI)
    return target


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _groups(labels: Sequence[Any] | None, n: int) -> list[tuple[str, np.ndarray]]:
    """(name, row indices) per group, in order of first appearance."""
    if labels is None:
        return [("front", np.arange(n))]
    names = [str(label) for label in labels]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} entries for {n} points")
    order = list(dict.fromkeys(names))
    array = np.array(names, dtype=object)
    return [(name, np.flatnonzero(array == name)) for name in order]


def _objective_names(objective_names: Sequence[str] | None, m: int) -> list[str]:
    if objective_names is None:
        return [f"objective {j}" for j in range(m)]
    names = [str(name) for name in objective_names]
    if len(names) != m:
        raise ValueError(f"objective_names has {len(names)} entries for {m} objectives")
    return names


def _staircase(front: np.ndarray, reference: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """x, y of the boundary of the region a 2-D maximisation front dominates.

    Sorted by the first objective, the boundary drops at each point to the next point's
    second objective (``where="pre"`` steps); with a reference it starts on the reference's
    x and ends on its y.
    """
    front = front[np.argsort(front[:, 0], kind="stable")]
    x, y = front[:, 0], front[:, 1]
    if reference is not None:
        x = np.concatenate([[reference[0]], x, [x[-1]]])
        y = np.concatenate([[y[0]], y, [reference[1]]])
    return x, y


def _front_panel(
    ax: Axes,
    values: np.ndarray,
    groups: list[tuple[str, np.ndarray]],
    names: list[str],
    reference: np.ndarray | None,
) -> None:
    for index, (name, rows) in enumerate(groups):
        color = f"C{index % 10}"
        group = values[rows]
        mask = non_dominated(group)
        if (~mask).any():
            ax.scatter(*group[~mask].T, color=color, alpha=0.3, s=14)
        ax.scatter(*group[mask].T, color=color, s=26, label=name)
        x, y = _staircase(group[mask], reference)
        ax.step(x, y, where="pre", color=color, linewidth=1.2)
    if reference is not None:
        ax.scatter(*reference, marker="x", color="black", s=40, label="reference point")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.grid(alpha=0.3)


def _projection_figure(
    values: np.ndarray,
    groups: list[tuple[str, np.ndarray]],
    names: list[str],
    reference: np.ndarray | None,
) -> Figure:
    pairs = list(combinations(range(values.shape[1]), 2))
    columns = int(np.ceil(np.sqrt(len(pairs) + 1)))
    rows = int(np.ceil((len(pairs) + 1) / columns))
    figure = _figure(3.6 * columns, 3.2 * rows)
    grid = figure.add_gridspec(rows, columns)

    ax3d = figure.add_subplot(grid[0, 0], projection="3d")
    for index, (name, group_rows) in enumerate(groups):
        group = values[group_rows]
        ax3d.scatter(*group[:, :3].T, color=f"C{index % 10}", s=14, label=name)
    front = values[non_dominated(values)]
    ax3d.scatter(*front[:, :3].T, facecolors="none", edgecolors="black", s=60, label="front")
    if reference is not None:
        ax3d.scatter(*reference[:3], marker="x", color="black", s=40, label="reference point")
    ax3d.set_xlabel(names[0], fontsize=8)
    ax3d.set_ylabel(names[1], fontsize=8)
    ax3d.set_zlabel(names[2], fontsize=8)
    ax3d.legend(fontsize=7, loc="upper left")

    for panel, (first, second) in enumerate(pairs, start=1):
        ax = figure.add_subplot(grid[panel // columns, panel % columns])
        for index, (_, group_rows) in enumerate(groups):
            group = values[group_rows]
            ax.scatter(group[:, first], group[:, second], color=f"C{index % 10}", s=10)
        if reference is not None:
            ax.scatter(reference[first], reference[second], marker="x", color="black", s=30)
        ax.set_xlabel(names[first], fontsize=8)
        ax.set_ylabel(names[second], fontsize=8)
        ax.grid(alpha=0.3)
    return figure
