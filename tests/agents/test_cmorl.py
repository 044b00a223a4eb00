"""C-MORL: vector GAE, the IPO barrier update, crowding selection, the whole two-stage run,
save/load of the Pareto set and MOPPO's SB3 face."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from opsrl.agents.cmorl import (
    CMORL,
    MOPPO,
    MORolloutBuffer,
    VectorRewardInfo,
    barrier_policy_loss,
    constraint_thresholds,
    evaluate_objectives,
    make_mo_vec_env,
    select_parents,
    vector_gae,
)
from opsrl.mo.pareto import non_dominated

#: a constrained problem with a known answer: from a policy that mostly plays arm 2,
#: maximise objective 0 keeping objective 1 >= 0.9 of its value; arm 1 is the compromise
CONSTRAINED_ARMS = ((1.0, 0.0), (0.7, 0.95), (0.0, 1.0))
#: a concave front of four arms: every preference picks another arm
FRONT_ARMS = ((1.0, 0.0), (0.8, 0.6), (0.6, 0.8), (0.0, 1.0))


class MultiArmedBandit(gym.Env):
    """One-step MO bandit: arm k pays the vector ``payoffs[k]`` (MO-Gymnasium API)."""

    def __init__(self, payoffs: tuple[tuple[float, ...], ...] = FRONT_ARMS) -> None:
        self.payoffs = np.asarray(payoffs, dtype=np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = spaces.Discrete(len(self.payoffs))
        self.reward_space = spaces.Box(-1.0, 1.0, (self.payoffs.shape[1],), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), self.payoffs[int(action)].copy(), True, False, {}


def constrained_bandit() -> MultiArmedBandit:
    return MultiArmedBandit(CONSTRAINED_ARMS)


class ContinuousTarget(gym.Env):
    """One-step MO env with a Box action: reward (a, -a^2) for the clipped action a."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.reward_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action):
        a = float(np.clip(action, -1, 1)[0])
        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return obs, np.array([a, -(a**2)], np.float32), True, False, {}


TINY_PPO = {
    "n_steps": 32,
    "batch_size": 32,
    "n_epochs": 4,
    "learning_rate": 0.03,
    "policy_kwargs": {"net_arch": [8]},
}


# --------------------------------------------------------------------------------------------
# Buffer and losses
# --------------------------------------------------------------------------------------------


def test_vector_gae_equals_per_objective_scalar_gae():
    rng = np.random.default_rng(0)
    steps, n_envs, m = 9, 3, 3
    rewards = rng.normal(size=(steps, n_envs, m)).astype(np.float32)
    values = rng.normal(size=(steps, n_envs, m)).astype(np.float32)
    starts = (rng.random((steps, n_envs)) < 0.3).astype(np.float32)
    last_values = rng.normal(size=(n_envs, m)).astype(np.float32)
    dones = np.array([True, False, False])
    advantages = vector_gae(rewards, values, starts, last_values, dones, 0.97, 0.9)

    space = spaces.Box(-1, 1, (1,), np.float32)
    for j in range(m):
        scalar = RolloutBuffer(steps, space, space, "cpu", gae_lambda=0.9, gamma=0.97, n_envs=3)
        scalar.rewards[:] = rewards[..., j]
        scalar.values[:] = values[..., j]
        scalar.episode_starts[:] = starts
        scalar.compute_returns_and_advantage(th.as_tensor(last_values[:, j]), dones)
        np.testing.assert_allclose(advantages[..., j], scalar.advantages, rtol=1e-5, atol=1e-6)

    buffer = MORolloutBuffer(steps, space, space, "cpu", 0.9, 0.97, n_envs=3, n_objectives=m)
    buffer.rewards[:], buffer.values[:], buffer.episode_starts[:] = rewards, values, starts
    buffer.compute_returns_and_advantage(th.as_tensor(last_values), dones)
    np.testing.assert_allclose(buffer.objective_advantages, advantages, rtol=1e-6)
    np.testing.assert_allclose(buffer.returns, advantages + values, rtol=1e-6)

    # the actor's advantage: w . (A * scale), standardised over the rollout
    scale = np.array([2.0, 0.5, 1.0])
    weights = np.array([0.2, 0.3, 0.5])
    buffer.set_objective_scale(scale)
    buffer.scalarise(weights)
    expected = (advantages * scale) @ weights
    expected = (expected - expected.mean()) / (expected.std() + 1e-8)
    np.testing.assert_allclose(buffer.advantages, expected, rtol=1e-4, atol=1e-5)


