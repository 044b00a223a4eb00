"""PROPS: the ring buffer and its recomputation against a fresh one, the behaviour update, the
sampling-error measure, save/load, Discrete and Box spaces, and learning CartPole."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from opsrl.agents.props import (
    PROPS,
    PROPSRolloutBuffer,
    fixed_target_sampling_error,
    sampling_error,
)
from opsrl.baselines import RandomPolicy
from opsrl.evaluation import evaluate_policy_on_seeds

SMALL_NET = {"net_arch": [32, 32]}


def small_props(env: Any, **kwargs: Any) -> PROPS:
    settings: dict[str, Any] = {
        "n_steps": 32,
        "props_n_steps": 16,
        "batch_size": 32,
        "props_batch_size": 32,
        "n_epochs": 2,
        "props_n_epochs": 2,
        "sampling_error_freq": 0,
        "policy_kwargs": SMALL_NET,
        "device": "cpu",
        "seed": 0,
    }
    settings.update(kwargs)
    return PROPS("MlpPolicy", env, **settings)


# --------------------------------------------------------------------------------------------
# The ring buffer
# --------------------------------------------------------------------------------------------


def test_ring_keeps_the_last_batches_in_time_order():
    buffer = PROPSRolloutBuffer(
        3, spaces.Box(-10, 10, (1,), np.float32), spaces.Discrete(2), device="cpu", n_batches=2
    )
    assert buffer.buffer_size == 6
    for step in range(8):
        buffer.add(np.array([[float(step)]]), np.array([0]), np.array([step]), np.array([0.0]))
    assert buffer.full and buffer.size() == 6
    order = buffer.time_order()
    np.testing.assert_array_equal(buffer.observations[order].ravel(), [2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(buffer.rewards[buffer.time_order(newest=4)].ravel(), [4, 5, 6, 7])
    buffer.reset()
    assert buffer.size() == 0 and len(buffer.time_order()) == 0


def test_gae_over_a_wrapped_ring_is_sb3s_gae_in_time_order():
    rng = np.random.default_rng(0)
    n_envs, obs_space, act_space = 2, spaces.Box(-1, 1, (1,), np.float32), spaces.Discrete(2)
    ring = PROPSRolloutBuffer(
        4, obs_space, act_space, device="cpu", gamma=0.9, gae_lambda=0.8, n_envs=n_envs
    )
    steps = 11  # wraps the 8-step ring: it holds steps 3..10
    rewards = rng.normal(size=(steps, n_envs)).astype(np.float32)
    starts = (rng.random((steps, n_envs)) < 0.2).astype(np.float32)
    values = rng.normal(size=(steps, n_envs)).astype(np.float32)
    for step in range(steps):
        ring.add(np.zeros((n_envs, 1)), np.zeros(n_envs), rewards[step], starts[step])
    order = ring.time_order()
    ring.values[order] = values[3:]
    last_values, dones = th.tensor([0.5, -1.0]), np.array([False, True])
    ring.compute_returns_and_advantage(last_values, dones)

    fresh = RolloutBuffer(
        8, obs_space, act_space, device="cpu", gamma=0.9, gae_lambda=0.8, n_envs=2
    )
    for step in range(3, steps):
        fresh.add(
            np.zeros((n_envs, 1)),
            np.zeros(n_envs),
            rewards[step],
            starts[step],
            th.tensor(values[step]),
            th.zeros(n_envs),
        )
    fresh.compute_returns_and_advantage(last_values, dones)
    np.testing.assert_allclose(ring.advantages[order], fresh.advantages, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ring.returns[order], fresh.returns, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Recomputation for a changed policy, against a fresh computation from an independent record
# --------------------------------------------------------------------------------------------


class StepRecorder(gym.Wrapper):
    """Records, per step, the observation acted on, the action, the reward and the outcome."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps: list[dict[str, Any]] = []
        self.current: Any = None
        self.starts_episode = True

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.current, self.starts_episode = obs, True
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps.append(
            {
                "obs": np.array(self.current),
                "action": np.array(action),
                "reward": float(reward),
                "episode_start": self.starts_episode,
                "truncated": bool(truncated and not terminated),
                "next_obs": np.array(obs),
                "done": bool(terminated or truncated),
            }
        )
        self.current, self.starts_episode = obs, False
        return obs, reward, terminated, truncated, info


