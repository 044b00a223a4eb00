"""Instances of the submodular grid tasks: cell weights, item placements, design points.

Everything is generated from an ``instance_seed`` (nothing is downloaded): the same seed gives
the same instance on every machine. The defaults follow SubPO's grid tasks (Prajapat et al.,
ICLR 2024; manish-pra/non-additive-RL): a 30 x 30 grid, 6 item types with quotas
D = (3, 2, 3, 4, 6, 3) and group sizes |G| = (18, 14, 13, 16, 18, 14), GP-sampled weights with a
Matérn-5/2 kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from opsrl.envs.submodular.functions import (
    DOptimalDesign,
    ItemCollection,
    SetFunction,
    WeightedCoverage,
    matern52,
)

__all__ = [
    "DEFAULT_GROUP_SIZES",
    "DEFAULT_QUOTAS",
    "OBJECTIVES",
    "OBJECTIVE_OPTIONS",
    "WEIGHTS",
    "bimodal_weights",
    "constant_weights",
    "gp_weights",
    "grid_points",
    "make_set_function",
    "random_item_types",
    "sample_gp_grid",
]

#: SubPO's item-collection instance: quota D_k and number of cells |G_k| per item type
DEFAULT_QUOTAS = (3, 2, 3, 4, 6, 3)
DEFAULT_GROUP_SIZES = (18, 14, 13, 16, 18, 14)

OBJECTIVES = ("coverage", "items", "d_optimal")
WEIGHTS = ("constant", "bimodal", "gp")

#: per objective, the keys of ``objective_options`` and their defaults
OBJECTIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "coverage": {"weights": "gp", "radius": 1, "lengthscale": 5.0},
    "items": {
        "quotas": DEFAULT_QUOTAS,
        "group_sizes": DEFAULT_GROUP_SIZES,
        "item_types": None,
    },
    "d_optimal": {
        "lengthscale": 5.0,
        "noise": 0.01,
        "variance": "constant",
        "variance_lengthscale": 10.0,
        "n_observed": 5,
    },
}


def constant_weights(shape: tuple[int, int]) -> np.ndarray:
    """Weight 1 on every cell: F counts covered cells."""
    return np.ones(shape)


def bimodal_weights(shape: tuple[int, int]) -> np.ndarray:
    """SubPO's "bimodal" weights ``sigmoid(u v)`` on ``[-1, 1]^2``.

    u runs over the rows and v over the columns; the weight is high (up to sigmoid(1) = 0.73)
    in the two quadrants where u and v share a sign, peaking at the top-left and bottom-right
    corners, and low (down to 0.27) at the other two corners.
    """
    rows, cols = shape
    u = np.linspace(-1.0, 1.0, rows)[:, None]
    v = np.linspace(-1.0, 1.0, cols)[None, :]
    return 1.0 / (1.0 + np.exp(-u * v))


#: largest torus (cells) of the circulant embedding; beyond it tiny negative eigenvalues are
#: clipped instead of growing the torus further (lengthscales of hundreds of cells)
_MAX_TORUS_CELLS = 2**22


def sample_gp_grid(
    rng: np.random.Generator,
    shape: tuple[int, int],
    lengthscale: float,
    n_samples: int | None = None,
) -> np.ndarray:
    """Sample a zero-mean, unit-variance Matérn-5/2 GP on the integer grid ``(rows, cols)``.

    Returns one ``(rows, cols)`` sample, or ``(n_samples, rows, cols)`` independent ones.

    Circulant embedding: the grid is embedded in a torus large enough that the wrapped
    covariance is positive semi-definite (the torus side grows to about 25 lengthscales),
    whose eigenvalues are then an FFT away; a sample costs O(N log N) instead of the O(N^3)
    Cholesky factorisation, so 60 x 60 grids stay cheap. The sample is exact (its
    covariance is the kernel's) as long as the torus stays below ``2**22`` cells.
    """
    rows, cols = shape
    size_rows, size_cols = 2 * rows, 2 * cols
    while True:
        lag_rows = np.arange(size_rows)
        lag_rows = np.minimum(lag_rows, size_rows - lag_rows)[:, None]
        lag_cols = np.arange(size_cols)
        lag_cols = np.minimum(lag_cols, size_cols - lag_cols)[None, :]
        first_row = matern52(np.sqrt(lag_rows**2 + lag_cols**2), lengthscale)
        eigenvalues = np.fft.fft2(first_row).real
        if eigenvalues.min() >= -1e-10 * eigenvalues.max():
            break
        if 4 * size_rows * size_cols > _MAX_TORUS_CELLS:
            break
        # Not PSD yet: on a longer torus the wrapped kernel is closer to the kernel itself.
        size_rows, size_cols = 2 * size_rows, 2 * size_cols
    eigenvalues = np.maximum(eigenvalues, 0.0)
    batch = (1 if n_samples is None else int(n_samples), size_rows, size_cols)
    noise = rng.standard_normal(batch) + 1j * rng.standard_normal(batch)
    field = np.fft.fft2(np.sqrt(eigenvalues / (size_rows * size_cols)) * noise)
    samples = field.real[:, :rows, :cols].copy()
    return samples[0] if n_samples is None else samples


def gp_weights(
    rng: np.random.Generator, shape: tuple[int, int], lengthscale: float = 5.0
) -> np.ndarray:
    """Non-negative weights from a Matérn-5/2 GP sample, rescaled to ``[0, 1]``.

    The sample (see :func:`sample_gp_grid`; ``lengthscale`` in cells) is shifted and scaled so
    that its minimum is 0 and its maximum 1. SubPO's code adds 3 to a GP sample instead; the
    min-max scaling keeps per-step rewards in a known range on every instance.
    """
    if not np.isfinite(lengthscale) or lengthscale <= 0:
        raise ValueError(f"lengthscale must be positive, got {lengthscale!r}")
    field = sample_gp_grid(rng, shape, lengthscale)
    spread = field.max() - field.min()
    if spread <= 0:  # a single cell
        return np.ones(shape)
    return (field - field.min()) / spread


def random_item_types(
    rng: np.random.Generator, n_cells: int, group_sizes: Sequence[int]
) -> np.ndarray:
    """Place ``group_sizes[k]`` items of type k on distinct random cells; -1 elsewhere."""
    sizes = np.asarray(group_sizes)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu" or sizes.min() < 0:
        raise ValueError(f"group_sizes must be non-negative integers, got {group_sizes!r}")
    if sizes.sum() > n_cells:
        raise ValueError(
            f"group_sizes place {int(sizes.sum())} items but the grid has only {n_cells} cells"
        )
    item_types = np.full(n_cells, -1, dtype=np.int64)
    cells = rng.permutation(n_cells)[: sizes.sum()]
    item_types[cells] = np.repeat(np.arange(sizes.size), sizes)
    return item_types


def grid_points(shape: tuple[int, int]) -> np.ndarray:
    """``(rows * cols, 2)`` coordinates (row, col) of the cells, in cell index order."""
    rows, cols = shape
    row, col = np.divmod(np.arange(rows * cols), cols)
    return np.stack([row, col], axis=1).astype(np.float64)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"objective_options[{name!r}] must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"objective_options[{name!r}] must be a positive number, got {value!r}")
    return float(value)


def _cell_map(
    name: str, value: Any, shape: tuple[int, int], rng: np.random.Generator, lengthscale: float
) -> np.ndarray:
    """A named or given per-cell map (weights or prior variances) of the grid."""
    if isinstance(value, str):
        if value == "constant":
            return constant_weights(shape)
        if value == "bimodal":
            return bimodal_weights(shape)
        if value == "gp":
            return gp_weights(rng, shape, lengthscale)
        raise ValueError(
            f"objective_options[{name!r}] must be one of {', '.join(WEIGHTS)} or an array, "
            f"got {value!r}"
        )
    array = np.asarray(value, dtype=np.float64)
    if array.size != shape[0] * shape[1]:
        raise ValueError(
            f"objective_options[{name!r}] must have one value per cell ({shape[0]} x "
            f"{shape[1]}), got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)) or array.min() < 0:
        raise ValueError(f"objective_options[{name!r}] must be finite and non-negative")
    return array.reshape(shape)


def resolve_options(objective: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The objective's options with defaults filled in; unknown keys raise a ValueError."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(f"objective_options must be a dict or None, got {options!r}")
    known = OBJECTIVE_OPTIONS[objective]
    unknown = set(options or {}) - set(known)
    if unknown:
        raise ValueError(
            f"objective_options has keys {sorted(unknown)} unknown to objective {objective!r} "
            f"(known: {sorted(known)})"
        )
    return {**known, **(options or {})}


def make_set_function(
    objective: str,
    shape: tuple[int, int],
    instance_seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> SetFunction:
    """Build the set function of a named objective on a ``rows x cols`` grid.

    ``options`` are the objective's keys of :data:`OBJECTIVE_OPTIONS`:

    - ``"coverage"``: ``weights`` (``"constant"``, ``"bimodal"``, ``"gp"`` or a per-cell
      array), ``radius`` (Chebyshev footprint), ``lengthscale`` (of the GP weights, cells);
    - ``"items"``: ``quotas`` D_k, ``group_sizes`` |G_k| (items placed on random cells), or
      ``item_types`` (a per-cell type array, -1 = none) to place them yourself;
    - ``"d_optimal"``: ``lengthscale`` (cells), ``noise`` (measurement noise variance),
      ``variance`` (prior variance of the field per cell: ``"constant"`` 1, ``"bimodal"``,
      ``"gp"`` -- a GP-sampled map in [0, 1] -- or an array), ``variance_lengthscale`` (of the
      GP variance map), ``n_observed`` (random cells measured before the episode).

    Random parts (GP weights, item cells, observed cells) come from ``instance_seed``.
    """
    options = resolve_options(objective, options)
    rng = np.random.default_rng(instance_seed)
    n_cells = shape[0] * shape[1]
    if objective == "coverage":
        lengthscale = _check_positive("lengthscale", options["lengthscale"])
        weights = _cell_map("weights", options["weights"], shape, rng, lengthscale)
        radius = options["radius"]
        if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(
                f"objective_options['radius'] must be a non-negative integer, got {radius!r}"
            )
        return WeightedCoverage(weights, radius=int(radius))
    if objective == "items":
        try:
            quotas = np.asarray(options["quotas"])
            if options["item_types"] is not None:
                item_types = np.asarray(options["item_types"]).ravel()
                if item_types.size != n_cells:
                    raise ValueError(
                        f"item_types must have one entry per cell ({n_cells}), got "
                        f"{item_types.size}"
                    )
            else:
                sizes = np.asarray(options["group_sizes"])
                if sizes.shape != quotas.shape:
                    raise ValueError(
                        f"group_sizes {sizes.tolist()} and quotas {quotas.tolist()} must give "
                        "one entry per item type"
                    )
                item_types = random_item_types(rng, n_cells, sizes)
            return ItemCollection(item_types, quotas)
        except ValueError as error:
            raise ValueError(f"objective_options: {error}") from None
    # d_optimal
    lengthscale = _check_positive("lengthscale", options["lengthscale"])
    noise = _check_positive("noise", options["noise"])
    variance_lengthscale = _check_positive("variance_lengthscale", options["variance_lengthscale"])
    variance = _cell_map("variance", options["variance"], shape, rng, variance_lengthscale)
    n_observed = options["n_observed"]
    if (
        isinstance(n_observed, bool)
        or not isinstance(n_observed, (int, np.integer))
        or not 0 <= n_observed <= n_cells
    ):
        raise ValueError(
            f"objective_options['n_observed'] must be an integer in 0..{n_cells}, got "
            f"{n_observed!r}"
        )
    observed = rng.permutation(n_cells)[:n_observed]
    return DOptimalDesign(
        grid_points(shape),
        lengthscale=lengthscale,
        noise=noise,
        amplitude=np.sqrt(variance).ravel(),
        observed=observed,
    )
