"""Pure numpy simulator of the SimplePlant lot-sizing problem, over batches of plants.

Every function takes arrays with a leading batch dimension B, so that the single env (B = 1)
and the batched env (B = N copies) run the same code. A period splits into

1. :func:`decision_step` -- deterministic: setups, setup costs and production;
2. :func:`exogenous_step` -- random: demand is served from inventory, the shortfall is lost,
   the excess over the storage limit is discarded, holding costs are paid on what is left.

The state of one plant is its inventory (I,) and the item each machine is set up for (M,),
0 meaning idle. Actions use the same coding: a_m = 0 idles machine m, a_m = i runs item i.
Nothing here imports Gymnasium.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import lgamma, log, log1p

import numpy as np

from opsrl.envs.lot_sizing.data import DemandModel, LotSizingInstance

__all__ = [
    "PlantArrays",
    "decision_step",
    "demand_cdf",
    "demand_from_uniforms",
    "encode_observation",
    "exogenous_step",
    "initial_state_from_uniforms",
    "plant_arrays",
    "sample_demand_path",
    "sample_initial_state",
    "uniforms_per_reset",
]


@dataclass(frozen=True, eq=False)
class PlantArrays:
    """An instance as lookup tables indexed by (machine, action), column 0 being "idle".

    Built once per env by :func:`plant_arrays`; indexing a table with ``[machine_index,
    action]`` gives each machine's value for its action without a loop over machines.
    """

    n_items: int
    n_machines: int
    horizon: int
    production: np.ndarray  # (M, I+1) int64, units per period when already set up
    setup_costs: np.ndarray  # (M, I+1) float64
    yield_after_setup: np.ndarray  # (M, I+1) int64, max(production - setup_loss, 0)
    can_make: np.ndarray  # (M, I+1) bool, idle always allowed
    holding_costs: np.ndarray  # (I,) float64
    lost_sales_costs: np.ndarray  # (I,) float64
    max_inventory_level: np.ndarray  # (I,) int64
    initial_inventory: np.ndarray  # (I,) int64
    initial_setup: np.ndarray  # (M,) int64
    producible_items: np.ndarray  # (M, I) int64, row m lists the items m can make, then padding
    n_producible: np.ndarray  # (M,) int64
    demand_cdf: np.ndarray  # (1, K) or (I, K), see demand_cdf()
    machine_index: np.ndarray  # (M,) int64, 0..M-1
    setup_offsets: np.ndarray  # (M,) int64, m * (I+1): start of machine m's one-hot block


def plant_arrays(instance: LotSizingInstance) -> PlantArrays:
    """Lookup tables of ``instance`` for the batched step functions."""
    n_machines, n_items = instance.n_machines, instance.n_items

    def with_idle_column(table: np.ndarray, dtype: type) -> np.ndarray:
        padded = np.zeros((n_machines, n_items + 1), dtype=dtype)
        padded[:, 1:] = table
        return padded

    production = with_idle_column(instance.machine_production, np.int64)
    loss = with_idle_column(instance.setup_loss, np.int64)
    can_make = production > 0
    can_make[:, 0] = True
    producible_items = np.zeros((n_machines, n_items), dtype=np.int64)
    n_producible = np.zeros(n_machines, dtype=np.int64)
    for machine in range(n_machines):
        items = np.flatnonzero(instance.machine_production[machine]) + 1
        producible_items[machine, : items.size] = items
        n_producible[machine] = items.size
    return PlantArrays(
        n_items=n_items,
        n_machines=n_machines,
        horizon=instance.horizon,
        production=production,
        setup_costs=with_idle_column(instance.setup_costs, np.float64),
        # A short run after a changeover can lose more than it makes; it then makes nothing.
        yield_after_setup=np.maximum(production - loss, 0),
        can_make=can_make,
        holding_costs=np.asarray(instance.holding_costs, dtype=np.float64),
        lost_sales_costs=np.asarray(instance.lost_sales_costs, dtype=np.float64),
        max_inventory_level=np.asarray(instance.max_inventory_level, dtype=np.int64),
        initial_inventory=np.asarray(instance.initial_inventory, dtype=np.int64),
        initial_setup=np.asarray(instance.initial_setup, dtype=np.int64),
        producible_items=producible_items,
        n_producible=n_producible,
        demand_cdf=demand_cdf(instance.demand, n_items),
        machine_index=np.arange(n_machines),
        setup_offsets=np.arange(n_machines) * (n_items + 1),
    )


def _as_arrays(plant: LotSizingInstance | PlantArrays) -> PlantArrays:
    return plant if isinstance(plant, PlantArrays) else plant_arrays(plant)


def decision_step(
    plant: PlantArrays, inventory: np.ndarray, setup: np.ndarray, action: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic part of a period: changeovers and production.

    Args:
        plant: lookup tables from :func:`plant_arrays`.
        inventory: (B, I) inventory at the start of the period.
        setup: (B, M) current setups, 0 = idle.
        action: (B, M) integer actions; every a_m must be 0 or an item machine m can make
            (the env masks, idles or rejects the others before calling this).

    Returns:
        ``(post_inventory (B, I), new_setup (B, M), setup_cost (B,), produced (B, I))``.
        A machine running item i != its setup pays ``setup_costs[m][i-1]`` and yields
        ``max(production - setup_loss, 0)``; one already set up yields ``production``; an
        idle machine yields nothing and loses its setup. Yields of machines running the
        same item add up.
    """
    batch = inventory.shape[0]
    width = plant.n_items + 1
    machines = plant.machine_index
    changeover = (action != setup) & (action != 0)
    setup_cost = (plant.setup_costs[machines, action] * changeover).sum(axis=1)
    machine_yield = np.where(
        changeover, plant.yield_after_setup[machines, action], plant.production[machines, action]
    )
    # Scatter-add every machine's yield into its item's slot (slot 0 collects idle machines).
    slots = (np.arange(batch)[:, None] * width + action).ravel()
    produced = np.bincount(slots, weights=machine_yield.ravel(), minlength=batch * width)
    produced = produced.reshape(batch, width)[:, 1:].astype(np.int64)
    return inventory + produced, action.astype(np.int64, copy=True), setup_cost, produced


