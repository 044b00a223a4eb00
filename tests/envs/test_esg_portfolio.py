"""ESG portfolio env family: accounting invariants, ESG rule, data loaders and env contracts."""

import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.esg_portfolio.data import (
    INDICATORS,
    MarketData,
    generate_market,
    load_finrl_csv,
    split_bounds,
)
from opsrl.envs.esg_portfolio.env import ESGPortfolioEnv
from opsrl.envs.esg_portfolio.sim import (
    action_from_weights,
    returns_covariance,
    weights_from_action,
)

ENV_ID = "opsrl/ESGPortfolio-v0"
DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
DJIA = DATA_DIR / "djia_2020_2021_daily.csv"
SMALL = dict(n_assets=6, n_days=120, lookback=20)


def djia_path() -> Path:
    if not DJIA.is_file():
        pytest.skip(f"real data not found: {DJIA} (the shared data folder beside the checkout)")
    return DJIA


def run_episode(env, rng, seed=0):
    """Random actions until the end; returns the infos of every step."""
    env.reset(seed=seed)
    infos, terminated = [], False
    while not terminated:
        _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.n_assets))
        assert not truncated
        infos.append(info)
    return infos


def finrl_frame(n_assets=3, n_days=30, seed=0) -> pd.DataFrame:
    """A small valid FinRL long-format frame (date, tic, close, high, low)."""
    market = generate_market(n_assets=n_assets, n_days=n_days, seed=seed)
    rows = []
    for day, date in enumerate(market.dates):
        for asset, tic in enumerate(market.tickers):
            close = market.close[day, asset]
            rows.append(
                dict(date=str(date), tic=tic, close=close, high=close * 1.01, low=close * 0.99)
            )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- accounting


