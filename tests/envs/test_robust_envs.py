"""The robust-RL test domains: checkers, seeded determinism, bad arguments, the linear MDP's
transition law (by counting and against its features), the American put's price moves,
payoff and features."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.robust import AmericanPutEnv, SimulatedLinearMDPEnv
from opsrl.envs.robust.sim import hat_features, linear_mdp_actions, put_price_bins

IDS = {
    "opsrl/SimulatedLinearMDP-v0": ("opsrl.envs.robust.env:SimulatedLinearMDPEnv", 3),
    "opsrl/AmericanPut-v0": ("opsrl.envs.robust.env:AmericanPutEnv", None),
}


@pytest.fixture(scope="module", autouse=True)
def registered_ids():
    """Register the ids here until the shared ENV_TABLE has them."""
    for env_id, (entry_point, steps) in IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=steps)


def _exact_return(env: SimulatedLinearMDPEnv, actions: np.ndarray) -> float:
    """Expected return from x1 of the deterministic policy actions[h, s], by backward
    induction on the env's own transition and reward tables."""
    transitions, rewards = env.transition_probabilities(), env.rewards()
    states = np.arange(transitions.shape[0])
    value = np.zeros(len(states))
    for step in reversed(range(env.horizon)):
        chosen = actions[step]
        value = rewards[step, states, chosen] + transitions[states, chosen] @ value
    return float(value[0])


# --------------------------------------------------------------------------------------------
# Both envs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", sorted(IDS))
def test_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def _rollout(env_id: str, seed: int, steps: int = 80, **kwargs) -> list:
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        trace += [obs, reward, info["kpi"]]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


@pytest.mark.parametrize("env_id", sorted(IDS))
def test_same_seed_same_episodes(env_id):
    assert _rollout(env_id, 3) == _rollout(env_id, 3)
    assert _rollout(env_id, 3) != _rollout(env_id, 4)


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (SimulatedLinearMDPEnv, {"failure_prob": 1.5}, "failure_prob"),
        (SimulatedLinearMDPEnv, {"failure_prob": "high"}, "failure_prob"),
        (SimulatedLinearMDPEnv, {"leak_prob": -0.1}, "leak_prob"),
        (SimulatedLinearMDPEnv, {"delta": 0.9}, "delta"),
        (SimulatedLinearMDPEnv, {"xi_norm": -0.1}, "xi_norm"),
        (SimulatedLinearMDPEnv, {"render_mode": "human"}, "render_mode"),
        (AmericanPutEnv, {"up_prob": -0.2}, "up_prob"),
        (AmericanPutEnv, {"strike": 0.0}, "strike"),
        (AmericanPutEnv, {"down_factor": 0.0}, "down_factor"),
        (AmericanPutEnv, {"up_factor": 0.97}, "up_factor"),
        (AmericanPutEnv, {"initial_price_spread": 100.0}, "initial_price_spread"),
        (AmericanPutEnv, {"horizon": 0}, "horizon"),
        (AmericanPutEnv, {"horizon": 2.5}, "horizon"),
        (AmericanPutEnv, {"price_high": 50.0}, "price_high"),
        (AmericanPutEnv, {"price_low": -1.0}, "price_low"),
        (AmericanPutEnv, {"n_price_bins": 1}, "n_price_bins"),
        (AmericanPutEnv, {"n_anchors": 1}, "n_anchors"),
    ],
)
def test_bad_arguments_name_the_parameter(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [SimulatedLinearMDPEnv, AmericanPutEnv])
def test_bad_action_and_stepping_after_the_end_raise(cls):
    env = cls()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(env.action_space.n)
    done = False
    while not done:
        _, _, done, _, _ = env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


# --------------------------------------------------------------------------------------------
# Simulated linear MDP
# --------------------------------------------------------------------------------------------


def test_linear_mdp_is_linear_in_its_simplex_features():
    env = SimulatedLinearMDPEnv()
    phi = env.features()
    assert phi.shape == (5, 16, 4) and env.horizon == 3
    np.testing.assert_allclose(phi.sum(axis=-1), 1.0)
    assert phi.min() >= 0
    # nominal next-state measures mu_i (rows: the 4 coordinates, columns: x1..x5)
    mu = np.zeros((4, 5))
    mu[0, [1, 3]] = [0.999, 0.001]
    mu[1, [2, 3]] = [0.999, 0.001]
    mu[2, 3] = 1.0
    mu[3, 4] = 1.0
    np.testing.assert_allclose(env.transition_probabilities(), phi @ mu, atol=1e-15)
    # r_h = <phi, theta_h>, theta_0 = 0 and theta_1 = theta_2 = e_4
    rewards = env.rewards()
    np.testing.assert_array_equal(rewards[0], 0.0)
    np.testing.assert_allclose(rewards[1], phi[..., 3])
    # p(a) = delta + xi . a spans [0.1, 0.5]; action 15 = (1, 1, 1, 1) has the largest
    np.testing.assert_allclose(phi[0, :, 3], 0.3 + linear_mdp_actions() @ np.full(4, 0.05))
    assert phi[0, :, 3].argmax() == 15 and phi[0, 15, 3] == pytest.approx(0.5)