def recorded_venv(env_id: str, n_envs: int, max_episode_steps: int) -> DummyVecEnv:
    venv = DummyVecEnv(
        [
            lambda: StepRecorder(gym.make(env_id, max_episode_steps=max_episode_steps))
            for _ in range(n_envs)
        ]
    )
    venv.seed(3)
    return venv


@pytest.mark.parametrize(
    ("env_id", "normalize"),
    [("CartPole-v1", False), ("Pendulum-v1", False), ("Pendulum-v1", True)],
    ids=["cartpole", "pendulum", "pendulum-vecnormalize"],
)
def test_recomputation_after_a_policy_change_matches_a_fresh_computation(env_id, normalize):
    n_envs, n_steps = 2, 32
    venv = recorded_venv(env_id, n_envs, max_episode_steps=20)  # truncations inside the ring
    env = VecNormalize(venv, gamma=0.9) if normalize else venv
    model = small_props(env, n_steps=n_steps, n_batches=2, gamma=0.9, gae_lambda=0.8)
    model.learn(5 * n_steps * n_envs)  # the 64-step ring has wrapped twice
    buffer = model.rollout_buffer
    order = buffer.time_order()
    assert len(order) == 2 * n_steps

    # The ring holds the last 64 steps of each env, in time order, as the envs produced them.
    recorders = [venv.envs[i] for i in range(n_envs)]
    records = [recorder.steps[-len(order) :] for recorder in recorders]
    raw_obs = np.stack([[r["obs"] for r in env_records] for env_records in records], axis=1)
    raw_rewards = np.array([[r["reward"] for r in env_records] for env_records in records]).T
    starts = np.array([[r["episode_start"] for r in env_records] for env_records in records]).T
    truncated = np.array([[r["truncated"] for r in env_records] for env_records in records]).T
    np.testing.assert_allclose(buffer.observations[order], raw_obs, rtol=1e-6)
    np.testing.assert_allclose(buffer.rewards[order], raw_rewards, rtol=1e-6)
    np.testing.assert_array_equal(buffer.episode_starts[order], starts)
    np.testing.assert_array_equal(buffer.truncated[order], truncated)
    if env_id == "Pendulum-v1":
        assert truncated.any()
        taken = np.stack([[r["action"] for r in env_records] for env_records in records], axis=1)
        np.testing.assert_allclose(np.clip(buffer.actions[order], -2, 2), taken, rtol=1e-6)
    else:
        assert starts[1:].any()  # terminations inside the ring

    # Change the policy, recompute, and compare with a fresh computation.
    before = buffer.values[order].copy()
    with th.no_grad():
        for parameter in model.policy.parameters():
            parameter.add_(0.1 * th.randn_like(parameter))
    model.refresh_buffer()
    assert not np.allclose(buffer.values[order], before)

    def normalize_obs(obs: np.ndarray) -> np.ndarray:
        return env.normalize_obs(obs).astype(np.float32) if normalize else obs

    def values_of(obs: np.ndarray) -> th.Tensor:
        with th.no_grad():
            return model.policy.predict_values(th.as_tensor(normalize_obs(obs)))

    fresh = RolloutBuffer(
        len(order),
        model.observation_space,
        model.action_space,
        device="cpu",
        gamma=0.9,
        gae_lambda=0.8,
        n_envs=n_envs,
    )
    for step in range(len(order)):
        obs = th.as_tensor(normalize_obs(raw_obs[step]))
        actions = th.as_tensor(buffer.actions[order[step]])
        if isinstance(model.action_space, spaces.Discrete):
            actions = actions.flatten()
        with th.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(obs, actions)
        rewards = raw_rewards[step].astype(np.float32)
        if normalize:
            rewards = env.normalize_reward(rewards).astype(np.float32)
        for i in np.flatnonzero(truncated[step]):
            terminal = records[i][step]["next_obs"][None]
            rewards[i] += 0.9 * values_of(terminal).item()
        fresh.add(
            normalize_obs(raw_obs[step]),
            buffer.actions[order[step]],
            rewards,
            starts[step],
            values,
            log_prob,
        )
    last_obs = np.stack([recorder.current for recorder in recorders])
    last_dones = np.array([env_records[-1]["done"] for env_records in records])
    fresh.compute_returns_and_advantage(values_of(last_obs), last_dones)

    for name in ("values", "log_probs", "advantages", "returns"):
        np.testing.assert_allclose(
            getattr(buffer, name)[order], getattr(fresh, name), rtol=1e-4, atol=1e-4, err_msg=name
        )
    # The device tensors PPO trains on are the same rows.
    data = buffer.training_data
    np.testing.assert_allclose(data.advantages.numpy(), fresh.advantages.ravel(), atol=1e-4)
    np.testing.assert_allclose(
        data.observations.numpy(),
        normalize_obs(raw_obs).reshape(-1, *buffer.obs_shape),
        rtol=1e-5,
        atol=1e-6,
    )
    minibatches = list(buffer.get(48))
    assert [len(batch.advantages) for batch in minibatches] == [48, 48, 32]
    np.testing.assert_allclose(
        np.sort(th.cat([batch.returns for batch in minibatches]).numpy()),
        np.sort(fresh.returns.ravel()),
        atol=1e-4,
    )


