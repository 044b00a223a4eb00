"""Batched lot-sizing env: N plants stepped in one numpy call, behind the SB3 VecEnv API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from opsrl.envs.batched import BatchedVecEnv
from opsrl.envs.lot_sizing.env import LotSizingEnv, empty_kpi, kpi_dict, validate_actions
from opsrl.envs.lot_sizing.sim import (
    decision_step,
    demand_from_uniforms,
    encode_observation,
    exogenous_step,
    initial_state_from_uniforms,
    uniforms_per_reset,
)

__all__ = ["LotSizingVecEnv"]

#: env_method names the batched env answers, like LotSizingEnv's methods.
SUPPORTED_METHODS = ("action_masks", "post_decision")


class LotSizingVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.lot_sizing.env.LotSizingEnv` stepped together.

    ``LotSizingVecEnv(num_envs, seed=None, **env_kwargs)`` takes the same keyword arguments as
    ``LotSizingEnv`` (``render_mode`` excepted). Copy i reproduces exactly
    ``LotSizingEnv(**env_kwargs)`` reset with ``seed=seed + i`` -- the convention of SB3's
    ``make_vec_env`` and ``DummyVecEnv`` -- including across automatic resets: each copy keeps
    its own generator, built like Gymnasium's ``np_random(seed + i)``, and draws its initial
    state and whole demand path from it at every reset in the single env's order. Everything
    per period (setups, production, demand, costs, observations) is one vectorised numpy call
    over all copies.

    All copies start together and every episode lasts T periods, so the copies share the
    period counter and finish (and auto-reset) together. At an episode's end,
    ``infos[i]["terminal_observation"]`` holds the last observation and ``infos[i]["kpi"]`` the
    finished episode's KPIs.

    Infos are kept cheap because building N dicts is the main Python cost of a step: each
    period ``infos[i]`` is ``{"infeasible_actions": int}``, plus the two keys above at episode
    end. The rest of the single env's info is available vectorised after each step:
    :attr:`last_demand` (N, I), :attr:`last_cost` (a dict of (N,) arrays ``setup``,
    ``holding``, ``lost_sales``) and :meth:`kpi` (episode-to-date, a dict of (N,) arrays).

    Masks and post-decision states: :meth:`action_masks` returns (N, M * (I + 1)) and
    :meth:`post_decision` takes actions (N, M) and returns ``(post_obs (N, D), post_reward
    (N,))``. Through the generic VecEnv API, ``env_method("action_masks")`` returns the list of
    per-copy masks (what sb3-contrib's ``get_action_masks`` stacks) and
    ``env_method("post_decision", actions)`` with actions (n, M) for the n selected copies (or
    one (M,) action for all) returns a list of per-copy ``(post_obs, post_reward)``.
    ``get_attr`` gives per-copy ``t``, ``inventory``, ``setup``, ``demand_path``,
    ``action_masks`` and ``post_decision`` (callables), and the shared attributes otherwise;
    ``env_is_wrapped`` is always False.
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = ("t", "inventory", "setup", "demand_path", "instance")

    def __init__(self, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or (num_envs < 1)
        ):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by LotSizingVecEnv; leave it None")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        # The template validates the kwargs exactly like the single env and owns the spaces.
        template = LotSizingEnv(**env_kwargs)
        self.env_kwargs = dict(env_kwargs)
        self.instance = template.instance
        self.random_initial_state = template.random_initial_state
        self.observe_setup = template.observe_setup
        self.observe_time = template.observe_time
        self.infeasible_action = template.infeasible_action
        self.render_mode = None
        self._plant = template.plant
        self._action_mask = template.action_masks()
        num_envs = int(num_envs)
        super().__init__(num_envs, template.observation_space, template.action_space)

        n_items, n_machines, horizon = (
            self.instance.n_items,
            self.instance.n_machines,
            self.instance.horizon,
        )
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._t = 0
        self._started = False
        self._inventory = np.zeros((num_envs, n_items), dtype=np.int64)
        self._setup = np.zeros((num_envs, n_machines), dtype=np.int64)
        self._demand_paths = np.zeros((num_envs, horizon, n_items), dtype=np.int64)
        self._reset_uniforms = np.zeros(
            (num_envs, uniforms_per_reset(self._plant, self.random_initial_state))
        )
        self._actions: np.ndarray | None = None
        self.last_demand = np.zeros((num_envs, n_items), dtype=np.int64)
        self.last_cost = {key: np.zeros(num_envs) for key in ("setup", "holding", "lost_sales")}
        self._reset_totals()
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        """Reset every copy (re-seeding those given a seed) and return observations (N, D)."""
        for i in range(self.num_envs):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = np_random(self._seeds[i])[0]
        self._reset_seeds()
        self._reset_options()
        self._start_episodes()
        self.reset_infos = [{"kpi": empty_kpi()} for _ in range(self.num_envs)]
        return self._observations()

    def step_wait(self) -> VecEnvStepReturn:
        """One period for every copy; auto-resets all copies when the episode ends."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        actions, n_infeasible = validate_actions(
            self._plant, self._actions, self.infeasible_action, batched=True
        )
        self._actions = None
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"expected actions for {self.num_envs} copies, got {actions.shape[0]}")
        post_inventory, self._setup, setup_cost, _ = decision_step(
            self._plant, self._inventory, self._setup, actions
        )
        demand = self._demand_paths[:, self._t]
        self._inventory, holding_cost, lost_sales_cost, lost_units, _ = exogenous_step(
            self._plant, post_inventory, demand
        )
        self._t += 1
        self._setup_total += setup_cost
        self._holding_total += holding_cost
        self._lost_sales_total += lost_sales_cost
        self._lost_units_total += lost_units.sum(axis=1)
        self._demanded_total += demand.sum(axis=1)
        self.last_demand = demand.copy()  # the paths are overwritten at auto-reset
        self.last_cost = {
            "setup": setup_cost,
            "holding": holding_cost,
            "lost_sales": lost_sales_cost,
        }

        # Same sum order as the single env, so rewards agree bit for bit before the cast.
        rewards = (-(setup_cost + holding_cost + lost_sales_cost)).astype(np.float32)
        obs = self._observations()
        infos: list[dict[str, Any]] = [
            {"infeasible_actions": count} for count in n_infeasible.tolist()
        ]
        if self._t < self.instance.horizon:
            return obs, rewards, np.zeros(self.num_envs, dtype=bool), infos

        kpis = self._kpi_dicts()
        for i, info in enumerate(infos):
            info["terminal_observation"] = obs[i]
            info["kpi"] = kpis[i]
        self._start_episodes()
        self.reset_infos = [{"kpi": empty_kpi()} for _ in range(self.num_envs)]
        return self._observations(), rewards, np.ones(self.num_envs, dtype=bool), infos

    # ----------------------------------------------------------------- per-copy access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        return {
            "t": lambda i: self._t,
            "inventory": lambda i: self._inventory[i].copy(),
            "setup": lambda i: self._setup[i].copy(),
            "demand_path": lambda i: self._read_only(self._demand_paths[i].copy()),
        }

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        if name == "action_masks":
            return self._action_mask.copy
        return lambda action: self._post_decision_list([index], action)[0]

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        if name == "action_masks":
            return [self._action_mask.copy() for _ in indices]
        if len(args) + len(kwargs) != 1:
            raise TypeError("post_decision takes one argument, the action(s)")
        actions = args[0] if args else next(iter(kwargs.values()))
        return self._post_decision_list(indices, actions)  # one batched call

    # ----------------------------------------------------------------- vectorised extras
    def action_masks(self) -> np.ndarray:
        """Masks of all copies, (N, M * (I + 1)); the same for every copy and period."""
        return np.tile(self._action_mask, (self.num_envs, 1))

    def post_decision(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Post-decision observations (N, D) and rewards (N,) float32 of actions (N, M).

        Leaves the copies' state and generators untouched.
        """
        self._check_started()
        feasible, _ = validate_actions(self._plant, actions, self.infeasible_action, batched=True)
        if feasible.shape[0] != self.num_envs:
            raise ValueError(
                f"expected actions for {self.num_envs} copies, got {feasible.shape[0]}"
            )
        post_inventory, setup, setup_cost, _ = decision_step(
            self._plant, self._inventory, self._setup, feasible
        )
        post_obs = encode_observation(
            self._plant, post_inventory, setup, self._t, self.observe_setup, self.observe_time
        )
        return post_obs, (-setup_cost).astype(np.float32)

    def kpi(self) -> dict[str, np.ndarray]:
        """Episode-to-date KPIs of every copy, a dict of (N,) arrays."""
        demanded = self._demanded_total
        fill_rate = np.ones(self.num_envs)
        served = demanded > 0
        fill_rate[served] = 1.0 - self._lost_units_total[served] / demanded[served]
        return {
            "setup_cost": self._setup_total.copy(),
            "holding_cost": self._holding_total.copy(),
            "lost_sales_cost": self._lost_sales_total.copy(),
            "total_cost": self._setup_total + self._holding_total + self._lost_sales_total,
            "lost_units": self._lost_units_total.copy(),
            "fill_rate": fill_rate,
        }

    @property
    def t(self) -> int:
        """Current period shared by all copies."""
        return self._t

    # ----------------------------------------------------------------- helpers
    def _start_episodes(self) -> None:
        """New episode for every copy, drawing from its own generator like the single env.

        Per copy, one ``rng.random`` call draws the uniforms that :meth:`LotSizingEnv.reset`
        draws in two (initial state, then demand path; see
        :func:`~opsrl.envs.lot_sizing.sim.uniforms_per_reset`); the uniforms of all copies are
        then turned into states and demands in one vectorised call.
        """
        uniforms = self._reset_uniforms
        for i, rng in enumerate(self._rngs):
            rng.random(out=uniforms[i])
        n_items, n_machines = self.instance.n_items, self.instance.n_machines
        n_state = 0
        if self.random_initial_state:
            n_state = n_items + n_machines
            self._inventory, self._setup = initial_state_from_uniforms(
                self._plant, uniforms[:, :n_state]
            )
        else:
            self._inventory = np.tile(self._plant.initial_inventory, (self.num_envs, 1))
            self._setup = np.tile(self._plant.initial_setup, (self.num_envs, 1))
        demand_uniforms = uniforms[:, n_state:].reshape(self.num_envs, -1, n_items)
        self._demand_paths = demand_from_uniforms(self._plant.demand_cdf, demand_uniforms)
        self._t = 0
        self._started = True
        self._reset_totals()

    def _reset_totals(self) -> None:
        n = self.num_envs
        self._setup_total = np.zeros(n)
        self._holding_total = np.zeros(n)
        self._lost_sales_total = np.zeros(n)
        self._lost_units_total = np.zeros(n, dtype=np.int64)
        self._demanded_total = np.zeros(n, dtype=np.int64)

    def _kpi_dicts(self) -> list[dict[str, float]]:
        columns = zip(
            self._setup_total.tolist(),
            self._holding_total.tolist(),
            self._lost_sales_total.tolist(),
            self._lost_units_total.tolist(),
            self._demanded_total.tolist(),
            strict=True,
        )
        return [kpi_dict(*row) for row in columns]

    def _observations(self) -> np.ndarray:
        return encode_observation(
            self._plant,
            self._inventory,
            self._setup,
            self._t,
            self.observe_setup,
            self.observe_time,
        )

    def _post_decision_list(self, idx: list[int], actions: Any) -> list[tuple[np.ndarray, float]]:
        self._check_started()
        array = np.asarray(actions)
        if array.ndim == 1:
            array = np.broadcast_to(array, (len(idx), array.shape[0]))
        if array.ndim != 2 or array.shape[0] != len(idx):
            raise ValueError(
                f"post_decision expects one action (n_machines,) or one per selected copy "
                f"({len(idx)}, n_machines), got shape {array.shape}"
            )
        feasible, _ = validate_actions(self._plant, array, self.infeasible_action, batched=True)
        post_inventory, setup, setup_cost, _ = decision_step(
            self._plant, self._inventory[idx], self._setup[idx], feasible
        )
        post_obs = encode_observation(
            self._plant, post_inventory, setup, self._t, self.observe_setup, self.observe_time
        )
        return [(post_obs[k], -float(setup_cost[k])) for k in range(len(idx))]

    @staticmethod
    def _read_only(array: np.ndarray) -> np.ndarray:
        array.setflags(write=False)
        return array
