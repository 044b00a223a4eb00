"""Quality indicators of Pareto-front approximations: hypervolume, expected utility, sparsity.

All fronts are numpy arrays ``(n, m)`` of return vectors to be **maximised**, as in
MO-Gymnasium and morl-baselines. The definitions follow C-MORL (Liu et al., "C-MORL:
Multi-objective reinforcement learning through efficient discovery of Pareto front", ICLR
2025; ``morl/morl.py``), which are those of morl-baselines' ``performance_indicators``
(morl-baselines itself is not a dependency: it pulls in wandb and more). The hypervolume is
pymoo's (the ``mo`` extra); EU and SP are written here from their formulas.

- **HV** (higher is better): the volume dominated by the front and dominating the reference
  point.
- **EU** (higher is better): the mean, over a grid of preference weights, of the best linear
  utility ``w . p`` a point of the front achieves.
- **SP** (lower is better): PGMORL's sparsity, the mean squared gap between neighbouring
  points per objective. morl-baselines' documentation advises caution with it: a front with
  fewer, well-spread points, or a single point (SP = 0), can look better than a richer one;
  read it next to HV, never alone.

Reference points are in :data:`REFERENCE_POINTS` and :func:`reference_point`.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from opsrl.mo.pareto import as_points, non_dominated

__all__ = [
    "REFERENCE_POINTS",
    "equally_spaced_weights",
    "expected_utility",
    "hypervolume",
    "reference_point",
    "sparsity",
]

#: Reference points (worst acceptable return vectors) for the hypervolume, per env id, at the
#: env's default arguments. A front point counts only if it beats the reference point in every
#: objective.
#:
#: - MO-Gymnasium MuJoCo: (-100, -100) for ``mo-hopper-2obj-v5`` and ``mo-halfcheetah-v5``
#:   (C-MORL's table and morl-baselines issue #43, set for their -2d-v4 predecessors);
#: - ``minecart-v0``: (-1, -1, -200) (same sources);
#: - ``deep-sea-treasure-v0``: (0, -25): no treasure, and more time steps than the farthest
#:   treasure (19) needs (morl-baselines' Pareto Q-learning example);
#: - opsrl MO envs: the value of their ``reference_point()`` method at default arguments (a
#:   documented worst case of that env, see each class; :func:`reference_point` of an env
#:   instance uses its own arguments). The numbers are rounded outwards to whole units (a test
#:   checks them against the method).
REFERENCE_POINTS: dict[str, tuple[float, ...]] = {
    "mo-hopper-2obj-v5": (-100.0, -100.0),
    "mo-halfcheetah-v5": (-100.0, -100.0),
    "minecart-v0": (-1.0, -1.0, -200.0),
    "deep-sea-treasure-v0": (0.0, -25.0),
    "opsrl/mo-lot-sizing-v0": (-16000.0, -5200.0),
    "opsrl/mo-esg-portfolio-v0": (-85.0, 0.0),
    "opsrl/mo-job-shop-v0": (-591.0, -3546.0),
    "opsrl/mo-uam-fleet-v0": (0.0, -1.0),
}


def reference_point(env: Any) -> np.ndarray:
    """The hypervolume reference point of ``env``: an env id (from :data:`REFERENCE_POINTS`)
    or an env instance (its own ``reference_point()`` when it has one, which follows its
    arguments; else the entry of its registered id)."""
    if isinstance(env, str):
        if env not in REFERENCE_POINTS:
            known = ", ".join(REFERENCE_POINTS)
            raise ValueError(f"no reference point is recorded for env '{env}'; known: {known}")
        return np.array(REFERENCE_POINTS[env], dtype=np.float64)
    unwrapped = getattr(env, "unwrapped", env)
    method = getattr(unwrapped, "reference_point", None)
    if callable(method):
        return np.asarray(method(), dtype=np.float64)
    spec = getattr(env, "spec", None) or getattr(unwrapped, "spec", None)
    if spec is None:
        raise ValueError(f"{type(unwrapped).__name__} has no reference_point() and no env id")
    return reference_point(spec.id)


def hypervolume(front: Any, ref_point: Any) -> float:
    """Hypervolume of the maximisation ``front`` (n, m) with respect to ``ref_point`` (m,).

    Computed by pymoo's exact ``HV`` indicator on the negated front and reference point
    (pymoo minimises). Points that do not beat ``ref_point`` in every objective add nothing
    and are dropped; dominated points do not change the value. An empty front has HV 0.
    """
    reference = as_points(ref_point, "ref_point")
    if reference.shape[0] != 1:
        raise ValueError(f"ref_point must be one vector, got shape {reference.shape}")
    reference = reference[0]
    points = as_points(front, "front", reference.size)
    points = points[np.all(points > reference, axis=1)]
    if points.shape[0] == 0:
        return 0.0
    try:
        from pymoo.indicators.hv import HV
    except ImportError as error:  # pymoo comes with the `mo` extra
        raise ImportError(
            "hypervolume needs pymoo; install opsrl with the `mo` extra (pip install 'opsrl[mo]')"
        ) from error
    points = points[non_dominated(points)]
    return float(HV(ref_point=-reference)(-points))


def expected_utility(front: Any, weights: Any) -> float:
    """Expected linear utility: ``mean_{w in weights} max_{p in front} w . p``.

    ``weights`` is (k, m) (or one vector (m,)), e.g. from :func:`equally_spaced_weights`;
    C-MORL and morl-baselines use this definition (a grid of step 0.01 for two objectives,
    0.1 or 0.5 for more). Dominated points never change it.
    """
    points = as_points(front, "front")
    if points.shape[0] == 0:
        raise ValueError("front is empty: expected utility needs at least one point")
    grid = as_points(weights, "weights", points.shape[1])
    if grid.shape[0] == 0:
        raise ValueError("weights is empty")
    return float((grid @ points.T).max(axis=1).mean())


def sparsity(front: Any) -> float:
    """PGMORL's sparsity of the non-dominated points of ``front`` (lower is better).

    With P the non-dominated set (duplicates once) and ``S_j`` objective j of P sorted,
    ``SP = 1/(|P| - 1) * sum_j sum_i (S_j[i] - S_j[i + 1])^2``; 0 when |P| < 2. See the module
    docstring for why it should not be read alone.
    """
    points = as_points(front, "front")
    points = points[non_dominated(points)]
    if points.shape[0] < 2:
        return 0.0
    gaps = np.diff(np.sort(points, axis=0), axis=0)
    return float((gaps**2).sum() / (points.shape[0] - 1))


def equally_spaced_weights(n_objectives: int, step: float) -> np.ndarray:
    """Every weight vector on the simplex grid of spacing ``step``, (k, n_objectives).

    The weights are ``w_i in {0, step, 2 step, ..., 1}`` with ``sum_i w_i = 1`` (C-MORL's
    evaluation grid; ``1 / step`` must be a whole number), k = C(1/step + m - 1, m - 1) of
    them, ordered lexicographically by their integer numerators (``w_0`` increasing first).
    """
    if (
        isinstance(n_objectives, bool)
        or not isinstance(n_objectives, int | np.integer)
        or n_objectives < 1
    ):
        raise ValueError(f"n_objectives must be a positive integer, got {n_objectives!r}")
    if (
        isinstance(step, bool)
        or not isinstance(step, int | float | np.integer | np.floating)
        or not 0 < step <= 1
    ):
        raise ValueError(f"step must be a number in (0, 1], got {step!r}")
    divisions = round(1.0 / step)
    if abs(divisions * step - 1.0) > 1e-9:
        raise ValueError(f"step must divide 1 into whole parts (1 / step = {1 / step:g})")
    m = int(n_objectives)
    # stars and bars: m - 1 bars among divisions + m - 1 slots give the m numerators
    rows = []
    for bars in itertools.combinations(range(divisions + m - 1), m - 1):
        edges = (-1, *bars, divisions + m - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(m)])
    return np.array(rows, dtype=np.float64) / divisions