def test_linear_mdp_transition_frequencies_match_by_counting():
    env = SimulatedLinearMDPEnv(failure_prob=0.4)
    expected = env.transition_probabilities()[0, 15]  # from x1 with p(a) = 0.5
    counts = np.zeros(5)
    env.reset(seed=0)
    n = 4000
    for _ in range(n):
        env.reset()
        next_state, reward, *_ = env.step(15)
        counts[next_state] += 1
        assert reward == 0.0  # nothing is earned at step 0
    # x2 w.p. 0.5 * 0.999, x4 w.p. 0.5 * 0.001 + 0.4 * 0.5, x5 w.p. 0.6 * 0.5
    np.testing.assert_allclose(expected, [0, 0.4995, 0, 0.2005, 0.3], atol=1e-12)
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n) + 1e-9
    assert np.all(np.abs(counts / n - expected) <= tolerance)


def test_linear_mdp_episode_rewards_and_kpis():
    env = SimulatedLinearMDPEnv(failure_prob=0.0, leak_prob=0.0)
    returns = []
    for seed in range(200):
        state, info = env.reset(seed=seed)
        assert state == 0 and info["kpi"]["total_reward"] == 0.0
        total, steps, done = 0.0, 0, False
        while not done:
            state, reward, done, truncated, info = env.step(15)
            total += reward
            steps += 1
            assert not truncated
        assert steps == 3
        assert info["kpi"]["total_reward"] == pytest.approx(total)
        assert info["kpi"]["failed"] == float(state == 3)
        assert info["kpi"]["reached_x5"] == float(state == 4)
        returns.append(total)
    # with action 15 everywhere: x5 at step 1 -> 2; x2 then x5 -> 1.5; x2, x3, x5 -> 1.0;
    # x2, x3, x4 -> 1.0 (p(a) = 0.5 is earned in x2 and x3)
    assert set(np.round(returns, 9)) <= {2.0, 1.5, 1.0}


def test_linear_mdp_perturbation_flips_the_best_first_action():
    # the nominal optimum pushes p(a) up in x1: 0.5 * 2 + 0.4995 * (0.5 + 0.5 + 0.4995 * 0.5);
    # for q >= 0.4 keeping p(a) low is better
    high = np.full((3, 5), 15)
    low = high.copy()
    low[0, 0] = 0  # action 0 = (-1, -1, -1, -1): p(a) = 0.1 in x1
    nominal = SimulatedLinearMDPEnv()
    assert _exact_return(nominal, high) == pytest.approx(1.624250125, abs=1e-12)
    assert _exact_return(nominal, high) > _exact_return(nominal, low)
    for q in (0.4, 0.6, 1.0):
        perturbed = SimulatedLinearMDPEnv(failure_prob=q)
        assert _exact_return(perturbed, low) > _exact_return(perturbed, high)


# --------------------------------------------------------------------------------------------
# American put option
# --------------------------------------------------------------------------------------------


def test_put_price_moves_by_counting():
    env = AmericanPutEnv(up_prob=0.7)
    env.reset(seed=1)
    ups, n = 0, 3000
    for _ in range(n):
        env.reset()
        before = env.price
        obs, reward, terminated, _, info = env.step(AmericanPutEnv.HOLD)
        ratio = env.price / before
        assert ratio == pytest.approx(1.02) or ratio == pytest.approx(0.98)
        ups += ratio > 1
        assert reward == 0.0 and not terminated
        assert obs == put_price_bins(env.price, 60.0, 160.0, 100)
        assert info["kpi"]["exercised"] == 0.0
    assert abs(ups / n - 0.7) <= 4 * np.sqrt(0.7 * 0.3 / n)


def test_put_exercise_pays_the_payoff_and_maturity_ends_the_episode():
    env = AmericanPutEnv(horizon=5)
    seen_positive = False
    for seed in range(30):
        env.reset(seed=seed)
        assert 95.0 <= env.price <= 105.0
        env.step(AmericanPutEnv.HOLD)
        price = env.price
        _, reward, terminated, _, info = env.step(AmericanPutEnv.EXERCISE)
        assert terminated and reward == pytest.approx(max(100.0 - price, 0.0))
        assert info["kpi"] == {
            "payoff": reward,
            "exercised": 1.0,
            "exercise_step": 1.0,
            "price": price,
        }
        seen_positive |= reward > 0
    assert seen_positive
    env.reset(seed=0)
    for step in range(5):
        _, reward, terminated, _, info = env.step(AmericanPutEnv.HOLD)
        assert reward == 0.0 and terminated == (step == 4)
    assert info["kpi"]["exercise_step"] == 5.0 and info["kpi"]["payoff"] == 0.0


def test_put_features_are_simplex_hat_functions():
    env = AmericanPutEnv()
    phi = env.features()
    assert phi.shape == (100, 2, 60) and env.horizon == 20
    np.testing.assert_allclose(phi.sum(axis=-1), 1.0)
    assert phi.min() >= 0
    # hold uses the first block, exercise the second, each the same hat weights
    np.testing.assert_array_equal(phi[:, 0, 30:], 0.0)
    np.testing.assert_array_equal(phi[:, 1, :30], 0.0)
    np.testing.assert_array_equal(phi[:, 1, 30:], phi[:, 0, :30])
    # hat weights interpolate linearly: sum_i w_i anchor_i is the (clamped) price
    np.testing.assert_allclose(phi[:, 0, :30] @ env.anchors, env.bin_prices)
    np.testing.assert_allclose(hat_features(np.array([10.0, 500.0]), env.anchors).sum(-1), 1.0)