@pytest.mark.parametrize("reward", ["log_return", "value_change"])
def test_value_accounting_cost_and_esg_rule_step_by_step(reward):
    env = ESGPortfolioEnv(
        market="esg_regulated",
        esg_model="ar1",
        reward=reward,
        transaction_cost=0.002,
        grant_rate=0.2,
        tax_rate=3e-4,
        **SMALL,
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    close, esg = env.market.close, env.market.esg
    values = [env.portfolio_value]
    totals = dict(grant=0.0, tax=0.0, transaction_cost=0.0, turnover=0.0, esg=0.0)
    n_grant = n_tax = 0
    terminated = False
    while not terminated:
        day, value, holdings = env.day, env.portfolio_value, env.holdings
        action = rng.uniform(-1, 1, env.n_assets).astype(np.float32)
        logits = 10.0 * action.astype(np.float64)
        weights = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        next_returns = close[day + 1] / close[day] - 1.0
        _, reward_value, terminated, _, info = env.step(action)

        np.testing.assert_allclose(info["weights"], weights, rtol=1e-12)
        turnover = np.abs(weights - holdings).sum()
        assert info["turnover"] == pytest.approx(turnover, rel=1e-12)
        assert info["transaction_cost"] == pytest.approx(0.002 * turnover * value, rel=1e-12)
        r_p = float(weights @ next_returns)
        assert info["portfolio_return"] == pytest.approx(r_p, rel=1e-10, abs=1e-15)
        e_p, e_bar = float(weights @ esg[day]), float(esg[day].mean())
        assert info["portfolio_esg"] == pytest.approx(e_p)
        if e_p >= e_bar:
            expected_grant = 0.2 * max(r_p, 0.0) * value * e_p / e_bar
            assert info["grant"] == pytest.approx(expected_grant, rel=1e-9, abs=1e-9)
            assert info["tax"] == 0.0
            n_grant += info["grant"] > 0
        else:
            assert info["grant"] == 0.0
            assert info["tax"] == pytest.approx(3e-4 * value * (e_bar - e_p) / e_bar, rel=1e-9)
            assert info["tax"] > 0
            n_tax += 1
        # The accounting identity, exactly as documented.
        new_value = (
            value * (1.0 + info["portfolio_return"])
            - info["transaction_cost"]
            + info["grant"]
            - info["tax"]
        )
        assert env.portfolio_value == new_value
        if reward == "log_return":
            assert reward_value == math.log(new_value / value)
        else:
            assert reward_value == pytest.approx((new_value - value) / 1e6, rel=1e-12)
        grown = weights * (1.0 + next_returns)
        np.testing.assert_allclose(env.holdings, grown / grown.sum(), rtol=1e-12)
        assert env.day == day + 1

        values.append(new_value)
        totals["grant"] += info["grant"]
        totals["tax"] += info["tax"]
        totals["transaction_cost"] += info["transaction_cost"]
        totals["turnover"] += info["turnover"]
        totals["esg"] += e_p
        kpi = info["kpi"]
        for key in ("grant", "tax", "transaction_cost", "turnover"):
            assert kpi[key] == pytest.approx(totals[key], rel=1e-12)
        assert kpi["portfolio_value"] == new_value
        assert kpi["portfolio_esg"] == pytest.approx(totals["esg"] / len(values[1:]))
    assert n_grant > 0 and n_tax > 0, "random portfolios should see both sides of the rule"

    values = np.array(values)
    daily = values[1:] / values[:-1] - 1.0
    kpi = info["kpi"]
    assert kpi["days"] == len(daily) == env.market.n_days - 1 - 20
    assert kpi["cumulative_return"] == pytest.approx(values[-1] / values[0] - 1.0)
    assert kpi["annual_return"] == pytest.approx(
        (values[-1] / values[0]) ** (252 / len(daily)) - 1.0
    )
    assert kpi["sharpe"] == pytest.approx(math.sqrt(252) * daily.mean() / daily.std(ddof=1))
    drawdown = 1.0 - values / np.maximum.accumulate(values)
    assert kpi["max_drawdown"] == pytest.approx(drawdown.max())


def test_transaction_cost_is_rate_times_turnover_times_value():
    env = ESGPortfolioEnv(transaction_cost=0.001, **SMALL)
    _, info = env.reset(seed=0)
    assert info["kpi"]["portfolio_value"] == 1e6 and info["kpi"]["transaction_cost"] == 0.0
    np.testing.assert_array_equal(env.holdings, np.full(6, 1 / 6))
    # The zero action is the equal-weight portfolio: nothing to trade from the start.
    _, _, _, _, info = env.step(np.zeros(6, dtype=np.float32))
    assert info["turnover"] < 1e-15 and info["transaction_cost"] < 1e-9
    # All in the first asset.
    value, holdings = env.portfolio_value, env.holdings
    action = -np.ones(6, dtype=np.float32)
    action[0] = 1.0
    _, _, _, _, info = env.step(action)
    assert info["weights"][0] == pytest.approx(1.0, abs=5 * math.exp(-20) + 1e-12)
    turnover = np.abs(info["weights"] - holdings).sum()
    assert info["turnover"] == pytest.approx(turnover)
    assert turnover == pytest.approx(2 * (1 - holdings[0]), rel=1e-6)
    assert info["transaction_cost"] == pytest.approx(0.001 * turnover * value)
    # Ten times the rate, ten times the cost for the same trade.
    costly = ESGPortfolioEnv(transaction_cost=0.01, **SMALL)
    costly.reset(seed=0)
    costly.step(np.zeros(6, dtype=np.float32))
    _, _, _, _, costly_info = costly.step(action)
    assert costly_info["transaction_cost"] == pytest.approx(10 * info["transaction_cost"])


def _fixed_esg_market(scores, n_days=60, seed=1):
    base = generate_market(n_assets=len(scores), n_days=n_days, seed=seed)
    return MarketData(
        dates=base.dates,
        tickers=base.tickers,
        close=base.close,
        indicators=base.indicators,
        esg=np.broadcast_to(np.asarray(scores, dtype=float), (n_days, len(scores))).copy(),
        name="fixed ESG",
    )


def test_grant_for_high_esg_tax_for_low_esg_and_nothing_in_standard_market():
    market = _fixed_esg_market([10.0, 30.0, 80.0, 80.0])  # mean 50
    high = np.array([-1, -1, 1, 1], dtype=np.float32)  # ESG 80
    low = np.array([1, -1, -1, -1], dtype=np.float32)  # ESG 10
    regulated = ESGPortfolioEnv(market, market="esg_regulated", lookback=10)
    standard = ESGPortfolioEnv(market, market="standard", lookback=10)
    for env in (regulated, standard):
        env.reset(seed=0)
    positive_days = 0
    for step in range(20):
        action = high if step % 2 == 0 else low
        value = regulated.portfolio_value
        _, _, _, _, info = regulated.step(action)
        _, _, _, _, plain = standard.step(action)
        assert plain["grant"] == 0.0 and plain["tax"] == 0.0
        if step % 2 == 0:
            assert info["portfolio_esg"] == pytest.approx(80.0, rel=1e-6)
            assert info["tax"] == 0.0
            if info["portfolio_return"] > 0:
                positive_days += 1
                # grant = g * r_p * V * E_p / e_bar with g = 0.1 and E_p / e_bar = 80 / 50
                expected = 0.1 * info["portfolio_return"] * value * info["portfolio_esg"] / 50.0
                assert info["grant"] == pytest.approx(expected) and info["grant"] > 0
            else:
                assert info["grant"] == 0.0
        else:
            assert info["portfolio_esg"] == pytest.approx(10.0, rel=1e-6)
            assert info["grant"] == 0.0
            assert info["tax"] > 0
    assert positive_days > 0
    final = info["kpi"]
    assert final["grant"] > 0 and final["tax"] > 0
    assert standard._kpi()["grant"] == 0.0 and standard._kpi()["tax"] == 0.0


def test_tax_rate_and_grant_rate_set_the_size_of_the_rule():
    market = _fixed_esg_market([10.0, 30.0, 80.0, 80.0])
    low = np.array([1, -1, -1, -1], dtype=np.float32)
    env = ESGPortfolioEnv(market, market="esg_regulated", lookback=10, tax_rate=2e-4)
    env.reset(seed=0)
    value = env.portfolio_value
    _, _, _, _, info = env.step(low)
    e_p = info["portfolio_esg"]
    assert info["tax"] == pytest.approx(2e-4 * value * (50.0 - e_p) / 50.0)


def test_ruin_ends_the_episode_with_a_finite_reward():
    dates = np.arange("2021-01-04", "2021-01-10", dtype="datetime64[D]")
    close = np.array([[100.0, 100.0]] * 4 + [[0.01, 100.0]] * 2)  # the crash on day 4
    market = MarketData(
        dates=dates,
        tickers=("CRASH", "SAFE"),
        close=close,
        indicators=np.zeros((6, 4, 2)),
        esg=np.full((6, 2), 50.0),
    )
    env = ESGPortfolioEnv(market, lookback=2, transaction_cost=0.1)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.array([-1.0, 1.0], dtype=np.float32))
    assert not terminated and not info["ruined"]
    # All into the crashing asset: a 99.99 % loss plus 10 % cost on a turnover of about 2.
    _, reward, terminated, _, info = env.step(np.array([1.0, -1.0], dtype=np.float32))
    assert terminated and info["ruined"]
    assert math.isfinite(reward) and reward == pytest.approx(math.log(1e-12))
    assert info["kpi"]["portfolio_value"] == 0.0
    assert info["kpi"]["annual_return"] == -1.0 and info["kpi"]["max_drawdown"] == 1.0


