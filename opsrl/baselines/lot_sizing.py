"""OR baselines for the lot-sizing env (``opsrl/LotSizing-v0``).

- :func:`solve_perfect_information` -- the perfect-information (clairvoyant) MIP on one realised
  demand path, solved with CP-SAT; its optimum is the best cost any policy can reach on that
  path and its dual bound is a valid lower bound on every policy's cost there.
- :class:`PerfectInformationPolicy` -- replays that plan (a reference, not a policy: it reads
  the future demand) and reports the bound to the runner.
- :class:`RollingHorizonMIPPolicy` -- a real policy: each period it plans a few periods ahead on
  expected demand with the same model and applies the first period.
- :class:`BaseStockPolicy` -- per-item order-up-to levels with greedy machine assignment.

The planning model (one builder, :func:`_build_plan_model`, shared by the two MIP baselines)
follows the env's dynamics exactly (see :mod:`opsrl.envs.lot_sizing.sim`). For period t,
machine m and item i it has

- ``run[t,m,i]`` in {0, 1}: machine m runs item i in period t; at most one item per machine
  and period (none = idle); only pairs with ``machine_production[m][i] > 0`` get a variable;
- ``change[t,m,i] = run[t,m,i] AND NOT run[t-1,m,i]``: a changeover, paying ``setup_costs``
  and making ``max(production - setup_loss, 0)`` units instead of ``production``; in period 0
  the previous setup is the state's (idling drops a setup, as in the env);
- ``inventory[t,i]`` in 0..max_inventory_level (end of period), ``lost[t,i]`` in 0..d[t,i]
  (lost sales), ``discard[t,i] >= 0`` (units above the storage limit, thrown away at no cost),
  with the balance ``inventory[t] = inventory[t-1] + produced[t] - d[t] + lost[t] -
  discard[t]``;
- two indicator literals that make the balance the env's and nothing else: ``lost > 0`` only
  when ``inventory == 0`` and ``discard > 0`` only when ``inventory == max_inventory_level``.

The objective is ``sum setup_costs * change + lost_sales_costs * lost + holding_costs *
inventory``. CP-SAT needs integer coefficients: costs are multiplied by the smallest power of
ten (up to 10**6) that makes them all integers -- 100 for the generated instances, whose costs
have two decimals -- and objective and bound are reported back in the instance's units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ortools.sat.python import cp_model

from opsrl.baselines.base import BaselinePolicy, Solution
from opsrl.envs.lot_sizing.data import LotSizingInstance
from opsrl.envs.lot_sizing.sim import PlantArrays, plant_arrays

__all__ = [
    "SOLVERS",
    "BaseStockPolicy",
    "PerfectInformationPolicy",
    "RollingHorizonMIPPolicy",
    "solve_perfect_information",
]

#: Solvers :func:`solve_perfect_information` accepts.
SOLVERS = ("cp_sat",)

_CP_SAT_STATUS = {
    cp_model.OPTIMAL: "optimal",
    cp_model.FEASIBLE: "feasible",
    cp_model.INFEASIBLE: "infeasible",
    cp_model.MODEL_INVALID: "unknown",
    cp_model.UNKNOWN: "unknown",
}


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _check_time_limit(time_limit: Any) -> float:
    if (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, (int, float, np.integer, np.floating))
        or not np.isfinite(time_limit)
        or time_limit <= 0
    ):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    return float(time_limit)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_solver(solver: Any) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    return solver


def _lot_sizing_env(env: gym.Env, who: str) -> Any:
    """The unwrapped env, checked to be a lot-sizing env (it has an instance and a demand)."""
    base = env.unwrapped
    for attribute in ("instance", "demand_path", "inventory", "setup", "t"):
        if not hasattr(base, attribute):
            raise ValueError(
                f"{who} needs a lot-sizing env (opsrl/LotSizing-v0); "
                f"{type(base).__name__} has no '{attribute}'"
            )
    return base


# --------------------------------------------------------------------------------------------
# The planning model, shared by the perfect-information and the rolling-horizon baselines
# --------------------------------------------------------------------------------------------


def _cost_scale(instance: LotSizingInstance) -> int:
    """Smallest power of ten, at most 10**6, that turns every cost into an integer."""
    costs = np.concatenate(
        [
            np.ravel(instance.setup_costs),
            np.ravel(instance.holding_costs),
            np.ravel(instance.lost_sales_costs),
        ]
    )
    for exponent in range(7):
        scaled = costs * 10**exponent
        if np.all(np.abs(scaled - np.round(scaled)) <= 1e-6 * np.maximum(1.0, np.abs(scaled))):
            return 10**exponent
    # More than six decimals: costs are rounded to 1e-6, far below anything a plant reports.
    return 10**6


@dataclass(frozen=True, eq=False)
class _ScaledCosts:
    """An instance's costs as integers for CP-SAT: ``round(cost * scale)``."""

    scale: int
    setup: np.ndarray  # (M, I) int64
    holding: np.ndarray  # (I,) int64
    lost_sales: np.ndarray  # (I,) int64

    @classmethod
    def of(cls, instance: LotSizingInstance) -> _ScaledCosts:
        scale = _cost_scale(instance)

        def integers(values: np.ndarray) -> np.ndarray:
            return np.round(np.asarray(values, dtype=np.float64) * scale).astype(np.int64)

        return cls(
            scale=scale,
            setup=integers(instance.setup_costs),
            holding=integers(instance.holding_costs),
            lost_sales=integers(instance.lost_sales_costs),
        )


