"""Multi-objective variants of the opsrl envs, with MO-Gymnasium's API.

Each class subclasses a single-objective env and only changes what ``step`` returns as the
reward: a float32 numpy vector, one entry per objective, every entry to be maximised. The
observation and action spaces, ``action_masks()``, ``info`` (with ``info["kpi"]``) and the
episode dynamics are the base env's. As in MO-Gymnasium, the unwrapped env has

- ``reward_space``: a ``Box`` holding every reward vector the env can return;
- ``reward_dim``: the number of objectives;
- ``objective_names``: what each entry measures (for logs and plots);
- ``reference_point()``: a documented worst-case return vector, the hypervolume reference
  (:func:`opsrl.mo.reference_point`).

A vector reward is outside Gymnasium's scalar-reward contract: its passive checker warns once
per env made with ``gym.make``; ``mo_gymnasium.make`` turns the checker off, as does
``gym.make(id, disable_env_checker=True)``. Stable-Baselines3 learners need a scalar reward:
:func:`scalarize` (MO-Gymnasium's ``LinearReward``) gives one for a preference vector.

mo-gymnasium itself is optional (the ``mo`` extra): these envs do not import it; only
:func:`scalarize` does.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opsrl.envs.esg_portfolio.env import RUIN_FLOOR, ESGPortfolioEnv
from opsrl.envs.esg_portfolio.sim import asset_returns
from opsrl.envs.job_shop.env import JobShopEnv
from opsrl.envs.job_shop.sim import BLOCKED, HORIZON_FACTOR
from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.envs.uam.env import UAMFleetEnv

__all__ = [
    "MOESGPortfolioEnv",
    "MOJobShopEnv",
    "MOLotSizingEnv",
    "MOUAMFleetEnv",
    "scalarize",
]

#: duration bound of a random job shop instance without ``duration_range`` (its default)
_DEFAULT_DURATION_HIGH = 99


def _reward_box(low: np.ndarray, high: np.ndarray) -> spaces.Box:
    """A float32 Box over [low, high], widened by a relative 1e-6 so that rewards computed
    in another order of floating-point operations than the bound still lie inside."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    slack_low = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(low), low, 0.0)))
    slack_high = 1e-6 * np.maximum(1.0, np.abs(np.where(np.isfinite(high), high, 0.0)))
    return spaces.Box(
        low=(low - slack_low).astype(np.float32),
        high=(high + slack_high).astype(np.float32),
        dtype=np.float32,
    )