# ----------------------------------------------------------------------------- observation


def test_observation_layout_and_esg_in_state_changes_its_shape():
    plain = ESGPortfolioEnv(**SMALL)
    with_esg = ESGPortfolioEnv(esg_in_state=True, esg_model="ar1", **SMALL)
    assert plain.observation_space.shape == ((6 + 5) * 6,)
    assert with_esg.observation_space.shape == ((6 + 6) * 6,)
    obs, _ = with_esg.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, *_ = with_esg.step(rng.uniform(-1, 1, 6))
    rows = obs.reshape(12, 6)
    market, day = with_esg.market, with_esg.day
    window = market.close[day - 20 : day + 1]
    returns = window[1:] / window[:-1] - 1.0
    np.testing.assert_allclose(rows[:6], 252 * np.cov(returns, rowvar=False), rtol=1e-5)
    np.testing.assert_allclose(rows[:6], returns_covariance(returns), rtol=1e-6)
    raw = market.indicators[day]
    np.testing.assert_allclose(rows[6], 100 * raw[0] / market.close[day], rtol=1e-5)
    np.testing.assert_allclose(rows[7], (raw[1] - 50) / 50, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rows[8], raw[2] / 100, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rows[9], raw[3] / 100, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rows[10], with_esg.holdings, rtol=1e-6)
    esg_today = market.esg[day]
    np.testing.assert_allclose(rows[11], esg_today / esg_today.mean(), rtol=1e-6)
    assert with_esg.observation_space.contains(obs)
    # Same market and state without the ESG row: the other rows agree.
    plain_obs, _ = plain.reset(seed=0)
    with_esg.reset(seed=0)
    np.testing.assert_array_equal(plain_obs, with_esg._observation()[: 11 * 6])