@dataclass(eq=False)
class _PlanModel:
    """A CP-SAT planning model and the handles needed to read a plan back or hint one."""

    model: cp_model.CpModel
    n_periods: int
    run: dict[tuple[int, int, int], cp_model.IntVar]  # (t, m, item index) -> bool
    change: dict[tuple[int, int, int], cp_model.IntVar]  # only where a fresh variable exists
    inventory: list[list[cp_model.IntVar]]  # [t][i]
    lost: list[list[cp_model.IntVar]]
    discard: list[list[cp_model.IntVar]]
    stockout: dict[tuple[int, int], cp_model.IntVar]  # (t, i) -> bool: lost sales allowed
    at_limit: dict[tuple[int, int], cp_model.IntVar]  # (t, i) -> bool: discarding allowed


def _build_plan_model(
    plant: PlantArrays,
    costs: _ScaledCosts,
    demand: np.ndarray,
    inventory: np.ndarray,
    setup: np.ndarray,
    allowed_first: np.ndarray | None = None,
) -> _PlanModel:
    """CP-SAT model of the plant over ``len(demand)`` periods from state (inventory, setup).

    Args:
        plant: the instance's lookup tables.
        costs: its integer-scaled costs.
        demand: (H, I) integer demand of the planned periods (realised or expected).
        inventory: (I,) inventory at the start of the first planned period.
        setup: (M,) setups at the start of the first planned period, 0 = idle.
        allowed_first: optional (M, I+1) mask of the actions allowed in the first period
            (an env's ``action_masks``); later periods allow every producible item.

    The feasible set is exactly the set of env trajectories from that state on that demand:
    given the actions, ``change`` is forced to the env's changeover flags, and the two
    indicator literals leave one solution of the balance, the env's (lost sales only at zero
    inventory, discards only at the limit).
    """
    n_periods, n_items = demand.shape
    n_machines = plant.n_machines
    model = cp_model.CpModel()
    production = plant.production[:, 1:]
    shortfall_after_setup = production - plant.yield_after_setup[:, 1:]
    limit = plant.max_inventory_level
    most_produced = production.sum(axis=0)

    run: dict[tuple[int, int, int], cp_model.IntVar] = {}
    change: dict[tuple[int, int, int], cp_model.IntVar] = {}
    change_terms: dict[tuple[int, int, int], Any] = {}
    for t in range(n_periods):
        for m in range(n_machines):
            runs_of_machine = []
            for i in range(n_items):
                if production[m, i] == 0:
                    continue
                if t == 0 and allowed_first is not None and not allowed_first[m, i + 1]:
                    continue
                var = model.new_bool_var(f"run_{t}_{m}_{i}")
                run[t, m, i] = var
                runs_of_machine.append(var)
                if t == 0:
                    # The previous setup is data: a changeover unless already set up for i.
                    change_terms[t, m, i] = 0 if setup[m] == i + 1 else var
                    continue
                previous = run.get((t - 1, m, i))
                if previous is None:  # item not runnable in t-1: every run is a changeover
                    change_terms[t, m, i] = var
                    continue
                flag = model.new_bool_var(f"change_{t}_{m}_{i}")
                # flag == var AND NOT previous, written linearly for a tight LP relaxation.
                model.add(flag >= var - previous)
                model.add(flag <= var)
                model.add(flag <= 1 - previous)
                change[t, m, i] = flag
                change_terms[t, m, i] = flag
            if len(runs_of_machine) > 1:
                model.add_at_most_one(runs_of_machine)

    stock: list[list[cp_model.IntVar]] = []
    lost: list[list[cp_model.IntVar]] = []
    discard: list[list[cp_model.IntVar]] = []
    stockout: dict[tuple[int, int], cp_model.IntVar] = {}
    at_limit: dict[tuple[int, int], cp_model.IntVar] = {}
    objective = []
    for t in range(n_periods):
        stock_t, lost_t, discard_t = [], [], []
        for i in range(n_items):
            cap = int(limit[i])
            d = int(demand[t, i])
            level = model.new_int_var(0, cap, f"inventory_{t}_{i}")
            unmet = model.new_int_var(0, d, f"lost_{t}_{i}")
            thrown = model.new_int_var(0, cap + int(most_produced[i]), f"discard_{t}_{i}")
            produced = [
                int(production[m, i]) * run[t, m, i]
                - int(shortfall_after_setup[m, i]) * change_terms[t, m, i]
                for m in range(n_machines)
                if (t, m, i) in run
            ]
            previous = int(inventory[i]) if t == 0 else stock[t - 1][i]
            model.add(level == previous + sum(produced) - d + unmet - thrown)
            if d > 0:
                out = model.new_bool_var(f"stockout_{t}_{i}")
                model.add(level == 0).only_enforce_if(out)
                model.add(unmet == 0).only_enforce_if(~out)
                stockout[t, i] = out
            full = model.new_bool_var(f"at_limit_{t}_{i}")
            model.add(level == cap).only_enforce_if(full)
            model.add(thrown == 0).only_enforce_if(~full)
            at_limit[t, i] = full
            objective.append(int(costs.lost_sales[i]) * unmet + int(costs.holding[i]) * level)
            stock_t.append(level)
            lost_t.append(unmet)
            discard_t.append(thrown)
        stock.append(stock_t)
        lost.append(lost_t)
        discard.append(discard_t)
    for (_, m, i), term in change_terms.items():
        if costs.setup[m, i] and not isinstance(term, int):
            objective.append(int(costs.setup[m, i]) * term)
    model.minimize(sum(objective))
    return _PlanModel(model, n_periods, run, change, stock, lost, discard, stockout, at_limit)


