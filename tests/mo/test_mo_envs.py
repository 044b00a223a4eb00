"""Multi-objective env variants: the MO-Gymnasium API (float32 vector rewards inside
reward_space), the base envs' spaces, masks and KPIs, episode sums equal to the KPI totals,
deadlock charging, determinism, reference points, scalarization and MO-Gymnasium ids."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.esg_portfolio.env import ESGPortfolioEnv
from opsrl.envs.job_shop.sim import BLOCKED
from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.envs.mo import (
    MOESGPortfolioEnv,
    MOJobShopEnv,
    MOLotSizingEnv,
    MOUAMFleetEnv,
    scalarize,
)
from opsrl.mo import REFERENCE_POINTS

SMALL_UAM = {"n_vertiports": 4, "n_aircraft": 8}
SMALL_MARKET = {"n_assets": 5, "n_days": 160, "lookback": 20}

#: one small configuration per registered id, for the fast tests
SMALL = {
    "opsrl/mo-lot-sizing-v0": {"instance": "3x2", "horizon": 30},
    "opsrl/mo-esg-portfolio-v0": SMALL_MARKET,
    "opsrl/mo-job-shop-v0": {},
    "opsrl/mo-uam-fleet-v0": {"config": SMALL_UAM, "observation": "flat"},
}
MO_IDS = list(SMALL)

#: Gymnasium's checkers expect a scalar reward; that is the one warning a vector reward gives
VECTOR_REWARD_WARNING = r".*reward returned by `step\(\)` must be a float"


def random_action(env, rng):
    """A uniformly random action, among the unmasked ones for Discrete spaces."""
    if isinstance(env.action_space, gym.spaces.Discrete):
        return int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
    return env.action_space.sample()


def play(env, seed, max_steps=None):
    """A random episode; returns (reward vectors (T, 2), last info)."""
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    _, info = env.reset(seed=seed)
    rewards = []
    while max_steps is None or len(rewards) < max_steps:
        _, reward, terminated, truncated, info = env.step(random_action(env, rng))
        assert isinstance(reward, np.ndarray) and reward.dtype == np.float32
        space = env.unwrapped.reward_space
        assert reward.shape == (env.unwrapped.reward_dim,) == space.shape
        assert space.contains(reward), (reward, space)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(rewards, dtype=np.float64), info


# ------------------------------------------------------------------------------- API
@pytest.mark.parametrize("env_id", MO_IDS)
def test_registered_ids_follow_the_mo_gymnasium_api(env_id):
    env = gym.make(env_id, disable_env_checker=True, **SMALL[env_id])
    unwrapped = env.unwrapped
    assert unwrapped.reward_dim == 2 == len(unwrapped.objective_names)
    assert isinstance(unwrapped.reward_space, gym.spaces.Box)
    assert unwrapped.reward_space.dtype == np.float32
    assert unwrapped.reference_point().shape == (2,)
    rewards, info = play(env, seed=0, max_steps=200)
    assert "kpi" in info and rewards.shape[1] == 2
    env.close()


@pytest.mark.parametrize("env_id", MO_IDS)
def test_gymnasium_checker_only_objects_to_the_vector_reward(env_id):
    env = gym.make(env_id, disable_env_checker=True, **SMALL[env_id]).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=VECTOR_REWARD_WARNING)
        gym_check_env(env, skip_render_check=True)
        # SB3 learns from the scalarized view, which must pass its checker untouched
        sb3_check_env(scalarize(env, np.full(2, 0.5)), warn=True)


@pytest.mark.parametrize("env_id", MO_IDS)
def test_same_seed_same_reward_vectors(env_id):
    def trace(seed):
        env = gym.make(env_id, disable_env_checker=True, **SMALL[env_id])
        return play(env, seed, max_steps=120)[0]

    np.testing.assert_array_equal(trace(3), trace(3))


def test_reference_points_recorded_for_defaults_match_the_envs():
    envs = {
        "opsrl/mo-lot-sizing-v0": MOLotSizingEnv(),
        "opsrl/mo-esg-portfolio-v0": MOESGPortfolioEnv(),
        "opsrl/mo-job-shop-v0": MOJobShopEnv(),
        "opsrl/mo-uam-fleet-v0": MOUAMFleetEnv(),
    }
    for env_id, env in envs.items():
        recorded, computed = np.array(REFERENCE_POINTS[env_id]), env.reference_point()
        # rounded outwards to whole units
        assert np.all(recorded <= computed) and np.all(computed - recorded < 1.0), env_id


# ------------------------------------------------------------------------------- lot sizing
def test_lot_sizing_vector_splits_the_base_reward_and_sums_to_the_kpis():
    kwargs = {"instance": "5x3", "horizon": 40}
    mo_env, base = MOLotSizingEnv(**kwargs), LotSizingEnv(**kwargs)
    assert mo_env.observation_space == base.observation_space
    assert mo_env.action_space == base.action_space
    mo_env.reset(seed=5)
    base.reset(seed=5)
    np.testing.assert_array_equal(mo_env.action_masks(), base.action_masks())
    totals = np.zeros(2)
    for _ in range(kwargs["horizon"]):
        action = base.action_space.sample()
        _, vector, terminated, _, info = mo_env.step(action)
        _, reward, _, _, _ = base.step(action)
        assert mo_env.reward_space.contains(vector)
        assert vector.sum() == pytest.approx(reward, rel=1e-5, abs=1e-4)
        totals += vector
    assert terminated
    kpi = info["kpi"]
    assert totals[0] == pytest.approx(-(kpi["setup_cost"] + kpi["holding_cost"]), rel=1e-5)
    assert totals[1] == pytest.approx(-kpi["lost_sales_cost"], rel=1e-5)
    assert np.all(totals > mo_env.reference_point())


def test_lot_sizing_reward_space_bounds_the_largest_costs():
    env = MOLotSizingEnv(instance="3x2", demand={"name": "poisson", "lam": 30})
    low = env.reward_space.low
    assert np.all(np.isfinite(low)) and np.all(env.reward_space.high >= 0)
    for seed in range(3):  # heavy Poisson demand: large lost sales stay inside
        play(env, seed)
    np.testing.assert_allclose(env.reference_point(), env.instance.horizon * low, rtol=1e-5)


# ------------------------------------------------------------------------------- portfolio
@pytest.mark.parametrize(
    "kwargs",
    [
        {**SMALL_MARKET, "episode_days": 60},
        {**SMALL_MARKET, "market": "esg_regulated", "esg_model": "ar1", "transaction_cost": 0.05},
        {**SMALL_MARKET, "reward": "value_change", "split": "test"},
    ],
)
def test_esg_portfolio_sums_to_growth_and_mean_esg(kwargs):
    env = MOESGPortfolioEnv(**kwargs)
    base = ESGPortfolioEnv(**kwargs)
    assert env.observation_space == base.observation_space
    rewards, info = play(env, seed=1)
    kpi = info["kpi"]
    assert len(rewards) == kpi["days"]
    growth = kpi["portfolio_value"] / env.initial_value
    if env.reward_mode == "log_return":
        assert rewards[:, 0].sum() == pytest.approx(math.log(growth), rel=1e-4, abs=1e-5)
    else:
        assert rewards[:, 0].sum() == pytest.approx(growth - 1.0, rel=1e-4, abs=1e-5)
        assert np.all(np.isinf(env.reward_space.low[:1]))
    mean_esg = kpi["days"] * kpi["portfolio_esg"] / env.esg_scale
    assert rewards[:, 1].sum() == pytest.approx(mean_esg, rel=1e-5)
    assert np.all(rewards.sum(axis=0) > env.reference_point())


def test_esg_objective_rewards_tilting_to_high_scores():
    env = MOESGPortfolioEnv(**SMALL_MARKET, episode_days=10)
    env.reset(seed=0)
    best = int(np.argmax(env.esg_scores))
    weights = np.full(env.n_assets, 1e-6)
    weights[best] = 1.0
    _, tilted, *_ = env.step(env.weights_to_action(weights / weights.sum()))
    _, equal, *_ = env.step(np.zeros(env.n_assets, dtype=np.float32))
    assert tilted[1] > equal[1] > 0


# ------------------------------------------------------------------------------- job shop
def test_job_shop_sums_to_minus_makespan_and_blocked_time():
    env = MOJobShopEnv(reward_scale=2.0)
    for seed in range(3):
        rewards, info = play(env, seed)
        kpi = info["kpi"]
        assert not info["deadlock"]
        assert rewards[:, 0].sum() == pytest.approx(-kpi["makespan"] / 2.0)
        assert rewards[:, 1].sum() == pytest.approx(-kpi["blocked_time"] / 2.0)
        assert kpi["blocked_time"] > 0  # blocking mode: the trade-off is real
        assert np.all(rewards.sum(axis=0) > env.reference_point())


def test_job_shop_charges_a_deadlock_to_the_horizon_in_both_objectives():
    env = MOJobShopEnv(swap=False, shutdown_prob=0.0)
    assert np.all(np.isfinite(env.reward_space.low))
    deadlocks = 0
    for seed in range(12):
        rewards, info = play(env, seed)
        if not info["deadlock"]:
            assert rewards[:, 1].sum() == pytest.approx(-info["kpi"]["blocked_time"])
            continue
        deadlocks += 1
        sim = env.sim
        holding = np.count_nonzero(sim.job_status == BLOCKED)
        assert holding > 0
        assert rewards[:, 0].sum() == pytest.approx(-sim.time_limit)
        charged = info["kpi"]["blocked_time"] + holding * (sim.time_limit - sim.time)
        assert rewards[:, 1].sum() == pytest.approx(-charged)
        # a deadlock never beats the reference point
        assert not np.all(rewards.sum(axis=0) > env.reference_point())
    assert deadlocks > 0


def test_job_shop_lower_bound_reward_stays_in_its_space():
    env = MOJobShopEnv(reward="lower_bound", shutdown_prob=0.0, observation="flat")
    assert np.all(np.isfinite(env.reward_space.low)) and env.reward_space.high[0] > 0
    for seed in range(3):
        play(env, seed)


# ------------------------------------------------------------------------------- UAM
@pytest.mark.parametrize("reward", ["daily", "per_flight"])
def test_uam_sums_to_profit_and_unserved_share(reward):
    env = MOUAMFleetEnv(config=SMALL_UAM, reward=reward, observation="flat")
    rewards, info = play(env, seed=2)
    kpi = info["kpi"]
    potential = env.scenario.potential_revenue
    assert rewards[:, 0].sum() == pytest.approx(kpi["profit"] / potential, rel=1e-5)
    share = kpi["unserved_demand"] / kpi["total_demand"]
    assert rewards[:, 1].sum() == pytest.approx(-share, rel=1e-5, abs=1e-6)
    if reward == "daily":
        assert np.all(rewards[:-1] == 0.0)
    assert np.all(rewards.sum(axis=0) > env.reference_point())


def test_uam_reward_space_with_a_dollar_scale():
    env = MOUAMFleetEnv(config=SMALL_UAM, reward="per_flight", reward_scale=10.0)
    assert np.all(np.isfinite(env.reward_space.low)) and np.all(np.isfinite(env.reward_space.high))
    play(env, seed=0)


# ------------------------------------------------------------------------------- scalarize
def test_scalarize_is_the_weighted_sum_with_the_vector_in_info():
    pytest.importorskip("mo_gymnasium")
    weights = np.array([0.25, 0.75])
    env = scalarize(MOLotSizingEnv(instance="3x2", horizon=5), weights)
    vector_env = MOLotSizingEnv(instance="3x2", horizon=5)
    env.reset(seed=0)
    vector_env.reset(seed=0)
    for _ in range(5):
        action = env.action_space.sample()
        _, reward, _, _, info = env.step(action)
        _, vector, *_ = vector_env.step(action)
        assert isinstance(reward, float)
        np.testing.assert_array_equal(info["vector_reward"], vector)
        assert reward == pytest.approx(float(weights @ vector))
        info["reward_weights"][:] = 0.0  # a copy: the wrapper's weights stay
    np.testing.assert_array_equal(env.w, weights)


def test_scalarize_rejects_bad_weights_and_scalar_envs():
    pytest.importorskip("mo_gymnasium")
    env = MOLotSizingEnv(instance="3x2", horizon=5)
    with pytest.raises(ValueError, match=r"weights must have shape \(2,\)"):
        scalarize(env, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="finite"):
        scalarize(env, [np.nan, 1.0])
    with pytest.raises(ValueError, match="not multi-objective"):
        scalarize(LotSizingEnv(instance="3x2"), [0.5, 0.5])


def test_ppo_trains_on_a_scalarized_env():
    pytest.importorskip("mo_gymnasium")
    from stable_baselines3 import PPO

    env = scalarize(MOLotSizingEnv(instance="3x2", horizon=16), [0.5, 0.5])
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


# ------------------------------------------------------------------------------- MO-Gymnasium
@pytest.mark.filterwarnings("ignore:.*precision lowered")
@pytest.mark.parametrize("env_id", ["deep-sea-treasure-v0", "mo-hopper-2obj-v5"])
def test_mo_gymnasium_ids_are_made_by_name_after_importing_it(env_id):
    mo_gym = pytest.importorskip("mo_gymnasium")
    for other in ("minecart-v0", "mo-halfcheetah-v5"):  # slower to make; registered is enough
        assert other in gym.registry
    env = mo_gym.make(env_id)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert reward.shape == env.unwrapped.reward_space.shape == (len(REFERENCE_POINTS[env_id]),)
    env.close()
