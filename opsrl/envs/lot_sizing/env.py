"""Gymnasium face of the SimplePlant lot-sizing simulator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from opsrl.envs.lot_sizing.data import (
    DemandModel,
    LotSizingInstance,
    make_instance,
    with_overrides,
)
from opsrl.envs.lot_sizing.sim import (
    PlantArrays,
    decision_step,
    encode_observation,
    exogenous_step,
    observation_size,
    plant_arrays,
    sample_demand_path,
    sample_initial_state,
)

__all__ = ["INFEASIBLE_ACTION_MODES", "LotSizingEnv", "check_env_kwargs", "empty_kpi"]

#: What to do with an action that runs an item the machine cannot make.
INFEASIBLE_ACTION_MODES = ("idle", "raise")


def empty_kpi() -> dict[str, float]:
    """Episode KPIs before the first period."""
    return {
        "setup_cost": 0.0,
        "holding_cost": 0.0,
        "lost_sales_cost": 0.0,
        "total_cost": 0.0,
        "lost_units": 0,
        "fill_rate": 1.0,
    }


def kpi_dict(
    setup_cost: float, holding_cost: float, lost_sales_cost: float, lost_units: int, demanded: int
) -> dict[str, float]:
    """Episode-to-date KPIs from running totals; fill rate is 1 when nothing was demanded."""
    return {
        "setup_cost": setup_cost,
        "holding_cost": holding_cost,
        "lost_sales_cost": lost_sales_cost,
        "total_cost": setup_cost + holding_cost + lost_sales_cost,
        "lost_units": lost_units,
        "fill_rate": 1.0 - lost_units / demanded if demanded > 0 else 1.0,
    }


def check_env_kwargs(
    instance_seed: Any,
    horizon: Any,
    random_initial_state: Any,
    observe_setup: Any,
    observe_time: Any,
    infeasible_action: Any,
) -> None:
    """Raise a ValueError naming the first bad constructor argument (shared with the vec env)."""
    if (
        isinstance(instance_seed, bool)
        or not isinstance(instance_seed, (int, np.integer))
        or (instance_seed < 0)
    ):
        raise ValueError(f"instance_seed must be a non-negative integer, got {instance_seed!r}")
    if horizon is not None and (
        isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1
    ):
        raise ValueError(f"horizon must be None or a positive integer, got {horizon!r}")
    for key, value in (
        ("random_initial_state", random_initial_state),
        ("observe_setup", observe_setup),
        ("observe_time", observe_time),
    ):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{key} must be True or False, got {value!r}")
    if infeasible_action not in INFEASIBLE_ACTION_MODES:
        raise ValueError(
            f"infeasible_action must be one of {', '.join(INFEASIBLE_ACTION_MODES)}, "
            f"got {infeasible_action!r}"
        )


def validate_actions(
    plant: PlantArrays, actions: Any, infeasible_action: str, batched: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Check actions (B, M) and resolve infeasible ones.

    Returns ``(feasible_actions (B, M) int64, n_infeasible (B,))``. Out-of-range values always
    raise; an item the machine cannot make raises with ``infeasible_action="raise"`` and
    becomes idle (0) with ``"idle"``.
    """
    n_machines, n_items = plant.n_machines, plant.n_items
    array = np.asarray(actions)
    expected = "(n_envs, n_machines)" if batched else "(n_machines,)"
    if array.ndim != 2 or array.shape[1] != n_machines:
        shape = array.shape[1:] if not batched else array.shape
        raise ValueError(
            f"action must have shape {expected} with n_machines={n_machines}, got {shape}"
        )
    if array.dtype.kind not in "iu":
        if array.dtype.kind != "f" or not np.all(array == np.round(array)):
            raise ValueError(f"action must hold integers 0..{n_items}, got {actions!r}")
        array = array.astype(np.int64)
    if array.min(initial=0) < 0 or array.max(initial=0) > n_items:
        raise ValueError(
            f"action values must lie in 0..{n_items} (0 = idle, i = run item i), got "
            f"{array.min()}..{array.max()}"
        )
    can_make = plant.can_make[plant.machine_index, array]
    n_infeasible = plant.n_machines - can_make.sum(axis=1)
    if n_infeasible.any():
        if infeasible_action == "raise":
            copy, machine = np.argwhere(~can_make)[0]
            item = int(array[copy, machine])
            where = f"copy {copy}: " if batched else ""
            raise ValueError(
                f"{where}machine {machine} cannot make item {item} "
                f"(machine_production[{machine}][{item - 1}] == 0); mask it with "
                "action_masks() or use infeasible_action='idle'"
            )
        array = np.where(can_make, array, 0)
    return array.astype(np.int64, copy=False), n_infeasible


class LotSizingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Multi-item, multi-machine stochastic discrete lot sizing ("SimplePlant").

    ## Description

    A plant of M machines makes I items over a horizon of T periods (T = 100 by default).
    Each period the planner decides, for every machine, which item it runs for the whole
    period or whether it idles. Switching a machine to another item costs a setup cost and
    loses a few units (the setup loss) in that period; a machine already set up for the item
    makes its full rate. Idling drops the setup, so the next run pays it again. Then random
    demand arrives: it is served from inventory, the shortfall is lost at a per-unit
    lost-sales cost, inventory above the storage limit is discarded, and what is left pays a
    holding cost. The goal is to minimise total setup, lost-sales and holding cost.

    This is the environment of Felizardo et al., "Reinforcement learning for stochastic lot
    sizing with post-decision states" (PDPPO, arXiv 2504.05150), after EdoF90/discrete_lot_sizing
    and leokan92/pdppo, with their quirks fixed (see :func:`~opsrl.envs.lot_sizing.data.
    generate_instance`). Demand is Binomial(20, 0.4) per item and period unless the instance
    says otherwise.

    ## Action Space

    ``MultiDiscrete([I + 1] * M)``: ``a[m] = 0`` idles machine m, ``a[m] = i`` runs item i.
    Two machines may run the same item; their output adds up. Actions that run an item the
    machine cannot make (production rate 0) are infeasible: :meth:`action_masks` returns a
    flat boolean array of length ``M * (I + 1)``, the per-machine masks concatenated (the
    sb3-contrib MaskablePPO contract for MultiDiscrete), with idle always allowed. What an
    unmasked infeasible action does is set by ``infeasible_action``: ``"idle"`` (default) makes
    that machine idle for the period (no production, no setup cost, setup dropped) and counts
    it in ``info["infeasible_actions"]`` -- so that random actions (plain PPO, ``check_env``)
    stay usable; ``"raise"`` raises a ValueError naming the machine and the item.

    ## Observation Space

    ``Box(0, high, (D,), float32)`` with, in order:

    | slice | content |
    |-------|---------|
    | ``[0, I)`` | inventory of each item / its ``max_inventory_level`` |
    | ``[I, I + M(I+1))`` | if ``observe_setup``: one-hot of each machine's setup over 0..I |
    | last entry | if ``observe_time``: fraction of the horizon elapsed, t / T |

    After a period the inventory part is at most 1; the upper bound of item i is
    ``(max_inventory_level[i] + sum_m machine_production[m][i]) / max_inventory_level[i]`` so
    that post-decision observations (inventory after production, before demand) lie in the
    same space. Demand is never observed.

    ## Rewards

    ``-(setup cost + lost-sales cost + holding cost)`` of the period. Holding cost is paid on
    the end-of-period inventory. The split is in ``info["cost"]``.

    ## Starting State

    With ``random_initial_state=True`` (the SimplePlant ``reset``), inventory is uniform on
    0..max_inventory_level-1 per item and each machine is set up for a uniformly chosen item
    it can make; otherwise the instance's ``initial_inventory`` and ``initial_setup``. The
    whole demand path (T, I) is drawn at reset too, after the initial state, from the env's
    ``np_random``, so ``reset(seed=s)`` fixes the episode. OR baselines read it from
    :attr:`demand_path` to be evaluated on the very same demand.

    ## Episode End

    The episode terminates after T periods (``terminated=True`` when t == T). There is no
    truncation: this is a finite-horizon problem and the time fraction is observed.

    ## Info

    ``step`` returns ``{"kpi": ..., "cost": {"setup", "holding", "lost_sales"}, "demand": (I,),
    "infeasible_actions": int}``. ``kpi`` is episode-to-date: ``setup_cost, holding_cost,
    lost_sales_cost, total_cost, lost_units, fill_rate`` (fill rate = 1 - lost units / units
    demanded, 1.0 when nothing was demanded yet); ``reset`` returns it with zeros.
    ``infeasible_actions`` counts the machines whose action this period was infeasible.
    :meth:`episode_trace` returns the periods played since the reset as a DataFrame
    (inventory, demand, production and lost sales per item, the item run by each machine and
    its changeovers, the cost split); the experiment runner saves it as ``trace.csv``.

    ## Post-decision states

    :meth:`post_decision` returns the observation and reward of the deterministic part of a
    step (setups and production, before demand) without changing the env or its RNG; the
    step's reward is ``post_reward - holding - lost sales``. PDPPO uses it.

    ## Arguments

    ```python
    gym.make("opsrl/LotSizing-v0", instance="15x5", instance_seed=0, horizon=None,
             demand=None, random_initial_state=True, observe_setup=True, observe_time=True,
             infeasible_action="idle", render_mode=None)
    ```

    - ``instance``: a size name (``"15x5"``, ``"20x10"``, ``"25x10"``, ``"25x15"``,
      ``"30x10"``, ``"30x15"``, or the small ``"3x2"``, ``"5x3"``), a
      :class:`~opsrl.envs.lot_sizing.data.LotSizingInstance`, its dict form, or a path to a
      JSON file in the SimplePlant settings format.
    - ``instance_seed``: seed of the instance generator; used only with a size name.
    - ``horizon``: number of periods, overriding the instance's.
    - ``demand``: a :class:`~opsrl.envs.lot_sizing.data.DemandModel` or its dict form
      (``{"name": "poisson", "lam": 8}``), overriding the instance's.
    - ``random_initial_state``: random initial inventory and setups (see Starting State).
    - ``observe_setup``, ``observe_time``: include those parts of the observation. The
      PDPPO paper observes inventory only (both False).
    - ``infeasible_action``: ``"idle"`` or ``"raise"`` (see Action Space).
    - ``render_mode``: ``None`` or ``"ansi"`` (a line with period, inventory and setups).

    Bad arguments raise a ValueError naming the argument at construction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        instance: str | LotSizingInstance | Mapping[str, Any] = "15x5",
        instance_seed: int = 0,
        horizon: int | None = None,
        demand: DemandModel | Mapping[str, Any] | None = None,
        random_initial_state: bool = True,
        observe_setup: bool = True,
        observe_time: bool = True,
        infeasible_action: str = "idle",
        render_mode: str | None = None,
    ) -> None:
        check_env_kwargs(
            instance_seed,
            horizon,
            random_initial_state,
            observe_setup,
            observe_time,
            infeasible_action,
        )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if demand is not None and not isinstance(demand, (DemandModel, Mapping)):
            raise ValueError(f"demand must be a DemandModel or a dict, got {type(demand).__name__}")
        self.instance: LotSizingInstance = with_overrides(
            make_instance(instance, seed=int(instance_seed)), horizon=horizon, demand=demand
        )
        self.random_initial_state = bool(random_initial_state)
        self.observe_setup = bool(observe_setup)
        self.observe_time = bool(observe_time)
        self.infeasible_action = infeasible_action
        self.render_mode = render_mode

        self._plant = plant_arrays(self.instance)
        n_items, n_machines = self.instance.n_items, self.instance.n_machines
        self.action_space = spaces.MultiDiscrete(np.full(n_machines, n_items + 1, dtype=np.int64))
        self.observation_space = spaces.Box(
            low=0.0,
            high=observation_high(self._plant, self.observe_setup, self.observe_time),
            dtype=np.float32,
        )
        self._action_mask = self._plant.can_make.ravel().copy()

        self._t: int | None = None
        self._inventory = np.zeros(n_items, dtype=np.int64)
        self._setup = np.zeros(n_machines, dtype=np.int64)
        self._demand_path = np.zeros((0, n_items), dtype=np.int64)
        self._reset_totals()

    # ----------------------------------------------------------------- public state
    @property
    def t(self) -> int:
        """Current period, 0..T (T once the episode is over)."""
        return 0 if self._t is None else self._t

    @property
    def inventory(self) -> np.ndarray:
        """Inventory of each item at the start of the current period (a copy)."""
        return self._inventory.copy()

    @property
    def setup(self) -> np.ndarray:
        """Item each machine is set up for, 0 = idle (a copy)."""
        return self._setup.copy()

    @property
    def demand_path(self) -> np.ndarray:
        """Demand of the current episode, (T, I), read-only."""
        return self._demand_path

    @property
    def plant(self) -> PlantArrays:
        """The instance's lookup tables used by the simulator."""
        return self._plant

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the initial state, then the whole demand path, from ``np_random``."""
        super().reset(seed=seed)
        self._inventory, self._setup = sample_initial_state(
            self.np_random, self._plant, random=self.random_initial_state
        )
        path = sample_demand_path(
            self.np_random,
            self.instance.demand,
            self.instance.horizon,
            self.instance.n_items,
            cdf=self._plant.demand_cdf,
        )
        path.setflags(write=False)
        self._demand_path = path
        self._t = 0
        self._reset_totals()
        return self._observation(self._inventory, self._setup), {"kpi": empty_kpi()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one period; see the class docstring for rewards and info."""
        self._check_running("step")
        actions, n_infeasible = validate_actions(
            self._plant, np.asarray(action)[None], self.infeasible_action, batched=False
        )
        changeover = (actions[0] != self._setup) & (actions[0] != 0)
        post_inventory, setup, setup_cost, produced = decision_step(
            self._plant, self._inventory[None], self._setup[None], actions
        )
        demand = self._demand_path[self._t]
        inventory, holding_cost, lost_sales_cost, lost_units, _ = exogenous_step(
            self._plant, post_inventory, demand[None]
        )
        setup_cost, holding_cost = float(setup_cost[0]), float(holding_cost[0])
        lost_sales_cost = float(lost_sales_cost[0])
        self._inventory, self._setup = inventory[0], setup[0]
        self._t += 1
        self._setup_total += setup_cost
        self._holding_total += holding_cost
        self._lost_sales_total += lost_sales_cost
        self._lost_units_total += int(lost_units.sum())
        self._demanded_total += int(demand.sum())
        self._trace.append(
            (
                actions[0].copy(),
                changeover,
                produced[0],
                demand,
                lost_units[0],
                self._inventory,
                (setup_cost, holding_cost, lost_sales_cost),
            )
        )

        reward = -(setup_cost + holding_cost + lost_sales_cost)
        terminated = self._t == self.instance.horizon
        info = {
            "kpi": self._kpi(),
            "cost": {"setup": setup_cost, "holding": holding_cost, "lost_sales": lost_sales_cost},
            "demand": demand.copy(),
            "infeasible_actions": int(n_infeasible[0]),
        }
        obs = self._observation(self._inventory, self._setup)
        return obs, reward, terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Flat bool mask of length M * (I + 1): True where machine m may take action a."""
        return self._action_mask.copy()

    def episode_trace(self) -> pd.DataFrame:
        """The periods played since the last reset, one row per period.

        Columns: ``period`` (1..t), ``setup_cost``, ``holding_cost``, ``lost_sales_cost``,
        ``total_cost``; per item i = 1..I ``inventory/i`` (end of period), ``demand/i``,
        ``produced/i``, ``lost/i`` (lost sales, units); per machine m = 0..M-1 ``machine/m``
        (the item it ran, 0 = idle) and ``changeover/m`` (1 when it paid a setup). The report
        plots it (inventory and setup traces).
        """
        n_items, n_machines = self.instance.n_items, self.instance.n_machines
        periods = len(self._trace)
        if periods:
            machine, changeover, produced, demand, lost, inventory, costs = (
                np.array(column) for column in zip(*self._trace, strict=True)
            )
        else:
            machine = changeover = np.zeros((0, n_machines), dtype=np.int64)
            produced = demand = lost = inventory = np.zeros((0, n_items), dtype=np.int64)
            costs = np.zeros((0, 3))
        columns: dict[str, Any] = {
            "period": np.arange(1, periods + 1),
            "setup_cost": costs[:, 0],
            "holding_cost": costs[:, 1],
            "lost_sales_cost": costs[:, 2],
            "total_cost": costs.sum(axis=1),
        }
        for name, table in (
            ("inventory", inventory),
            ("demand", demand),
            ("produced", produced),
            ("lost", lost),
        ):
            columns.update({f"{name}/{i + 1}": table[:, i] for i in range(n_items)})
        columns.update({f"machine/{m}": machine[:, m] for m in range(n_machines)})
        columns.update(
            {f"changeover/{m}": changeover[:, m].astype(np.int64) for m in range(n_machines)}
        )
        return pd.DataFrame(columns)

    def post_decision(self, action: Any) -> tuple[np.ndarray, float]:
        """Observation and reward after setups and production, before demand.

        Same layout and time fraction as the current observation; ``post_reward`` is minus
        the setup cost. The env's state and RNG are left untouched. Infeasible actions are
        handled as in :meth:`step`.
        """
        self._check_running("post_decision")
        actions, _ = validate_actions(
            self._plant, np.asarray(action)[None], self.infeasible_action, batched=False
        )
        post_inventory, setup, setup_cost, _ = decision_step(
            self._plant, self._inventory[None], self._setup[None], actions
        )
        return self._observation(post_inventory[0], setup[0]), -float(setup_cost[0])

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, a line with the period, inventory and setups."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render() without a render_mode; use render_mode='ansi'."
            )
            return None
        return (
            f"period {self.t}/{self.instance.horizon} | inventory {self._inventory.tolist()} | "
            f"setups {self._setup.tolist()} | cost so far {self._kpi()['total_cost']:.2f}"
        )

    # ----------------------------------------------------------------- helpers
    def _observation(self, inventory: np.ndarray, setup: np.ndarray) -> np.ndarray:
        return encode_observation(
            self._plant,
            inventory[None],
            setup[None],
            self.t,
            self.observe_setup,
            self.observe_time,
        )[0]

    def _check_running(self, method: str) -> None:
        if self._t is None:
            raise RuntimeError(f"call reset() before {method}()")
        if self._t >= self.instance.horizon:
            raise RuntimeError(
                f"the episode ended after {self.instance.horizon} periods; call reset() "
                f"before {method}()"
            )

    def _reset_totals(self) -> None:
        #: per period (actions, changeovers, produced, demand, lost, inventory, costs)
        self._trace: list[tuple[Any, ...]] = []
        self._setup_total = 0.0
        self._holding_total = 0.0
        self._lost_sales_total = 0.0
        self._lost_units_total = 0
        self._demanded_total = 0

    def _kpi(self) -> dict[str, float]:
        return kpi_dict(
            self._setup_total,
            self._holding_total,
            self._lost_sales_total,
            self._lost_units_total,
            self._demanded_total,
        )


def observation_high(plant: PlantArrays, observe_setup: bool, observe_time: bool) -> np.ndarray:
    """Upper bounds of the observation, large enough for post-decision inventories."""
    high = np.ones(observation_size(plant, observe_setup, observe_time), dtype=np.float32)
    most_after_production = plant.max_inventory_level + plant.production[:, 1:].sum(axis=0)
    high[: plant.n_items] = most_after_production / plant.max_inventory_level
    return high