def test_weights_to_action_inverts_softmax_within_documented_precision():
    rng = np.random.default_rng(3)
    for _ in range(20):
        weights = rng.dirichlet(np.full(8, 0.5))
        weights[rng.integers(8)] = 0.0  # zero weights are allowed
        weights /= weights.sum()
        action = action_from_weights(weights, 10.0)
        assert action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
        back = weights_from_action(action, 10.0)
        np.testing.assert_allclose(back, weights, rtol=2e-6, atol=2e-9)
    np.testing.assert_array_equal(action_from_weights(np.full(4, 0.25), 10.0), np.ones(4))


# ----------------------------------------------------------------------------- episodes, seeds


def _trace(env, seed, steps=30):
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    trace = [obs, np.float64(env.day)]
    for _ in range(steps):
        obs, reward, terminated, _, info = env.step(rng.uniform(-1, 1, env.n_assets))
        trace += [obs, np.float64(reward), np.float64(info["kpi"]["portfolio_value"])]
        if terminated:
            trace += [env.reset()[0], np.float64(env.day)]
    return trace


def test_same_seed_same_episodes_and_random_start_follows_the_seed():
    kwargs = dict(random_start=True, episode_days=8, **SMALL)
    first, second = _trace(ESGPortfolioEnv(**kwargs), 3), _trace(ESGPortfolioEnv(**kwargs), 3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    starts = set()
    env = ESGPortfolioEnv(**kwargs)
    for seed in range(10):
        env.reset(seed=seed)
        starts.add(env.day)
        assert env.first_day <= env.day <= env.last_day - 8
    assert len(starts) > 1
    # Without random_start the seed changes nothing: every episode is the same walk.
    fixed = ESGPortfolioEnv(**SMALL)
    obs_a, _ = fixed.reset(seed=1)
    obs_b, _ = fixed.reset(seed=2)
    np.testing.assert_array_equal(obs_a, obs_b)
    assert fixed.day == fixed.first_day == 20


def test_episode_length_end_and_step_errors():
    env = ESGPortfolioEnv(episode_days=5, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(6))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(6,\)"):
        env.step(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.full(6, np.nan))
    for step in range(5):
        _, _, terminated, truncated, _ = env.step(np.full(6, 3.0))  # clipped to the box
        assert terminated == (step == 4) and not truncated
    with pytest.raises(RuntimeError, match="ended"):
        env.step(np.zeros(6))
    full = ESGPortfolioEnv(**SMALL)
    infos = run_episode(full, np.random.default_rng(0))
    assert len(infos) == 120 - 1 - 20 and full.day == 119


def test_render_ansi():
    env = ESGPortfolioEnv(render_mode="ansi", **SMALL)
    env.reset(seed=0)
    text = env.render()
    assert "value 1,000,000.00" in text and "largest weights" in text


def _make_checked(**kwargs):
    if ENV_ID not in gym.registry:  # the lead registers it in opsrl/envs; stay usable without
        gym.register(id=ENV_ID, entry_point="opsrl.envs.esg_portfolio.env:ESGPortfolioEnv")
    # Through gym.make so that check_env can re-make the env for its render check.
    return gym.make(ENV_ID, **kwargs).unwrapped


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(market="esg_regulated", esg_in_state=True, render_mode="ansi", **SMALL),
        dict(reward="value_change", random_start=True, episode_days=10, **SMALL),
    ],
    ids=["default", "regulated-esg-state", "value-change-random-start"],
)
def test_checkers_pass_without_warnings(kwargs):
    try:
        import opsrl.envs  # noqa: F401  (registers the ids when the registry has them)
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(_make_checked(**kwargs))
        sb3_check_env(ESGPortfolioEnv(**kwargs), warn=True)


