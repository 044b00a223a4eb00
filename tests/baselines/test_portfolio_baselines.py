"""ESG portfolio baselines: the LP's constraints and optimality, the policies' behaviour, no
look-ahead, and full episodes on the DJIA test split."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from opsrl.baselines.portfolio import (
    BuyAndHoldPolicy,
    EqualWeightPolicy,
    ESGLPPolicy,
    MinVariancePolicy,
    min_variance_weights,
    solve,
)
from opsrl.envs.esg_portfolio.data import MarketData, generate_market
from opsrl.envs.esg_portfolio.env import ESGPortfolioEnv
from opsrl.evaluation import evaluate_policy_on_seeds

DJIA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "djia_2020_2021_daily.csv"
POLICIES = [EqualWeightPolicy, BuyAndHoldPolicy, MinVariancePolicy, ESGLPPolicy]


def small_env(**kwargs):
    return ESGPortfolioEnv(**{"n_assets": 8, "n_days": 160, "lookback": 30, **kwargs})


def run(policy, env, seed=0):
    """One episode as the runner plays it; returns the infos of every step."""
    obs, _ = env.reset(seed=seed)
    policy.reset(env)
    infos, terminated = [], False
    while not terminated:
        action, _ = policy.predict(obs)
        assert env.action_space.contains(action)
        obs, _, terminated, _, info = env.step(action)
        infos.append(info)
    return infos


# ----------------------------------------------------------------------------- the LP


def _scipy_lp(returns, esg, floor, previous, limit, risk_aversion):
    """The same LP written for scipy's HiGHS: variables w (N), d (S), u (N)."""
    n_scenarios, n_assets = returns.shape
    mean = returns.mean(axis=0)
    deviations = returns - mean
    size = 2 * n_assets + n_scenarios
    cost = np.zeros(size)
    cost[:n_assets] = -mean
    cost[n_assets : n_assets + n_scenarios] = risk_aversion / n_scenarios
    rows, bounds_ = [], []
    for s in range(n_scenarios):
        for sign in (1.0, -1.0):
            row = np.zeros(size)
            row[:n_assets] = sign * deviations[s]
            row[n_assets + s] = -1.0
            rows.append(row)
            bounds_.append(0.0)
    row = np.zeros(size)
    row[:n_assets] = -esg
    rows.append(row)
    bounds_.append(-floor)
    for i in range(n_assets):
        for sign in (1.0, -1.0):
            row = np.zeros(size)
            row[i] = sign
            row[n_assets + n_scenarios + i] = -1.0
            rows.append(row)
            bounds_.append(sign * previous[i])
    row = np.zeros(size)
    row[n_assets + n_scenarios :] = 1.0
    rows.append(row)
    bounds_.append(limit)
    equality = np.zeros((1, size))
    equality[0, :n_assets] = 1.0
    result = linprog(
        cost, A_ub=np.array(rows), b_ub=np.array(bounds_), A_eq=equality, b_eq=[1.0], method="highs"
    )
    assert result.status == 0
    return -result.fun


def test_lp_respects_esg_floor_and_turnover_limit_and_is_optimal():
    rng = np.random.default_rng(0)
    for trial in range(5):
        returns = rng.normal(5e-4, 0.015, (40, 10)) + rng.normal(0, 1e-3, 10)
        esg = rng.uniform(10, 90, 10)
        previous = rng.dirichlet(np.ones(10))
        floor = esg.mean() * 1.05
        limit = 0.4
        solution = solve(
            returns,
            esg=esg,
            esg_floor=floor,
            previous_weights=previous,
            turnover_limit=limit,
            risk_aversion=0.5,
        )
        assert solution.status == "optimal" and solution.wall_time >= 0
        weights = solution.metadata["weights"]
        assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-12)
        assert esg @ weights >= floor - 1e-6
        assert np.abs(weights - previous).sum() <= limit + 1e-6
        assert solution.metadata["portfolio_esg"] == pytest.approx(esg @ weights)
        assert solution.metadata["turnover"] == pytest.approx(np.abs(weights - previous).sum())
        mean = returns.mean(axis=0)
        mad = np.abs((returns - mean) @ weights).mean()
        assert solution.objective == pytest.approx(mean @ weights - 0.5 * mad, abs=1e-9)
        assert solution.bound == solution.objective
        reference = _scipy_lp(returns, esg, floor, previous, limit, 0.5)
        assert solution.objective == pytest.approx(reference, abs=1e-8), trial
        # Dropping the constraints can only help.
        free = solve(returns, risk_aversion=0.5)
        assert free.objective >= solution.objective - 1e-10