def _simulate_plan(
    plant: PlantArrays,
    plan: np.ndarray,
    demand: np.ndarray,
    inventory: np.ndarray,
    setup: np.ndarray,
) -> dict[str, np.ndarray]:
    """The env's trajectory of ``plan`` (H, M) on ``demand`` (H, I): per period the
    changeover flags (H, M), end inventory, lost and discarded units (H, I) and costs."""
    n_periods = plan.shape[0]
    inventory = np.asarray(inventory, dtype=np.int64).copy()
    setup = np.asarray(setup, dtype=np.int64).copy()
    machines = plant.machine_index
    out = {
        "changeover": np.zeros(plan.shape, dtype=bool),
        "inventory": np.zeros(demand.shape, dtype=np.int64),
        "lost": np.zeros(demand.shape, dtype=np.int64),
        "discard": np.zeros(demand.shape, dtype=np.int64),
        "setup_cost": np.zeros(n_periods),
        "holding_cost": np.zeros(n_periods),
        "lost_sales_cost": np.zeros(n_periods),
    }
    for t in range(n_periods):
        action = plan[t]
        changeover = (action != setup) & (action != 0)
        machine_yield = np.where(
            changeover,
            plant.yield_after_setup[machines, action],
            plant.production[machines, action],
        )
        produced = np.bincount(action, weights=machine_yield, minlength=plant.n_items + 1)[1:]
        net = inventory + produced.astype(np.int64) - demand[t]
        on_hand = np.maximum(net, 0)
        inventory = np.minimum(on_hand, plant.max_inventory_level)
        setup = action.copy()
        out["changeover"][t] = changeover
        out["inventory"][t] = inventory
        out["lost"][t] = np.maximum(-net, 0)
        out["discard"][t] = on_hand - inventory
        out["setup_cost"][t] = (plant.setup_costs[machines, action] * changeover).sum()
        out["holding_cost"][t] = (inventory * plant.holding_costs).sum()
        out["lost_sales_cost"][t] = (out["lost"][t] * plant.lost_sales_costs).sum()
    return out