def test_constraint_thresholds_for_returns_of_either_sign():
    levels = constraint_thresholds(np.array([10.0, -10.0, 0.0]), 0.9)
    np.testing.assert_allclose(levels, [9.0, -11.0, 0.0])
    for beta in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="constraint_beta"):
            constraint_thresholds(np.ones(2), beta)


def test_barrier_policy_loss_value_gradient_and_recovery():
    advantages = th.tensor([1.0, -1.0, 0.5, -0.5])
    constraint_advantages = th.tensor([[-2.0], [2.0], [1.0], [-1.0]])
    margins = th.tensor([0.5])
    ratio = th.ones(4, requires_grad=True)
    loss, estimated, recovery = barrier_policy_loss(
        ratio, advantages, constraint_advantages, margins, 3.0, 0.2, 20.0
    )
    assert not recovery
    # at rho = 1: -(mean A_l + (1/t) log(margin + horizon * mean A_j))
    np.testing.assert_allclose(loss.item(), -(0.0 + np.log(0.5) / 20.0), rtol=1e-6)
    np.testing.assert_allclose(estimated.numpy(), [0.5])
    loss.backward()
    # the barrier adds -(1/t) * horizon * A_j / (n * margin) to the objective's -A_l / n
    expected = -advantages / 4 - constraint_advantages[:, 0] * 3.0 / (20.0 * 4 * 0.5)
    np.testing.assert_allclose(ratio.grad.numpy(), expected.numpy(), rtol=1e-5)

    # an estimated margin <= 0: maximise the violated constraint only
    ratio = th.ones(4, requires_grad=True)
    loss, estimated, recovery = barrier_policy_loss(
        ratio, advantages, constraint_advantages, th.tensor([-0.1]), 3.0, 0.2, 20.0
    )
    assert recovery and estimated.item() == pytest.approx(-0.1)
    loss.backward()
    scaled = constraint_advantages[:, 0] / constraint_advantages[:, 0].std()
    np.testing.assert_allclose(ratio.grad.numpy(), (-scaled / 4).numpy(), rtol=1e-5)


def _arm_values(model: MOPPO, payoffs: np.ndarray) -> np.ndarray:
    """Exact expected vector return of the stochastic policy on a one-step bandit."""
    distribution = model.policy.get_distribution(th.zeros((1, 1)))
    probs = distribution.distribution.probs[0].detach().numpy()
    return probs @ payoffs


def _run_constrained_bandit(constrained: bool, updates: int = 12) -> tuple[np.ndarray, np.ndarray]:
    model = MOPPO(
        "MlpPolicy",
        make_mo_vec_env(constrained_bandit, n_envs=4, seed=0),
        weights=[1.0, 0.0],
        n_steps=16,
        batch_size=64,
        n_epochs=5,
        learning_rate=0.06,
        normalize_objectives=False,
        policy_kwargs={"net_arch": []},
        seed=0,
    )
    with th.no_grad():  # pi_r: mostly arm 2, values about (0.08, 0.95)
        model.policy.action_net.weight.zero_()
        model.policy.action_net.bias.copy_(th.tensor([0.0, 0.0, 3.0]))
    payoffs = np.asarray(CONSTRAINED_ARMS)
    start = _arm_values(model, payoffs)
    levels = constraint_thresholds(start, 0.9)
    levels[0] = -np.inf
    if constrained:
        model.set_constraints(0, levels, start)
    trajectory = [start]
    for update in range(updates):
        model.learn(64, reset_num_timesteps=update == 0)
        trajectory.append(_arm_values(model, payoffs))
        if constrained:
            model.update_constraint_values(trajectory[-1])
    return np.array(trajectory), levels