def test_lp_special_cases_and_infeasibility():
    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (30, 5))
    returns[:, 3] += 0.01  # the best mean by far
    greedy = solve(returns, risk_aversion=0.0)
    np.testing.assert_allclose(greedy.metadata["weights"], np.eye(5)[3], atol=1e-9)
    assert greedy.objective == pytest.approx(returns[:, 3].mean())
    esg = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    previous = np.array([0.6, 0.4, 0.0, 0.0, 0.0])  # ESG 14, well below the mean of 30
    frozen = solve(returns, esg=esg, esg_floor=30.0, previous_weights=previous, turnover_limit=0.1)
    assert frozen.status == "infeasible" and frozen.objective is None
    still = solve(returns, previous_weights=previous, turnover_limit=0.0)
    np.testing.assert_allclose(still.metadata["weights"], previous, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(returns=np.zeros(5)), "returns must be a non-empty"),
        (dict(returns=np.full((3, 2), np.nan)), "returns must be finite"),
        (dict(returns=np.zeros((3, 2)), esg_floor=50.0), "esg_floor needs"),
        (dict(returns=np.zeros((3, 2)), turnover_limit=0.5), "turnover_limit needs"),
        (
            dict(returns=np.zeros((3, 2)), previous_weights=[0.5, 0.5], turnover_limit=3.0),
            "turnover_limit",
        ),
        (dict(returns=np.zeros((3, 2)), esg=[1.0, 2.0, 3.0]), "esg must be"),
        (dict(returns=np.zeros((3, 2)), risk_aversion=-1.0), "risk_aversion"),
    ],
)
def test_lp_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(**kwargs)


# ----------------------------------------------------------------------------- min variance


def test_min_variance_weights_are_long_only_and_optimal():
    variances = np.array([0.01, 0.02, 0.04, 0.08])
    weights = min_variance_weights(np.diag(variances))
    np.testing.assert_allclose(weights, (1 / variances) / (1 / variances).sum(), atol=1e-6)
    rng = np.random.default_rng(2)
    for _ in range(5):
        factors = rng.normal(size=(60, 12)) @ rng.normal(size=(12, 12))
        covariance = np.cov(factors, rowvar=False)
        weights = min_variance_weights(covariance)
        assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0)
        variance = weights @ covariance @ weights
        for _ in range(50):  # no feasible point nearby does better
            other = np.maximum(weights + rng.normal(0, 0.01, 12), 0)
            other /= other.sum()
            assert variance <= other @ covariance @ other * (1 + 1e-6)


def test_min_variance_policy_rebalances_on_schedule():
    env = small_env()
    policy = MinVariancePolicy(env, rebalance_every=10)
    infos = run(policy, env)
    for step, info in enumerate(infos):
        assert np.all(info["weights"] >= 0)
        assert info["weights"].sum() == pytest.approx(1.0)
        if step % 10 != 0:
            assert info["turnover"] < 1e-5  # holding between rebalancing days
    assert infos[0]["turnover"] > 0.05


# ----------------------------------------------------------------------------- simple policies


def test_buy_and_hold_trades_nothing_and_equal_weight_holds_one_over_n():
    env = small_env(market="esg_regulated")
    infos = run(BuyAndHoldPolicy(env), env)
    assert max(info["turnover"] for info in infos) < 1e-5
    assert infos[-1]["kpi"]["turnover"] < 1e-4
    assert infos[-1]["kpi"]["transaction_cost"] < 1e-4 * 1e6 * 1e-3
    # In the standard market buy-and-hold is worth the equal-weight start left to drift.
    standard = small_env()
    infos = run(BuyAndHoldPolicy(standard), standard)
    growth = standard.market.close[standard.episode_end] / standard.market.close[30]
    assert infos[-1]["kpi"]["portfolio_value"] / 1e6 == pytest.approx(growth.mean(), rel=1e-6)

    infos = run(EqualWeightPolicy(standard), standard)
    for info in infos:
        np.testing.assert_allclose(info["weights"], np.full(8, 1 / 8), rtol=1e-12)
    weekly = run(EqualWeightPolicy(standard, rebalance_every=5), standard)
    assert all(info["turnover"] < 1e-5 for step, info in enumerate(weekly) if step % 5)
    assert any(info["turnover"] > 1e-4 for step, info in enumerate(weekly) if step % 5 == 0)