# ----------------------------------------------------------------------------- synthetic data


def test_synthetic_market_is_reproducible_and_follows_its_model():
    a = generate_market(n_assets=8, n_days=300, seed=5)
    b = generate_market(n_assets=8, n_days=300, seed=5)
    for field in ("close", "indicators", "esg", "dates"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.tickers == b.tickers == tuple(f"S{i}" for i in range(8))
    assert not np.array_equal(a.close, generate_market(n_assets=8, n_days=300, seed=6).close)
    assert np.all(a.close[0] == 100.0) and np.all(a.close > 0)
    assert np.all(a.esg == a.esg[0]) and np.all((a.esg >= 10) & (a.esg <= 90))
    assert np.all(np.diff(a.dates).astype(int) >= 1)
    moving = generate_market(n_assets=8, n_days=300, seed=5, esg_model="ar1")
    np.testing.assert_array_equal(moving.close, a.close)  # ESG noise is drawn last
    np.testing.assert_array_equal(moving.esg[0], a.esg[0])
    steps = np.abs(np.diff(moving.esg, axis=0))
    assert steps.max() > 0 and steps.mean() < 1.0 and moving.esg.min() >= 0
    # Daily volatility of the log returns: beta * 1 % and 1-2 % idiosyncratic.
    log_returns = np.diff(np.log(generate_market(n_assets=30, n_days=1000, seed=0).close), axis=0)
    assert 0.01 < log_returns.std(axis=0).mean() < 0.03
    # esg_return_correlation ties drifts to ESG.
    tied = generate_market(
        n_assets=60, n_days=400, seed=0, esg_return_correlation=1.0, drift_dispersion=2e-3
    )
    drift = np.diff(np.log(tied.close), axis=0).mean(axis=0)
    assert np.corrcoef(drift, tied.esg[0])[0, 1] > 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_assets=0), "n_assets"),
        (dict(n_days=1), "n_days"),
        (dict(esg_model="random"), "esg_model"),
        (dict(esg_return_correlation=2.0), "esg_return_correlation"),
        (dict(beta_range=(1.5, 0.5)), "beta_range"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_generator_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_market(**kwargs)


# ----------------------------------------------------------------------------- splits


def test_split_bounds_train_test_and_split_date():
    dates = np.arange("2021-01-01", "2021-04-11", dtype="datetime64[D]")  # 100 days
    assert split_bounds(dates, 10) == (10, 99)
    assert split_bounds(dates, 10, "train", train_fraction=0.8) == (10, 79)
    assert split_bounds(dates, 10, "test", train_fraction=0.8) == (79, 99)
    assert split_bounds(dates, 10, "test", split_date="2021-03-22") == (79, 99)
    assert split_bounds(dates, 10, "train", split_date="2021-03-22") == (10, 79)
    with pytest.raises(ValueError, match="needs 10 days of returns"):
        split_bounds(dates, 10, "test", train_fraction=0.05)
    with pytest.raises(ValueError, match="leaves no step"):
        split_bounds(dates, 10, "train", train_fraction=0.1)
    with pytest.raises(ValueError, match="fewer than lookback \\+ 2"):
        split_bounds(dates[:11], 10)
    with pytest.raises(ValueError, match="split_date"):
        split_bounds(dates, 10, "test", split_date="not a date")
    with pytest.raises(ValueError, match="split must be one of"):
        split_bounds(dates, 10, "validation")
    with pytest.raises(ValueError, match="split_date applies to split='train' or 'test'"):
        split_bounds(dates, 10, "all", split_date="2021-03-22")


def test_train_and_test_episodes_cover_the_data_once():
    train = ESGPortfolioEnv(split="train", **SMALL)
    test = ESGPortfolioEnv(split="test", **SMALL)
    train_infos = run_episode(train, np.random.default_rng(0))
    test_infos = run_episode(test, np.random.default_rng(0))
    dates = [info["date"] for info in train_infos + test_infos]
    assert len(dates) == len(set(dates)) == 120 - 1 - 20
    assert test_infos[0]["date"] == str(train.market.dates[96])  # round(120 * 0.8) = 96


# ----------------------------------------------------------------------------- FinRL data


def test_finrl_loader_runs_a_full_test_split_episode_on_djia():
    path = djia_path()
    market = load_finrl_csv(path, seed=0)
    assert market.n_assets == 29 and market.n_days == 335
    raw = pd.read_csv(path)
    aapl = raw[raw.tic == "AAPL"].sort_values("date")
    column = market.tickers.index("AAPL")
    np.testing.assert_allclose(market.close[:, column], aapl.close.to_numpy())
    for k, name in enumerate(INDICATORS):
        np.testing.assert_allclose(market.indicators[:, k, column], aapl[name].to_numpy())
    assert np.all(market.esg == market.esg[0]) and np.all((market.esg >= 10) & (market.esg <= 90))

    env = ESGPortfolioEnv(str(path), split="test", market="esg_regulated", esg_in_state=True)
    infos = run_episode(env, np.random.default_rng(1))
    assert len(infos) == 335 - 268 and infos[0]["date"] == "2021-07-26"
    assert infos[-1]["date"] == "2021-10-27"
    kpi = infos[-1]["kpi"]
    assert all(math.isfinite(value) for value in kpi.values())
    assert kpi["portfolio_value"] > 0 and kpi["days"] == 67
    same = ESGPortfolioEnv(str(path), split="test", split_date="2021-07-26")
    assert (same.first_day, same.last_day) == (env.first_day, env.last_day)


def test_indicators_computed_when_missing_match_finrl_columns(tmp_path):
    path = djia_path()
    raw = pd.read_csv(path, index_col=0)
    stripped = tmp_path / "no_indicators.csv"
    raw.drop(columns=list(INDICATORS)).to_csv(stripped, index=False)
    given, computed = load_finrl_csv(path), load_finrl_csv(stripped)
    np.testing.assert_array_equal(given.close, computed.close)
    for k, name in enumerate(INDICATORS):
        a, b = given.indicators[60:, k].ravel(), computed.indicators[60:, k].ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.99, name
    assert np.all(np.isfinite(computed.indicators))
    # Without high/low the close-to-close range stands in: still finite and close for CCI.
    close_only = tmp_path / "close_only.csv"
    raw[["date", "tic", "close"]].to_csv(close_only, index=False)
    approximate = load_finrl_csv(close_only)
    assert np.all(np.isfinite(approximate.indicators))
    cci = np.corrcoef(given.indicators[60:, 2].ravel(), approximate.indicators[60:, 2].ravel())
    assert cci[0, 1] > 0.9


def test_esg_scores_from_a_user_file(tmp_path):
    frame = finrl_frame()
    prices = tmp_path / "prices.csv"
    frame.to_csv(prices, index=False)
    scores = tmp_path / "esg.csv"
    pd.DataFrame({"tic": ["S2", "S0", "S1"], "esg": [70.0, 20.0, 45.0]}).to_csv(scores)
    market = load_finrl_csv(prices, esg=scores)
    np.testing.assert_array_equal(market.esg, np.tile([20.0, 45.0, 70.0], (30, 1)))
    env = ESGPortfolioEnv(str(prices), esg=str(scores), lookback=5, esg_in_state=True)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[-3:], np.array([20, 45, 70]) / 45.0, rtol=1e-6)
    np.testing.assert_array_equal(
        load_finrl_csv(prices, esg={"S0": 1, "S1": 2, "S2": 3}).esg[0], [1, 2, 3]
    )