def test_constrained_update_keeps_the_constraint_while_the_objective_grows():
    trajectory, levels = _run_constrained_bandit(constrained=True)
    start = trajectory[0]
    # objective 1 ends above beta times its start and never falls below it on the way (up to
    # the first-order error of the barrier's estimate)
    assert trajectory[-1, 1] >= levels[1]
    assert np.all(trajectory[:, 1] >= levels[1] - 0.01), trajectory[:, 1]
    # objective 0 grows towards the constrained optimum (about 0.7: arm 1 plus a little arm 0)
    assert trajectory[-1, 0] > start[0] + 0.4
    # the same updates without the barrier drive objective 1 far below the level
    free, _ = _run_constrained_bandit(constrained=False)
    assert free[-1, 0] > trajectory[-1, 0]
    assert free[-1, 1] < levels[1] - 0.3


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def test_crowding_selection_extends_extremes_first_and_skips_earlier_choices():
    front = np.array([[0.0, 1.0], [0.5, 0.9], [0.6, 0.85], [0.9, 0.3], [1.0, 0.0]])
    first = select_parents(front, 2)
    assert sorted(first.tolist()) == [0, 4]
    # then the least crowded interior point: [0.9, 0.3] (distance 1.1 + 0.85)
    second = select_parents(front, 1, [front[i] for i in first])
    assert second.tolist() == [3]
    # every point chosen before: the least crowded again rather than nothing
    again = select_parents(front, 2, list(front))
    assert sorted(again.tolist()) == [0, 4]


# --------------------------------------------------------------------------------------------
# The whole algorithm
# --------------------------------------------------------------------------------------------


def _tiny_cmorl(**kwargs) -> CMORL:
    arguments = {
        "env": MultiArmedBandit,
        "weight_step": 0.5,
        "init_timesteps": 3 * 8 * 32,
        "total_timesteps": 3 * 8 * 32 + 2 * 2 * 2 * 32,
        "num_select": 2,
        "update_iters": 2,
        "eval_episodes": 1,
        "eval_interval": 4,
        "ppo_kwargs": TINY_PPO,
        "seed": 0,
        "device": "cpu",
    }
    arguments.update(kwargs)
    return CMORL(**arguments)


@pytest.fixture(scope="module")
def learned() -> CMORL:
    return _tiny_cmorl().learn()


def test_cmorl_returns_a_non_dominated_set_within_the_budget(learned):
    solutions = learned.pareto_set()
    front = np.array([s.values for s in solutions])
    assert len(np.unique(front, axis=0)) >= 2
    assert non_dominated(front).all()
    # every value is an arm's payoff (deterministic policies, one step)
    arms = np.asarray(FRONT_ARMS)
    assert all(np.isclose(arms, v, atol=1e-6).all(axis=1).any() for v in front)
    # real env steps: 3 policies x 8 updates x 32, then 2 x 2 extensions x 2 updates x 32
    assert learned.num_timesteps == learned.total_timesteps == 1024
    stages = [entry["stage"] for entry in learned.history]
    assert stages == [1, 2]
    assert learned.history[-1]["num_timesteps"] == 1024
    # the extremes: objective 0 alone picks arm 0, objective 1 alone arm 3
    assert learned.policy_for([1.0, 0.0]).values == pytest.approx(FRONT_ARMS[0])
    assert learned.policy_for([0.0, 1.0]).values == pytest.approx(FRONT_ARMS[3])
    for solution in solutions:
        assert solution.weights.shape == (2,)
        assert solution.origin["stage"] in (1, 2)
    action, _ = learned.predict(np.zeros(1, np.float32), weights=[1.0, 0.0])
    assert int(action) == 0


