"""Pareto dominance on maximisation fronts: non-dominated filtering, crowding distance, archive.

Every function takes a numpy array of shape ``(n, m)``: n return vectors of m objectives,
all to be **maximised** (negate a cost before passing it). ``p`` dominates ``q`` when
``p >= q`` in every objective and ``p > q`` in at least one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ParetoArchive",
    "as_points",
    "crowding_distance",
    "dominates",
    "non_dominated",
    "pareto_front",
    "select_by_crowding",
]

#: rows compared at once in :func:`non_dominated` (bounds memory to ~block x n x m booleans)
_BLOCK = 256


def as_points(points: Any, name: str = "points", n_objectives: int | None = None) -> np.ndarray:
    """``points`` as a finite float64 array (n, m); a single vector (m,) becomes (1, m).

    Raises a ValueError naming ``name`` for other shapes, non-finite values or a wrong
    number of objectives.
    """
    try:
        array = np.array(points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from None
    if array.ndim == 1:
        array = array[None, :] if array.size else array.reshape(0, n_objectives or 0)
    if array.ndim != 2 or (array.shape[0] and array.shape[1] == 0):
        raise ValueError(f"{name} must be an (n, m) array of return vectors, got {array.shape}")
    if n_objectives is not None and array.shape[1] != n_objectives:
        raise ValueError(f"{name} must have {n_objectives} objectives, got {array.shape[1]}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN or infinity)")
    return array


def dominates(p: Any, q: Any) -> bool:
    """Whether ``p`` Pareto-dominates ``q`` (maximisation)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return bool(np.all(p >= q) and np.any(p > q))


def non_dominated(points: Any) -> np.ndarray:
    """Boolean mask (n,) of the non-dominated rows of ``points`` (n, m), maximised.

    Of several equal rows only the first is marked, so ``points[mask]`` is the Pareto front
    as a set (metrics such as sparsity must not count a point twice).
    """
    values = as_points(points)
    n = values.shape[0]
    mask = np.ones(n, dtype=bool)
    index = np.arange(n)
    for start in range(0, n, _BLOCK):
        block = values[start : start + _BLOCK, None, :]  # (b, 1, m) against all (n, m)
        at_least = (values[None, :, :] >= block).all(axis=2)
        better = (values[None, :, :] > block).any(axis=2)
        equal = at_least & ~better
        earlier = index[None, :] < index[start : start + _BLOCK, None]
        mask[start : start + _BLOCK] = ~((at_least & better) | (equal & earlier)).any(axis=1)
    return mask


def pareto_front(points: Any) -> np.ndarray:
    """The non-dominated rows of ``points`` (duplicates once), sorted by the first objective
    (then the next ones) ascending."""
    values = as_points(points)
    front = values[non_dominated(values)]
    return front[np.lexsort(front.T[::-1])] if front.size else front


def crowding_distance(points: Any) -> np.ndarray:
    """NSGA-II crowding distance (n,) of each row of ``points`` (n, m).

    Per objective the rows are sorted; the two extremes get infinity and an interior row
    ``(f[i+1] - f[i-1]) / (f_max - f_min)`` (an objective with no spread adds 0); the
    distances of the objectives are summed. With two rows or fewer every distance is
    infinite. This is the measure C-MORL (Liu et al., ICLR 2025, ``morl/ep.py``) uses to
    pick which Pareto policies to extend.
    """
    values = as_points(points)
    n, m = values.shape
    distance = np.zeros(n)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for objective in range(m):
        # stable sort: ties keep their index order, so the result is deterministic
        order = np.argsort(values[:, objective], kind="stable")
        sorted_values = values[order, objective]
        spread = sorted_values[-1] - sorted_values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if spread > 0:
            distance[order[1:-1]] += (sorted_values[2:] - sorted_values[:-2]) / spread
    return distance


