"""Baselines for the ESG portfolio env (``opsrl/ESGPortfolio-v0``).

- :class:`EqualWeightPolicy` -- rebalance to 1/N (every ``rebalance_every`` days);
- :class:`BuyAndHoldPolicy` -- equal weights at the start, then never trade;
- :class:`MinVariancePolicy` -- long-only minimum variance on the lookback covariance;
- :class:`ESGLPPolicy` -- the LP of :func:`solve` (OR-Tools GLOP) on a rolling window:
  expected return minus a mean-absolute-deviation risk term, with an ESG floor and a
  turnover limit.

Every policy reads the env's state through its history methods (returns and ESG scores up
to today, current holdings): nothing from later days. Between rebalancing days a policy
keeps its holdings (its action reproduces the drifted weights, so it trades nothing). Target
weights become actions with :meth:`~opsrl.envs.esg_portfolio.env.ESGPortfolioEnv.
weights_to_action` (logits ``log(w)`` scaled into [-1, 1]): exact up to a relative 1e-6 from
the float32 action, and weights below ``2e-9`` of the largest are raised to that floor.

The LP (:func:`solve`), for S scenarios (the last daily returns ``R``, S x N), mean returns
``mu`` and deviations ``D = R - mu``::

    max  mu.w - risk_aversion * (1/S) sum_s d_s
    s.t. d_s >= D_s.w,  d_s >= -D_s.w                      (d_s = |D_s.w| at the optimum)
         sum_i w_i = 1,  w >= 0                              (long-only, fully invested)
         sum_i e_i w_i >= esg_floor                          (optional)
         u_i >= w_i - w0_i,  u_i >= w0_i - w_i,  sum_i u_i <= turnover_limit   (optional)

``(1/S) sum_s |D_s.w|`` is the portfolio's mean absolute deviation (Konno-Yamazaki), a linear
stand-in for its variance. Returns are scaled to percent inside the model for the solver's
tolerances; the objective is reported in daily-return units.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from ortools.linear_solver import pywraplp
from scipy.optimize import minimize

from opsrl.baselines.base import BaselinePolicy, Solution, check_positive_int, require_env

__all__ = [
    "BuyAndHoldPolicy",
    "ESGLPPolicy",
    "EqualWeightPolicy",
    "MinVariancePolicy",
    "min_variance_weights",
    "solve",
]

_GLOP_STATUS = {
    pywraplp.Solver.OPTIMAL: "optimal",
    pywraplp.Solver.FEASIBLE: "feasible",
    pywraplp.Solver.INFEASIBLE: "infeasible",
}

#: Scenario returns enter the LP in percent (x 100).
_RETURN_SCALE = 100.0


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _non_negative(name: str, value: Any, upper: float = np.inf) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not np.isfinite(value)
        or not 0 <= value <= upper
    ):
        bound = f" and at most {upper}" if np.isfinite(upper) else ""
        raise ValueError(f"{name} must be a non-negative number{bound}, got {value!r}")
    return float(value)


def _portfolio_env(env: gym.Env, who: str) -> Any:
    """The unwrapped env, checked to be an ESG portfolio env."""
    return require_env(
        env.unwrapped,
        ("return_history", "holdings", "esg_scores", "weights_to_action"),
        who,
        "an ESG portfolio env (opsrl/ESGPortfolio-v0)",
        type(env.unwrapped).__name__,
    )


# --------------------------------------------------------------------------------------------
# Solvers
# --------------------------------------------------------------------------------------------


def solve(
    returns: np.ndarray,
    esg: np.ndarray | None = None,
    esg_floor: float | None = None,
    previous_weights: np.ndarray | None = None,
    turnover_limit: float | None = None,
    risk_aversion: float = 1.0,
    time_limit: float = 10.0,
) -> Solution:
    """Solve the mean-MAD LP (see the module docstring) on one window with GLOP.

    Args:
        returns: (S, N) scenario returns, e.g. the last S daily simple returns.
        esg: (N,) ESG scores; needed with ``esg_floor``.
        esg_floor: minimum portfolio ESG score ``sum_i e_i w_i`` (None: no floor).
        previous_weights: (N,) current weights; needed with ``turnover_limit``.
        turnover_limit: maximum ``sum_i |w_i - w0_i|``, in [0, 2] (None: no limit).
        risk_aversion: lambda >= 0, the weight of the MAD term.
        time_limit: seconds for GLOP.

    Returns:
        A :class:`~opsrl.baselines.base.Solution`: ``objective`` = ``mu.w - lambda * MAD``
        (daily-return units), ``status`` (``optimal``, ``infeasible``, ...), ``bound`` equal
        to the objective when optimal, ``wall_time``, and ``metadata`` with ``weights``
        (non-negative, summing to 1), ``expected_return``, ``mad``, ``portfolio_esg`` (None
        without ``esg``) and ``turnover`` (None without ``previous_weights``).
    """
    scenarios = np.asarray(returns, dtype=np.float64)
    if scenarios.ndim != 2 or scenarios.shape[0] < 1 or scenarios.shape[1] < 1:
        raise ValueError(f"returns must be a non-empty (S, N) array, got shape {scenarios.shape}")
    if not np.all(np.isfinite(scenarios)):
        raise ValueError("returns must be finite")
    n_scenarios, n_assets = scenarios.shape
    risk_aversion = _non_negative("risk_aversion", risk_aversion)
    if not (np.isfinite(time_limit) and time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    scores = None
    if esg is not None:
        scores = np.asarray(esg, dtype=np.float64)
        if scores.shape != (n_assets,) or not np.all(np.isfinite(scores)):
            raise ValueError(f"esg must be a finite ({n_assets},) array, got shape {scores.shape}")
    if esg_floor is not None:
        if scores is None:
            raise ValueError("esg_floor needs the assets' esg scores")
        esg_floor = float(esg_floor)
        if not np.isfinite(esg_floor):
            raise ValueError(f"esg_floor must be finite, got {esg_floor!r}")
    previous = None
    if previous_weights is not None:
        previous = np.asarray(previous_weights, dtype=np.float64)
        if (
            previous.shape != (n_assets,)
            or np.any(previous < 0)
            or not np.all(np.isfinite(previous))
        ):
            raise ValueError(f"previous_weights must be a non-negative ({n_assets},) array")
    if turnover_limit is not None:
        if previous is None:
            raise ValueError("turnover_limit needs previous_weights")
        turnover_limit = _non_negative("turnover_limit", turnover_limit, upper=2.0)

    started = time.perf_counter()
    scaled = scenarios * _RETURN_SCALE
    mean = scaled.mean(axis=0)
    deviations = scaled - mean
    solver = pywraplp.Solver.CreateSolver("GLOP")
    solver.SetTimeLimit(int(np.ceil(time_limit * 1000)))
    infinity = solver.infinity()
    weights = [solver.NumVar(0.0, 1.0, f"w[{i}]") for i in range(n_assets)]
    absolute = [solver.NumVar(0.0, infinity, f"d[{s}]") for s in range(n_scenarios)]
    solver.Add(solver.Sum(weights) == 1.0)
    for s in range(n_scenarios):
        exposure = solver.Sum(float(deviations[s, i]) * weights[i] for i in range(n_assets))
        solver.Add(absolute[s] >= exposure)
        solver.Add(absolute[s] >= -exposure)
    if esg_floor is not None and scores is not None:
        # Scaled by the floor so that the row's coefficients are of order 1.
        scale = abs(esg_floor) if esg_floor != 0 else 1.0
        solver.Add(
            solver.Sum(float(scores[i] / scale) * weights[i] for i in range(n_assets))
            >= esg_floor / scale
        )
    if turnover_limit is not None and previous is not None:
        trades = [solver.NumVar(0.0, infinity, f"u[{i}]") for i in range(n_assets)]
        for i in range(n_assets):
            solver.Add(trades[i] >= weights[i] - float(previous[i]))
            solver.Add(trades[i] >= float(previous[i]) - weights[i])
        solver.Add(solver.Sum(trades) <= turnover_limit)
    solver.Maximize(
        solver.Sum(float(mean[i]) * weights[i] for i in range(n_assets))
        - (risk_aversion / n_scenarios) * solver.Sum(absolute)
    )
    code = solver.Solve()
    wall_time = time.perf_counter() - started
    status = _GLOP_STATUS.get(code, "unknown")
    metadata: dict[str, Any] = {
        "n_scenarios": n_scenarios,
        "risk_aversion": risk_aversion,
        "esg_floor": esg_floor,
        "turnover_limit": turnover_limit,
    }
    if status not in ("optimal", "feasible"):
        return Solution(objective=None, status=status, wall_time=wall_time, metadata=metadata)

    chosen = np.maximum([w.solution_value() for w in weights], 0.0)
    chosen = chosen / chosen.sum()
    expected = float(scenarios.mean(axis=0) @ chosen)
    mad = float(np.abs((scenarios - scenarios.mean(axis=0)) @ chosen).mean())
    objective = expected - risk_aversion * mad
    metadata.update(
        weights=chosen,
        expected_return=expected,
        mad=mad,
        portfolio_esg=None if scores is None else float(scores @ chosen),
        turnover=None if previous is None else float(np.abs(chosen - previous).sum()),
    )
    return Solution(
        objective=objective,
        status=status,
        bound=objective if status == "optimal" else None,
        wall_time=wall_time,
        metadata=metadata,
    )


def min_variance_weights(covariance: np.ndarray) -> np.ndarray:
    """Long-only minimum-variance weights: ``argmin w' C w`` s.t. ``sum w = 1, w >= 0``.

    Solved with SciPy's SLSQP from the equal-weight start on the covariance scaled to unit
    mean variance, plus a ridge of 1e-8 for singular windows; the result is clipped at 0 and
    renormalised.
    """
    matrix = np.asarray(covariance, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"covariance must be a square matrix, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("covariance must be finite")
    n_assets = matrix.shape[0]
    level = np.trace(matrix) / n_assets
    scaled = (matrix + matrix.T) / (2.0 * level) if level > 0 else np.zeros_like(matrix)
    scaled = scaled + 1e-8 * np.eye(n_assets)
    start = np.full(n_assets, 1.0 / n_assets)
    result = minimize(
        lambda w: w @ scaled @ w,
        start,
        jac=lambda w: 2.0 * scaled @ w,
        bounds=[(0.0, 1.0)] * n_assets,
        constraints=[
            {"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}
        ],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    weights = np.maximum(result.x if result.success else start, 0.0)
    return weights / weights.sum()


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


class _RebalancingPolicy(BaselinePolicy):
    """Trade to :meth:`target_weights` every ``rebalance_every`` days, hold in between.

    Rebalancing days are the episode's days 0, k, 2k, ... (``env.episode_step % k == 0``).
    """

    def __init__(self, env: gym.Env, seed: int | None = None, rebalance_every: int = 1) -> None:
        super().__init__(env, seed)
        self.rebalance_every = check_positive_int("rebalance_every", rebalance_every)
        self._env = _portfolio_env(env, type(self).__name__)

    def reset(self, env: gym.Env) -> None:
        """Follow ``env`` (the runner calls this after every reset)."""
        self._env = _portfolio_env(env, type(self).__name__)

    def target_weights(self, env: Any) -> np.ndarray:
        """Weights to trade to on a rebalancing day, from ``env``'s history only."""
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The action for today: the target weights on rebalancing days, else the holdings."""
        env = self._env
        if env.episode_step % self.rebalance_every == 0:
            weights = self.target_weights(env)
        else:
            weights = env.holdings
        return env.weights_to_action(weights), state


class EqualWeightPolicy(_RebalancingPolicy):
    """Rebalance to 1/N in every asset every ``rebalance_every`` days (default: daily).

    Its action is all ones, whose softmax is exactly 1/N.
    """

    def target_weights(self, env: Any) -> np.ndarray:
        return np.full(env.n_assets, 1.0 / env.n_assets)


class BuyAndHoldPolicy(_RebalancingPolicy):
    """Buy equal weights on the first day, then hold: the action reproduces the drifted
    weights, so turnover stays 0 up to the float32 rounding of the action (about 1e-6)."""

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed, rebalance_every=1)

    def target_weights(self, env: Any) -> np.ndarray:
        if env.episode_step == 0:
            return np.full(env.n_assets, 1.0 / env.n_assets)
        return env.holdings


class MinVariancePolicy(_RebalancingPolicy):
    """Long-only minimum variance on the sample covariance of the last ``lookback`` daily
    returns (the env's lookback when None; fewer when the data holds less history), re-solved
    every ``rebalance_every`` days (default 20) with :func:`min_variance_weights`."""

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        rebalance_every: int = 20,
        lookback: int | None = None,
    ) -> None:
        super().__init__(env, seed, rebalance_every)
        base = self._env
        self.lookback = (
            base.lookback if lookback is None else check_positive_int("lookback", lookback)
        )
        if self.lookback < 2:
            raise ValueError(f"lookback must be at least 2, got {self.lookback}")

    def target_weights(self, env: Any) -> np.ndarray:
        window = env.return_history(min(self.lookback, env.day))
        return min_variance_weights(np.cov(window, rowvar=False).reshape(env.n_assets, -1))


class ESGLPPolicy(_RebalancingPolicy):
    """The mean-MAD LP of :func:`solve` on a rolling window, every ``rebalance_every`` days.

    On a rebalancing day the scenarios are the last ``lookback`` daily returns (the env's
    lookback when None), the previous weights are the current holdings, and with
    ``esg_floor=True`` the portfolio ESG score must reach today's index mean times
    ``1 + esg_margin``, capped at the best score (the margin keeps the executed portfolio at
    or above the mean despite the float32 action; in the regulated market that is what earns
    grants instead of taxes). ``turnover_limit`` (None: no limit) caps
    ``sum |w - w_holdings|`` per rebalance.

    When the ESG floor cannot be reached within the turnover limit, the LP is re-solved
    without the limit (the floor comes first) and :attr:`n_relaxed` counts it; if that fails
    too, the policy holds. :attr:`last_solution` is the latest
    :class:`~opsrl.baselines.base.Solution`.
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        rebalance_every: int = 20,
        lookback: int | None = None,
        risk_aversion: float = 1.0,
        esg_floor: bool = True,
        esg_margin: float = 1e-3,
        turnover_limit: float | None = 0.5,
        time_limit: float = 10.0,
    ) -> None:
        super().__init__(env, seed, rebalance_every)
        base = self._env
        self.lookback = (
            base.lookback if lookback is None else check_positive_int("lookback", lookback)
        )
        self.risk_aversion = _non_negative("risk_aversion", risk_aversion)
        if not isinstance(esg_floor, (bool, np.bool_)):
            raise ValueError(f"esg_floor must be True or False, got {esg_floor!r}")
        self.esg_floor = bool(esg_floor)
        self.esg_margin = _non_negative("esg_margin", esg_margin, upper=1.0)
        self.turnover_limit = (
            None
            if turnover_limit is None
            else _non_negative("turnover_limit", turnover_limit, upper=2.0)
        )
        if not (
            isinstance(time_limit, (int, float, np.integer, np.floating))
            and np.isfinite(time_limit)
            and time_limit > 0
        ):
            raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
        self.time_limit = float(time_limit)
        self.last_solution: Solution | None = None
        self.n_solves = 0
        self.n_relaxed = 0

    def target_weights(self, env: Any) -> np.ndarray:
        returns = env.return_history(min(self.lookback, env.day))
        scores = env.esg_scores
        holdings = env.holdings
        # Capped at the best score so that equal scores do not make the floor unreachable.
        floor = (
            min(scores.mean() * (1.0 + self.esg_margin), scores.max()) if self.esg_floor else None
        )
        kwargs = dict(
            returns=returns,
            esg=scores,
            esg_floor=floor,
            previous_weights=holdings,
            risk_aversion=self.risk_aversion,
            time_limit=self.time_limit,
        )
        solution = solve(turnover_limit=self.turnover_limit, **kwargs)
        self.n_solves += 1
        if solution.status == "infeasible" and self.turnover_limit is not None:
            solution = solve(turnover_limit=None, **kwargs)
            self.n_relaxed += 1
        self.last_solution = solution
        if solution.status not in ("optimal", "feasible"):
            return holdings
        return solution.metadata["weights"]