def test_save_load_round_trip_reproduces_the_pareto_set(learned, tmp_path):
    learned.save(tmp_path / "cmorl")
    loaded = CMORL.load(tmp_path / "cmorl", device="cpu")
    before, after = learned.pareto_set(), loaded.pareto_set()
    assert len(before) == len(after)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.origin == b.origin
        obs = np.linspace(0, 1, 5, dtype=np.float32).reshape(5, 1)
        with th.no_grad():
            np.testing.assert_allclose(
                a.policy.get_distribution(th.as_tensor(obs)).distribution.probs.numpy(),
                b.policy.get_distribution(th.as_tensor(obs)).distribution.probs.numpy(),
                rtol=1e-6,
            )
    for weights in ([1.0, 0.0], [0.5, 0.5], [0.0, 1.0]):
        a_action, _ = learned.predict(np.zeros(1, np.float32), weights=weights)
        b_action, _ = loaded.predict(np.zeros(1, np.float32), weights=weights)
        assert a_action == b_action
    assert loaded.num_timesteps == learned.num_timesteps
    assert loaded.history == learned.history
    assert loaded.constraint_beta == learned.constraint_beta


def test_cmorl_rejects_bad_arguments():
    with pytest.raises(ValueError, match="init_timesteps"):
        _tiny_cmorl(init_timesteps=64)
    with pytest.raises(ValueError, match="init_timesteps .* must not exceed"):
        _tiny_cmorl(init_timesteps=5000, total_timesteps=4000)
    with pytest.raises(ValueError, match="constraint_beta"):
        _tiny_cmorl(constraint_beta=1.0)
    with pytest.raises(ValueError, match="ppo_kwargs must not set seed"):
        _tiny_cmorl(ppo_kwargs={**TINY_PPO, "seed": 3})
    with pytest.raises(ValueError, match="reward_space"):
        _tiny_cmorl(env="CartPole-v1")
    with pytest.raises(ValueError, match="ref_point"):
        _tiny_cmorl(ref_point=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="picklable"):
        _tiny_cmorl(env=lambda: MultiArmedBandit(), n_workers=2)


# --------------------------------------------------------------------------------------------
# MOPPO on its own
# --------------------------------------------------------------------------------------------


def test_moppo_vector_critic_normalisation_and_save_load(tmp_path):
    model = MOPPO(
        "MlpPolicy",
        ContinuousTarget(),
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        policy_kwargs={"net_arch": [16]},
        seed=1,
    )
    assert model.n_objectives == 2
    model.learn(128)
    obs = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, (4, 2)), dtype=th.float32)
    assert model.policy.predict_values(obs).shape == (4, 2)
    # statistics of 128 observations and discounted returns went into the policy
    assert model.policy.observation_rms.count.item() == pytest.approx(128, abs=1e-3)
    assert model.policy.objective_rms.count.item() == pytest.approx(128, abs=1e-3)
    assert model.policy.objective_scale().shape == (2,)
    values = evaluate_objectives(model, ContinuousTarget(), 3, 0.99, seed=0)
    assert values.shape == (2,) and values[1] <= 0

    model.save(tmp_path / "moppo.zip")
    loaded = MOPPO.load(tmp_path / "moppo.zip", device="cpu")
    np.testing.assert_array_equal(loaded.weights, model.weights)
    probe = np.random.default_rng(1).uniform(-1, 1, (5, 2)).astype(np.float32)
    np.testing.assert_allclose(
        loaded.predict(probe, deterministic=True)[0], model.predict(probe, deterministic=True)[0]
    )
    np.testing.assert_allclose(
        loaded.policy.observation_rms.mean.numpy(), model.policy.observation_rms.mean.numpy()
    )