def scalarize(env: gym.Env, weights: Any) -> gym.Wrapper:
    """A scalar-reward view of a multi-objective env: reward ``weights . r``.

    This is MO-Gymnasium's ``LinearReward`` (it also puts the vector in
    ``info["vector_reward"]`` and the weights in ``info["reward_weights"]``), through
    :class:`~opsrl.mo.wrappers.LinearScalarization` (a float reward and a fresh weight array
    per step); the weights (reward_dim,) are not normalised. Needs the ``mo`` extra.
    """
    try:
        from opsrl.mo.wrappers import LinearScalarization
    except ImportError as error:
        raise ImportError(
            "scalarize needs mo-gymnasium; install opsrl with the `mo` extra "
            "(pip install 'opsrl[mo]')"
        ) from error
    reward_space = getattr(env.unwrapped, "reward_space", None)
    if reward_space is None:
        raise ValueError(f"env {env.unwrapped} has no reward_space: it is not multi-objective")
    try:
        vector = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"weights must be numeric: {error}") from None
    if vector.shape != reward_space.shape:
        raise ValueError(f"weights must have shape {reward_space.shape}, got {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("weights must be finite")
    return LinearScalarization(env, weight=vector)


class MOLotSizingEnv(LotSizingEnv):
    """Lot sizing with two costs kept apart: setup and holding versus lost sales.

    ## Description

    The stochastic multi-item, multi-machine lot-sizing problem of ``opsrl/LotSizing-v0``
    (:class:`~opsrl.envs.lot_sizing.env.LotSizingEnv`), with the period cost split in two
    objectives. Producing often and keeping stock avoids lost sales but pays setups and
    holding; running lean saves them and loses sales. Id: ``opsrl/mo-lot-sizing-v0``.

    ## Action Space

    As ``opsrl/LotSizing-v0``: ``MultiDiscrete([I + 1] * M)``, with :meth:`action_masks`.

    ## Observation Space

    As ``opsrl/LotSizing-v0``.

    ## Rewards

    A float32 vector of the period's costs, negated (both maximised):

    0. ``-(setup cost + holding cost)``;
    1. ``-lost-sales cost``.

    Their sum is the base env's reward, and over an episode they add up to
    ``-(kpi["setup_cost"] + kpi["holding_cost"])`` and ``-kpi["lost_sales_cost"]``.
    ``reward_space`` is ``[-(sum_m max_i setup_costs[m][i] + sum_i holding_costs[i] *
    max_inventory_level[i]), 0] x [-sum_i lost_sales_costs[i] * max demand_i, 0]`` (every
    demand distribution is bounded: a Poisson tail is folded, see
    :func:`~opsrl.envs.lot_sizing.sim.demand_cdf`).
    :meth:`reference_point` is T times the lower bound: no policy can do worse.

    ## Starting State

    As ``opsrl/LotSizing-v0``.

    ## Episode End

    As ``opsrl/LotSizing-v0``: after T periods.

    ## Arguments

    Those of ``opsrl/LotSizing-v0``.

    ## Version History

    - v0: initial version.
    """

    reward_dim = 2
    objective_names = ("neg_setup_and_holding_cost", "neg_lost_sales_cost")

    @cached_property
    def reward_space(self) -> spaces.Box:
        """Box of every reward vector (see Rewards)."""
        return _reward_box(*self._reward_bounds())

    def reference_point(self) -> np.ndarray:
        """The worst possible return: T periods at the largest costs, (2,) float64."""
        return self.instance.horizon * self._reward_bounds()[0]

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """One period of the base env; the reward is the vector of negated costs."""
        obs, _, terminated, truncated, info = super().step(action)
        cost = info["cost"]
        reward = np.array(
            [-(cost["setup"] + cost["holding"]), -cost["lost_sales"]], dtype=np.float32
        )
        return obs, reward, terminated, truncated, info

    def _reward_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        plant = self.plant
        # a machine pays at most its dearest changeover; idling (column 0) costs nothing
        setup = plant.setup_costs.max(axis=1).sum()
        holding = (plant.holding_costs * plant.max_inventory_level).sum()
        # the largest demand that can be drawn: the first k with P(demand <= k) = 1
        max_demand = np.array([np.searchsorted(row, 1.0) for row in plant.demand_cdf])
        lost_sales = (plant.lost_sales_costs * np.broadcast_to(max_demand, plant.n_items)).sum()
        return np.array([-(setup + holding), -lost_sales]), np.zeros(2)


class MOESGPortfolioEnv(ESGPortfolioEnv):
    """ESG portfolio with return and ESG score as two objectives.

    ## Description

    The long-only daily portfolio of ``opsrl/ESGPortfolio-v0``
    (:class:`~opsrl.envs.esg_portfolio.env.ESGPortfolioEnv`) with the portfolio's ESG score
    as a second objective next to its growth: tilting towards high-ESG assets costs
    diversification (and return, when ESG and return are negatively correlated).
    Id: ``opsrl/mo-esg-portfolio-v0``.

    ## Action Space

    As ``opsrl/ESGPortfolio-v0``: ``Box(-1, 1, (N,))`` logits of the weights.

    ## Observation Space

    As ``opsrl/ESGPortfolio-v0``.

    ## Rewards

    A float32 vector:

    0. the base env's reward: the day's log return ``log(V_{t+1} / V_t)`` (default), or
       ``(V_{t+1} - V_t) / V_0`` with ``reward="value_change"``;
    1. the ESG score of the chosen weights ``E_p = w . e`` divided by the mean ESG score of
       the whole market data (all days and assets, a constant of the data): 1 is the
       average asset. Over an episode it sums to ``kpi["days"] * kpi["portfolio_esg"] /
       that mean``.

    ``reward_space``: objective 1 lies between the lowest and the highest score of the
    split over the mean. Objective 0 (log return) lies between the log of the worst day
    (the split's lowest asset return minus the largest transaction cost, 2 x
    ``transaction_cost``, and tax, ``tax_rate``), floored at the ruin reward
    ``log(1e-12)``, and the log of the best day (highest asset return plus the largest
    grant); with ``value_change`` it is unbounded (it scales with the value reached).
    :meth:`reference_point` is ``(min(0, days x worst log return), 0)`` with
    ``log_return`` and ``(-1, 0)`` with ``value_change`` (the value cannot fall below 0):
    worst cases, ``days`` being the longest episode.

    ## Starting State

    As ``opsrl/ESGPortfolio-v0``.

    ## Episode End

    As ``opsrl/ESGPortfolio-v0``.

    ## Arguments

    Those of ``opsrl/ESGPortfolio-v0``.

    ## Version History

    - v0: initial version.
    """

    reward_dim = 2
    objective_names = ("portfolio_return", "portfolio_esg")

    @cached_property
    def reward_space(self) -> spaces.Box:
        """Box of every reward vector (see Rewards)."""
        return _reward_box(*self._reward_bounds())

    @cached_property
    def esg_scale(self) -> float:
        """Mean ESG score of the market data: the unit of objective 1."""
        return float(self.market.esg.mean())

    def reference_point(self) -> np.ndarray:
        """A worst-case return vector (see Rewards), (2,) float64."""
        if self.reward_mode == "value_change":
            return np.array([-1.0, 0.0])
        days = self.episode_days or (self.last_day - self.first_day)
        return np.array([min(0.0, days * self._reward_bounds()[0][0]), 0.0])

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """One day of the base env; the reward is (return, ESG score / market mean)."""
        obs, reward, terminated, truncated, info = super().step(action)
        vector = np.array([reward, info["portfolio_esg"] / self.esg_scale], dtype=np.float32)
        return obs, vector, terminated, truncated, info

    def _reward_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        first, last = self.first_day, self.last_day
        # a step from day d earns the returns of day d + 1 with the scores of day d
        returns = asset_returns(self.market.close)[first + 1 : last + 1]
        esg = self.market.esg[first:last]
        rules = self.rules
        if self.reward_mode == "log_return":
            tax = rules.tax_rate if rules.regulated else 0.0
            worst = float((1.0 + returns.min(axis=1)).min()) - 2 * rules.transaction_cost - tax
            best_return = returns.max(axis=1)
            grant = np.zeros_like(best_return)
            if rules.regulated:
                top_score = esg.max(axis=1) / esg.mean(axis=1)
                grant = rules.grant_rate * np.maximum(best_return, 0.0) * top_score
            best = float((1.0 + best_return + grant).max())
            floor = math.log(RUIN_FLOOR)
            low0 = max(floor, math.log(worst)) if worst > 0 else floor
            high0 = max(floor, math.log(best))
        else:
            low0, high0 = -math.inf, math.inf
        scale = self.esg_scale
        low = np.array([low0, float(esg.min()) / scale])
        high = np.array([high0, float(esg.max()) / scale])
        return low, high


class MOJobShopEnv(JobShopEnv):
    """Job shop dispatching with makespan and blocking time as two objectives.

    ## Description

    The (blocking) job shop of ``opsrl/JobShop-v0``
    (:class:`~opsrl.envs.job_shop.env.JobShopEnv`) with the time machines spend blocked,
    holding a job that finished there and cannot move on, as a second objective next to
    the makespan: dispatching greedily keeps machines busy but jams the shop with finished
    jobs waiting for their next machine. Id: ``opsrl/mo-job-shop-v0``.

    ## Action Space

    As ``opsrl/JobShop-v0``: ``Discrete(max_jobs)``, with :meth:`action_masks`.

    ## Observation Space

    As ``opsrl/JobShop-v0`` (graph or flat).

    ## Rewards

    A float32 vector, both divided by ``reward_scale``:

    0. the base env's reward: minus the ticks elapsed since the previous decision
       (``reward="time"``, the default; the episode sums to ``-kpi["makespan"]``), or minus
       the change of the makespan lower bound (``reward="lower_bound"``);
    1. minus the blocked machine-ticks accrued since the previous decision, the increment
       of ``kpi["blocked_time"]``; the episode sums to ``-kpi["blocked_time"]``.

    A deadlock (blocking without swaps) is charged as if the clock ran to the safety
    horizon, in both objectives: objective 0 as the base env does, objective 1 adds
    (horizon - now) ticks for each machine holding a blocked job, since a deadlocked job
    never leaves.

    ``reward_space``: without shutdowns (``shutdown_prob=0``), with H = 3 x P + p (P the
    largest total processing time of the instances, p their longest operation) the clock
    moves at most H per step, so objective 0 lies in [-H, 0] (``time``) or [-(H + P),
    H + P] (``lower_bound``) and objective 1 in [-m H, 0] (m machines), over
    ``reward_scale``. With shutdowns a step can last arbitrarily long (all machines down)
    and the lower bounds are -inf.

    :meth:`reference_point` is ``(-3 P, -3 m P) / reward_scale``: a schedule finishing
    within the safety horizon of the largest instance (episodes that reach the horizon are
    truncated), with fewer blocked ticks than all machines blocked throughout it.

    ## Starting State

    As ``opsrl/JobShop-v0``.

    ## Episode End

    As ``opsrl/JobShop-v0``.

    ## Arguments

    Those of ``opsrl/JobShop-v0``.

    ## Version History

    - v0: initial version.
    """

    reward_dim = 2
    objective_names = ("neg_makespan", "neg_blocked_time")

    @cached_property
    def reward_space(self) -> spaces.Box:
        """Box of every reward vector (see Rewards)."""
        processing, longest, machines = self._instance_bounds()
        horizon = HORIZON_FACTOR * processing + longest
        scale = self.reward_scale
        if self.shutdown_prob > 0:
            low = np.array([-math.inf, -math.inf])
            high = np.array([0.0 if self.reward_mode == "time" else math.inf, 0.0])
        elif self.reward_mode == "time":
            low, high = np.array([-horizon, -machines * horizon]) / scale, np.zeros(2)
        else:
            swing = horizon + processing
            low = np.array([-swing, -machines * horizon]) / scale
            high = np.array([swing, 0.0]) / scale
        return _reward_box(low, high)

    def reference_point(self) -> np.ndarray:
        """A worst acceptable return vector (see Rewards), (2,) float64."""
        processing, _, machines = self._instance_bounds()
        horizon = HORIZON_FACTOR * processing
        return -np.array([horizon, machines * horizon], dtype=np.float64) / self.reward_scale

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, dict[str, Any]]:
        """As the base env; also starts the blocked-time account."""
        obs, info = super().reset(seed=seed, options=options)
        self._blocked_charged = info["kpi"]["blocked_time"]
        return obs, info

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """One dispatch of the base env; the reward is (time, blocked time) negated."""
        obs, reward, terminated, truncated, info = super().step(action)
        blocked = info["kpi"]["blocked_time"]
        if info["deadlock"]:
            sim = self.sim
            holding = int(np.count_nonzero(sim.job_status == BLOCKED))
            blocked += holding * (sim.time_limit - sim.time)
        increment = blocked - self._blocked_charged
        self._blocked_charged = blocked
        vector = np.array([reward, -increment / self.reward_scale], dtype=np.float32)
        return obs, vector, terminated, truncated, info

    def _instance_bounds(self) -> tuple[int, int, int]:
        """(largest total processing time, longest operation, most machines) over the
        instances the env can draw (a random spec counts every operation at its longest)."""
        processing = longest = machines = 0
        for source in self._sources:
            if source.instance is not None:
                durations = source.instance.durations
                total, top = int(durations.sum()), int(durations.max())
            else:
                top = int(source.spec.get("duration_range", (1, _DEFAULT_DURATION_HIGH))[1])
                total = source.n_jobs * source.n_ops * top
            processing, longest = max(processing, total), max(longest, top)
            machines = max(machines, source.n_machines)
        return processing, longest, machines


