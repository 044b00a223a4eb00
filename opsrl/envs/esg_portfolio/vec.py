"""Batched ESG portfolio env: N portfolios stepped in one numpy call, behind the SB3 VecEnv API."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from opsrl.envs.batched import BatchedVecEnv
from opsrl.envs.esg_portfolio.env import REWARDS, RUIN_FLOOR, ESGPortfolioEnv
from opsrl.envs.esg_portfolio.sim import (
    TRADING_DAYS,
    asset_returns,
    encode_observation,
    normalised_indicators,
    returns_covariance,
)

__all__ = ["ESGPortfolioVecEnv"]

#: env_method names the batched env answers, like ESGPortfolioEnv's methods.
SUPPORTED_METHODS = ("action_to_weights", "price_history", "return_history", "weights_to_action")

#: per-copy state that get_attr reads and set_attr refuses to write
PER_COPY_ATTRIBUTES = (
    "day",
    "date",
    "episode_step",
    "episode_end",
    "portfolio_value",
    "holdings",
    "esg_scores",
    *SUPPORTED_METHODS,
)

#: shared attributes fixed at construction (the precomputed rows and generators rest on them)
STRUCTURAL_ATTRIBUTES = (
    "market",
    "n_assets",
    "tickers",
    "lookback",
    "esg_in_state",
    "random_start",
    "split",
    "first_day",
    "last_day",
    "episode_days",
    "market_mode",
    "market_seed",
    "action_scale",
    "env_kwargs",
)

#: the day's values of :attr:`ESGPortfolioVecEnv.last_step`, as the single env's info names them
STEP_KEYS = (
    "weights",
    "portfolio_return",
    "transaction_cost",
    "turnover",
    "grant",
    "tax",
    "portfolio_esg",
    "index_esg",
    "ruined",
)


class ESGPortfolioVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.esg_portfolio.env.ESGPortfolioEnv` stepped together.

    ``ESGPortfolioVecEnv(num_envs, seed=None, **env_kwargs)`` takes the same keyword arguments
    as ``ESGPortfolioEnv`` (``render_mode`` excepted). Copy i reproduces
    ``ESGPortfolioEnv(**env_kwargs)`` reset with ``seed=seed + i`` -- the convention of SB3's
    ``make_vec_env`` and ``DummyVecEnv`` -- step for step and bit for bit, including across
    automatic resets. The copies share one market (it does not depend on the seed); the seed
    only matters with ``random_start=True``, where each copy keeps its own generator, built
    like Gymnasium's ``np_random(seed + i)``, and draws its first day from it at every reset
    as the single env does.

    Every day is one vectorised numpy call over all copies: softmax weights, turnover and
    transaction cost, the portfolio's return and ESG score (batched dot products that give
    the single env's ``w @ r`` exactly), the ESG grant or tax, the value, the drifted
    holdings, the episode statistics and the observation. The market part of the
    observation (return covariance and indicator rows, and the ESG row) depends only on the
    day, so it is computed once per day of the split at construction (float32,
    ``(n_assets + 4) * n_assets`` numbers a day: 4 MB for 30 assets over 1000 days) and
    gathered by each copy's day; only the holdings row is per copy.

    Copies finish on their own: all at once for the fixed walk through the data, at
    different days with ``random_start`` (without ``episode_days``) or on ruin. At an
    episode's end, ``infos[i]`` holds ``terminal_observation``, the finished episode's
    ``kpi`` (the single env's last ``info["kpi"]``) and ``ruined``; the copy restarts and
    ``reset_infos[i]`` gets its new ``kpi``. Other days ``infos[i]`` is empty: building N
    full dicts would cost more than the step. The rest of the single env's info is available
    vectorised after each step: :attr:`last_step` (a dict of arrays with the single env's
    info keys ``weights`` (N, n_assets), ``portfolio_return``, ``transaction_cost``,
    ``turnover``, ``grant``, ``tax``, ``portfolio_esg``, ``index_esg``, ``ruined`` (N,)) and
    :meth:`kpi` (episode-to-date, a dict of (N,) arrays).

    The action space is continuous (no masks). ``get_attr`` gives per copy ``day``,
    ``date``, ``episode_step``, ``episode_end``, ``portfolio_value``, ``holdings``,
    ``esg_scores`` and the methods below as callables, and the shared attributes (``market``,
    ``tickers``, ``n_assets``, ``lookback``, ``rules``, ...) otherwise; ``env_method`` calls
    ``weights_to_action``, ``action_to_weights``, ``return_history`` and ``price_history``
    per copy; ``env_is_wrapped`` is always False. ``episode_trace`` and rendering are not
    offered: evaluate with the single env for those.
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = (*PER_COPY_ATTRIBUTES, *STRUCTURAL_ATTRIBUTES)

    def __init__(self, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or (num_envs < 1)
        ):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by ESGPortfolioVecEnv; leave it None")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        # The template validates the kwargs exactly like the single env and owns the spaces.
        template = ESGPortfolioEnv(**env_kwargs)
        self._template = template
        self.env_kwargs = dict(env_kwargs)
        self.market = template.market
        self.rules = template.rules
        self.lookback = template.lookback
        self.esg_in_state = template.esg_in_state
        self.random_start = template.random_start
        self.market_mode = template.market_mode
        self.reward_mode = template.reward_mode
        self.initial_value = template.initial_value
        self.action_scale = template.action_scale
        self.market_seed = template.market_seed
        self.split = template.split
        self.first_day, self.last_day = template.first_day, template.last_day
        self.episode_days = template.episode_days
        self.render_mode = None
        num_envs = int(num_envs)
        super().__init__(num_envs, template.observation_space, template.action_space)

        n = self.n_assets
        # Recomputed with the single env's functions: the same numbers as its own arrays.
        self._returns = asset_returns(self.market.close)
        self._esg = self.market.esg
        self._precompute_market_rows()

        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._started = False
        self._actions: np.ndarray | None = None
        self._day = np.full(num_envs, self.first_day, dtype=np.int64)
        self._start = self._day.copy()
        self._end = np.full(num_envs, self.last_day, dtype=np.int64)
        self._holdings = np.full((num_envs, n), 1.0 / n)
        self._value = np.full(num_envs, self.initial_value)
        self._reset_totals(np.arange(num_envs))
        self.last_step: dict[str, np.ndarray] = {}
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- shared facts
    @property
    def n_assets(self) -> int:
        """Number of assets N."""
        return self.market.n_assets

    @property
    def tickers(self) -> tuple[str, ...]:
        """Asset names, in the order of weights and actions."""
        return self.market.tickers

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        """Reset every copy (re-seeding those given a seed) and return observations (N, D)."""
        if self.random_start:
            # Without random_start the single env never draws, so no generator is needed.
            for i in range(self.num_envs):
                if self._seeds[i] is not None or self._rngs[i] is None:
                    self._rngs[i] = np_random(self._seeds[i])[0]
        self._reset_seeds()
        self._reset_options()
        everyone = np.arange(self.num_envs)
        self._start_episodes(everyone)
        self._started = True
        self.reset_infos = self._reset_kpi_infos(everyone)
        return self._observations()

    def step_wait(self) -> VecEnvStepReturn:
        """One day for every copy; copies whose episode ends restart automatically."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        actions = self._check_actions(self._actions)
        self._actions = None

        # Softmax weights, in the single env's order of operations (weights_from_action).
        logits = self.action_scale * actions
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)

        # One portfolio day (simulate_day) for every copy.
        day, value, rules = self._day, self._value, self.rules
        next_returns = self._returns[day + 1]
        esg = self._esg[day]
        turnover = np.abs(weights - self._holdings).sum(axis=1)
        cost = rules.transaction_cost * turnover * value
        # Stacked (1, N) @ (N, 1) products: numpy computes each as the 1-D dot product of the
        # single env, so the sums agree bit for bit (einsum and sum(axis=1) round differently).
        portfolio_return = np.matmul(weights[:, None, :], next_returns[:, :, None])[:, 0, 0]
        portfolio_esg = np.matmul(weights[:, None, :], esg[:, :, None])[:, 0, 0]
        index_esg = self._index_esg[day - self.first_day]
        if rules.regulated:
            # esg_grant_and_tax: the same tolerance and order of operations
            grant_side = portfolio_esg >= index_esg * (1.0 - 1e-12)
            grant = np.where(
                grant_side,
                rules.grant_rate
                * np.maximum(portfolio_return, 0.0)
                * value
                * portfolio_esg
                / index_esg,
                0.0,
            )
            tax = np.where(
                grant_side, 0.0, rules.tax_rate * value * (index_esg - portfolio_esg) / index_esg
            )
        else:
            grant = tax = np.zeros(self.num_envs)
        outcome_value = value * (1.0 + portfolio_return) - cost + grant - tax
        grown = weights * (1.0 + next_returns)
        drifted = grown / grown.sum(axis=1, keepdims=True)

        ruined = ~(outcome_value > 0.0)
        new_value = np.maximum(outcome_value, 0.0)
        if self.reward_mode == "log_return":
            rewards = np.log(np.maximum(new_value, RUIN_FLOOR * value) / value)
        else:
            rewards = (new_value - value) / self.initial_value

        self._update_tracker(new_value)
        self._day = day + 1
        self._value = new_value
        self._holdings = drifted
        self._grant_total += grant
        self._tax_total += tax
        self._cost_total += cost
        self._turnover_total += turnover
        self._esg_total += portfolio_esg
        self.last_step = {
            "weights": weights,
            "portfolio_return": portfolio_return,
            "transaction_cost": cost,
            "turnover": turnover,
            "grant": grant,
            "tax": tax,
            "portfolio_esg": portfolio_esg,
            "index_esg": index_esg,
            "ruined": ruined,
        }

        dones = ruined | (self._day >= self._end)
        obs = self._observations()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            finished = np.flatnonzero(dones)
            kpis = self._kpi_dicts(finished)
            for k, i in enumerate(finished.tolist()):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["kpi"] = kpis[k]
                infos[i]["ruined"] = bool(ruined[i])
            self._start_episodes(finished)
            for i, info in zip(finished.tolist(), self._reset_kpi_infos(finished), strict=True):
                self.reset_infos[i] = info
            obs[finished] = self._observations(finished)
        return obs, rewards.astype(np.float32), dones, infos

    # ----------------------------------------------------------------- per-copy access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        return {
            "day": lambda i: int(self._day[i]),
            "date": lambda i: self.market.dates[self._day[i]],
            "episode_step": lambda i: int(self._day[i] - self._start[i]),
            "episode_end": lambda i: int(self._end[i]),
            "portfolio_value": lambda i: float(self._value[i]),
            "holdings": lambda i: self._holdings[i].copy(),
            "esg_scores": lambda i: self._esg[self._day[i]].copy(),
        }

    def _check_attribute(self, name: str, value: Any) -> None:
        """Attributes read at every step (``reward_mode``, ``rules``, ``initial_value``, ...)
        may be set; the ones the construction rests on (the market, the split, the
        observation layout, ``action_scale``, ...) are read-only: build a new env for them."""
        if name == "reward_mode" and value not in REWARDS:
            raise ValueError(f"reward_mode must be one of {', '.join(REWARDS)}, got {value!r}")

    # ----------------------------------------------------------------- vectorised extras
    @property
    def day(self) -> np.ndarray:
        """Index of each copy's current day in the market data, (N,)."""
        return self._day.copy()

    @property
    def portfolio_value(self) -> np.ndarray:
        """Value of each copy at today's close, (N,)."""
        return self._value.copy()

    @property
    def holdings(self) -> np.ndarray:
        """Current weights of each copy, (N, n_assets)."""
        return self._holdings.copy()

    def kpi(self) -> dict[str, np.ndarray]:
        """Episode-to-date KPIs of every copy, a dict of (N,) arrays (the single env's keys)."""
        days = self._days
        growth = self._value / self.initial_value
        annual = np.zeros(self.num_envs)
        played = days > 0
        annual[played & (growth <= 0)] = -1.0
        growing = played & (growth > 0)
        annual[growing] = growth[growing] ** (TRADING_DAYS / days[growing]) - 1.0
        portfolio_esg = self._initial_esg[self._day - self.first_day]
        portfolio_esg[played] = self._esg_total[played] / days[played]
        sharpe = np.array(
            [
                _sharpe(int(d), mean, m2)
                for d, mean, m2 in zip(
                    days.tolist(), self._mean.tolist(), self._m2.tolist(), strict=True
                )
            ]
        )
        return {
            "portfolio_value": self._value.copy(),
            "grant": self._grant_total.copy(),
            "tax": self._tax_total.copy(),
            "transaction_cost": self._cost_total.copy(),
            "turnover": self._turnover_total.copy(),
            "portfolio_esg": portfolio_esg,
            "cumulative_return": growth - 1.0,
            "annual_return": annual,
            "sharpe": sharpe,
            "max_drawdown": self._max_drawdown.copy(),
            "days": days.copy(),
        }

    # ----------------------------------------------------------------- helpers
    def _precompute_market_rows(self) -> None:
        """The observation rows that depend only on the day, for every day of the split.

        Built with the single env's own functions, one day at a time, so that they are the
        same float32 numbers; the covariance is the costly part of the single env's
        observation and is computed once per day instead of once per copy and step.
        """
        n = self.n_assets
        days = range(self.first_day, self.last_day + 1)
        market_width = (n + 4) * n
        self._market_rows = np.empty((len(days), market_width), dtype=np.float32)
        self._esg_rows = np.empty((len(days), n), dtype=np.float32) if self.esg_in_state else None
        self._index_esg = np.empty(len(days))
        self._initial_esg = np.empty(len(days))
        equal_weights = np.full(n, 1.0 / n)
        indicator_rows = normalised_indicators(self.market.indicators, self.market.close)
        for k, day in enumerate(days):
            window = self._returns[day - self.lookback + 1 : day + 1]
            esg = self._esg[day]
            encoded = encode_observation(
                returns_covariance(window),
                indicator_rows[day],
                equal_weights,
                esg if self.esg_in_state else None,
            )
            self._market_rows[k] = encoded[:market_width]
            if self._esg_rows is not None:
                self._esg_rows[k] = encoded[(n + 5) * n :]
            self._index_esg[k] = float(esg.mean())
            self._initial_esg[k] = float(equal_weights @ esg)

    def _check_actions(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions, dtype=np.float64)
        if array.shape != (self.num_envs, self.n_assets):
            raise ValueError(
                f"actions must have shape ({self.num_envs}, {self.n_assets}) = "
                f"(num_envs, n_assets), got {array.shape}"
            )
        nan = np.isnan(array).any(axis=1)
        if nan.any():
            raise ValueError(f"action of copy {int(np.flatnonzero(nan)[0])} contains NaN")
        return np.clip(array, -1.0, 1.0)

    def _observations(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Observations (len(indices), D) float32, as ESGPortfolioEnv encodes them."""
        n = self.n_assets
        day = self._day if indices is None else self._day[indices]
        holdings = self._holdings if indices is None else self._holdings[indices]
        offset = day - self.first_day
        obs = np.empty((day.shape[0], self.observation_space.shape[0]), dtype=np.float32)
        market_width = (n + 4) * n
        if day.shape[0] > 1 and offset.min() == offset.max():
            obs[:, :market_width] = self._market_rows[offset[0]]  # broadcast: one pass
        else:
            obs[:, :market_width] = self._market_rows[offset]
        # Holdings lie in [0, 1], inside the clip of encode_observation; the cast rounds alike.
        obs[:, market_width : market_width + n] = holdings
        if self._esg_rows is not None:
            obs[:, market_width + n :] = self._esg_rows[offset]
        return obs

    def _start_episodes(self, indices: np.ndarray) -> None:
        """New episode for the copies ``indices``, drawing from their generators like reset()."""
        length = self.episode_days
        if self.random_start:
            latest = self.last_day - (length if length is not None else 1)
            for i in indices.tolist():
                self._start[i] = int(self._rngs[i].integers(self.first_day, latest + 1))
        else:
            self._start[indices] = self.first_day
        if length is None:
            self._end[indices] = self.last_day
        else:
            self._end[indices] = self._start[indices] + length
        self._day[indices] = self._start[indices]
        self._holdings[indices] = 1.0 / self.n_assets
        self._value[indices] = self.initial_value
        self._reset_totals(indices)

    def _reset_totals(self, indices: np.ndarray) -> None:
        if not hasattr(self, "_days"):
            n = self.num_envs
            self._days = np.zeros(n, dtype=np.int64)
            self._mean, self._m2 = np.zeros(n), np.zeros(n)
            self._peak, self._max_drawdown = np.zeros(n), np.zeros(n)
            self._grant_total, self._tax_total = np.zeros(n), np.zeros(n)
            self._cost_total, self._turnover_total = np.zeros(n), np.zeros(n)
            self._esg_total = np.zeros(n)
        for array in (
            self._days,
            self._mean,
            self._m2,
            self._max_drawdown,
            self._grant_total,
            self._tax_total,
            self._cost_total,
            self._turnover_total,
            self._esg_total,
        ):
            array[indices] = 0
        self._peak[indices] = self.initial_value

    def _update_tracker(self, new_value: np.ndarray) -> None:
        """PerformanceTracker.update for every copy: the same float operations, vectorised."""
        daily = new_value / self._value - 1.0
        self._days += 1
        delta = daily - self._mean
        self._mean += delta / self._days
        self._m2 += delta * (daily - self._mean)
        self._peak = np.maximum(self._peak, new_value)
        self._max_drawdown = np.maximum(self._max_drawdown, 1.0 - new_value / self._peak)

    def _kpi_dicts(self, indices: np.ndarray) -> list[dict[str, float]]:
        """The single env's ``info["kpi"]`` of the copies ``indices``, in Python floats (as
        PerformanceTracker.kpi computes them, so that they agree bit for bit)."""
        columns = zip(
            self._value[indices].tolist(),
            self._grant_total[indices].tolist(),
            self._tax_total[indices].tolist(),
            self._cost_total[indices].tolist(),
            self._turnover_total[indices].tolist(),
            self._esg_total[indices].tolist(),
            self._days[indices].tolist(),
            self._mean[indices].tolist(),
            self._m2[indices].tolist(),
            self._max_drawdown[indices].tolist(),
            self._day[indices].tolist(),
            strict=True,
        )
        kpis = []
        for value, grant, tax, cost, turnover, esg, days, mean, m2, drawdown, day in columns:
            growth = value / self.initial_value
            if days == 0:
                annual = 0.0
            elif growth <= 0:  # ruined
                annual = -1.0
            else:
                annual = growth ** (TRADING_DAYS / days) - 1.0
            kpis.append(
                {
                    "portfolio_value": value,
                    "grant": grant,
                    "tax": tax,
                    "transaction_cost": cost,
                    "turnover": turnover,
                    "portfolio_esg": (
                        esg / days if days else float(self._initial_esg[day - self.first_day])
                    ),
                    "cumulative_return": growth - 1.0,
                    "annual_return": annual,
                    "sharpe": _sharpe(days, mean, m2),
                    "max_drawdown": drawdown,
                    "days": days,
                }
            )
        return kpis

    def _reset_kpi_infos(self, indices: np.ndarray) -> list[dict[str, Any]]:
        return [{"kpi": kpi} for kpi in self._kpi_dicts(indices)]

    def _bound_method(self, name: str, i: int) -> Callable[..., Any]:
        """Copy i's version of one of the single env's methods."""
        if name == "weights_to_action":
            return self._template.weights_to_action  # stateless
        if name == "action_to_weights":
            return self._template.action_to_weights  # stateless

        def return_history(window: int) -> np.ndarray:
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
                raise ValueError(f"window must be an integer of at least 1, got {window!r}")
            day = int(self._day[i])
            if window > day:
                raise ValueError(f"only {day} daily returns exist up to day {day}")
            return self._returns[day - window + 1 : day + 1].copy()

        def price_history() -> np.ndarray:
            return self.market.close[: int(self._day[i]) + 1].copy()

        return return_history if name == "return_history" else price_history


def _sharpe(days: int, mean: float, m2: float) -> float:
    """PerformanceTracker.sharpe from its running statistics."""
    if days < 2:
        return 0.0
    std = math.sqrt(m2 / (days - 1))
    if std <= 1e-12 * max(abs(mean), 1.0):
        return 0.0
    return math.sqrt(TRADING_DAYS) * mean / std