def test_a_new_learn_call_empties_the_ring():
    model = small_props("CartPole-v1")
    model.learn(64)
    assert model.rollout_buffer.size() == 64
    model.learn(32, reset_num_timesteps=False)
    assert model.rollout_buffer.size() == 64  # continued: the ring is full
    model.learn(32)  # the env is reset: old data would run into new episodes
    assert model.rollout_buffer.size() == 32


# --------------------------------------------------------------------------------------------
# The behaviour policy
# --------------------------------------------------------------------------------------------


def buffer_log_probs(model: PROPS, policy: Any, order: np.ndarray) -> th.Tensor:
    obs, actions = model._ordered_tensors(order)
    if isinstance(model.action_space, spaces.Discrete):
        actions = actions.long().flatten()
    with th.no_grad():
        return policy.get_distribution(obs).log_prob(actions)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_behavior_update_lowers_the_probability_of_sampled_actions(env_id):
    model = small_props(env_id, props_learning_rate=3e-3, props_n_epochs=8, props_target_kl=None)
    model.learn(64)  # a full 64-step ring: the update uses its newest 48 steps
    window = model.rollout_buffer.time_order(newest=48)
    model.update_behavior()
    log_ratio = buffer_log_probs(model, model.behavior_policy, window) - buffer_log_probs(
        model, model.policy, window
    )
    assert log_ratio.mean() < -1e-3  # pi_phi puts less mass on the actions already in D
    assert model.logger.name_to_value["props/n_minibatches"] == 8 * 2
    assert 0 < model.logger.name_to_value["props/kl_loss"] < 0.1
    # phi <- theta before every update: with no epochs the behaviour is the target again
    model.props_n_epochs = 0
    model.update_behavior()
    for phi, theta in zip(
        model.behavior_policy.parameters(), model.policy.parameters(), strict=True
    ):
        assert th.equal(phi, theta)


def test_behavior_update_stops_at_props_target_kl():
    model = small_props("Pendulum-v1", props_learning_rate=1e-2, props_target_kl=1e-6)
    model.learn(64)
    # the first minibatch starts at rho = 1 (phi = theta) and steps; the second is past delta
    assert model.logger.name_to_value["props/n_minibatches"] == 1


def test_behavior_update_skips_the_steps_about_to_leave_the_buffer(monkeypatch):
    model = small_props("CartPole-v1")
    windows: list[int] = []
    ordered = model._ordered_tensors

    def spy(order: np.ndarray):
        windows.append(len(order))
        return ordered(order)

    model.learn(32)
    monkeypatch.setattr(model, "_ordered_tensors", spy)
    model.learn(64, reset_num_timesteps=False)
    # per batch of 32 steps: a behaviour update after 16 steps, the recomputation of the
    # whole buffer for PPO (64 steps), a behaviour update after PPO; a behaviour update uses
    # the buffer minus its 16 oldest steps, which leave it before the next one
    assert windows == [48, 64, 48, 48, 64, 48]


def test_on_policy_sampling_never_updates_the_behavior_policy():
    model = small_props("CartPole-v1", behavior="on_policy")
    initial = [p.detach().clone() for p in model.behavior_policy.parameters()]
    model.learn(96)
    assert all(
        th.equal(a, b) for a, b in zip(initial, model.behavior_policy.parameters(), strict=True)
    )
    assert "props/n_minibatches" not in model.logger.name_to_value