def _add_hint(plan_model: _PlanModel, trajectory: dict[str, np.ndarray], plan: np.ndarray) -> None:
    """Hint a complete solution (the env trajectory of ``plan``) to CP-SAT."""
    model = plan_model.model
    for (t, m, i), var in plan_model.run.items():
        model.add_hint(var, int(plan[t, m] == i + 1))
    for (t, m, i), var in plan_model.change.items():
        model.add_hint(var, int(plan[t, m] == i + 1 and trajectory["changeover"][t, m]))
    for t in range(plan_model.n_periods):
        for i, var in enumerate(plan_model.inventory[t]):
            model.add_hint(var, int(trajectory["inventory"][t, i]))
            model.add_hint(plan_model.lost[t][i], int(trajectory["lost"][t, i]))
            model.add_hint(plan_model.discard[t][i], int(trajectory["discard"][t, i]))
    for (t, i), var in plan_model.stockout.items():
        model.add_hint(var, int(trajectory["lost"][t, i] > 0))
    for (t, i), var in plan_model.at_limit.items():
        model.add_hint(var, int(trajectory["discard"][t, i] > 0))


def _solve(
    plan_model: _PlanModel, time_limit: float, num_workers: int
) -> tuple[cp_model.CpSolver, int, float]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = 0
    start = time.perf_counter()
    status = solver.solve(plan_model.model)
    return solver, status, time.perf_counter() - start


def _read_plan(plan_model: _PlanModel, solver: cp_model.CpSolver, n_machines: int) -> np.ndarray:
    plan = np.zeros((plan_model.n_periods, n_machines), dtype=np.int64)
    for (t, m, i), var in plan_model.run.items():
        if solver.boolean_value(var):
            plan[t, m] = i + 1
    return plan


def _as_state(
    instance: LotSizingInstance, initial_inventory: Any, initial_setup: Any
) -> tuple[np.ndarray, np.ndarray]:
    inventory = np.asarray(initial_inventory)
    setup = np.asarray(initial_setup)
    if inventory.shape != (instance.n_items,) or not np.all(inventory == np.round(inventory)):
        raise ValueError(
            f"initial_inventory must be {instance.n_items} integers, got shape {inventory.shape}"
        )
    if np.any(inventory < 0) or np.any(inventory > instance.max_inventory_level):
        raise ValueError("initial_inventory must lie in 0..max_inventory_level for every item")
    if setup.shape != (instance.n_machines,) or not np.all(setup == np.round(setup)):
        raise ValueError(
            f"initial_setup must be {instance.n_machines} integers, got shape {setup.shape}"
        )
    setup = setup.astype(np.int64)
    if np.any(setup < 0) or np.any(setup > instance.n_items):
        raise ValueError(f"initial_setup values must lie in 0..{instance.n_items}")
    return inventory.astype(np.int64), setup