class MOUAMFleetEnv(UAMFleetEnv):
    """UAM fleet scheduling with profit and unserved demand as two objectives.

    ## Description

    The eVTOL fleet of ``opsrl/UAMFleet-v0`` (:class:`~opsrl.envs.uam.env.UAMFleetEnv`)
    with the passengers left behind as a second objective next to the day's profit:
    serving thin, long or repositioning routes carries more passengers but burns
    electricity for little fare. Id: ``opsrl/mo-uam-fleet-v0``.

    ## Action Space

    As ``opsrl/UAMFleet-v0``: ``Discrete(N)`` destinations, with :meth:`action_masks`.

    ## Observation Space

    As ``opsrl/UAMFleet-v0`` (graph or flat).

    ## Rewards

    A float32 vector:

    0. the base env's reward: profit (fares minus electricity) over ``reward_scale`` (by
       default the day's potential revenue), at the day's end (``reward="daily"``) or per
       flight (``"per_flight"``);
    1. minus the unserved demand as a fraction of the day's total demand: with
       ``"daily"`` ``-kpi["unserved_demand"] / kpi["total_demand"]`` at the day's end;
       with ``"per_flight"`` each decision's passengers over the total demand, and minus 1
       at the day's end. Both sum to ``-unserved / total`` (0 when there was no demand).

    ``reward_space``: objective 1 in [-1, 0] (``daily``) or [-1, 1] (``per_flight``).
    Objective 0: a flight earns at most ``seats x max_fare`` and pays at most a full
    battery (``battery_capacity x electricity_price``), an aircraft flies at most
    ``max_flights_per_aircraft`` times a day; fares are whole dollars, so the default
    scale (the potential revenue, 1 when there is none) is at least 1 and the profit is at
    most the potential revenue (upper bound 1).

    :meth:`reference_point` is ``(0, -1)``: the grounded fleet (no flight, no profit, all
    demand unserved). A policy counts in the hypervolume only if it beats it on both.

    ## Starting State

    As ``opsrl/UAMFleet-v0``.

    ## Episode End

    As ``opsrl/UAMFleet-v0``: when the day is over.

    ## Arguments

    Those of ``opsrl/UAMFleet-v0``.

    ## Version History

    - v0: initial version.
    """

    reward_dim = 2
    objective_names = ("profit", "neg_unserved_demand")

    @cached_property
    def reward_space(self) -> spaces.Box:
        """Box of every reward vector (see Rewards)."""
        config = self.config
        flight_revenue = config.seats * config.max_fare
        flight_energy = config.battery_capacity * config.electricity_price
        flights = (
            1
            if self.reward_mode == "per_flight"
            else (config.n_aircraft * config.max_flights_per_aircraft)
        )
        if self.reward_scale is None:
            low0, high0 = -flights * flight_energy, 1.0
        else:
            low0 = -flights * flight_energy / self.reward_scale
            high0 = flights * flight_revenue / self.reward_scale
        high1 = 1.0 if self.reward_mode == "per_flight" else 0.0
        return _reward_box(np.array([low0, -1.0]), np.array([high0, high1]))

    def reference_point(self) -> np.ndarray:
        """The grounded fleet's return vector (0, -1), (2,) float64."""
        return np.array([0.0, -1.0])

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        """One decision of the base env; the reward is (profit, minus unserved share)."""
        obs, reward, terminated, truncated, info = super().step(action)
        kpi = info["kpi"]
        total = kpi["total_demand"]
        scale = total if total > 0 else 1.0
        if self.reward_mode == "per_flight":
            served = info["decision"].passengers - (total if terminated else 0.0)
        else:
            served = -kpi["unserved_demand"] if terminated else 0.0
        vector = np.array([reward, served / scale], dtype=np.float32)
        return obs, vector, terminated, truncated, info