# --------------------------------------------------------------------------------------------
# Sampling error
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_sampling_error_is_small_on_policy_and_large_off_policy(env_id):
    model = small_props(env_id)
    policy = model.policy
    env = gym.make(env_id)
    obs = np.stack([env.observation_space.sample() for _ in range(4000)]).astype(np.float32)
    obs_tensor = th.as_tensor(obs)
    with th.no_grad():
        on_policy = policy.get_distribution(obs_tensor).get_actions()
    if isinstance(model.action_space, spaces.Discrete):
        on_policy = on_policy.reshape(-1, 1).float()
        off_policy = th.zeros_like(on_policy)  # always the same action
    else:
        off_policy = on_policy + 1.0
    before = [p.detach().clone() for p in policy.parameters()]
    on = sampling_error(policy, obs_tensor, on_policy)  # maximum likelihood (L-BFGS)
    off = sampling_error(policy, obs_tensor, off_policy)
    assert 0 < on < 0.01
    assert off > 0.1
    # The paper's fit (Adam epochs) stops short of the maximum: lower, never above it.
    on_adam = sampling_error(policy, obs_tensor, on_policy, epochs=100, learning_rate=1e-2)
    off_adam = sampling_error(policy, obs_tensor, off_policy, epochs=100, learning_rate=1e-2)
    assert -1e-4 < on_adam <= on + 1e-6
    assert 0.1 < off_adam <= off + 1e-6
    assert all(th.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    with pytest.raises(ValueError, match="at least one"):
        sampling_error(policy, obs_tensor[:0], on_policy[:0])


@pytest.mark.filterwarnings("ignore:rich is experimental")
def test_sampling_error_is_logged_during_training():
    model = small_props("CartPole-v1", sampling_error_freq=2, sampling_error_epochs=5)
    model.learn(32, progress_bar=True)
    assert "props/sampling_error" in model.logger.name_to_value  # first update
    model.learn(32, reset_num_timesteps=False)  # second update: not measured
    assert "props/sampling_error" not in model.logger.name_to_value


def test_fixed_target_sampling_error_leaves_the_target_alone():
    model = small_props("Pendulum-v1", n_batches=3, n_steps=32, props_n_steps=16)
    target = [p.detach().clone() for p in model.policy.parameters()]
    errors = fixed_target_sampling_error(model, epochs=20)
    assert list(errors) == [1, 2, 3] and all(np.isfinite(list(errors.values())))
    assert model.rollout_buffer.size() == 96
    assert all(th.equal(a, b) for a, b in zip(target, model.policy.parameters(), strict=True))
    assert not all(
        th.equal(a, b) for a, b in zip(target, model.behavior_policy.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="n_batches must be between 1 and the model's"):
        fixed_target_sampling_error(model, n_batches=4)
    with pytest.raises(ValueError, match="measure_at must hold batch counts from 1 to 2"):
        fixed_target_sampling_error(model, n_batches=2, measure_at=[3])
    assert list(fixed_target_sampling_error(model, epochs=5, measure_at=[2])) == [2]


class OneStateEnv(gym.Env):
    """One state, four actions, no reward: the sampled action frequencies are all there is."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(4)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.array([0.5, -0.5], dtype=np.float32), {}

    def step(self, action: Any):
        return np.array([0.5, -0.5], dtype=np.float32), 0.0, False, False, {}


def test_props_sampling_beats_on_policy_sampling_for_a_fixed_target():
    errors: dict[str, list[float]] = {"on_policy": [], "props": []}
    for seed in range(3):
        for behavior in errors:
            model = PROPS(
                "MlpPolicy",
                OneStateEnv(),
                n_steps=64,
                n_batches=4,
                props_n_steps=32,
                behavior=behavior,
                props_learning_rate=3e-3,
                props_kl_coef=0.1,
                props_batch_size=64,
                props_n_epochs=8,
                policy_kwargs={"net_arch": [16]},
                device="cpu",
                seed=seed,
            )
            errors[behavior].append(fixed_target_sampling_error(model, measure_at=[4])[4])
    # 256 on-policy draws leave the action frequencies about 3/512 nats of KL off the target;
    # PROPS steers the next draws towards the under-sampled actions (measured: 87 % lower)
    assert all(p < o for p, o in zip(errors["props"], errors["on_policy"], strict=True))
    assert np.mean(errors["props"]) < 0.5 * np.mean(errors["on_policy"]), errors


# --------------------------------------------------------------------------------------------
# Arguments, save/load, spaces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"behavior": "ros"}, "behavior must be one of props, on_policy"),
        ({"n_batches": 0}, "n_batches must be a positive integer"),
        ({"props_n_steps": 24}, r"props_n_steps \(24\) must divide n_steps \(32\)"),
        ({"n_batches": 1, "props_n_steps": 32}, "must be smaller than n_steps"),
        ({"props_clip_range": 1.5}, "props_clip_range must be between 0 and 1"),
        ({"props_kl_coef": -0.1}, "props_kl_coef must be non-negative"),
        ({"props_target_kl": 0.0}, "props_target_kl must be None or positive"),
        ({"props_learning_rate": 0.0}, "props_learning_rate must be positive"),
        ({"batch_size": 1}, "batch_size must be at least 2 with normalize_advantage"),
        ({"sampling_error_freq": -1}, "sampling_error_freq must be a non-negative integer"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_props("CartPole-v1", **kwargs)


def test_dict_observations_are_a_clear_error():
    env = gym.make("CartPole-v1")
    dict_env = gym.wrappers.TransformObservation(
        env,
        lambda obs: {"state": obs},
        spaces.Dict({"state": env.observation_space}),
    )
    with pytest.raises(ValueError, match="PROPS does not support Dict observation spaces"):
        PROPS(MultiInputActorCriticPolicy, dict_env, device="cpu")


def test_save_load_round_trip(tmp_path):
    venv = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, seed=0))
    model = small_props(venv, props_learning_rate=lambda progress: 1e-3 * progress)
    model.learn(128)
    model.save(tmp_path / "props.zip")
    loaded = PROPS.load(tmp_path / "props.zip", env=venv, device="cpu")

    observations = np.stack([venv.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        loaded.predict(observations, deterministic=True)[0],
    )
    for name in ("policy", "behavior_policy"):
        for saved, restored in zip(
            getattr(model, name).state_dict().values(),
            getattr(loaded, name).state_dict().values(),
            strict=True,
        ):
            th.testing.assert_close(restored, saved, rtol=0, atol=0)
        saved_opt = getattr(model, name).optimizer.state_dict()
        restored_opt = getattr(loaded, name).optimizer.state_dict()
        assert saved_opt["state"], f"{name} optimizer took no step"
        for key, state in saved_opt["state"].items():
            for field, value in state.items():
                th.testing.assert_close(restored_opt["state"][key][field], value, rtol=0, atol=0)
    assert loaded.props_lr_schedule(0.5) == pytest.approx(5e-4)
    assert (loaded.n_batches, loaded.props_n_steps, loaded.behavior) == (2, 16, "props")
    loaded.learn(64)  # and training goes on


class ConstantActionEnv(gym.Env):
    """Reward 1 for action 0 in every dimension; a 2-D observation that counts steps."""

    observation_space = spaces.Box(0.0, 10.0, (2,), np.float32)

    def __init__(self, action_space: spaces.Space) -> None:
        self.action_space = action_space
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: Any):
        self.t += 1
        reward = float(np.all(np.asarray(action) == 0))
        return np.array([self.t, 1.0], dtype=np.float32), reward, False, False, {}


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "MultiDiscrete", "MultiBinary"])
def test_action_spaces_run_and_predict(env_id):
    if env_id in ("MultiDiscrete", "MultiBinary"):
        action_space = (
            spaces.MultiDiscrete([3, 2]) if env_id == "MultiDiscrete" else spaces.MultiBinary(3)
        )
        env: Any = gym.wrappers.TimeLimit(ConstantActionEnv(action_space), max_episode_steps=10)
    else:
        env = gym.make(env_id)
    model = small_props(env, sampling_error_freq=1, sampling_error_epochs=5)
    model.learn(64)
    logged = model.logger.name_to_value
    for key in ("props/sampling_error", "props/kl_loss", "train/value_loss", "train/approx_kl"):
        assert np.isfinite(logged[key]), key
    action, _ = model.predict(env.observation_space.sample(), deterministic=True)
    assert env.action_space.contains(action.astype(env.action_space.dtype))


# --------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------


def test_props_learns_cartpole():
    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PROPS(
        "MlpPolicy",
        venv,
        n_steps=128,
        props_n_steps=64,
        batch_size=128,
        props_batch_size=128,
        n_epochs=5,
        props_n_epochs=4,
        learning_rate=1e-3,
        props_learning_rate=1e-3,
        ent_coef=0.0,
        sampling_error_freq=0,
        device="cpu",
        seed=0,
    )
    model.learn(4096)
    env = gym.make("CartPole-v1")
    seeds = list(range(100, 110))
    learned = np.mean([e.episode_return for e in evaluate_policy_on_seeds(model, env, seeds)])
    random = np.mean(
        [e.episode_return for e in evaluate_policy_on_seeds(RandomPolicy(env, 0), env, seeds)]
    )
    # random play lasts about 22 steps; after 4,096 steps PROPS balances for 150 or more
    assert learned >= 150 and learned > 5 * random, (learned, random)