class DictBandit(MultiArmedBandit):
    """The bandit with a Dict observation (MultiInputPolicy path)."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Dict(
            {"level": spaces.Box(0.0, 1.0, (2,), np.float32), "slot": spaces.Discrete(3)}
        )

    def _observation(self) -> dict:
        return {"level": np.zeros(2, np.float32), "slot": 1}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._observation(), {}

    def step(self, action):
        _, reward, terminated, truncated, info = super().step(action)
        return self._observation(), reward, terminated, truncated, info


def test_moppo_learns_on_dict_observations():
    model = MOPPO(
        "MultiInputPolicy",
        make_mo_vec_env(DictBandit, n_envs=2, seed=0),
        weights=[1.0, 0.0],
        n_steps=16,
        batch_size=16,
        n_epochs=2,
        policy_kwargs={"net_arch": [8]},
        seed=0,
    )
    assert not model.policy.normalize_observations
    model.learn(64)
    assert model.rollout_buffer.observations["level"].shape == (32, 2)
    assert evaluate_objectives(model, DictBandit(), 1, 1.0).shape == (2,)


def test_moppo_needs_vector_rewards():
    from stable_baselines3.common.env_util import make_vec_env

    with pytest.raises(ValueError, match="vector_reward"):
        MOPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1), n_steps=16, batch_size=16)
    with pytest.raises(ValueError, match="weights"):
        MOPPO("MlpPolicy", MultiArmedBandit(), weights=[1.0, -1.0], n_steps=16, batch_size=16)
    env = VectorRewardInfo(MultiArmedBandit())
    env.reset(seed=0)
    _, reward, _, _, info = env.step(1)
    np.testing.assert_allclose(info["vector_reward"], FRONT_ARMS[1])
    assert reward == pytest.approx(0.7)  # uniform weights


# --------------------------------------------------------------------------------------------
# Slow
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_parallel_workers_give_the_same_pareto_set():
    serial = _tiny_cmorl().learn()
    parallel = _tiny_cmorl(n_workers=2).learn()
    np.testing.assert_array_equal(serial.pareto_front(), parallel.pareto_front())
    assert serial.num_timesteps == parallel.num_timesteps
    # an executor of the caller's (an experiment backend's pool) is used and left open
    with ThreadPoolExecutor(max_workers=1) as executor:
        external = _tiny_cmorl().learn(executor=executor)
        assert executor.submit(int, 3).result() == 3
    np.testing.assert_array_equal(serial.pareto_front(), external.pareto_front())


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mo_gymnasium") is None, reason="needs mo-gymnasium")
def test_cmorl_on_deep_sea_treasure():
    import mo_gymnasium

    model = CMORL(
        "mo_gymnasium:deep-sea-treasure-v0",
        weight_step=0.5,
        init_timesteps=3 * 20 * 256,
        total_timesteps=3 * 20 * 256 + 2 * 2 * 5 * 256,
        num_select=2,
        update_iters=5,
        eval_episodes=1,
        eval_gamma=0.99,
        eval_interval=5,
        ppo_kwargs={"n_steps": 256, "batch_size": 64, "gamma": 0.99, "ent_coef": 0.01},
        ref_point=[0.0, -25.0],
        seed=0,
        device="cpu",
    ).learn()
    front = model.pareto_front()
    assert len(front) >= 2 and non_dominated(front).all()
    true_front = np.array(mo_gymnasium.make("deep-sea-treasure-v0").unwrapped.pareto_front(0.99))
    # every point found is weakly dominated by a point of the true front
    for point in front:
        assert np.any(np.all(true_front >= point - 1e-6, axis=1))
    assert model.history[-1]["hypervolume"] > 0


def test_mo_gymnasium_ids_are_made_in_a_fresh_process() -> None:
    # Experiment workers import opsrl but not MO-Gymnasium: the id must still resolve.
    pytest.importorskip("mo_gymnasium")
    code = (
        "import sys; from opsrl.agents.cmorl.moppo import make_mo_env; "
        "assert 'mo_gymnasium' not in sys.modules; "
        "env = make_mo_env('deep-sea-treasure-v0'); print(env.unwrapped.reward_space.shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "(2,)"