# ----------------------------------------------------------------------------- malformed data


def _write(tmp_path, frame, name="prices.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda f: f.drop(columns=["close"]), "missing required column\\(s\\) close"),
        (lambda f: f.drop(columns=["tic"]), "missing required column\\(s\\) tic"),
        (lambda f: f.drop(index=7), "date gaps: ticker 'S1' has no row on"),
        (lambda f: f.assign(close=f.close.where(f.index != 4, -3.0)), "non-positive close"),
        (lambda f: f.assign(close=f.close.where(f.index != 4, 0.0)), "non-positive close"),
        (lambda f: f.assign(close=f.close.where(f.index != 4, np.nan)), "'close' has 1 missing"),
        (lambda f: f.assign(close=f.close.astype(object).where(f.index != 4, "x")), "non-numeric"),
        (lambda f: pd.concat([f, f.iloc[[3]]]), "duplicate \\(date, tic\\) rows"),
        (lambda f: f.assign(date=f.date.where(f.index != 2, "someday")), "unparsable dates"),
        (lambda f: f.assign(high=f.low * 0.5), "high >= low"),
        (lambda f: f.iloc[:0], "has no rows"),
    ],
    ids=[
        "no-close",
        "no-tic",
        "date-gap",
        "negative-price",
        "zero-price",
        "nan-price",
        "text-price",
        "duplicate",
        "bad-date",
        "high-below-low",
        "empty",
    ],
)
def test_malformed_price_files_raise_value_errors_naming_the_problem(tmp_path, corrupt, message):
    path = _write(tmp_path, corrupt(finrl_frame()))
    with pytest.raises(ValueError, match=message):
        ESGPortfolioEnv(path, lookback=5)


