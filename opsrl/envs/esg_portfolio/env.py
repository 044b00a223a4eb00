"""Gymnasium face of the ESG portfolio simulator."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from opsrl.envs.esg_portfolio.data import MarketData, make_market, split_bounds
from opsrl.envs.esg_portfolio.sim import (
    OBSERVATION_LIMIT,
    MarketRules,
    PerformanceTracker,
    action_from_weights,
    asset_returns,
    encode_observation,
    normalised_indicators,
    observation_rows,
    returns_covariance,
    simulate_day,
    weights_from_action,
)

__all__ = ["MARKETS", "REWARDS", "ESGPortfolioEnv"]

#: Market modes: without regulation, or with the ESG grant/tax rule.
MARKETS = ("standard", "esg_regulated")

#: Reward definitions.
REWARDS = ("log_return", "value_change")

#: A ruined portfolio (value <= 0) ends the episode; its reward is that of losing all but this
#: fraction of the value, so that it stays finite.
RUIN_FLOOR = 1e-12


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _number(name: str, value: Any, low: float, high: float, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    inside = (low < number if open_low else low <= number) and number <= high
    if not (math.isfinite(number) and inside):
        bracket = "(" if open_low else "["
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


class ESGPortfolioEnv(gym.Env[np.ndarray, np.ndarray]):
    """Long-only daily portfolio allocation in a standard or an ESG-regulated market.

    ## Description

    An investor holds N assets and, at every daily close, chooses the portfolio weights for
    the next day. Rebalancing from the current (drifted) holdings costs a fraction of the
    traded value. In the ESG-regulated market a regulator pays a grant to portfolios whose
    ESG score is at least the index mean -- proportional to the day's return and to the
    score -- and taxes the others in proportion to their shortfall. The goal is to grow the
    portfolio's value.

    This is the setting of Garrido-Merchan, Mora-Figueroa-Cruz-Guzman and Coronado-Vaca,
    "Deep reinforcement learning for ESG financial portfolio management" (arXiv 2307.09631),
    built on FinRL's ``StockPortfolioEnv`` with its quirks fixed: the transaction cost is
    applied, the reward is the value's log return (not the value), nothing is written to
    disk, and Gymnasium's API is used.

    The day's accounting (see :mod:`opsrl.envs.esg_portfolio.sim`):
    ``V_{t+1} = V_t (1 + r_p) - cost + grant - tax`` with ``r_p = sum_i w_i r_i`` the simple
    return of the chosen weights and ``cost = transaction_cost * V_t * sum_i |w_i - w_drift_i|``.

    **ESG rule (our default; the paper's formulas are not public).** With
    ``E_p = sum_i w_i e_i`` the portfolio's ESG score and ``e_bar`` the mean score of the N
    assets on that day: if ``E_p >= e_bar``, ``grant = grant_rate * max(r_p, 0) * V_t *
    E_p / e_bar`` (grant_rate = 0.1) and no tax; otherwise ``tax = tax_rate * V_t *
    (e_bar - E_p) / e_bar`` (tax_rate = 1e-4 per day) and no grant. In the standard market
    both are 0.

    ## Action Space

    ``Box(-1, 1, (N,), float32)``: scaled logits. The weights are
    ``softmax(action_scale * a)`` (action_scale = 10 by default), so every action is a valid
    long-only portfolio; a = 0 is the equal-weight portfolio and the largest weight ratio is
    ``exp(2 * action_scale)``. Actions outside the box are clipped to it; NaN raises a
    ValueError. :meth:`weights_to_action` inverts the map for baselines (exact up to the
    float32 rounding of the action, a relative 1e-6 on the weights, and weights below
    ``2e-9 * max(w)`` at the default scale).

    ## Observation Space

    ``Box(float32)`` of shape ``(R * N,)``: a matrix of R rows and N columns, flattened row by
    row (SB3's MlpPolicy takes it as is):

    | rows | content |
    |------|---------|
    | N | covariance of the daily simple returns over the last ``lookback`` days, x 252 |
    | 1 | MACD as a percentage of the close, ``100 * macd / close`` |
    | 1 | RSI(30) centred, ``(rsi_30 - 50) / 50`` |
    | 1 | CCI(30) / 100 |
    | 1 | DX(30) / 100 |
    | 1 | current holdings: the weights after the last day's drift (1/N after reset) |
    | 1 | if ``esg_in_state``: ESG scores relative to their mean, ``e_i / e_bar`` |

    so R = N + 5, or N + 6 with ESG. Entries are clipped to +-1000 (covariance, indicators),
    [0, 1] (weights), [0, 1000] (ESG) and are always finite. Everything is known at the
    day's close: nothing from later days enters.

    ## Rewards

    With ``reward="log_return"`` (default) ``log(V_{t+1} / V_t)``; with
    ``reward="value_change"`` ``(V_{t+1} - V_t) / V_0``. Both include costs, grants and taxes.

    ## Starting State

    The market (prices, indicators, ESG) is fixed by ``data`` and ``market_seed``; it does
    not change between episodes. An episode starts on the split's first decision day (see
    :func:`~opsrl.envs.esg_portfolio.data.split_bounds`) with value ``initial_value`` held in
    equal weights (no entry cost). With ``random_start=True`` the first day is drawn
    uniformly from the env's ``np_random`` among the days that leave a full episode, so
    ``reset(seed=s)`` fixes it; otherwise the seed changes nothing and every episode is the
    same walk through the data.

    ## Episode End

    ``terminated=True`` at the split's last day, after ``episode_days`` steps when that is
    set, or when the value falls to zero or below (ruin: the reward is then that of keeping
    ``1e-12`` of the value, and ``info["ruined"]`` is True). There is no truncation.

    ## Info

    ``step`` returns ``{"kpi", "date", "weights", "portfolio_return", "transaction_cost",
    "turnover", "grant", "tax", "portfolio_esg", "index_esg", "ruined"}`` (the day's values);
    ``kpi`` is episode-to-date: ``portfolio_value``, cumulative ``grant``, ``tax``,
    ``transaction_cost`` and ``turnover``, ``portfolio_esg`` (mean E_p over the days so far;
    after reset, that of the initial holdings), ``cumulative_return``, ``annual_return``,
    ``sharpe`` (sqrt(252) * mean / std of the daily simple returns of the value, net of costs,
    grants and taxes), ``max_drawdown`` (a fraction) and ``days``. ``reset`` returns the same
    keys.
    :meth:`episode_trace` returns the days played since the reset as a DataFrame (value,
    weights, costs, grant, tax, ESG score per day); the experiment runner saves it as
    ``trace.csv``.

    ## Arguments

    ```python
    gym.make("opsrl/ESGPortfolio-v0", data="synthetic", market="standard",
             esg_in_state=False, lookback=60, transaction_cost=0.001, reward="log_return",
             grant_rate=0.1, tax_rate=1e-4, initial_value=1e6, action_scale=10.0,
             split="all", split_date=None, train_fraction=0.8, random_start=False,
             episode_days=None, market_seed=0, esg=None, n_assets=None, n_days=None,
             esg_model=None, esg_return_correlation=None, render_mode=None)
    ```

    - ``data``: ``"synthetic"`` (a one-factor market, see
      :func:`~opsrl.envs.esg_portfolio.data.generate_market`), the path of a FinRL long-format
      CSV (see :func:`~opsrl.envs.esg_portfolio.data.load_finrl_csv`) or a
      :class:`~opsrl.envs.esg_portfolio.data.MarketData`.
    - ``market``: ``"standard"`` or ``"esg_regulated"``.
    - ``esg_in_state``: add the ESG row to the observation.
    - ``lookback``: days of returns behind the covariance (at least 2).
    - ``transaction_cost``: fraction of the traded value, in [0, 0.1].
    - ``reward``: ``"log_return"`` or ``"value_change"``.
    - ``grant_rate``, ``tax_rate``: coefficients of the ESG rule, in [0, 1] and [0, 0.1];
      used only by the regulated market.
    - ``initial_value``: V_0 > 0.
    - ``action_scale``: logits per unit of action, in (0, 50].
    - ``split``: ``"all"``, ``"train"`` or ``"test"``; the test period starts on
      ``split_date`` when given, else after the first ``train_fraction`` of the days.
    - ``random_start``, ``episode_days``: random first day, and a fixed episode length
      (None runs to the end of the split).
    - ``market_seed``: seed of the synthetic market, or of the synthetic ESG scores of a CSV.
    - ``esg``: for a CSV, a ``tic, esg`` CSV path or a ``{ticker: score}`` dict (None:
      synthetic static scores U[10, 90]).
    - ``n_assets``, ``n_days``, ``esg_model`` (``"static"``/``"ar1"``),
      ``esg_return_correlation``: synthetic market only (None: 30 assets, 1000 days, static,
      0).
    - ``render_mode``: ``None`` or ``"ansi"``.

    Bad arguments and malformed data (missing columns, date gaps, non-positive prices, too
    few days for the lookback, unknown ESG tickers) raise a ValueError at construction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        data: str | os.PathLike[str] | MarketData = "synthetic",
        market: str = "standard",
        esg_in_state: bool = False,
        lookback: int = 60,
        transaction_cost: float = 0.001,
        reward: str = "log_return",
        grant_rate: float = 0.1,
        tax_rate: float = 1e-4,
        initial_value: float = 1_000_000.0,
        action_scale: float = 10.0,
        split: str = "all",
        split_date: str | None = None,
        train_fraction: float = 0.8,
        random_start: bool = False,
        episode_days: int | None = None,
        market_seed: int = 0,
        esg: str | os.PathLike[str] | Mapping[str, float] | None = None,
        n_assets: int | None = None,
        n_days: int | None = None,
        esg_model: str | None = None,
        esg_return_correlation: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        if market not in MARKETS:
            raise ValueError(f"market must be one of {', '.join(MARKETS)}, got {market!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.lookback = _positive_int("lookback", lookback, minimum=2)
        self.esg_in_state = _flag("esg_in_state", esg_in_state)
        self.random_start = _flag("random_start", random_start)
        self.market_mode = market
        self.reward_mode = reward
        self.rules = MarketRules(
            transaction_cost=_number("transaction_cost", transaction_cost, 0.0, 0.1),
            regulated=market == "esg_regulated",
            grant_rate=_number("grant_rate", grant_rate, 0.0, 1.0),
            tax_rate=_number("tax_rate", tax_rate, 0.0, 0.1),
        )
        self.initial_value = _number("initial_value", initial_value, 0.0, 1e15, open_low=True)
        self.action_scale = _number("action_scale", action_scale, 0.0, 50.0, open_low=True)
        self.market_seed = _positive_int("market_seed", market_seed, minimum=0)
        self.render_mode = render_mode

        #: the whole market, future included: policies must read it through the history
        #: methods (:meth:`return_history`, :meth:`price_history`, :attr:`esg_scores`).
        self.market: MarketData = make_market(
            data,
            market_seed=self.market_seed,
            esg=esg,
            n_assets=n_assets,
            n_days=n_days,
            esg_model=esg_model,
            esg_return_correlation=esg_return_correlation,
        )
        self.split = split
        self.first_day, self.last_day = split_bounds(
            self.market.dates, self.lookback, split, split_date, train_fraction
        )
        available = self.last_day - self.first_day
        if episode_days is not None:
            episode_days = _positive_int("episode_days", episode_days)
            if episode_days > available:
                raise ValueError(
                    f"episode_days={episode_days} exceeds the {available} steps of split {split!r}"
                )
        self.episode_days = episode_days

        n = self.market.n_assets
        self._returns = asset_returns(self.market.close)
        self._indicator_rows = normalised_indicators(self.market.indicators, self.market.close)
        rows = observation_rows(n, self.esg_in_state)
        low = np.full((rows, n), -OBSERVATION_LIMIT, dtype=np.float32)
        high = np.full((rows, n), OBSERVATION_LIMIT, dtype=np.float32)
        low[n + 4 :] = 0.0  # weights and ESG are non-negative
        high[n + 4] = 1.0  # weights
        self.observation_space = spaces.Box(low.ravel(), high.ravel(), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(n,), dtype=np.float32)

        self._day: int | None = None
        self._start = self.first_day
        self._end = self.last_day
        self._holdings = np.full(n, 1.0 / n)
        self._value = self.initial_value
        self._reset_totals()

    # ----------------------------------------------------------------- public state
    @property
    def n_assets(self) -> int:
        """Number of assets N."""
        return self.market.n_assets

    @property
    def tickers(self) -> tuple[str, ...]:
        """Asset names, in the order of weights and actions."""
        return self.market.tickers

    @property
    def day(self) -> int:
        """Index of the current day (today's close) in the market data."""
        return self._start if self._day is None else self._day

    @property
    def date(self) -> np.datetime64:
        """Today's date."""
        return self.market.dates[self.day]

    @property
    def episode_step(self) -> int:
        """Days since the episode started (0 right after reset)."""
        return self.day - self._start

    @property
    def episode_end(self) -> int:
        """Index of the episode's last day."""
        return self._end

    @property
    def portfolio_value(self) -> float:
        """Value at today's close."""
        return self._value

    @property
    def holdings(self) -> np.ndarray:
        """Current weights, drifted by the last day's price moves (a copy)."""
        return self._holdings.copy()

    @property
    def esg_scores(self) -> np.ndarray:
        """Today's ESG scores (a copy)."""
        return self.market.esg[self.day].copy()

    def return_history(self, window: int) -> np.ndarray:
        """The last ``window`` daily simple returns up to and including today, (window, N).

        Only past data: the return of day d is ``close[d] / close[d - 1] - 1``, d <= today.
        """
        window = _positive_int("window", window)
        if window > self.day:
            raise ValueError(f"only {self.day} daily returns exist up to day {self.day}")
        return self._returns[self.day - window + 1 : self.day + 1].copy()

    def price_history(self) -> np.ndarray:
        """Closing prices from the first day of the data to today, (day + 1, N)."""
        return self.market.close[: self.day + 1].copy()

    def weights_to_action(self, weights: np.ndarray) -> np.ndarray:
        """An action whose softmax weights are ``weights`` (see Action Space for precision)."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_assets,):
            raise ValueError(f"weights must have shape ({self.n_assets},), got {weights.shape}")
        return action_from_weights(weights, self.action_scale)

    def action_to_weights(self, action: np.ndarray) -> np.ndarray:
        """The portfolio weights an action selects (after clipping to the action box)."""
        return weights_from_action(self._check_action(action), self.action_scale)

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode on the split's first day (or a random one, see Starting State)."""
        super().reset(seed=seed)
        length = self.episode_days
        if self.random_start:
            latest = self.last_day - (length if length is not None else 1)
            self._start = int(self.np_random.integers(self.first_day, latest + 1))
        else:
            self._start = self.first_day
        self._end = self.last_day if length is None else self._start + length
        self._day = self._start
        self._holdings = np.full(self.n_assets, 1.0 / self.n_assets)
        self._value = self.initial_value
        self._reset_totals()
        return self._observation(), {"kpi": self._kpi()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Rebalance to ``softmax(action_scale * action)`` and move one day forward."""
        if self._day is None:
            raise RuntimeError("call reset() before step()")
        if self._day >= self._end:
            raise RuntimeError("the episode has ended; call reset() before step()")
        weights = weights_from_action(self._check_action(action), self.action_scale)
        day = self._day
        outcome = simulate_day(
            self._value,
            self._holdings,
            weights,
            self._returns[day + 1],
            self.market.esg[day],
            self.rules,
        )
        previous = self._value
        ruined = not outcome.value > 0.0
        new_value = max(outcome.value, 0.0)
        if self.reward_mode == "log_return":
            reward = math.log(max(new_value, RUIN_FLOOR * previous) / previous)
        else:
            reward = (new_value - previous) / self.initial_value

        self._day = day + 1
        self._value = new_value
        self._holdings = outcome.drifted_weights
        self._tracker.update(new_value)
        self._grant_total += outcome.grant
        self._tax_total += outcome.tax
        self._cost_total += outcome.transaction_cost
        self._turnover_total += outcome.turnover
        self._esg_total += outcome.portfolio_esg
        self._trace.append((self._day, new_value, weights, outcome))

        terminated = ruined or self._day >= self._end
        info = {
            "kpi": self._kpi(),
            "date": str(self.market.dates[self._day]),
            "weights": weights,
            "portfolio_return": outcome.portfolio_return,
            "transaction_cost": outcome.transaction_cost,
            "turnover": outcome.turnover,
            "grant": outcome.grant,
            "tax": outcome.tax,
            "portfolio_esg": outcome.portfolio_esg,
            "index_esg": outcome.index_esg,
            "ruined": ruined,
        }
        return self._observation(), float(reward), terminated, False, info

    def episode_trace(self) -> pd.DataFrame:
        """The days played since the last reset, one row per day.

        Columns: ``date`` (the close the day ends on), ``portfolio_value`` (at that close),
        ``portfolio_return`` (r_p, before costs), ``transaction_cost``, ``turnover``,
        ``grant``, ``tax``, ``portfolio_esg``, ``index_esg``, then ``weight/<ticker>``: the
        weights chosen at the previous close and held over the day. The report plots it
        (portfolio value and weights over time).
        """
        columns: dict[str, Any] = {
            "date": [str(self.market.dates[day]) for day, *_ in self._trace],
            "portfolio_value": [value for _, value, _, _ in self._trace],
        }
        for name in (
            "portfolio_return",
            "transaction_cost",
            "turnover",
            "grant",
            "tax",
            "portfolio_esg",
            "index_esg",
        ):
            columns[name] = [getattr(outcome, name) for *_, outcome in self._trace]
        weights = np.array([w for _, _, w, _ in self._trace]).reshape(-1, self.n_assets)
        columns.update({f"weight/{t}": weights[:, i] for i, t in enumerate(self.tickers)})
        return pd.DataFrame(columns)

    def render(self) -> str | None:
        """With ``render_mode="ansi"``, a line with the date, value and largest weights."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render() without a render_mode; use render_mode='ansi'."
            )
            return None
        top = np.argsort(self._holdings)[::-1][:3]
        largest = ", ".join(f"{self.tickers[i]} {self._holdings[i]:.1%}" for i in top)
        return (
            f"{self.date} (day {self.episode_step}/{self._end - self._start}) | value "
            f"{self._value:,.2f} | largest weights {largest}"
        )

    # ----------------------------------------------------------------- helpers
    def _check_action(self, action: Any) -> np.ndarray:
        array = np.asarray(action, dtype=np.float64)
        if array.shape != (self.n_assets,):
            raise ValueError(f"action must have shape ({self.n_assets},), got {array.shape}")
        if np.any(np.isnan(array)):
            raise ValueError("action contains NaN")
        return np.clip(array, -1.0, 1.0)

    def _observation(self) -> np.ndarray:
        day = self.day
        window = self._returns[day - self.lookback + 1 : day + 1]
        return encode_observation(
            returns_covariance(window),
            self._indicator_rows[day],
            self._holdings,
            self.market.esg[day] if self.esg_in_state else None,
        )

    def _reset_totals(self) -> None:
        #: per day (day index after the step, value, chosen weights, the day's outcome)
        self._trace: list[tuple[int, float, np.ndarray, Any]] = []
        self._tracker = PerformanceTracker(self.initial_value)
        self._grant_total = 0.0
        self._tax_total = 0.0
        self._cost_total = 0.0
        self._turnover_total = 0.0
        self._esg_total = 0.0

    def _kpi(self) -> dict[str, float]:
        days = self._tracker.days
        if days:
            portfolio_esg = self._esg_total / days
        else:
            portfolio_esg = float(self._holdings @ self.market.esg[self.day])
        return {
            "portfolio_value": self._value,
            "grant": self._grant_total,
            "tax": self._tax_total,
            "transaction_cost": self._cost_total,
            "turnover": self._turnover_total,
            "portfolio_esg": portfolio_esg,
            **self._tracker.kpi(),
            "days": days,
        }