def solve_perfect_information(
    instance: LotSizingInstance,
    demand_path: np.ndarray,
    initial_inventory: np.ndarray,
    initial_setup: np.ndarray,
    time_limit: float = 10.0,
    num_workers: int = 1,
    solver: str = "cp_sat",
) -> Solution:
    """Perfect-information MIP: the cheapest plan on one known demand path.

    The model (module docstring) follows the env's period exactly: changeovers and setup
    losses (yield ``max(production - loss, 0)``, so a loss above the production rate makes
    nothing), demand served first, the shortfall lost, the excess over
    ``max_inventory_level`` discarded at no cost, holding cost on the end-of-period inventory.

    Validity. Every sequence of feasible env actions on ``demand_path`` gives a feasible
    solution of the model with the env's cost: take ``run`` from the actions, ``change`` from
    the env's changeovers, ``inventory``, ``lost`` and ``discard`` from the env's end inventory,
    shortfall and discarded units; the balance holds, ``lost > 0`` happens only at zero
    inventory and ``discard > 0`` only at the limit, and the objective adds up the same three
    costs. Conversely the indicator constraints leave each action sequence only its env
    trajectory. So the optimum equals the best cost of any (even clairvoyant) policy on this
    path, and any lower bound the solver proves -- :attr:`Solution.bound`, valid when the time
    limit stops it too -- is below the cost of every policy on the path. Averaged over sampled
    paths, it bounds the expected cost of every non-anticipative policy from below.

    Solver choice: CP-SAT. The model is pure integer (items, machines and periods are unit
    counts), CP-SAT takes the indicator ("only enforce if") constraints without big-M
    constants, solves with its LP relaxation plus search on one or two threads, accepts a
    complete hint, and ships with OR-Tools with no licence. Costs are scaled to integers
    (module docstring); objective and bound are reported in the instance's units.

    Args:
        instance: the plant.
        demand_path: (T, I) realised demand, e.g. ``env.unwrapped.demand_path``; T may be
            shorter than the instance's horizon.
        initial_inventory: (I,) inventory at the start.
        initial_setup: (M,) setups at the start, 0 = idle.
        time_limit: seconds for CP-SAT.
        num_workers: CP-SAT search workers (threads).
        solver: ``"cp_sat"``.

    Returns:
        :class:`~opsrl.baselines.base.Solution` with the objective (cost of the best plan
        found), status ``optimal``/``feasible`` (``bound`` when only a bound was found), the
        solver's best bound on the optimal cost and the wall time (model build + solve).
        ``metadata`` holds ``plan`` ((T, M) int64 actions), ``setup_cost``,
        ``holding_cost``, ``lost_sales_cost`` (of the plan), ``cost_scale``,
        ``solve_time``, ``solver``, ``num_workers`` and ``time_limit``.
    """
    start = time.perf_counter()
    time_limit = _check_time_limit(time_limit)
    num_workers = _check_positive_int("num_workers", num_workers)
    solver = _check_solver(solver)
    demand = np.asarray(demand_path)
    if (
        demand.ndim != 2
        or demand.shape[1] != instance.n_items
        or demand.shape[0] < 1
        or not np.all(demand == np.round(demand))
        or np.any(demand < 0)
    ):
        raise ValueError(
            f"demand_path must be a (T, {instance.n_items}) array of non-negative integers, "
            f"got shape {demand.shape}"
        )
    demand = demand.astype(np.int64)
    inventory, setup = _as_state(instance, initial_inventory, initial_setup)
    plant = plant_arrays(instance)
    costs = _ScaledCosts.of(instance)
    plan_model = _build_plan_model(plant, costs, demand, inventory, setup)
    # A complete starting solution: the base-stock rule run on the path. It gives CP-SAT an
    # incumbent at once, so a short time limit still returns a plan.
    heuristic = _base_stock_plan(plant, demand, inventory, setup, _default_levels(instance))
    _add_hint(plan_model, _simulate_plan(plant, heuristic, demand, inventory, setup), heuristic)
    cp_solver, status, solve_time = _solve(plan_model, time_limit, num_workers)
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    bound = cp_solver.best_objective_bound / costs.scale if status != cp_model.INFEASIBLE else None
    metadata: dict[str, Any] = {
        "solver": solver,
        "num_workers": num_workers,
        "time_limit": time_limit,
        "cost_scale": costs.scale,
        "solve_time": solve_time,
    }
    objective = None
    label = _CP_SAT_STATUS[status]
    if found:
        plan = _read_plan(plan_model, cp_solver, plant.n_machines)
        objective = cp_solver.objective_value / costs.scale
        trajectory = _simulate_plan(plant, plan, demand, inventory, setup)
        metadata["plan"] = plan
        for key in ("setup_cost", "holding_cost", "lost_sales_cost"):
            metadata[key] = float(trajectory[key].sum())
    elif bound is not None and np.isfinite(bound):
        label = "bound"
    return Solution(
        objective=objective,
        status=label,
        bound=bound,
        wall_time=time.perf_counter() - start,
        metadata=metadata,
    )


