"""Pure numpy simulator of a long-only portfolio with transaction costs and an ESG rule.

One day of the portfolio, :func:`simulate_day`:

1. the holdings have drifted with yesterday's price moves to the weights ``w_drift``;
2. the investor picks target weights ``w`` (long-only, summing to 1) and pays the
   transaction cost ``cost = transaction_cost * V_t * sum_i |w_i - w_drift_i|``;
3. the market moves: the portfolio earns ``r_p = sum_i w_i r_i`` (simple returns of the
   assets from today's close to tomorrow's);
4. in the ESG-regulated market the regulator pays a grant or levies a tax (see
   :func:`esg_grant_and_tax`);
5. ``V_{t+1} = V_t (1 + r_p) - cost + grant - tax`` and the weights drift to
   ``w_i (1 + r_i) / (1 + r_p)``.

The cost, grant and tax are cash flows settled at the end of the day: they scale all
holdings alike (the weights do not change) and earn no return that day, which keeps the
accounting identity above exact.

Also here: softmax weights and their inverse for a bounded logit action, the covariance and
indicator rows of the observation, and :class:`PerformanceTracker` (episode KPIs from the
value path). Nothing here imports Gymnasium.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OBSERVATION_LIMIT",
    "TRADING_DAYS",
    "DayOutcome",
    "MarketRules",
    "PerformanceTracker",
    "action_from_weights",
    "asset_returns",
    "encode_observation",
    "esg_grant_and_tax",
    "normalised_indicators",
    "observation_rows",
    "returns_covariance",
    "simulate_day",
    "weights_from_action",
]

#: Trading days per year, for annualised covariance, return and Sharpe ratio.
TRADING_DAYS = 252

#: Observation entries are clipped to [-OBSERVATION_LIMIT, OBSERVATION_LIMIT] so that they are
#: always finite and inside the observation space (real data never gets close).
OBSERVATION_LIMIT = 1e3


@dataclass(frozen=True)
class MarketRules:
    """Frictions and regulation of the market.

    - ``transaction_cost``: fraction of the traded value paid as cost (0.001 = 0.1 %).
    - ``regulated``: whether the ESG grant/tax rule applies (the "esg_regulated" market).
    - ``grant_rate`` (g) and ``tax_rate`` (tau, per day): coefficients of the rule.
    """

    transaction_cost: float = 0.001
    regulated: bool = False
    grant_rate: float = 0.1
    tax_rate: float = 1e-4


@dataclass(frozen=True)
class DayOutcome:
    """What one day of the portfolio produced (values in money, weights as fractions)."""

    value: float  # V_{t+1}
    portfolio_return: float  # r_p = w . r, before costs, grants and taxes
    transaction_cost: float
    turnover: float  # sum_i |w_i - w_drift_i|
    grant: float
    tax: float
    portfolio_esg: float  # E_p = w . e
    index_esg: float  # mean of e
    drifted_weights: np.ndarray  # the holdings at the next close


def weights_from_action(action: np.ndarray, action_scale: float) -> np.ndarray:
    """Long-only weights summing to 1: ``softmax(action_scale * action)`` in float64."""
    logits = action_scale * np.asarray(action, dtype=np.float64)
    logits = logits - logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def action_from_weights(weights: np.ndarray, action_scale: float) -> np.ndarray:
    """An action in [-1, 1]^N whose softmax is ``weights`` (up to clipping and float32).

    The logits are ``log(w)``, shifted so that the largest maps to +1. A weight below
    ``max(w) * exp(-2 * action_scale)`` (2e-9 of the largest for the default scale 10) cannot
    be represented and becomes that floor; the float32 rounding of the action changes the
    weights by a relative 1e-6 at most for the default scale. Zero weights are allowed.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(f"weights must be a non-empty 1-D array, got shape {weights.shape}")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    logits = np.log(np.maximum(weights / weights.max(), np.finfo(np.float64).tiny))
    action = 1.0 + logits / action_scale
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def asset_returns(close: np.ndarray) -> np.ndarray:
    """Simple daily returns (T, N) of closes (T, N); row 0, with no previous close, is 0."""
    returns = np.zeros_like(close, dtype=np.float64)
    returns[1:] = close[1:] / close[:-1] - 1.0
    return returns


def esg_grant_and_tax(
    value: float,
    portfolio_return: float,
    portfolio_esg: float,
    index_esg: float,
    grant_rate: float,
    tax_rate: float,
) -> tuple[float, float]:
    """The ESG-regulated market's grant and tax for one day, ``(grant, tax)``, both >= 0.

    Our documented default (the paper's formulas are not public): with ``E_p`` the
    portfolio's ESG score and ``e_bar`` the index mean,

    - if ``E_p >= e_bar`` (up to a relative 1e-12):
      ``grant = g * max(r_p, 0) * V * E_p / e_bar`` -- proportional to the day's positive
      return and to the ESG score; no tax;
    - else ``tax = tau * V * (e_bar - E_p) / e_bar`` -- proportional to the shortfall; no
      grant.
    """
    # The relative tolerance keeps the equal-weight portfolio (E_p = e_bar up to rounding)
    # on the grant side.
    if portfolio_esg >= index_esg * (1.0 - 1e-12):
        return grant_rate * max(portfolio_return, 0.0) * value * portfolio_esg / index_esg, 0.0
    return 0.0, tax_rate * value * (index_esg - portfolio_esg) / index_esg


