"""Lot-sizing instances: the data of a multi-item, multi-machine plant, its generator and loaders.

An instance holds everything that stays fixed over an episode: what each machine can make and
how fast, what a changeover costs, the inventory costs and limits, the horizon and the demand
distribution. The JSON format is the one of the public ``SimplePlant`` settings files
(leokan92/pdppo ``code/Lot-sizing/cfg_env/*.json``), plus a ``name`` key, so those files load
unchanged with :func:`load_instance`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEMAND_DISTRIBUTIONS",
    "SIZES",
    "DemandModel",
    "LotSizingInstance",
    "generate_instance",
    "load_instance",
    "make_instance",
    "with_overrides",
]

#: Supported demand distributions and their parameter names.
DEMAND_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "binomial": ("n", "p"),
    "poisson": ("lam",),
    "uniform": ("low", "high"),
}

#: Named instance sizes, items x machines. The first six are the PDPPO configurations (T = 100);
#: "3x2" and "5x3" are small ones for tests and smoke runs.
SIZES: dict[str, tuple[int, int]] = {
    "15x5": (15, 5),
    "20x10": (20, 10),
    "25x10": (25, 10),
    "25x15": (25, 15),
    "30x10": (30, 10),
    "30x15": (30, 15),
    "3x2": (3, 2),
    "5x3": (5, 3),
}


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _numeric_array(name: str, value: Any, ndim: int, *, integer: bool) -> np.ndarray:
    """Convert ``value`` to a finite array of the given rank, or raise a ValueError naming it."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric array: {error}") from None
    if array.size == 0:
        raise ValueError(
            f"{name} is empty (shape {array.shape}): an instance needs at least one item "
            "and one machine"
        )
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if integer:
        if np.any(array != np.round(array)):
            raise ValueError(f"{name} must hold integers, got {value!r}")
        return array.astype(np.int64)
    return array


def _check_non_negative(name: str, array: np.ndarray) -> None:
    if np.any(array < 0):
        raise ValueError(f"{name} must be non-negative, got minimum {array.min()}")


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...], why: str) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({why}), got {array.shape}")