# --------------------------------------------------------------------------------------------
# Base stock
# --------------------------------------------------------------------------------------------


def _default_levels(instance: LotSizingInstance, safety_periods: float = 3.0) -> np.ndarray:
    return instance.demand.mean(instance.n_items) * safety_periods


def _base_stock_action(
    plant: PlantArrays,
    inventory: np.ndarray,
    setup: np.ndarray,
    levels: np.ndarray,
    allowed: np.ndarray,
) -> np.ndarray:
    """One period of the base-stock rule (see :class:`BaseStockPolicy`); (M,) int64."""
    need = levels - inventory
    action = np.zeros(plant.n_machines, dtype=np.int64)
    free = np.ones(plant.n_machines, dtype=bool)
    # Keep a machine on its setup while its item is below its level: no setup cost, full rate.
    for m in range(plant.n_machines):
        item = int(setup[m])
        if item and need[item - 1] > 0 and allowed[m, item]:
            action[m] = item
            need[item - 1] -= plant.production[m, item]
            free[m] = False
    # Then the most urgent item (largest lost-sales-weighted shortfall) gets the free machine
    # that makes the most of it after the setup loss, cheaper setup first on ties.
    weight = plant.lost_sales_costs
    while free.any():
        candidates = np.flatnonzero(need > 0)
        best = None
        for i in candidates[np.lexsort((candidates, -weight[candidates] * need[candidates]))]:
            makers = np.flatnonzero(free & allowed[:, i + 1] & (plant.yield_after_setup[:, i + 1] > 0))
            if makers.size:
                order = np.lexsort(
                    (makers, plant.setup_costs[makers, i + 1], -plant.yield_after_setup[makers, i + 1])
                )
                best = (int(i), int(makers[order[0]]))
                break
        if best is None:
            break
        i, m = best
        action[m] = i + 1
        need[i] -= plant.yield_after_setup[m, i + 1]
        free[m] = False
    return action


def _base_stock_plan(
    plant: PlantArrays,
    demand: np.ndarray,
    inventory: np.ndarray,
    setup: np.ndarray,
    levels: np.ndarray,
) -> np.ndarray:
    """The base-stock rule's actions (H, M) along ``demand`` from (inventory, setup)."""
    plan = np.zeros((demand.shape[0], plant.n_machines), dtype=np.int64)
    inventory = np.asarray(inventory, dtype=np.int64)
    setup = np.asarray(setup, dtype=np.int64)
    for t in range(demand.shape[0]):
        plan[t] = _base_stock_action(plant, inventory, setup, levels, plant.can_make)
        step = _simulate_plan(plant, plan[t : t + 1], demand[t : t + 1], inventory, setup)
        inventory, setup = step["inventory"][0], plan[t]
    return plan