def simulate_day(
    value: float,
    drifted_weights: np.ndarray,
    target_weights: np.ndarray,
    next_returns: np.ndarray,
    esg: np.ndarray,
    rules: MarketRules,
) -> DayOutcome:
    """One day of the portfolio (see the module docstring for the order of events).

    Args:
        value: V_t, the value at today's close.
        drifted_weights: (N,) current holdings as weights.
        target_weights: (N,) weights chosen today, long-only and summing to 1.
        next_returns: (N,) simple returns of the assets from today's close to tomorrow's.
        esg: (N,) today's ESG scores.
        rules: costs and regulation.
    """
    turnover = float(np.abs(target_weights - drifted_weights).sum())
    cost = rules.transaction_cost * turnover * value
    portfolio_return = float(target_weights @ next_returns)
    portfolio_esg = float(target_weights @ esg)
    index_esg = float(esg.mean())
    grant = tax = 0.0
    if rules.regulated:
        grant, tax = esg_grant_and_tax(
            value, portfolio_return, portfolio_esg, index_esg, rules.grant_rate, rules.tax_rate
        )
    new_value = value * (1.0 + portfolio_return) - cost + grant - tax
    grown = target_weights * (1.0 + next_returns)
    return DayOutcome(
        value=new_value,
        portfolio_return=portfolio_return,
        transaction_cost=cost,
        turnover=turnover,
        grant=grant,
        tax=tax,
        portfolio_esg=portfolio_esg,
        index_esg=index_esg,
        drifted_weights=grown / grown.sum(),
    )


# --------------------------------------------------------------------------------------------
# Observation
# --------------------------------------------------------------------------------------------


def returns_covariance(returns_window: np.ndarray) -> np.ndarray:
    """Sample covariance (N, N) of daily returns (L, N), ddof = 1, annualised (x 252)."""
    centred = returns_window - returns_window.mean(axis=0)
    return TRADING_DAYS * (centred.T @ centred) / max(returns_window.shape[0] - 1, 1)


def normalised_indicators(indicators: np.ndarray, close: np.ndarray) -> np.ndarray:
    """Indicator rows (T, 4, N) on comparable scales.

    ``macd`` as a percentage of the close (``100 * macd / close``), ``rsi_30`` centred
    (``(rsi - 50) / 50``, in [-1, 1]), ``cci_30 / 100`` (mostly within +-3) and
    ``dx_30 / 100`` (in [0, 1]).
    """
    rows = np.empty_like(indicators, dtype=np.float64)
    rows[:, 0] = 100.0 * indicators[:, 0] / close
    rows[:, 1] = (indicators[:, 1] - 50.0) / 50.0
    rows[:, 2] = indicators[:, 2] / 100.0
    rows[:, 3] = indicators[:, 3] / 100.0
    return rows


def observation_rows(n_assets: int, esg_in_state: bool) -> int:
    """Rows of the observation matrix: N covariance rows, 4 indicators, weights, (ESG)."""
    return n_assets + 4 + 1 + int(esg_in_state)


def encode_observation(
    covariance: np.ndarray,
    indicator_rows: np.ndarray,
    weights: np.ndarray,
    esg: np.ndarray | None,
) -> np.ndarray:
    """The flat float32 observation: the rows ``covariance (N x N)``, ``indicators (4 x N)``,
    ``weights (1 x N)`` and, when ``esg`` is given, ``esg / mean(esg) (1 x N)``, concatenated
    row by row and clipped to +-OBSERVATION_LIMIT."""
    rows = [covariance, indicator_rows, weights[None]]
    if esg is not None:
        rows.append((esg / esg.mean())[None])
    matrix = np.concatenate(rows, axis=0)
    return np.clip(matrix, -OBSERVATION_LIMIT, OBSERVATION_LIMIT).astype(np.float32).ravel()


# --------------------------------------------------------------------------------------------
# Performance
# --------------------------------------------------------------------------------------------


class PerformanceTracker:
    """Episode KPIs from the value path, updated in O(1) per day.

    - ``cumulative_return`` = V_T / V_0 - 1;
    - ``annual_return`` = (V_T / V_0)^(252 / days) - 1 (0 before the first day, -1 once
      ruined);
    - ``sharpe`` = sqrt(252) * mean / std (ddof = 1) of the daily simple returns of the
      portfolio value, net of costs, grants and taxes, with a zero risk-free rate (FinRL's
      definition); 0 with fewer than two days or a zero std;
    - ``max_drawdown`` = max over t of 1 - V_t / max_{s <= t} V_s, a fraction in [0, 1].
    """

    def __init__(self, initial_value: float) -> None:
        self.initial_value = float(initial_value)
        self.value = self.initial_value
        self.peak = self.initial_value
        self.max_drawdown = 0.0
        self.days = 0
        self._mean = 0.0
        self._m2 = 0.0

    def update(self, value: float) -> None:
        """Record the value at the next close."""
        daily = value / self.value - 1.0
        self.days += 1
        delta = daily - self._mean
        self._mean += delta / self.days
        self._m2 += delta * (daily - self._mean)
        self.value = float(value)
        self.peak = max(self.peak, self.value)
        self.max_drawdown = max(self.max_drawdown, 1.0 - self.value / self.peak)

    @property
    def sharpe(self) -> float:
        """Annualised Sharpe ratio of the daily returns so far."""
        if self.days < 2:
            return 0.0
        std = math.sqrt(self._m2 / (self.days - 1))
        if std <= 1e-12 * max(abs(self._mean), 1.0):
            return 0.0
        return math.sqrt(TRADING_DAYS) * self._mean / std

    def kpi(self) -> dict[str, float]:
        """``cumulative_return, annual_return, sharpe, max_drawdown``."""
        growth = self.value / self.initial_value
        if self.days == 0:
            annual = 0.0
        elif growth <= 0:  # ruined
            annual = -1.0
        else:
            annual = growth ** (TRADING_DAYS / self.days) - 1.0
        return {
            "cumulative_return": growth - 1.0,
            "annual_return": annual,
            "sharpe": self.sharpe,
            "max_drawdown": self.max_drawdown,
        }
