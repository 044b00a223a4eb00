"""Multi-objective RL tools: Pareto dominance, front quality indicators and front plots.

Everything works on maximisation fronts, numpy arrays ``(n, m)`` of return vectors.

- :mod:`~opsrl.mo.pareto`: :func:`non_dominated`, :func:`pareto_front`,
  :func:`crowding_distance`, :func:`select_by_crowding`, :class:`ParetoArchive`;
- :mod:`~opsrl.mo.metrics`: :func:`hypervolume` (pymoo, the ``mo`` extra),
  :func:`expected_utility`, :func:`sparsity`, :func:`equally_spaced_weights`, reference
  points (:data:`REFERENCE_POINTS`, :func:`reference_point`);
- :mod:`~opsrl.mo.plots`: :func:`plot_pareto_front`.

The multi-objective env variants (``opsrl/mo-*-v0``) are in :mod:`opsrl.envs.mo`.
"""

from __future__ import annotations

from typing import Any

from opsrl.mo.metrics import (
    REFERENCE_POINTS,
    equally_spaced_weights,
    expected_utility,
    hypervolume,
    reference_point,
    sparsity,
)
from opsrl.mo.pareto import (
    ParetoArchive,
    crowding_distance,
    dominates,
    non_dominated,
    pareto_front,
    select_by_crowding,
)

__all__ = [
    "REFERENCE_POINTS",
    "ParetoArchive",
    "crowding_distance",
    "dominates",
    "equally_spaced_weights",
    "expected_utility",
    "hypervolume",
    "non_dominated",
    "pareto_front",
    "plot_pareto_front",
    "reference_point",
    "select_by_crowding",
    "sparsity",
]


def __getattr__(name: str) -> Any:
    # matplotlib takes a second to import; agents that only need the Pareto tools skip it
    if name == "plot_pareto_front":
        from opsrl.mo.plots import plot_pareto_front

        return plot_pareto_front
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