@dataclass(frozen=True, eq=False)
class DemandModel:
    """Demand distribution, i.i.d. over periods and independent over items.

    Each parameter is a scalar (same for every item) or a length-I sequence (one per item).

    - ``binomial``: ``n`` trials (non-negative integer), success probability ``p`` in [0, 1];
      the PDPPO default is Binomial(20, 0.4), mean 8 units per item and period.
    - ``poisson``: rate ``lam`` >= 0.
    - ``uniform``: integers ``low``..``high`` inclusive, 0 <= low <= high.

    Build with ``DemandModel("poisson", {"lam": 8})`` or the class methods
    :meth:`binomial`, :meth:`poisson`, :meth:`uniform`.
    """

    distribution: str = "binomial"
    params: Mapping[str, Any] = field(default_factory=lambda: {"n": 20, "p": 0.4})

    def __post_init__(self) -> None:
        if self.distribution not in DEMAND_DISTRIBUTIONS:
            raise ValueError(
                f"demand distribution '{self.distribution}' is not supported; "
                f"known: {', '.join(DEMAND_DISTRIBUTIONS)}"
            )
        if not isinstance(self.params, Mapping):
            raise ValueError(f"demand params must be a mapping, got {type(self.params).__name__}")
        expected = DEMAND_DISTRIBUTIONS[self.distribution]
        if set(self.params) != set(expected):
            raise ValueError(
                f"{self.distribution} demand needs parameters {', '.join(expected)}; "
                f"got {', '.join(sorted(self.params)) or 'none'}"
            )
        integer = {"n", "low", "high"}
        params = {}
        for key in expected:
            name = f"demand parameter '{key}'"
            try:
                value = np.array(self.params[key], dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name} must be numeric: {error}") from None
            if value.ndim > 1 or value.size == 0:
                raise ValueError(f"{name} must be a scalar or a 1-D per-item array")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite")
            if np.any(value < 0):
                raise ValueError(f"{name} must be non-negative, got {self.params[key]!r}")
            if key in integer:
                if np.any(value != np.round(value)):
                    raise ValueError(f"{name} must be an integer, got {self.params[key]!r}")
                value = value.astype(np.int64)
            params[key] = _read_only(value)
        if self.distribution == "binomial" and np.any(params["p"] > 1):
            raise ValueError(f"demand parameter 'p' must lie in [0, 1], got {self.params['p']!r}")
        if self.distribution == "uniform" and np.any(params["low"] > params["high"]):
            raise ValueError("demand parameter 'low' must not exceed 'high'")
        object.__setattr__(self, "params", params)

    @classmethod
    def binomial(cls, n: Any = 20, p: Any = 0.4) -> DemandModel:
        """Binomial(n, p) demand per item and period."""
        return cls("binomial", {"n": n, "p": p})

    @classmethod
    def poisson(cls, lam: Any) -> DemandModel:
        """Poisson(lam) demand per item and period."""
        return cls("poisson", {"lam": lam})

    @classmethod
    def uniform(cls, low: Any, high: Any) -> DemandModel:
        """Uniform integer demand on low..high (inclusive) per item and period."""
        return cls("uniform", {"low": low, "high": high})

    def check_items(self, n_items: int) -> None:
        """Raise a ValueError if a per-item parameter does not have length ``n_items``."""
        for key, value in self.params.items():
            if value.ndim == 1 and value.shape[0] != n_items:
                raise ValueError(
                    f"demand parameter '{key}' has {value.shape[0]} entries but the instance "
                    f"has {n_items} items"
                )

    def mean(self, n_items: int) -> np.ndarray:
        """Expected demand per period of each item, shape (n_items,)."""
        p = self.params
        if self.distribution == "binomial":
            mean = p["n"] * p["p"]
        elif self.distribution == "poisson":
            mean = p["lam"]
        else:
            mean = (p["low"] + p["high"]) / 2
        return np.broadcast_to(np.asarray(mean, dtype=np.float64), (n_items,)).copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, ``{"name": distribution, **params}`` as in SimplePlant files."""
        return {"name": self.distribution, **{k: v.tolist() for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemandModel:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, Mapping) or "name" not in data:
            raise ValueError(
                "demand_distribution must be a mapping with a 'name' key, "
                f"e.g. {{'name': 'binomial', 'n': 20, 'p': 0.4}}; got {data!r}"
            )
        return cls(str(data["name"]), {k: v for k, v in data.items() if k != "name"})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DemandModel):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class LotSizingInstance:
    """A multi-item, multi-machine discrete lot-sizing plant ("SimplePlant").

    Items are numbered 1..I in actions and setups (0 means idle) and 0..I-1 as array columns.

    Attributes:
        machine_production: (M, I) units machine m makes of item i in one period; 0 means the
            machine cannot make the item.
        setup_costs: (M, I) cost of switching machine m to item i.
        setup_loss: (M, I) units lost in the period of a switch of machine m to item i.
        holding_costs: (I,) cost per unit of end-of-period inventory.
        lost_sales_costs: (I,) cost per unit of unmet demand.
        max_inventory_level: (I,) storage limit; units above it are discarded at no cost.
        initial_inventory: (I,) inventory at the start (used when the env's initial state is
            not random).
        initial_setup: (M,) item each machine is set up for at the start, 0 = idle.
        horizon: number of periods T.
        demand: the demand distribution (a :class:`DemandModel` or its dict form).
        name: a label used in logs and result tables.

    Array fields are stored as read-only numpy arrays; :meth:`validate` runs on construction
    and raises a ValueError naming the parameter and the reason.
    """

    machine_production: np.ndarray
    setup_costs: np.ndarray
    setup_loss: np.ndarray
    holding_costs: np.ndarray
    lost_sales_costs: np.ndarray
    max_inventory_level: np.ndarray
    initial_inventory: np.ndarray
    initial_setup: np.ndarray
    horizon: int = 100
    demand: DemandModel = field(default_factory=DemandModel)
    name: str = "custom"

    def __post_init__(self) -> None:
        converted: dict[str, Any] = {}
        production = _numeric_array("machine_production", self.machine_production, 2, integer=True)
        converted["machine_production"] = production
        matrices = {"setup_costs": False, "setup_loss": True}
        for key, integer in matrices.items():
            converted[key] = _numeric_array(key, getattr(self, key), 2, integer=integer)
        vectors = {
            "holding_costs": False,
            "lost_sales_costs": False,
            "max_inventory_level": True,
            "initial_inventory": True,
            "initial_setup": True,
        }
        for key, integer in vectors.items():
            converted[key] = _numeric_array(key, getattr(self, key), 1, integer=integer)
        for key, array in converted.items():
            object.__setattr__(self, key, _read_only(array))
        if isinstance(self.demand, Mapping):
            object.__setattr__(self, "demand", DemandModel.from_dict(self.demand))
        if isinstance(self.horizon, (bool, np.bool_)) or not isinstance(
            self.horizon, (int, np.integer)
        ):
            raise ValueError(f"horizon must be an integer, got {self.horizon!r}")
        object.__setattr__(self, "horizon", int(self.horizon))
        object.__setattr__(self, "name", str(self.name))
        self.validate()

    @property
    def n_items(self) -> int:
        """Number of items I."""
        return int(self.machine_production.shape[1])

    @property
    def n_machines(self) -> int:
        """Number of machines M."""
        return int(self.machine_production.shape[0])

    def validate(self) -> None:
        """Check shapes, signs and consistency; raise a ValueError naming the parameter."""
        n_machines, n_items = self.n_machines, self.n_items
        matrix_shape = (n_machines, n_items)
        why_matrix = "machines x items, like machine_production"
        _check_shape("setup_costs", self.setup_costs, matrix_shape, why_matrix)
        _check_shape("setup_loss", self.setup_loss, matrix_shape, why_matrix)
        for key in (
            "holding_costs",
            "lost_sales_costs",
            "max_inventory_level",
            "initial_inventory",
        ):
            _check_shape(key, getattr(self, key), (n_items,), "one entry per item")
        _check_shape("initial_setup", self.initial_setup, (n_machines,), "one entry per machine")
        for key in (
            "machine_production",
            "setup_costs",
            "setup_loss",
            "holding_costs",
            "lost_sales_costs",
            "initial_inventory",
        ):
            _check_non_negative(key, getattr(self, key))
        if np.any(self.max_inventory_level < 1):
            raise ValueError(
                "max_inventory_level must be at least 1 for every item, got minimum "
                f"{self.max_inventory_level.min()}"
            )
        over = np.flatnonzero(self.initial_inventory > self.max_inventory_level)
        if over.size:
            raise ValueError(
                f"initial_inventory of item {over[0] + 1} ({self.initial_inventory[over[0]]}) "
                f"exceeds max_inventory_level ({self.max_inventory_level[over[0]]})"
            )
        if self.horizon < 1:
            raise ValueError(f"horizon must be at least 1 period, got {self.horizon}")
        unmade = np.flatnonzero(self.machine_production.sum(axis=0) == 0)
        if unmade.size:
            raise ValueError(
                f"machine_production: no machine can make item {unmade[0] + 1} "
                "(its column is all zeros)"
            )
        useless = np.flatnonzero(self.machine_production.sum(axis=1) == 0)
        if useless.size:
            raise ValueError(
                f"machine_production: machine {useless[0]} can make no item (its row is all "
                "zeros); remove the machine"
            )
        bad_setup = np.flatnonzero((self.initial_setup < 0) | (self.initial_setup > n_items))
        if bad_setup.size:
            m = bad_setup[0]
            raise ValueError(
                f"initial_setup of machine {m} is {self.initial_setup[m]}, outside 0..{n_items} "
                "(0 = idle, i = item i)"
            )
        for m, item in enumerate(self.initial_setup):
            if item != 0 and self.machine_production[m, item - 1] == 0:
                raise ValueError(
                    f"initial_setup of machine {m} is item {item}, which the machine cannot "
                    f"make (machine_production[{m}][{item - 1}] == 0)"
                )
        if not isinstance(self.demand, DemandModel):
            raise ValueError(
                f"demand must be a DemandModel or a dict, got {type(self.demand).__name__}"
            )
        self.demand.check_items(n_items)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict in the SimplePlant settings format, plus ``name``."""
        return {
            "name": self.name,
            "time_horizon": self.horizon,
            "n_items": self.n_items,
            "n_machines": self.n_machines,
            "initial_setup": self.initial_setup.tolist(),
            "machine_production": self.machine_production.tolist(),
            "max_inventory_level": self.max_inventory_level.tolist(),
            "initial_inventory": self.initial_inventory.tolist(),
            "holding_costs": self.holding_costs.tolist(),
            "lost_sales_costs": self.lost_sales_costs.tolist(),
            "demand_distribution": self.demand.to_dict(),
            "setup_costs": self.setup_costs.tolist(),
            "setup_loss": self.setup_loss.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> LotSizingInstance:
        """Build an instance from :meth:`to_dict` output or a SimplePlant settings dict.

        ``name`` is used when the dict has no ``name`` key. Missing or unknown keys raise a
        ValueError naming the key.
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a lot-sizing instance must be a JSON object, got {type(data).__name__}"
            )
        required = [
            "machine_production",
            "setup_costs",
            "setup_loss",
            "holding_costs",
            "lost_sales_costs",
            "max_inventory_level",
            "initial_inventory",
            "initial_setup",
        ]
        optional = ["name", "time_horizon", "n_items", "n_machines", "demand_distribution"]
        missing = [key for key in required if key not in data]
        if missing:
            raise ValueError(f"lot-sizing instance is missing key '{missing[0]}'")
        unknown = sorted(set(data) - set(required) - set(optional))
        if unknown:
            raise ValueError(
                f"lot-sizing instance has unknown key '{unknown[0]}'; "
                f"known: {', '.join(required + optional)}"
            )
        kwargs: dict[str, Any] = {key: data[key] for key in required}
        kwargs["horizon"] = data.get("time_horizon", 100)
        kwargs["demand"] = DemandModel.from_dict(
            data.get("demand_distribution", DemandModel().to_dict())
        )
        kwargs["name"] = data.get("name", name or "custom")
        instance = cls(**kwargs)
        for key, actual in (("n_items", instance.n_items), ("n_machines", instance.n_machines)):
            if key in data and data[key] != actual:
                raise ValueError(f"{key} is {data[key]!r} but machine_production implies {actual}")
        return instance

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LotSizingInstance):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def load_instance(path: str | os.PathLike[str]) -> LotSizingInstance:
    """Read an instance from a JSON file (SimplePlant settings format).

    The file stem becomes the name when the file has no ``name`` key. A missing file, malformed
    JSON or a bad key raises a ValueError naming the path (and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"lot-sizing instance file '{path}' does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"lot-sizing instance file '{path}' is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    try:
        return LotSizingInstance.from_dict(data, name=path.stem)
    except ValueError as error:
        raise ValueError(f"lot-sizing instance file '{path}': {error}") from None


def _min_biased(
    rng: np.random.Generator, shape: int | tuple[int, ...], low: int, high: int, p_low: float
) -> np.ndarray:
    """``low`` with probability ``p_low``, otherwise uniform on ``low+1..high`` (integers).

    This is the distribution of the SimplePlant generator's ``generate_matrix`` (its first
    choice gets ``p_low`` and the rest share the remaining mass equally).
    """
    others = rng.integers(low + 1, high + 1, size=shape)
    return np.where(rng.random(shape) < p_low, low, others)


def generate_instance(
    n_items: int, n_machines: int, seed: int = 0, horizon: int = 100, name: str | None = None
) -> LotSizingInstance:
    """Random plant following the PDPPO SimplePlant generator, reproducible from ``seed``.

    Distributions (leokan92/pdppo ``code/Lot-sizing/cfg_env/generate_setting.py``; "a w.p. p,
    else U{b..c}"):

    - machine_production: 0 w.p. 0.4, else U{1..40};
    - setup_costs: 15 w.p. 0.2, else U{16..30};
    - setup_loss: 1 w.p. 0.7, else U{2..3};
    - holding_costs 0.01 and max_inventory_level 100 for every item;
    - initial_inventory: 0 w.p. 0.05, else U{1..50};
    - initial_setup: idle w.p. 0.4, else a uniformly chosen item the machine can make;
    - lost_sales_costs: 0.1 w.p. 0.5, else U{0.2, 0.3} (see below);
    - demand Binomial(20, 0.4) per item and period.

    Fixes of the public generator's quirks:

    - Lost-sales costs. The original calls ``generate_matrix(1, n_items, 0.3, 0.1, 0.5)``,
      i.e. "0.1 with probability 0.5, otherwise another value up to 0.3". Its choice set is
      ``np.arange(min, max + 1)``, which assumes integer bounds; with 0.1 and 0.3 it yields
      {0.1, 1.1}, and the shipped t100 settings files indeed hold only 0.1 and 1.1 -- a value
      above the stated maximum. We read the intent as the range 0.1..0.3 on the 0.1 grid:
      0.1 w.p. 0.5, else 0.2 or 0.3. The same script's earlier (t5) setting supports this
      reading: with holding cost 0.1 it draws lost-sales costs from {1 w.p. 0.5, 2, 3}, the
      same ratios at ten times the scale.
    - Production 0 means the machine cannot make the item; the original still applied the
      setup loss there (a negative yield) and could set a machine up for such an item. Here
      setup cost and loss are 0 where production is 0 (they are never incurred: the env masks
      or idles such actions), and initial setups are producible.
    - Every item is producible by at least one machine and every machine can make at least
      one item: an all-zero column (row) gets one production rate U{1..40} on a uniformly
      chosen machine (item). The original only warned about all-zero columns.
    """
    for key, value in (("n_items", n_items), ("n_machines", n_machines)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    rng = np.random.default_rng(seed)
    shape = (n_machines, n_items)
    production = _min_biased(rng, shape, 0, 40, 0.4)
    setup_costs = _min_biased(rng, shape, 15, 30, 0.2).astype(np.float64)
    setup_loss = _min_biased(rng, shape, 1, 3, 0.7)
    lost_sales_costs = _min_biased(rng, n_items, 1, 3, 0.5) / 10.0
    initial_inventory = _min_biased(rng, n_items, 0, 50, 0.05)
    # Columns first, then rows: repairing a row only adds production, so columns stay repaired.
    for item in np.flatnonzero(production.sum(axis=0) == 0):
        production[rng.integers(n_machines), item] = rng.integers(1, 41)
    for machine in np.flatnonzero(production.sum(axis=1) == 0):
        production[machine, rng.integers(n_items)] = rng.integers(1, 41)
    cannot_make = production == 0
    setup_costs[cannot_make] = 0.0
    setup_loss[cannot_make] = 0
    idle = rng.random(n_machines) < 0.4
    initial_setup = np.zeros(n_machines, dtype=np.int64)
    for machine in range(n_machines):
        producible = np.flatnonzero(production[machine]) + 1
        choice = producible[rng.integers(producible.size)]
        initial_setup[machine] = 0 if idle[machine] else choice
    return LotSizingInstance(
        machine_production=production,
        setup_costs=setup_costs,
        setup_loss=setup_loss,
        holding_costs=np.full(n_items, 0.01),
        lost_sales_costs=lost_sales_costs,
        max_inventory_level=np.full(n_items, 100),
        initial_inventory=initial_inventory,
        initial_setup=initial_setup,
        horizon=horizon,
        demand=DemandModel.binomial(20, 0.4),
        name=name or f"{n_items}x{n_machines}-seed{seed}",
    )


def make_instance(
    spec: str | os.PathLike[str] | LotSizingInstance | Mapping[str, Any], seed: int = 0
) -> LotSizingInstance:
    """Resolve ``spec`` to an instance.

    ``spec`` is a size name from :data:`SIZES` (generated with ``seed``), a
    :class:`LotSizingInstance` (returned as is), a dict in the :meth:`LotSizingInstance.to_dict`
    format, or a path to a JSON file. ``seed`` only matters for size names.
    """
    if isinstance(spec, LotSizingInstance):
        return spec
    if isinstance(spec, Mapping):
        return LotSizingInstance.from_dict(spec)
    if isinstance(spec, str) and spec in SIZES:
        n_items, n_machines = SIZES[spec]
        return generate_instance(n_items, n_machines, seed=seed, name=f"{spec}-seed{seed}")
    if isinstance(spec, os.PathLike) or (
        isinstance(spec, str) and (spec.endswith(".json") or os.sep in spec or Path(spec).is_file())
    ):
        return load_instance(spec)
    raise ValueError(f"unknown lot-sizing instance {spec!r}; known: {', '.join(SIZES)}")


def with_overrides(
    instance: LotSizingInstance,
    horizon: int | None = None,
    demand: DemandModel | Mapping[str, Any] | None = None,
) -> LotSizingInstance:
    """Copy of ``instance`` with another horizon and/or demand model (validated again)."""
    changes: dict[str, Any] = {}
    if horizon is not None:
        changes["horizon"] = horizon
    if demand is not None:
        changes["demand"] = demand
    return replace(instance, **changes) if changes else instance
