"""Monotone submodular set functions over the cells of a grid (plain numpy, no Gymnasium).

A ground set element is a cell index ``row * width + col``. Every function offers

- :meth:`SetFunction.value` -- F of an iterable of elements, computed from scratch (repeats are
  ignored: F is a function of the *set*);
- an incremental API for episodes: :meth:`SetFunction.state` returns an accumulator for the
  empty set, :meth:`SetFunction.gain` the marginal gain ``F(A + e) - F(A)`` of an element
  without changing it, and :meth:`SetFunction.add` adds the element and returns that gain.
  An episode of H steps thus costs H gain evaluations, not H evaluations of F from scratch.
  The accumulator's ``value`` holds F of what was added so far.

The functions are those of SubPO (Prajapat et al., "Submodular reinforcement learning",
ICLR 2024, arXiv 2307.13372): weighted coverage, item collection and Bayesian D-optimal
experiment design.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "DOptimalDesign",
    "ItemCollection",
    "SetFunction",
    "WeightedCoverage",
    "matern52",
]


def matern52(distance: np.ndarray | float, lengthscale: float) -> np.ndarray:
    """Matérn kernel with smoothness 5/2 and unit variance at the given distances.

    ``k(r) = (1 + sqrt(5) r / l + 5 r^2 / (3 l^2)) exp(-sqrt(5) r / l)``.
    """
    scaled = np.sqrt(5.0) * np.asarray(distance, dtype=np.float64) / lengthscale
    return (1.0 + scaled + scaled * scaled / 3.0) * np.exp(-scaled)


def _unique_elements(elements: Iterable[int], n_elements: int) -> np.ndarray:
    """The distinct elements of an iterable as an int array, range-checked."""
    array = np.unique(np.fromiter((int(e) for e in elements), dtype=np.int64))
    if array.size and (array[0] < 0 or array[-1] >= n_elements):
        raise ValueError(f"elements must lie in 0..{n_elements - 1}, got {array.tolist()}")
    return array


class SetFunction(ABC):
    """A monotone submodular set function on the elements ``0 .. n_elements - 1``.

    Subclasses implement :meth:`value`, :meth:`state` and :meth:`add`; :meth:`gain` and
    :meth:`singleton_values` have generic versions that subclasses may speed up.
    """

    #: size of the ground set
    n_elements: int

    @abstractmethod
    def value(self, elements: Iterable[int]) -> float:
        """F of the set of ``elements`` (repeats ignored), computed from scratch."""

    @abstractmethod
    def state(self) -> Any:
        """A fresh accumulator for the empty set; its ``value`` attribute is F so far."""

    @abstractmethod
    def add(self, acc: Any, element: int) -> float:
        """Add ``element`` to the accumulator in place and return its marginal gain."""

    def gain(self, acc: Any, element: int) -> float:
        """Marginal gain ``F(A + element) - F(A)`` of the accumulated set A (A unchanged)."""
        trial = self.copy_state(acc)
        return self.add(trial, element)

    def copy_state(self, acc: Any) -> Any:
        """An independent copy of an accumulator."""
        return acc.copy()

    def singleton_values(self) -> np.ndarray:
        """``F({e})`` for every element e, shape ``(n_elements,)`` (the modular reward)."""
        return np.array([self.value([e]) for e in range(self.n_elements)], dtype=np.float64)

    def _check_element(self, element: int) -> int:
        element = int(element)
        if not 0 <= element < self.n_elements:
            raise ValueError(f"element must lie in 0..{self.n_elements - 1}, got {element}")
        return element


# --------------------------------------------------------------------------- weighted coverage
class _CoverageState:
    """1.0 for each cell not covered yet, 0.0 once covered (float, so that a gain is one dot
    product), with an extra padding slot; and F."""

    __slots__ = ("uncovered", "value")

    def __init__(self, n_elements: int) -> None:
        self.uncovered = np.ones(n_elements + 1)
        self.value = 0.0

    @property
    def covered(self) -> np.ndarray:
        """Boolean map of the covered cells (without the padding slot)."""
        return self.uncovered[:-1] == 0.0

    def copy(self) -> _CoverageState:
        other = _CoverageState.__new__(_CoverageState)
        other.uncovered, other.value = self.uncovered.copy(), self.value
        return other


class WeightedCoverage(SetFunction):
    """Weighted coverage ``F(V) = sum of w(n) over the cells n covered by V``.

    A visited cell v covers ``D(v)``: v and every cell within Chebyshev distance ``radius``
    (``radius=1``: the 3x3 block around v, cut at the border; ``radius=0``: v alone, which makes
    F modular on sets). F is monotone and submodular for non-negative weights: a cell's weight
    counts once, however many visited cells cover it. SubPO's code covers v and its right,
    lower and lower-right neighbours only; the symmetric block here is the paper's "cell plus
    neighbours".

    Parameters
    ----------
    weights:
        ``(rows, cols)`` non-negative finite weights, one per cell.
    radius:
        Chebyshev radius of the footprint, a non-negative integer.
    """

    def __init__(self, weights: np.ndarray, radius: int = 1) -> None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.size == 0:
            raise ValueError(f"weights must be a non-empty 2-D array, got shape {weights.shape}")
        if not np.all(np.isfinite(weights)) or weights.min() < 0:
            raise ValueError("weights must be finite and non-negative (F must be monotone)")
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        self.weights = weights
        self.radius = int(radius)
        rows, cols = weights.shape
        self.n_elements = rows * cols
        # Footprints as a (n, (2r+1)^2) index table; cells cut off at the border point to the
        # padding slot n, whose weight is 0.
        offsets = np.arange(-self.radius, self.radius + 1)
        row = np.arange(rows)[:, None, None, None] + offsets[None, None, :, None]
        col = np.arange(cols)[None, :, None, None] + offsets[None, None, None, :]
        row, col = np.broadcast_arrays(row, col)
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        footprint = np.where(inside, row * cols + col, self.n_elements)
        self.footprints = footprint.reshape(self.n_elements, -1)
        self._padded_weights = np.append(weights.ravel(), 0.0)
        self._footprint_weights = self._padded_weights[self.footprints]

    def value(self, elements: Iterable[int]) -> float:
        cells = _unique_elements(elements, self.n_elements)
        covered = np.unique(self.footprints[cells])
        return float(self._padded_weights[covered].sum())

    def state(self) -> _CoverageState:
        return _CoverageState(self.n_elements)

    def gain(self, acc: _CoverageState, element: int) -> float:
        element = self._check_element(element)
        return float(self._footprint_weights[element] @ acc.uncovered[self.footprints[element]])

    def add(self, acc: _CoverageState, element: int) -> float:
        element = self._check_element(element)
        footprint = self.footprints[element]
        gain = float(self._footprint_weights[element] @ acc.uncovered[footprint])
        acc.uncovered[footprint] = 0.0
        acc.value += gain
        return gain

    def singleton_values(self) -> np.ndarray:
        return self._footprint_weights.sum(axis=1)


# --------------------------------------------------------------------------- item collection
class _ItemState:
    """Visited cells, items collected per type, and F."""

    __slots__ = ("visited", "collected", "value")

    def __init__(self, n_elements: int, n_types: int) -> None:
        self.visited = np.zeros(n_elements, dtype=bool)
        self.collected = np.zeros(n_types, dtype=np.int64)
        self.value = 0.0

    def copy(self) -> _ItemState:
        other = _ItemState.__new__(_ItemState)
        other.visited, other.collected = self.visited.copy(), self.collected.copy()
        other.value = self.value
        return other


class ItemCollection(SetFunction):
    """Item collection ``F(V) = sum_k min(|V ∩ G_k|, D_k)``.

    Cell c holds one item of type ``item_types[c]`` (``-1``: no item); G_k is the set of cells
    holding type k and ``D_k = quotas[k]`` the number of type-k items that are worth
    collecting. Visiting a cell collects its item once. F is monotone and submodular: a sum
    of concave functions (``min(., D_k)``) of modular counts.

    Parameters
    ----------
    item_types:
        integer item type per cell, flat ``(n,)`` or ``(rows, cols)``; ``-1`` for no item.
    quotas:
        non-negative integer quota D_k per item type; its length is the number of types.
    """

    def __init__(self, item_types: np.ndarray, quotas: Sequence[int]) -> None:
        item_types = np.asarray(item_types)
        if item_types.size == 0 or item_types.dtype.kind not in "iu":
            raise ValueError("item_types must be a non-empty integer array")
        quotas = np.asarray(quotas)
        if quotas.ndim != 1 or quotas.size == 0 or quotas.dtype.kind not in "iu":
            raise ValueError(f"quotas must be a non-empty 1-D list of integers, got {quotas!r}")
        if quotas.min() < 0:
            raise ValueError(f"quotas must be non-negative, got {quotas.tolist()}")
        if item_types.min() < -1 or item_types.max() >= quotas.size:
            raise ValueError(
                f"item_types must lie in -1..{quotas.size - 1} (one quota per type), got "
                f"{item_types.min()}..{item_types.max()}"
            )
        self.item_types = item_types.ravel().astype(np.int64)
        self.quotas = quotas.astype(np.int64)
        self.n_elements = self.item_types.size
        self.n_types = self.quotas.size

    @property
    def group_sizes(self) -> np.ndarray:
        """|G_k|: the number of cells holding each item type."""
        present = self.item_types[self.item_types >= 0]
        return np.bincount(present, minlength=self.n_types)

    def value(self, elements: Iterable[int]) -> float:
        types = self.item_types[_unique_elements(elements, self.n_elements)]
        counts = np.bincount(types[types >= 0], minlength=self.n_types)
        return float(np.minimum(counts, self.quotas).sum())

    def state(self) -> _ItemState:
        return _ItemState(self.n_elements, self.n_types)

    def gain(self, acc: _ItemState, element: int) -> float:
        element = self._check_element(element)
        item = self.item_types[element]
        if acc.visited[element] or item < 0:
            return 0.0
        return 1.0 if acc.collected[item] < self.quotas[item] else 0.0

    def add(self, acc: _ItemState, element: int) -> float:
        gain = self.gain(acc, element)
        if not acc.visited[element]:
            acc.visited[element] = True
            item = self.item_types[element]
            if item >= 0:
                acc.collected[item] += 1
        acc.value += gain
        return gain

    def singleton_values(self) -> np.ndarray:
        has_item = self.item_types >= 0
        quota = self.quotas[np.where(has_item, self.item_types, 0)]
        return (has_item & (quota > 0)).astype(np.float64)


# --------------------------------------------------------------------------- D-optimal design
class _DesignState:
    """The measured points V and the inverse Cholesky factor of ``K_post[V, V] + noise I``.

    Coordinates, amplitudes and evidence columns of V are kept contiguous so that a gain
    needs no fancy indexing over V.
    """

    __slots__ = (
        "points",
        "coordinates",
        "amplitudes",
        "evidence",
        "inverse_cholesky",
        "size",
        "value",
        "visited",
    )

    def __init__(self, n_elements: int, dimension: int, n_evidence: int, capacity: int) -> None:
        self.points = np.zeros(capacity, dtype=np.int64)
        self.coordinates = np.zeros((capacity, dimension))
        self.amplitudes = np.zeros(capacity)
        self.evidence = np.zeros((capacity, n_evidence))
        self.inverse_cholesky = np.zeros((capacity, capacity))
        self.size = 0
        self.value = 0.0
        self.visited = np.zeros(n_elements, dtype=bool)

    def copy(self) -> _DesignState:
        other = _DesignState.__new__(_DesignState)
        for name in self.__slots__:
            attribute = getattr(self, name)
            setattr(
                other, name, attribute.copy() if isinstance(attribute, np.ndarray) else attribute
            )
        return other

    def grow(self) -> None:
        """Double the capacity, keeping the first ``size`` entries."""
        size, capacity = self.size, 2 * self.points.size
        for name in ("points", "coordinates", "amplitudes", "evidence"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[:size] = old[:size]
            setattr(self, name, new)
        inverse = np.zeros((capacity, capacity))
        inverse[:size, :size] = self.inverse_cholesky[:size, :size]
        self.inverse_cholesky = inverse


class DOptimalDesign(SetFunction):
    """Bayesian D-optimal experiment design: the information gain of noisy measurements.

    An unknown field f is a Gaussian process over the ``points`` with covariance
    ``k(x, y) = a(x) a(y) m(|x - y|)`` (m: Matérn-5/2 with ``lengthscale``; a: the prior
    standard deviation, ``amplitude``, 1 everywhere by default), conditioned on earlier
    measurements at the ``observed`` points. Measuring the set V gives ``y_V = f_V + eps``,
    ``eps ~ N(0, noise I)``, and

    ``F(V) = I(f; y_V | y_observed) = 1/2 logdet(I + K_VV / noise)``

    with K the posterior covariance given the observed points. F(∅) = 0 and each marginal
    gain is ``1/2 log(1 + s_V(x)^2 / noise)``, where ``s_V(x)^2 >= 0`` is the posterior
    variance of f(x) given the measurements in V: so F >= 0 and F is monotone. It is submodular
    because conditioning on more measurements never increases a Gaussian posterior variance,
    so gains shrink as V grows (Krause & Guestrin 2005). Sets ignore repeats: measuring a
    point twice gains nothing. SubPO's code scores ``1/2 logdet(K_VV + 1e-6 I)`` plus a
    constant per element, which can be negative and is not monotone; the noise term here is
    what makes the objective well defined.

    Gains use a rank-one update of the inverse Cholesky factor of ``K_VV + noise I``: each
    costs O(|V|^2) (O(|V|) kernel values), never a full log-determinant.

    Parameters
    ----------
    points:
        ``(n, d)`` coordinates of the candidate measurement points (grid cells: (row, col)).
    lengthscale:
        Matérn lengthscale, in the units of ``points`` (> 0).
    noise:
        measurement noise variance (> 0).
    amplitude:
        optional ``(n,)`` non-negative prior standard deviation per point.
    observed:
        optional indices of points measured before (the GP is conditioned on them).
    """

    def __init__(
        self,
        points: np.ndarray,
        lengthscale: float = 5.0,
        noise: float = 0.01,
        amplitude: np.ndarray | None = None,
        observed: Sequence[int] | None = None,
    ) -> None:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] == 0 or not np.all(np.isfinite(points)):
            raise ValueError(f"points must be a finite (n, d) array, got shape {points.shape}")
        if not np.isfinite(lengthscale) or lengthscale <= 0:
            raise ValueError(f"lengthscale must be positive, got {lengthscale!r}")
        if not np.isfinite(noise) or noise <= 0:
            raise ValueError(f"noise must be a positive variance, got {noise!r}")
        n = points.shape[0]
        if amplitude is None:
            amplitude = np.ones(n)
        amplitude = np.asarray(amplitude, dtype=np.float64).ravel()
        if amplitude.shape != (n,) or not np.all(np.isfinite(amplitude)) or amplitude.min() < 0:
            raise ValueError(f"amplitude must be {n} finite non-negative standard deviations")
        self.points = points
        self.lengthscale = float(lengthscale)
        self.noise = float(noise)
        self.amplitude = amplitude
        self.n_elements = n
        observed_points = _unique_elements(observed if observed is not None else (), n)
        self.observed = observed_points
        # Posterior covariance given the earlier measurements O: k(x, y) - b_x . b_y with
        # b_x = L_O^{-1} k(O, x) and L_O the Cholesky factor of K_OO + noise I.
        if observed_points.size:
            k_oo = self._prior_kernel(observed_points, observed_points)
            chol = np.linalg.cholesky(k_oo + self.noise * np.eye(observed_points.size))
            k_on = self._prior_kernel(observed_points, np.arange(n))
            self._evidence = np.linalg.solve(chol, k_on)  # (|O|, n)
        else:
            self._evidence = np.zeros((0, n))
        #: b_x as rows, contiguous per point
        self._evidence_rows = np.ascontiguousarray(self._evidence.T)
        self._root5_over_lengthscale = np.sqrt(5.0) / self.lengthscale
        self.prior_variance = np.maximum(
            amplitude**2 - np.einsum("on,on->n", self._evidence, self._evidence), 0.0
        )

    def _prior_kernel(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        diff = self.points[rows][:, None, :] - self.points[cols][None, :, :]
        distance = np.sqrt(np.einsum("ijd,ijd->ij", diff, diff))
        scale = self.amplitude[rows][:, None] * self.amplitude[cols][None, :]
        return scale * matern52(distance, self.lengthscale)

    def kernel(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Covariance of f at points ``rows`` x ``cols`` given the observed points."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        evidence = self._evidence[:, rows].T @ self._evidence[:, cols]
        return self._prior_kernel(rows, cols) - evidence

    def value(self, elements: Iterable[int]) -> float:
        cells = _unique_elements(elements, self.n_elements)
        if cells.size == 0:
            return 0.0
        gram = np.eye(cells.size) + self.kernel(cells, cells) / self.noise
        sign, logdet = np.linalg.slogdet(gram)
        if sign <= 0:  # only reachable through round-off on a degenerate set
            raise FloatingPointError("I + K/noise lost positive definiteness")
        return 0.5 * float(logdet)

    def state(self, capacity: int = 64) -> _DesignState:
        return _DesignState(
            self.n_elements,
            self.points.shape[1],
            self._evidence.shape[0],
            max(int(capacity), 1),
        )

    def _conditional(self, acc: _DesignState, element: int) -> tuple[np.ndarray, float]:
        """``c = L_V^{-1} k(V, x)`` and the posterior variance of f(x) given V."""
        size = acc.size
        if size == 0:
            return np.zeros(0), float(self.prior_variance[element])
        # k_post(V, x) for one x from the contiguous copies of V's data (the hot path)
        diff = acc.coordinates[:size] - self.points[element]
        scaled = np.sqrt(np.einsum("id,id->i", diff, diff)) * self._root5_over_lengthscale
        cross = (1.0 + scaled + scaled * scaled / 3.0) * np.exp(-scaled)
        cross *= acc.amplitudes[:size] * self.amplitude[element]
        if acc.evidence.shape[1]:
            cross -= acc.evidence[:size] @ self._evidence_rows[element]
        c = acc.inverse_cholesky[:size, :size] @ cross
        return c, max(float(self.prior_variance[element] - c @ c), 0.0)

    def gain(self, acc: _DesignState, element: int) -> float:
        element = self._check_element(element)
        if acc.visited[element]:
            return 0.0
        _, variance = self._conditional(acc, element)
        return 0.5 * float(np.log1p(variance / self.noise))

    def add(self, acc: _DesignState, element: int) -> float:
        element = self._check_element(element)
        if acc.visited[element]:
            return 0.0
        c, variance = self._conditional(acc, element)
        gain = 0.5 * float(np.log1p(variance / self.noise))
        if acc.size == acc.points.size:
            acc.grow()
        size = acc.size
        # New Cholesky row (c, d) with d = sqrt(variance + noise) >= sqrt(noise); the inverse
        # gains the row (-c^T L^{-1} / d, 1 / d).
        diagonal = np.sqrt(variance + self.noise)
        inverse = acc.inverse_cholesky
        inverse[size, :size] = -(c @ inverse[:size, :size]) / diagonal
        inverse[size, size] = 1.0 / diagonal
        acc.points[size] = element
        acc.coordinates[size] = self.points[element]
        acc.amplitudes[size] = self.amplitude[element]
        acc.evidence[size] = self._evidence_rows[element]
        acc.size = size + 1
        acc.visited[element] = True
        acc.value += gain
        return gain

    def singleton_values(self) -> np.ndarray:
        return 0.5 * np.log1p(self.prior_variance / self.noise)
