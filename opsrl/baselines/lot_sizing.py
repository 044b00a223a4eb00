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
  (lost sales), ``discard[t,i]`` (units above the storage limit, thrown away at no cost, so
  that a machine may keep its setup by producing into a full store) in 0..max(sum_m
  production[m][i] - d[t,i], 0) -- the start inventory is at most the limit, so only this
  period's output can overflow --, with the balance ``inventory[t] = inventory[t-1] +
  produced[t] - d[t] + lost[t] - discard[t]``;
- two indicator literals that make the balance the env's and nothing else: ``lost > 0`` only
  when ``inventory == 0`` and ``discard > 0`` only when ``inventory == max_inventory_level``.

The objective is ``sum setup_costs * change + lost_sales_costs * lost + holding_costs *
inventory``. CP-SAT needs integer coefficients: costs are multiplied by the smallest power of
ten (up to 10**6) that makes them all integers -- 100 for the generated instances, whose costs
have two decimals -- and objective and bound are reported back in the instance's units (costs
with more than six decimals would be rounded to 1e-6).

Solve times. The LP relaxation of changeover models is weak (a machine may split itself over
several items at no setup cost), so proofs are slow: one thread proves 3x2 and 5x3 instances
over 8-10 periods optimal in well under a second, but 15x5 over 10 periods can take 5-40 s,
and over 100 periods the search stops at the time limit with a bound far below the plan's
cost. The plan is then at least as good as the hint (the cheaper of the base-stock and the
all-idle plan); the bound stays valid, but loose. Two workers let CP-SAT run large-neighbourhood
search beside the tree search, which improves long plans (15x5, T = 100, seed 0: 1692 against
the hint's 1720 in 10 s); one thread stays the default for machines shared with training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ortools.sat.python import cp_model

from opsrl.baselines.base import (
    BaselinePolicy,
    Solution,
    check_positive_int,
    check_time_limit,
    require_env,
)
from opsrl.envs.lot_sizing.data import LotSizingInstance
from opsrl.envs.lot_sizing.sim import PlantArrays, decision_step, exogenous_step, plant_arrays

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


def _check_solver(solver: Any) -> str:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    return solver


def _lot_sizing_env(env: gym.Env, who: str) -> Any:
    """The unwrapped env, checked to be a lot-sizing env (it has an instance and a demand)."""
    return require_env(
        env.unwrapped,
        ("instance", "demand_path", "inventory", "setup", "t"),
        who,
        "a lot-sizing env (opsrl/LotSizing-v0)",
        type(env.unwrapped).__name__,
    )


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
            thrown = model.new_int_var(0, max(int(most_produced[i]) - d, 0), f"discard_{t}_{i}")
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
    """The env's trajectory of ``plan`` (H, M) on ``demand`` (H, I), stepped with the env's own
    simulator functions: per period the changeover flags (H, M), end inventory, lost and
    discarded units (H, I) and the three costs (H,)."""
    n_periods = plan.shape[0]
    inventory = np.asarray(inventory, dtype=np.int64)[None]
    setup = np.asarray(setup, dtype=np.int64)[None]
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
        action = np.asarray(plan[t : t + 1], dtype=np.int64)
        out["changeover"][t] = (action[0] != setup[0]) & (action[0] != 0)
        post, setup, setup_cost, _ = decision_step(plant, inventory, setup, action)
        inventory, holding, lost_sales, lost, discard = exogenous_step(
            plant, post, demand[t : t + 1]
        )
        out["inventory"][t], out["lost"][t], out["discard"][t] = inventory[0], lost[0], discard[0]
        out["setup_cost"][t] = setup_cost[0]
        out["holding_cost"][t] = holding[0]
        out["lost_sales_cost"][t] = lost_sales[0]
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
    """Solve with CP-SAT; returns the solver (to read values), its status and the wall time."""
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = num_workers
    solver.parameters.random_seed = 0
    # Level 2 adds the LP relaxation of every linear constraint and its cuts to the search;
    # on this model it proves small instances optimal several times faster than level 1.
    solver.parameters.linearization_level = 2
    start = time.perf_counter()
    status = solver.solve(plan_model.model)
    return solver, status, time.perf_counter() - start


def _read_plan(plan_model: _PlanModel, solver: cp_model.CpSolver, n_machines: int) -> np.ndarray:
    plan = np.zeros((plan_model.n_periods, n_machines), dtype=np.int64)
    for (t, m, i), var in plan_model.run.items():
        if solver.boolean_value(var):
            plan[t, m] = i + 1
    return plan


def _hint_cheapest(
    plant: PlantArrays,
    plan_model: _PlanModel,
    plans: list[np.ndarray],
    demand: np.ndarray,
    inventory: np.ndarray,
    setup: np.ndarray,
) -> None:
    """Hint the cheapest of ``plans`` (each (H, M)) on ``demand`` as a complete solution."""
    best = None
    for plan in plans:
        trajectory = _simulate_plan(plant, plan, demand, inventory, setup)
        cost = sum(
            trajectory[key].sum() for key in ("setup_cost", "holding_cost", "lost_sales_cost")
        )
        if best is None or cost < best[0]:
            best = (cost, plan, trajectory)
    assert best is not None
    _add_hint(plan_model, best[2], best[1])


def _as_state(
    instance: LotSizingInstance, initial_inventory: Any, initial_setup: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert a plant state; a ValueError names the bad argument."""
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
    ``max_inventory_level`` discarded at no cost -- so a machine may keep its setup by
    producing into a full store --, holding cost on the end-of-period inventory.

    Validity. Every sequence of feasible env actions on ``demand_path`` gives a feasible
    solution of the model with the env's cost: take ``run`` from the actions, ``change`` from
    the env's changeovers, ``inventory``, ``lost`` and ``discard`` from the env's end inventory,
    shortfall and discarded units. The balance holds; ``lost > 0`` only at zero end inventory
    and ``discard > 0`` only at the limit, as in the env (demand is served before the limit
    applies); and the objective adds up the same three costs. So the optimum is at most the
    cost of any policy, clairvoyant or not, on this path, and every lower bound CP-SAT proves
    -- :attr:`Solution.bound`, valid also when the time limit stops the search -- is below
    it. Conversely the indicator constraints leave each action sequence only its env
    trajectory, so the optimum *equals* the best cost reachable on the path. Averaged over
    sampled paths, the bound is below the expected cost of every policy.

    Solver. CP-SAT: the model is pure integer (units, periods and machines are counts), CP-SAT
    takes the two indicator constraints without big-M constants, accepts a complete hint (the
    cheaper of the base-stock plan and the all-idle plan, so a plan comes back even when the
    limit is short) and runs on one thread. With its LP relaxation and cuts
    (``linearization_level=2``) it proved 10-period 15x5 models optimal in 2-45 s on one
    thread, against 10-35 s for SCIP (through pywraplp, with big-M indicators) in our trials;
    the default linearization took several times longer. Costs are scaled to integers
    (module docstring); objective and bound come back in the instance's units. Long horizons
    are hard (module docstring): on 15x5 with T = 100 the search stops at the limit and the
    bound stays far below the objective -- valid, but loose.

    A time-limited solve depends on the machine's speed: two runs may return different plans
    unless the status is ``optimal``.

    Args:
        instance: the plant.
        demand_path: (T, I) realised demand, e.g. ``env.unwrapped.demand_path``; T may differ
            from the instance's horizon.
        initial_inventory: (I,) inventory at the start, 0..max_inventory_level.
        initial_setup: (M,) setups at the start, 0 = idle.
        time_limit: seconds for CP-SAT (> 0).
        num_workers: CP-SAT search workers (threads), at least 1.
        solver: ``"cp_sat"`` (the only one; the argument keeps the signature open).

    Returns:
        :class:`~opsrl.baselines.base.Solution` with ``objective`` (cost of the best plan
        found; when CP-SAT finds none in time, the cheaper starting plan, with
        ``metadata["plan_source"]`` saying so), ``status`` (``optimal``, ``feasible``),
        ``bound`` (the solver's lower bound on the optimal cost) and ``wall_time`` (model
        building and solve). ``metadata``: ``plan`` ((T, M) int64 actions, as for
        ``env.step``), ``setup_cost``, ``holding_cost``, ``lost_sales_cost`` (split of the
        plan's cost), ``solver``, ``num_workers``, ``time_limit``, ``cost_scale`` and
        ``solve_time`` (CP-SAT alone).
    """
    start = time.perf_counter()
    time_limit = check_time_limit(time_limit)
    num_workers = check_positive_int("num_workers", num_workers)
    solver = _check_solver(solver)
    demand = np.asarray(demand_path)
    if (
        demand.ndim != 2
        or demand.shape[0] < 1
        or demand.shape[1] != instance.n_items
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
    heuristic = _base_stock_plan(plant, demand, inventory, setup, _default_levels(instance))
    idle = np.zeros_like(heuristic)
    _hint_cheapest(plant, plan_model, [heuristic, idle], demand, inventory, setup)
    cp_solver, status, solve_time = _solve(plan_model, time_limit, num_workers)

    metadata: dict[str, Any] = {
        "solver": solver,
        "num_workers": num_workers,
        "time_limit": time_limit,
        "cost_scale": costs.scale,
        "solve_time": solve_time,
    }
    label = _CP_SAT_STATUS[status]
    bound = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        plan = _read_plan(plan_model, cp_solver, plant.n_machines)
        metadata["plan_source"] = "cp_sat"
    else:
        # Nothing found in time (a very short limit on a loaded machine): keep the cheaper
        # starting plan so that the policy can still act; the solver's bound stays valid.
        plan = min((heuristic, idle), key=lambda p: _plan_cost(plant, p, demand, inventory, setup))
        metadata["plan_source"] = "starting solution"
        label = "feasible"
    trajectory = _simulate_plan(plant, plan, demand, inventory, setup)
    metadata["plan"] = plan
    for key in ("setup_cost", "holding_cost", "lost_sales_cost"):
        metadata[key] = float(trajectory[key].sum())
    objective = metadata["setup_cost"] + metadata["holding_cost"] + metadata["lost_sales_cost"]
    if status != cp_model.INFEASIBLE and np.isfinite(cp_solver.best_objective_bound):
        bound = min(cp_solver.best_objective_bound / costs.scale, objective)
    return Solution(
        objective=objective,
        status=label,
        bound=bound,
        wall_time=time.perf_counter() - start,
        metadata=metadata,
    )


def _plan_cost(
    plant: PlantArrays,
    plan: np.ndarray,
    demand: np.ndarray,
    inventory: np.ndarray,
    setup: np.ndarray,
) -> float:
    trajectory = _simulate_plan(plant, plan, demand, inventory, setup)
    return float(
        sum(trajectory[key].sum() for key in ("setup_cost", "holding_cost", "lost_sales_cost"))
    )


# --------------------------------------------------------------------------------------------
# Heuristics: base stock, expected demand
# --------------------------------------------------------------------------------------------

#: Default cover of the base-stock levels, in periods of mean demand.
DEFAULT_SAFETY_PERIODS = 10.0


def _default_levels(
    instance: LotSizingInstance, safety_periods: float = DEFAULT_SAFETY_PERIODS
) -> np.ndarray:
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
    # that makes the most of it after the setup loss, cheaper setup first on ties -- provided
    # the lost sales of that shortfall would cost at least the setup.
    weight = plant.lost_sales_costs
    while free.any():
        candidates = np.flatnonzero(need > 0)
        urgency = weight[candidates] * need[candidates]
        best = None
        for i in candidates[np.lexsort((candidates, -urgency))]:
            makers = np.flatnonzero(
                free
                & allowed[:, i + 1]
                & (plant.yield_after_setup[:, i + 1] > 0)
                & (plant.setup_costs[:, i + 1] <= weight[i] * need[i])
            )
            if makers.size:
                order = np.lexsort(
                    (
                        makers,
                        plant.setup_costs[makers, i + 1],
                        -plant.yield_after_setup[makers, i + 1],
                    )
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


def _expected_demand(mean: np.ndarray, start: int, n_periods: int) -> np.ndarray:
    """Integer demand (n_periods, I) of periods start.. whose running totals follow the mean.

    Period t gets ``round(mean * (t + 1)) - round(mean * t)``: a mean of 8 gives 8 every
    period, a mean of 7.5 alternates 8 and 7, and no rounding error builds up.
    """
    periods = np.arange(start, start + n_periods + 1, dtype=np.float64)[:, None]
    totals = np.floor(periods * mean[None, :] + 0.5).astype(np.int64)
    return np.diff(totals, axis=0)


def _allowed_actions(plant: PlantArrays, action_masks: Any) -> np.ndarray:
    """(M, I+1) bool: actions the plant allows, narrowed by ``action_masks`` when given."""
    if action_masks is None:
        return plant.can_make
    mask = np.asarray(action_masks, dtype=bool)
    size = plant.n_machines * (plant.n_items + 1)
    if mask.size != size:
        raise ValueError(
            f"action_masks must have M * (I + 1) = {size} entries, got shape {mask.shape}"
        )
    allowed = mask.reshape(plant.n_machines, plant.n_items + 1) & plant.can_make
    allowed[:, 0] = True  # idling is always possible in the env
    return allowed


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


class _LotSizingPolicy(BaselinePolicy):
    """Shared plumbing: the unwrapped env, its plant tables and the action dtype."""

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self._attach(env)

    def _attach(self, env: gym.Env) -> None:
        self.env = _lot_sizing_env(env, type(self).__name__)
        if self.env.instance is not getattr(self, "_instance", None):
            self._instance = self.env.instance
            self._plant = plant_arrays(self._instance)

    def reset(self, env: gym.Env) -> None:
        """Follow ``env`` (the runner's evaluation env) from its new episode."""
        self._attach(env)

    def _action(self, action: np.ndarray) -> np.ndarray:
        return np.asarray(action, dtype=self.action_space.dtype)


class PerfectInformationPolicy(_LotSizingPolicy):
    """Clairvoyant reference: replays the perfect-information plan of the episode.

    On :meth:`reset` it reads the episode's whole demand path (``env.unwrapped.demand_path``,
    drawn at ``env.reset``) and its initial inventory and setups, solves
    :func:`solve_perfect_information` once, and :meth:`predict` returns the plan's action of
    the current period. It sees the future, so it is not a policy one could run in a plant:
    its return is the best (up to the time limit) any policy could reach on that episode, and
    :meth:`episode_bound` gives the runner minus the solver's lower bound on the cost, an
    upper bound on every policy's return on the episode.

    "Best" holds when the solve is optimal, as on the small instances over short horizons.
    On the PDPPO sizes over 100 periods, 10 s on one thread do not improve on the hint (the
    base-stock plan) and the bound is loose (tens, against costs in the thousands), so a real
    policy such as :class:`RollingHorizonMIPPolicy` can beat this reference there; more
    ``time_limit`` and ``num_workers`` help (module docstring).

    Args:
        env: the lot-sizing env it will act in.
        seed: unused (the plan is deterministic up to the time limit); kept for the runner.
        time_limit: CP-SAT seconds per episode.
        num_workers: CP-SAT threads.
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        time_limit: float = 10.0,
        num_workers: int = 1,
    ) -> None:
        super().__init__(env, seed=seed)
        self.time_limit = check_time_limit(time_limit)
        self.num_workers = check_positive_int("num_workers", num_workers)
        self.solution: Solution | None = None
        self._solved_for: tuple[Any, ...] | None = None

    def _episode_key(self) -> tuple[Any, ...]:
        env = self.env
        return (
            id(env.instance),
            env.demand_path.tobytes(),
            env.inventory.tobytes(),
            env.setup.tobytes(),
        )

    def _ensure_plan(self) -> Solution:
        """Solve the episode if not done yet; needs the env at its first period."""
        if self.solution is not None and self._solved_for is not None:
            if self.env.t > 0 or self._solved_for == self._episode_key():
                return self.solution
        if self.env.t != 0:
            raise RuntimeError(
                "PerfectInformationPolicy plans from the start of an episode: call "
                "policy.reset(env) right after env.reset()"
            )
        self.solution = solve_perfect_information(
            self._instance,
            self.env.demand_path,
            self.env.inventory,
            self.env.setup,
            time_limit=self.time_limit,
            num_workers=self.num_workers,
        )
        if "plan" not in self.solution.metadata:
            raise RuntimeError(
                f"the perfect-information model found no plan in {self.time_limit} s "
                f"(status {self.solution.status}); raise time_limit"
            )
        self._solved_for = self._episode_key()
        return self.solution

    def reset(self, env: gym.Env) -> None:
        """Solve the new episode's perfect-information model (once; cached)."""
        super().reset(env)
        if self.env.t == 0:
            self._ensure_plan()

    def episode_bound(self, env: gym.Env) -> float | None:
        """Minus the solver's lower bound on the episode's cost (an upper bound on return)."""
        self._attach(env)
        solution = self._ensure_plan()
        return None if solution.bound is None else -solution.bound

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The plan's action for the env's current period."""
        if self.env.t == 0:
            self._ensure_plan()
        if self.solution is None:
            raise RuntimeError("call policy.reset(env) after env.reset() before predict()")
        action = self.solution.metadata["plan"][self.env.t]
        allowed = _allowed_actions(self._plant, action_masks)
        if not allowed[self._plant.machine_index, action].all():
            raise RuntimeError(f"the plan's action {action.tolist()} is masked out")
        return self._action(action), state


class RollingHorizonMIPPolicy(_LotSizingPolicy):
    """Rolling-horizon MIP on expected demand, re-solved every period.

    Each period it builds the planning model of :func:`solve_perfect_information` from the
    env's current inventory and setups over the next ``lookahead`` periods (fewer at the end of
    the horizon), with each item's demand set to the demand model's mean, rounded so that
    running totals follow the mean (:func:`_expected_demand`); it solves it with CP-SAT within
    ``time_limit`` seconds and applies the first period's decision. It never looks at the
    realised demand, so it is a real (non-anticipative) policy. The previous period's plan,
    shifted by one, is the starting solution (hint) of the next solve; should CP-SAT return no
    plan in time, the base-stock rule (:class:`BaseStockPolicy` defaults) decides the period.

    The window has no terminal value: inventory left after the window is worth nothing to the
    model, so it plans to run stocks down near the window's end; only the first period is
    applied, and a longer ``lookahead`` weakens that effect at a higher solve time. Planning on
    the mean keeps no safety stock against demand above it. Most solves stop at the time limit
    (module docstring), so the plan improves on its hints rather than being optimal; a
    100-period episode takes about 100 * (time_limit + model building), some 25 s on 15x5
    and 33 s on 25x15 with the defaults on one thread.

    Args:
        env: the lot-sizing env it will act in.
        seed: unused (deterministic up to the time limits); kept for the runner.
        lookahead: periods planned each time (>= 1).
        time_limit: CP-SAT seconds per period.
        num_workers: CP-SAT threads.
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        lookahead: int = 10,
        time_limit: float = 0.2,
        num_workers: int = 1,
    ) -> None:
        super().__init__(env, seed=seed)
        self.lookahead = check_positive_int("lookahead", lookahead)
        self.time_limit = check_time_limit(time_limit)
        self.num_workers = check_positive_int("num_workers", num_workers)
        self._costs = _ScaledCosts.of(self._instance)
        self._previous: tuple[int, np.ndarray] | None = None  # (period, plan from it)

    def reset(self, env: gym.Env) -> None:
        """Follow the new episode; forget the previous plan."""
        instance = getattr(self, "_instance", None)
        super().reset(env)
        if self._instance is not instance:
            self._costs = _ScaledCosts.of(self._instance)
        self._previous = None

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Plan the next ``lookahead`` periods on expected demand; return the first period."""
        plant, env = self._plant, self.env
        period = env.t
        n_periods = min(self.lookahead, self._instance.horizon - period)
        if n_periods < 1:
            raise RuntimeError("the episode is over; call env.reset() and policy.reset(env)")
        allowed = _allowed_actions(plant, action_masks)
        inventory, setup = env.inventory, env.setup
        demand = _expected_demand(self._instance.demand.mean(plant.n_items), period, n_periods)
        plan_model = _build_plan_model(plant, self._costs, demand, inventory, setup, allowed)
        _hint_cheapest(
            plant,
            plan_model,
            self._hint_plans(period, n_periods, demand, inventory, setup, allowed),
            demand,
            inventory,
            setup,
        )
        solver, status, _ = _solve(plan_model, self.time_limit, self.num_workers)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            plan = _read_plan(plan_model, solver, plant.n_machines)
        else:
            plan = _base_stock_plan(
                plant, demand, inventory, setup, _default_levels(self._instance)
            )
            plan[0] = _base_stock_action(
                plant, inventory, setup, _default_levels(self._instance), allowed
            )
        self._previous = (period, plan)
        return self._action(plan[0]), state

    def _hint_plans(
        self,
        period: int,
        n_periods: int,
        demand: np.ndarray,
        inventory: np.ndarray,
        setup: np.ndarray,
        allowed: np.ndarray,
    ) -> list[np.ndarray]:
        """Starting plans: the base-stock rule, and last period's plan shifted by one."""
        levels = _default_levels(self._instance)
        base_stock = _base_stock_plan(self._plant, demand, inventory, setup, levels)
        base_stock[0] = _base_stock_action(self._plant, inventory, setup, levels, allowed)
        plans = [base_stock]
        if self._previous is not None and self._previous[0] == period - 1:
            shifted = base_stock.copy()
            kept = self._previous[1][1 : 1 + n_periods]
            shifted[: kept.shape[0]] = kept
            if allowed[self._plant.machine_index, shifted[0]].all():
                plans.append(shifted)
        return plans


class BaseStockPolicy(_LotSizingPolicy):
    """Per-item base-stock (order-up-to) levels with greedy machine assignment.

    Item i has a target level ``S_i`` (``levels``, or ``safety_periods`` times its mean demand
    per period). Each period, from the current inventory ``x`` and setups:

    1. a machine set up for an item still below its level (``x_i < S_i``) keeps running it --
       no setup cost, full rate -- and the item's shortfall ``S_i - x_i`` shrinks by that
       output;
    2. the remaining items with a shortfall are taken by urgency, their lost-sales-weighted
       shortfall ``lost_sales_cost_i * (S_i - x_i)`` (largest first, lower index on ties);
       each gets the free machine that can make it with the largest yield after the setup
       loss (cheaper setup, then lower index, on ties), provided that machine's setup cost is
       at most the item's urgency -- a changeover dearer than the lost sales it prevents is
       not made; the shortfall shrinks by the yield and the item may take another machine;
    3. machines left over idle.

    Only actions the machine can make (and ``action_masks`` allows) are assigned; the rule is
    deterministic. With the generator's costs (setups 15-30, lost sales 0.1-0.3 per unit,
    holding 0.01 per unit and period), long runs pay and short ones do not, hence the high
    default cover of 10 periods (80 units at the default mean of 8, below the storage limit
    of 100).

    Args:
        env: the lot-sizing env it will act in.
        seed: unused (the rule is deterministic); kept for the runner.
        safety_periods: cover of the levels in periods of mean demand (> 0); ignored when
            ``levels`` is given.
        levels: explicit levels, a number or one per item (>= 0).
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        safety_periods: float = DEFAULT_SAFETY_PERIODS,
        levels: float | np.ndarray | None = None,
    ) -> None:
        super().__init__(env, seed=seed)
        if (
            isinstance(safety_periods, bool)
            or not isinstance(safety_periods, (int, float, np.integer, np.floating))
            or not np.isfinite(safety_periods)
            or safety_periods <= 0
        ):
            raise ValueError(f"safety_periods must be a positive number, got {safety_periods!r}")
        self.safety_periods = float(safety_periods)
        n_items = self._instance.n_items
        if levels is None:
            self.levels = _default_levels(self._instance, self.safety_periods)
        else:
            try:
                array = np.array(levels, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"levels must be a number or {n_items} numbers") from None
            if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != n_items):
                raise ValueError(
                    f"levels must be a number or one per item ({n_items}), got shape {array.shape}"
                )
            if not np.all(np.isfinite(array)) or np.any(array < 0):
                raise ValueError(f"levels must be finite and non-negative, got {levels!r}")
            self.levels = np.broadcast_to(array, (n_items,)).copy()

    def reset(self, env: gym.Env) -> None:
        """Follow ``env``; the levels stay those computed at construction."""
        super().reset(env)
        if self.levels.shape != (self._instance.n_items,):
            raise ValueError("BaseStockPolicy.reset got an env with another number of items")

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The rule's action for the env's current inventory and setups."""
        allowed = _allowed_actions(self._plant, action_masks)
        action = _base_stock_action(
            self._plant, self.env.inventory, self.env.setup, self.levels, allowed
        )
        return self._action(action), state