def test_esg_lp_policy_keeps_the_floor_on_rebalancing_days_and_relaxes_when_stuck():
    env = small_env(market="esg_regulated")
    policy = ESGLPPolicy(env, rebalance_every=10, turnover_limit=0.5)
    infos = run(policy, env)
    assert policy.n_solves == math.ceil(len(infos) / 10)
    for step, info in enumerate(infos):
        if step % 10 == 0:
            assert info["portfolio_esg"] >= info["index_esg"]  # hence grants, not taxes
            assert info["tax"] == 0.0
            assert info["turnover"] <= 0.5 + 1e-5
    # A zero turnover limit cannot lift the equal-weight start above the mean: the floor wins.
    stuck = ESGLPPolicy(env, rebalance_every=10, turnover_limit=0.0)
    infos = run(stuck, env)
    assert stuck.n_relaxed >= 1 and stuck.last_solution.status == "optimal"
    assert infos[0]["portfolio_esg"] >= infos[0]["index_esg"]
    without = ESGLPPolicy(env, rebalance_every=10, esg_floor=False, turnover_limit=None)
    run(without, env)
    assert without.last_solution.metadata["esg_floor"] is None


def test_policies_reject_other_envs_and_bad_arguments():
    from opsrl.envs.lot_sizing.env import LotSizingEnv

    for policy in POLICIES:
        with pytest.raises(ValueError, match="needs an ESG portfolio env"):
            policy(LotSizingEnv("3x2"))
    env = small_env()
    with pytest.raises(ValueError, match="rebalance_every"):
        EqualWeightPolicy(env, rebalance_every=0)
    with pytest.raises(ValueError, match="turnover_limit"):
        ESGLPPolicy(env, turnover_limit=-1)
    with pytest.raises(ValueError, match="lookback"):
        MinVariancePolicy(env, lookback=1)


# ----------------------------------------------------------------------------- no look-ahead


def _with_other_future(market: MarketData, today: int, seed: int = 9) -> MarketData:
    """The same market up to ``today``, a different one afterwards."""
    rng = np.random.default_rng(seed)
    close, indicators, esg = market.close.copy(), market.indicators.copy(), market.esg.copy()
    later = slice(today + 1, None)
    shocks = np.exp(np.cumsum(rng.normal(0, 0.2, close[later].shape), axis=0))
    close[later] *= shocks
    indicators[later] += rng.normal(0, 1, indicators[later].shape)
    esg[later] = rng.uniform(10, 90, esg[later].shape)
    return MarketData(market.dates, market.tickers, close, indicators, esg, name="other future")


@pytest.mark.parametrize("policy_class", POLICIES)
def test_policies_use_no_future_data(policy_class):
    market = generate_market(n_assets=6, n_days=80, seed=4, esg_model="ar1")
    kwargs = {} if policy_class is BuyAndHoldPolicy else {"rebalance_every": 1}
    for today in (30, 37, 45):
        actions = []
        for data in (market, _with_other_future(market, today, seed=today)):
            env = ESGPortfolioEnv(data, lookback=20)
            policy = policy_class(env, **kwargs)
            obs, _ = env.reset(seed=0)
            policy.reset(env)
            taken = []
            while env.day <= today:
                action, _ = policy.predict(obs)
                taken.append(action)
                obs, *_ = env.step(action)
            actions.append(np.array(taken))
        # Every action up to and including today's is the same whatever comes later.
        np.testing.assert_array_equal(actions[0], actions[1])
        assert len(actions[0]) == today - 20 + 1


# ----------------------------------------------------------------------------- DJIA


@pytest.mark.parametrize("policy_class", POLICIES)
def test_baselines_run_a_full_test_split_episode_on_djia(policy_class):
    if not DJIA.is_file():
        pytest.skip(f"real data not found: {DJIA} (the shared data folder beside the checkout)")
    env = ESGPortfolioEnv(str(DJIA), split="test", market_seed=0)
    policy = policy_class(env)
    (result,) = evaluate_policy_on_seeds(policy, env, [0])
    assert result.length == 67
    for key in (
        "portfolio_value",
        "cumulative_return",
        "annual_return",
        "sharpe",
        "max_drawdown",
        "portfolio_esg",
        "transaction_cost",
    ):
        assert key in result.kpi and math.isfinite(result.kpi[key])
    assert result.kpi["portfolio_value"] > 0.5e6
    assert 0.0 <= result.kpi["max_drawdown"] < 0.5
    assert result.episode_return == pytest.approx(
        math.log(result.kpi["portfolio_value"] / 1e6), rel=1e-9
    )