def exogenous_step(
    plant: PlantArrays, post_inventory: np.ndarray, demand: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Random part of a period: serve ``demand`` (B, I) from the post-decision inventory.

    Unmet demand is lost at ``lost_sales_costs`` per unit; inventory above
    ``max_inventory_level`` is discarded at no cost; holding costs are paid on the
    end-of-period inventory.

    Returns:
        ``(inventory (B, I), holding_cost (B,), lost_sales_cost (B,), lost_units (B, I),
        discarded (B, I))``.
    """
    net = post_inventory - demand
    lost_units = np.maximum(-net, 0)
    on_hand = np.maximum(net, 0)
    inventory = np.minimum(on_hand, plant.max_inventory_level)
    discarded = on_hand - inventory
    # Row-wise sums rather than matmul: BLAS may sum in a batch-size-dependent order, and a
    # copy in the batched env must reproduce the single env bit for bit.
    holding_cost = (inventory * plant.holding_costs).sum(axis=1)
    lost_sales_cost = (lost_units * plant.lost_sales_costs).sum(axis=1)
    return inventory, holding_cost, lost_sales_cost, lost_units, discarded


def encode_observation(
    plant: PlantArrays,
    inventory: np.ndarray,
    setup: np.ndarray,
    period: int | np.ndarray,
    observe_setup: bool = True,
    observe_time: bool = True,
) -> np.ndarray:
    """Observation rows (B, D) float32: inventory / max_inventory_level, then (optionally) a
    one-hot of each machine's setup over 0..I, then (optionally) the elapsed fraction
    ``period / horizon``."""
    batch, n_items = inventory.shape
    width = observation_size(plant, observe_setup, observe_time)
    obs = np.zeros((batch, width), dtype=np.float32)
    obs[:, :n_items] = inventory / plant.max_inventory_level
    if observe_setup:
        # Flat positions of the ones: row start + setup block start + machine offset + setup.
        positions = (np.arange(batch) * width + n_items)[:, None] + plant.setup_offsets + setup
        obs.reshape(-1)[positions.ravel()] = 1.0
    if observe_time:
        obs[:, -1] = np.asarray(period) / plant.horizon
    return obs


def observation_size(plant: PlantArrays, observe_setup: bool, observe_time: bool) -> int:
    """Length D of an observation row for these flags."""
    size = plant.n_items
    if observe_setup:
        size += plant.n_machines * (plant.n_items + 1)
    if observe_time:
        size += 1
    return size


def demand_cdf(demand_model: DemandModel, n_items: int) -> np.ndarray:
    """Cumulative distribution table of the per-period demand, (1, K) or (I, K) float64.

    Entry ``[i, k]`` is P(demand of item i <= k); the last column is exactly 1. One row when
    every item has the same distribution (all parameters scalar), else one row per item,
    padded with 1. A Poisson tail beyond lam + 12 sqrt(lam) + 20 (mass below 1e-25) is folded
    into the last entry.
    """
    params = {key: np.broadcast_to(value, (n_items,)) for key, value in demand_model.params.items()}
    shared = all(value.ndim == 0 for value in demand_model.params.values())
    rows = []
    for item in range(1 if shared else n_items):
        if demand_model.distribution == "binomial":
            n, p = int(params["n"][item]), float(params["p"][item])
            pmf = _binomial_pmf(n, p)
        elif demand_model.distribution == "poisson":
            pmf = _poisson_pmf(float(params["lam"][item]))
        elif demand_model.distribution == "uniform":
            low, high = int(params["low"][item]), int(params["high"][item])
            pmf = np.zeros(high + 1)
            pmf[low:] = 1.0 / (high - low + 1)
        else:  # DemandModel validates its name; this guards against a new, unhandled one.
            raise ValueError(f"demand distribution '{demand_model.distribution}' is not supported")
        rows.append(np.minimum(np.cumsum(pmf), 1.0))
    width = max(row.size for row in rows)
    table = np.ones((len(rows), width))
    for item, row in enumerate(rows):
        table[item, : row.size] = row
    table[:, -1] = 1.0
    return table


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1)
    if p in (0.0, 1.0):
        return (k == (0 if p == 0.0 else n)).astype(np.float64)
    log_choose = np.array([lgamma(n + 1) - lgamma(j + 1) - lgamma(n - j + 1) for j in k])
    return np.exp(log_choose + k * log(p) + (n - k) * log1p(-p))


def _poisson_pmf(lam: float) -> np.ndarray:
    if lam == 0.0:
        return np.ones(1)
    k = np.arange(int(np.ceil(lam + 12.0 * np.sqrt(lam) + 20.0)) + 1)
    log_factorial = np.array([lgamma(j + 1) for j in k])
    return np.exp(k * log(lam) - lam - log_factorial)


def demand_from_uniforms(cdf: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Demands (..., I) int64 by inversion of uniforms (..., I) in [0, 1).

    Demand is the smallest k with P(demand <= k) >= 1 - u; using 1 - u, which lies in (0, 1],
    keeps values of zero probability (e.g. below a uniform's ``low``) out of reach.
    """
    levels = 1.0 - uniforms
    if cdf.shape[0] == 1:
        return np.searchsorted(cdf[0], levels).astype(np.int64, copy=False)
    demand = np.empty(levels.shape, dtype=np.int64)
    for item in range(cdf.shape[0]):
        demand[..., item] = np.searchsorted(cdf[item], levels[..., item])
    return demand


def sample_demand_path(
    rng: np.random.Generator,
    demand_model: DemandModel,
    horizon: int,
    n_items: int,
    cdf: np.ndarray | None = None,
) -> np.ndarray:
    """Demand of every item in every period, (horizon, n_items) int64.

    One call draws ``horizon * n_items`` uniforms from ``rng`` and inverts the demand
    distribution: exact up to float rounding, and several times faster than numpy's binomial
    sampler; the batched env inverts the uniforms of all its copies in one call. Pass the
    table from :func:`demand_cdf` as ``cdf`` to avoid rebuilding it.
    """
    if cdf is None:
        cdf = demand_cdf(demand_model, n_items)
    return demand_from_uniforms(cdf, rng.random((horizon, n_items)))


def initial_state_from_uniforms(
    plant: PlantArrays, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Random initial states from uniforms (B, I + M) in [0, 1): ``(inventory (B, I), setup
    (B, M))``, inventory uniform on 0..max_inventory_level-1 and each setup a uniformly chosen
    item the machine can make (floor of u times the number of choices)."""
    n_items = plant.n_items
    inventory = np.floor(uniforms[:, :n_items] * plant.max_inventory_level).astype(np.int64)
    # u < 1 keeps floor(u * n) below n; the minimum only guards against float surprises.
    inventory = np.minimum(inventory, plant.max_inventory_level - 1)
    choice = np.floor(uniforms[:, n_items:] * plant.n_producible).astype(np.int64)
    choice = np.minimum(choice, plant.n_producible - 1)
    return inventory, plant.producible_items[plant.machine_index, choice]


def sample_initial_state(
    rng: np.random.Generator, instance: LotSizingInstance | PlantArrays, random: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Initial ``(inventory (I,), setup (M,))``.

    With ``random`` (the SimplePlant reset), one call draws I + M uniforms from ``rng`` and
    :func:`initial_state_from_uniforms` maps them: inventory uniform on
    0..max_inventory_level-1 per item, each machine set up for a uniformly chosen item it can
    make. Otherwise the instance's ``initial_inventory`` and ``initial_setup`` are returned
    and ``rng`` is not touched.
    """
    plant = _as_arrays(instance)
    if not random:
        return plant.initial_inventory.copy(), plant.initial_setup.copy()
    inventory, setup = initial_state_from_uniforms(
        plant, rng.random((1, plant.n_items + plant.n_machines))
    )
    return inventory[0], setup[0]


def uniforms_per_reset(plant: PlantArrays, random_initial_state: bool) -> int:
    """How many uniforms a reset draws: I + M for a random initial state, then T * I demands.

    Drawing them in one ``rng.random`` call gives the same numbers as the separate calls of
    :func:`sample_initial_state` and :func:`sample_demand_path`, which is what lets the batched
    env draw per copy in one call and transform all copies at once.
    """
    state = plant.n_items + plant.n_machines if random_initial_state else 0
    return state + plant.horizon * plant.n_items