def select_by_crowding(
    points: Any, n_select: int, exclude: Iterable[Sequence[float]] | None = None
) -> np.ndarray:
    """Indices of up to ``n_select`` rows of ``points`` with the largest crowding distance.

    Crowding distance is computed over all rows; extremes (infinite) come first, ties are
    broken by row order. Rows equal to a vector in ``exclude`` (e.g. ones chosen in an
    earlier round, as C-MORL skips them) are skipped.
    """
    values = as_points(points)
    if isinstance(n_select, bool) or not isinstance(n_select, int | np.integer) or n_select < 0:
        raise ValueError(f"n_select must be a non-negative integer, got {n_select!r}")
    if values.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-crowding_distance(values), kind="stable")
    if exclude is not None:
        excluded = as_points(list(exclude), "exclude", values.shape[1])
        if excluded.shape[0]:
            seen = (values[order, None, :] == excluded[None, :, :]).all(axis=2).any(axis=1)
            order = order[~seen]
    return order[:n_select].astype(np.int64)


class ParetoArchive:
    """A set of non-dominated return vectors (maximised), each with an optional item.

    ``add`` keeps a vector only if no stored vector dominates or equals it, and drops the
    stored vectors it dominates. With ``ref_point`` vectors below it in any objective are
    rejected (as C-MORL keeps only points at least as good as the reference). With
    ``max_size`` the archive, once over it, drops the vector of smallest crowding distance
    (never an extreme one while interior ones remain) until it fits.

    The items (policies, weights, checkpoints: anything) follow their vectors.
    """

    def __init__(
        self,
        n_objectives: int | None = None,
        max_size: int | None = None,
        ref_point: Any = None,
    ) -> None:
        if n_objectives is not None and (
            isinstance(n_objectives, bool)
            or not isinstance(n_objectives, int | np.integer)
            or n_objectives < 1
        ):
            raise ValueError(f"n_objectives must be a positive integer, got {n_objectives!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int | np.integer) or max_size < 1
        ):
            raise ValueError(f"max_size must be None or a positive integer, got {max_size!r}")
        self.max_size = None if max_size is None else int(max_size)
        self.ref_point: np.ndarray | None = None
        if ref_point is not None:
            self.ref_point = as_points(ref_point, "ref_point", n_objectives)[0]
            n_objectives = self.ref_point.size
        self.n_objectives = None if n_objectives is None else int(n_objectives)
        self._points: list[np.ndarray] = []
        self._items: list[Any] = []

    @property
    def points(self) -> np.ndarray:
        """The stored vectors, (k, m) float64 (a copy), in insertion order."""
        if not self._points:
            return np.zeros((0, self.n_objectives or 0))
        return np.array(self._points)

    @property
    def items(self) -> list[Any]:
        """The items of the stored vectors, in the same order (a new list)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._points)

    def add(self, point: Any, item: Any = None) -> bool:
        """Offer one vector; True if it was stored (it may be pruned by ``max_size``)."""
        vector = as_points(point, "point", self.n_objectives)
        if vector.shape[0] != 1:
            raise ValueError(f"point must be one return vector, got shape {vector.shape}")
        vector = vector[0]
        if self.n_objectives is None:
            self.n_objectives = vector.size
        if self.ref_point is not None and np.any(vector < self.ref_point):
            return False
        if any(np.all(stored >= vector) for stored in self._points):
            return False  # dominated by or equal to a stored vector
        kept = [not dominates(vector, stored) for stored in self._points]
        self._points = [p for p, keep in zip(self._points, kept, strict=True) if keep]
        self._items = [i for i, keep in zip(self._items, kept, strict=True) if keep]
        self._points.append(vector)
        self._items.append(item)
        self._prune()
        return any(p is vector for p in self._points)

    def update(self, points: Any, items: Sequence[Any] | None = None) -> np.ndarray:
        """Offer several vectors (n, m) with their items; returns which were stored."""
        values = as_points(points, "points", self.n_objectives)
        if items is not None and len(items) != values.shape[0]:
            raise ValueError(f"items has {len(items)} entries for {values.shape[0]} points")
        added = [
            self.add(vector, None if items is None else items[i]) for i, vector in enumerate(values)
        ]
        return np.array(added, dtype=bool)

    def _prune(self) -> None:
        while self.max_size is not None and len(self._points) > self.max_size:
            distance = crowding_distance(np.array(self._points))
            drop = int(np.argmin(distance))  # the most crowded; the first of equals
            del self._points[drop], self._items[drop]