def test_too_short_data_and_bad_esg_files(tmp_path):
    path = _write(tmp_path, finrl_frame(n_days=30))
    with pytest.raises(ValueError, match="30 days, fewer than lookback \\+ 2 = 32"):
        ESGPortfolioEnv(path, lookback=30)
    ESGPortfolioEnv(path, lookback=28)  # 30 = 28 + 2 is enough for one step
    with pytest.raises(ValueError, match="does not exist"):
        ESGPortfolioEnv(str(tmp_path / "missing.csv"))
    cases = [
        ({"tic": ["S0", "S1", "S2", "XOM"], "esg": [1, 2, 3, 4]}, "unknown ticker\\(s\\).*XOM"),
        ({"tic": ["S0", "S1"], "esg": [1, 2]}, "no score for ticker\\(s\\): S2"),
        ({"tic": ["S0", "S1", "S2"], "score": [1, 2, 3]}, "missing column\\(s\\) esg"),
        ({"tic": ["S0", "S1", "S2"], "esg": [1, -2, 3]}, "non-negative"),
        ({"tic": ["S0", "S1", "S2"], "esg": [1, None, 3]}, "'esg' has 1 missing"),
        ({"tic": ["S0", "S1", "S1"], "esg": [1, 2, 3]}, "more than once: S1"),
    ]
    for columns, message in cases:
        esg = _write(tmp_path, pd.DataFrame(columns), name="esg.csv")
        with pytest.raises(ValueError, match=message):
            ESGPortfolioEnv(path, esg=esg, lookback=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(market="green"), "market must be one of standard, esg_regulated"),
        (dict(reward="value"), "reward must be one of"),
        (dict(lookback=1), "lookback"),
        (dict(transaction_cost=-0.001), "transaction_cost"),
        (dict(tax_rate=0.5), "tax_rate"),
        (dict(initial_value=0), "initial_value"),
        (dict(action_scale=0), "action_scale"),
        (dict(split="validation"), "split must be one of"),
        (dict(split="train", train_fraction=1.5), "train_fraction"),
        (dict(episode_days=1000), "episode_days=1000 exceeds"),
        (dict(esg_in_state="yes"), "esg_in_state"),
        (dict(render_mode="human"), "render_mode"),
        (dict(esg="scores.csv"), "esg applies to a FinRL CSV"),
        (dict(data=42), "data must be 'synthetic'"),
        (dict(market_seed=-1), "market_seed"),
    ],
)
def test_bad_env_arguments_raise_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ESGPortfolioEnv(**{**SMALL, **kwargs})


def test_synthetic_only_arguments_are_rejected_with_a_csv(tmp_path):
    path = _write(tmp_path, finrl_frame())
    with pytest.raises(ValueError, match="n_assets only apply to data='synthetic'"):
        ESGPortfolioEnv(path, n_assets=5, lookback=5)
    market = generate_market(n_assets=3, n_days=40)
    with pytest.raises(ValueError, match="cannot be combined with a MarketData"):
        ESGPortfolioEnv(market, esg_model="ar1", lookback=5)
