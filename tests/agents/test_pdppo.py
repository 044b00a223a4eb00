"""PDPPO: returns and advantages by hand, the env contract, save/load, both VecEnv paths,
learning on a tiny lot-sizing instance, and Discrete / Box toy envs."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from opsrl.agents.pdppo import PDPPO, DualCriticPolicy, PostDecisionRolloutBuffer
from opsrl.baselines import RandomPolicy
from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.envs.lot_sizing.vec import LotSizingVecEnv
from opsrl.evaluation import evaluate_policy_on_seeds

GAMMA = 0.5
LAMBDA = 0.5


# --------------------------------------------------------------------------------------------
# A toy env with post-decision states: order stock (deterministic), then random demand.
# --------------------------------------------------------------------------------------------


class ToyInventoryWithoutPostDecision(gym.Env):
    """One item: order q units at 1 per unit (the decision), then demand U{0..3} is served
    from stock; 2 per unit short, 0.1 per unit held. Stock is capped at 10."""

    def __init__(self, continuous: bool = False) -> None:
        self.continuous = continuous
        self.action_space = (
            spaces.Box(0.0, 3.0, (1,), np.float32) if continuous else spaces.Discrete(4)
        )
        self.observation_space = spaces.Box(0.0, 10.0, (1,), np.float32)
        self.stock = 0.0

    def _decide(self, action: Any) -> tuple[np.ndarray, float]:
        quantity = float(np.asarray(action).reshape(-1)[0])
        if self.continuous and not 0.0 <= quantity <= 3.0:
            raise ValueError(f"unclipped action {quantity}")
        post_stock = min(self.stock + quantity, 10.0)
        return np.array([post_stock], dtype=np.float32), -quantity

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.stock = float(self.np_random.integers(0, 4))
        return np.array([self.stock], dtype=np.float32), {}

    def step(self, action: Any):
        post_obs, post_reward = self._decide(action)
        demand = float(self.np_random.integers(0, 4))
        short = max(demand - float(post_obs[0]), 0.0)
        self.stock = max(float(post_obs[0]) - demand, 0.0)
        reward = post_reward - 2.0 * short - 0.1 * self.stock
        return np.array([self.stock], dtype=np.float32), reward, False, False, {}


class ToyInventoryEnv(ToyInventoryWithoutPostDecision):
    """The toy with the post-decision contract: the order's stock and cost, before demand."""

    def post_decision(self, action: Any) -> tuple[np.ndarray, float]:
        return self._decide(action)


def toy_venv(continuous: bool, n_envs: int = 2) -> DummyVecEnv:
    return DummyVecEnv(
        [
            lambda: gym.wrappers.TimeLimit(ToyInventoryEnv(continuous), max_episode_steps=10)
            for _ in range(n_envs)
        ]
    )


# --------------------------------------------------------------------------------------------
# Returns and advantages, computed by hand
# --------------------------------------------------------------------------------------------

# Two envs, three steps, gamma = lambda = 0.5.
# env 0: an episode ends after step 1 (step 2 starts a new one), which goes on past the cut.
# env 1: its episode is truncated by a time limit at step 0 (bootstrap values V = -8,
#        V^x = -4 from the terminal observation) and the next one terminates at step 2.
REWARDS = np.array([[-3.0, -2.0], [-4.0, -2.0], [-5.0, -2.0]])  # total r, (step, env)
POST_REWARDS = np.array([[-1.0, -1.0], [0.0, -1.0], [-2.0, 0.0]])  # r^x
VALUES = np.array([[-3.0, -1.0], [-2.0, -2.0], [-4.0, -3.0]])  # V(s)
POST_VALUES = np.array([[-1.0, -2.0], [-1.0, 0.0], [-2.0, -1.0]])  # V^x(s^x)
EPISODE_STARTS = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
LAST_VALUES = np.array([-6.0, -10.0])  # V(s_T); env 1's is masked by its terminal step
LAST_POST_VALUES = np.array([-2.0, -10.0])
DONES = np.array([False, True])


def filled_buffer(
    returns: str, advantage: str, gae_lambda: float = LAMBDA
) -> PostDecisionRolloutBuffer:
    buffer = PostDecisionRolloutBuffer(
        3,
        spaces.Box(-1.0, 1.0, (1,), np.float32),
        spaces.Discrete(2),
        device="cpu",
        gae_lambda=gae_lambda,
        gamma=GAMMA,
        n_envs=2,
        returns=returns,
        advantage=advantage,
    )
    for step in range(3):
        truncated = step == 0
        buffer.add(
            np.zeros((2, 1), dtype=np.float32),
            np.zeros(2, dtype=np.int64),
            REWARDS[step],
            EPISODE_STARTS[step],
            th.tensor(VALUES[step]).reshape(2, 1),
            th.zeros(2),
            post_obs=np.zeros((2, 1), dtype=np.float32),
            post_reward=POST_REWARDS[step],
            post_value=th.tensor(POST_VALUES[step]).reshape(2, 1),
            terminal_value=np.array([0.0, -8.0]) if truncated else None,
            terminal_post_value=np.array([0.0, -4.0]) if truncated else None,
        )
    buffer.compute_returns_and_advantage(
        th.tensor(LAST_VALUES), DONES, last_post_values=th.tensor(LAST_POST_VALUES)
    )
    return buffer


def columns(env0: list[float], env1: list[float]) -> np.ndarray:
    return np.stack([env0, env1], axis=1)


def test_buffer_stores_pre_decision_rewards():
    buffer = filled_buffer("mc", "max")
    np.testing.assert_allclose(buffer.rewards, REWARDS - POST_REWARDS)
    np.testing.assert_allclose(buffer.post_rewards, POST_REWARDS)


def test_monte_carlo_returns_and_max_advantage_by_hand():
    g = GAMMA
    buffer = filled_buffer("mc", "max")
    # pre-decision rewards r - r^x: env 0 [-2, -4, -3], env 1 [-1, -1, -2]
    pre_returns = columns(
        [-2 + g * -4, -4, -3 + g * -6],  # episode boundary after step 1; cut bootstrap V = -6
        [-1 + g * -8, -1 + g * -2, -2],  # truncation bootstrap V = -8; terminal at the end
    )
    post_returns = columns(
        [-1 + g * 0, 0, -2 + g * -2],  # cut bootstrap V^x = -2
        [-1 + g * -4, -1 + g * 0, 0],  # truncation bootstrap V^x = -4
    )
    np.testing.assert_allclose(buffer.returns, pre_returns)
    np.testing.assert_allclose(buffer.post_returns, post_returns)
    np.testing.assert_allclose(buffer.pre_advantages, pre_returns - VALUES)
    np.testing.assert_allclose(buffer.post_advantages, post_returns - POST_VALUES)
    # max(R - V, R^x - V^x): env 0 max([-1, -2, -2], [0, 1, -1]), env 1 max([-4, 0, 1], [-1,
    # -1, 1])
    np.testing.assert_allclose(buffer.advantages, columns([0, 1, -1], [-1, 0, 1]))


def test_monte_carlo_returns_and_min_advantage_by_hand():
    g = GAMMA
    buffer = filled_buffer("mc", "min")
    # total rewards; bootstraps with min(V, V^x): cut min(-6, -2), truncation min(-8, -4)
    total_returns = columns([-3 + g * -4, -4, -5 + g * -6], [-2 + g * -8, -2 + g * -2, -2])
    min_values = columns([-3, -2, -4], [-2, -2, -3])
    np.testing.assert_allclose(buffer.returns, total_returns)
    np.testing.assert_allclose(buffer.post_returns, total_returns)
    np.testing.assert_allclose(buffer.advantages, total_returns - min_values)
    np.testing.assert_allclose(buffer.advantages, columns([-2, -2, -4], [-4, -1, 1]))


def test_gae_returns_and_max_advantage_by_hand():
    g, lam = GAMMA, LAMBDA
    buffer = filled_buffer("gae", "max")
    # pre-decision stream, env 0: deltas -2 (step 2, bootstrap -6), -2 (episode ends), 0
    pre_env0 = [0 + g * lam * -2, -4 - (-2), -3 + g * -6 - (-4)]
    # env 1: step 2 terminal (delta 1), step 1 delta -0.5, step 0 truncated (r + g * -8 - V)
    pre_env1 = [-1 + g * -8 - (-1), (-1 + g * -3 - (-2)) + g * lam * 1, -2 - (-3)]
    post_env0 = [(-1 + g * -1 - (-1)) + g * lam * 1, 0 - (-1), -2 + g * -2 - (-2)]
    post_env1 = [-1 + g * -4 - (-2), (-1 + g * -1 - 0) + g * lam * 1, 0 - (-1)]
    np.testing.assert_allclose(buffer.pre_advantages, columns(pre_env0, pre_env1))
    np.testing.assert_allclose(buffer.post_advantages, columns(post_env0, post_env1))
    np.testing.assert_allclose(buffer.returns, columns(pre_env0, pre_env1) + VALUES)
    np.testing.assert_allclose(buffer.post_returns, columns(post_env0, post_env1) + POST_VALUES)
    np.testing.assert_allclose(buffer.advantages, columns([-0.25, 1, -1], [-1, -0.25, 1]))


def test_gae_min_advantage_by_hand():
    g, lam = GAMMA, LAMBDA
    buffer = filled_buffer("gae", "min")
    env0 = [(-3 + g * -2 - (-3)) + g * lam * -2, -4 - (-2), -5 + g * -6 - (-4)]
    env1 = [-2 + g * -8 - (-2), (-2 + g * -3 - (-2)) + g * lam * 1, -2 - (-3)]
    np.testing.assert_allclose(buffer.advantages, columns(env0, env1))
    np.testing.assert_allclose(buffer.advantages, columns([-1.5, -2, -4], [-4, -1.25, 1]))
    min_values = np.minimum(VALUES, POST_VALUES)
    np.testing.assert_allclose(buffer.returns, buffer.advantages + min_values)


def test_gae_with_lambda_one_is_monte_carlo():
    mc = filled_buffer("mc", "max")
    gae = filled_buffer("gae", "max", gae_lambda=1.0)
    np.testing.assert_allclose(gae.returns, mc.returns, rtol=1e-6)
    np.testing.assert_allclose(gae.post_returns, mc.post_returns, rtol=1e-6)
    np.testing.assert_allclose(gae.advantages, mc.advantages, atol=1e-6)


# --------------------------------------------------------------------------------------------
# The env contract and the arguments
# --------------------------------------------------------------------------------------------


def test_env_without_post_decision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"post_decision\(action\) -> \(post_obs, post_reward\)"):
        PDPPO("MlpPolicy", "CartPole-v1", device="cpu")
    model = PDPPO("MlpPolicy", toy_venv(False), device="cpu")
    with pytest.raises(ValueError, match="opsrl/LotSizing-v0 has one"):
        model.set_env(DummyVecEnv([ToyInventoryWithoutPostDecision] * 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"returns": "td"}, "returns must be one of mc, gae"),
        ({"advantage": "mean"}, "advantage must be one of max, min"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be None or positive"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PDPPO("MlpPolicy", toy_venv(False), device="cpu", **kwargs)


def test_three_optimizers_each_train_its_own_network():
    model = PDPPO(
        "MlpPolicy",
        toy_venv(False),
        learning_rate=0.0,  # the actor must not move
        critic_learning_rate=1e-2,
        n_steps=16,
        n_epochs=2,
        device="cpu",
        seed=0,
    )
    policy = model.policy
    actor = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    critic = [*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()]
    post_critic = [*policy.post_value_mlp.parameters(), *policy.post_value_net.parameters()]
    groups = [
        {id(p) for group in opt.param_groups for p in group["params"]} for opt in policy.optimizers
    ]
    assert groups == [{id(p) for p in params} for params in (actor, critic, post_critic)]
    before = [[p.detach().clone() for p in params] for params in (actor, critic, post_critic)]
    model.learn(32)
    moved = [
        any(not th.equal(a, b) for a, b in zip(old, params, strict=True))
        for old, params in zip(before, (actor, critic, post_critic), strict=True)
    ]
    assert moved == [False, True, True]
    logged = model.logger.name_to_value
    for key in (
        "train/value_loss",
        "train/post_value_loss",
        "train/policy_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/clip_fraction",
        "train/explained_variance",
        "train/post_explained_variance",
    ):
        assert key in logged, key


def test_default_networks_follow_the_paper():
    model = PDPPO("MlpPolicy", toy_venv(False), device="cpu")
    policy = model.policy
    assert isinstance(policy, DualCriticPolicy)
    assert [type(m).__name__ for m in policy.mlp_extractor.policy_net] == ["Linear", "ReLU"] * 2
    assert [type(m).__name__ for m in policy.mlp_extractor.value_net] == ["Linear", "Tanh"] * 2
    assert [type(m).__name__ for m in policy.post_value_mlp] == ["Linear", "Tanh"] * 2
    assert policy.mlp_extractor.latent_dim_pi == 128
    assert (model.gamma, model.n_epochs, model.batch_size, model.n_steps) == (0.9, 40, None, 400)
    assert (model.ent_coef, model.max_grad_norm, model.normalize_advantage) == (0.001, None, False)
    custom = PDPPO(
        "MlpPolicy",
        toy_venv(False),
        policy_kwargs={"net_arch": {"pi": [32], "vf": [16], "post_vf": [8]}},
        device="cpu",
    )
    assert custom.policy.mlp_extractor.latent_dim_pi == 32
    assert custom.policy.post_value_net.in_features == 8


# --------------------------------------------------------------------------------------------
# save/load
# --------------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    venv = VecMonitor(LotSizingVecEnv(4, seed=0, instance="3x2"))
    model = PDPPO(
        "MlpPolicy",
        venv,
        n_steps=16,
        n_epochs=2,
        critic_learning_rate=lambda progress: 1e-3 * progress,
        device="cpu",
        seed=0,
    )
    model.learn(64)
    model.save(tmp_path / "pdppo.zip")
    loaded = PDPPO.load(tmp_path / "pdppo.zip", env=venv, device="cpu")

    env = LotSizingEnv(instance="3x2")
    obs, _ = env.reset(seed=3)
    observations = np.stack([obs] + [env.observation_space.sample() for _ in range(4)])
    np.testing.assert_array_equal(
        model.predict(observations, deterministic=True)[0],
        loaded.predict(observations, deterministic=True)[0],
    )
    obs_tensor = th.as_tensor(observations)
    with th.no_grad():
        for method in ("predict_values", "predict_post_values"):
            th.testing.assert_close(
                getattr(model.policy, method)(obs_tensor),
                getattr(loaded.policy, method)(obs_tensor),
                rtol=0,
                atol=0,
            )
    for saved_opt, loaded_opt in zip(
        model.policy.optimizers, loaded.policy.optimizers, strict=True
    ):
        saved, restored = saved_opt.state_dict(), loaded_opt.state_dict()
        assert saved["state"], "optimizer took no step"
        assert saved["state"].keys() == restored["state"].keys()
        for key, state in saved["state"].items():
            for name, value in state.items():
                th.testing.assert_close(restored["state"][key][name], value, rtol=0, atol=0)
        assert [g["lr"] for g in saved["param_groups"]] == [
            g["lr"] for g in restored["param_groups"]
        ]
    assert loaded.critic_lr_schedule(0.5) == pytest.approx(5e-4)
    assert (loaded.returns, loaded.advantage) == (model.returns, model.advantage)
    loaded.learn(64)  # and training goes on


# --------------------------------------------------------------------------------------------
# Both VecEnv paths
# --------------------------------------------------------------------------------------------


def test_dummy_and_batched_envs_give_the_same_post_decisions():
    n_envs, n_steps = 3, 8

    def trained_model(venv):
        model = PDPPO("MlpPolicy", venv, n_steps=n_steps, n_epochs=1, device="cpu", seed=5)
        model.learn(n_steps * n_envs)
        return model

    dummy = DummyVecEnv([lambda: LotSizingEnv(instance="3x2") for _ in range(n_envs)])
    batched = VecMonitor(LotSizingVecEnv(n_envs, instance="3x2"))
    by_dummy, by_batched = trained_model(dummy), trained_model(batched)
    for name in ("observations", "actions", "post_observations", "post_rewards", "rewards"):
        np.testing.assert_allclose(
            getattr(by_dummy.rollout_buffer, name),
            getattr(by_batched.rollout_buffer, name),
            rtol=1e-6,
            err_msg=name,
        )
    assert np.any(by_batched.rollout_buffer.post_rewards < 0)  # some setups were paid

    # The same actions from the same states give the same post decisions.
    dummy.seed(11)
    batched.seed(11)
    dummy.reset()
    batched.reset()
    actions = np.array([[1, 2], [0, 3], [2, 2]])
    post_dummy = by_dummy._post_decisions(dummy, actions, by_dummy._post_decision_method(dummy))
    post_batched = by_batched._post_decisions(
        batched, actions, by_batched._post_decision_method(batched)
    )
    for a, b in zip(post_dummy, post_batched, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_collected_values_are_the_critics_at_collection_time():
    venv = VecMonitor(LotSizingVecEnv(4, seed=0, instance="3x2"))
    model = PDPPO("MlpPolicy", venv, n_steps=30, device="cpu", seed=0)
    _, callback = model._setup_learn(120, None)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    obs = th.as_tensor(buffer.observations.reshape(-1, buffer.obs_shape[0]))
    post_obs = th.as_tensor(buffer.post_observations.reshape(-1, buffer.obs_shape[0]))
    with th.no_grad():
        values = model.policy.predict_values(obs).numpy().reshape(30, 4)
        post_values = model.policy.predict_post_values(post_obs).numpy().reshape(30, 4)
    np.testing.assert_allclose(buffer.values, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(buffer.post_values, post_values, rtol=1e-5, atol=1e-5)
    # The rollout (30 of 100 periods) cuts the episodes, so both streams are bootstrapped: the
    # pre-decision one with V(s_T), the post-decision one with V^x of a sampled next decision.
    with th.no_grad():
        last_values = model.policy.predict_values(th.as_tensor(model._last_obs)).numpy().ravel()
    np.testing.assert_allclose(
        buffer.returns[-1], buffer.rewards[-1] + model.gamma * last_values, rtol=1e-5
    )
    assert np.all(buffer.post_returns[-1] != buffer.post_rewards[-1])


def test_vec_normalize_is_applied_to_post_decisions():
    venv = VecNormalize(VecMonitor(LotSizingVecEnv(2, seed=0, instance="3x2")), gamma=0.9)
    model = PDPPO("MlpPolicy", venv, n_steps=8, n_epochs=1, device="cpu", seed=0)
    model.learn(16)
    actions = np.array([[1, 1], [2, 0]])
    raw_obs, raw_rewards = venv.venv.venv.post_decision(actions)
    post_obs, post_rewards = model._post_decisions(venv, actions, model._post_decision_method(venv))
    np.testing.assert_allclose(post_obs, venv.normalize_obs(raw_obs))
    np.testing.assert_allclose(post_rewards, venv.normalize_reward(raw_rewards))


# --------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------


def test_pdppo_beats_random_on_tiny_lot_sizing():
    venv = VecMonitor(LotSizingVecEnv(8, seed=0, instance="3x2"))
    model = PDPPO("MlpPolicy", venv, n_steps=100, n_epochs=10, device="cpu", seed=0)
    model.learn(4_000)
    env = LotSizingEnv(instance="3x2")
    seeds = list(range(100, 110))
    learned = np.mean([e.episode_return for e in evaluate_policy_on_seeds(model, env, seeds)])
    random = np.mean(
        [e.episode_return for e in evaluate_policy_on_seeds(RandomPolicy(env, 0), env, seeds)]
    )
    assert learned > random + 0.2 * abs(random), (learned, random)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "box"])
@pytest.mark.parametrize("variant", [("mc", "max"), ("gae", "min")], ids=["mc-max", "gae-min"])
def test_toy_envs_learn_and_predict(continuous, variant):
    returns, advantage = variant
    model = PDPPO(
        "MlpPolicy",
        toy_venv(continuous),
        n_steps=16,  # the time limit (10 steps) truncates episodes inside rollouts
        n_epochs=2,
        batch_size=16,
        returns=returns,
        advantage=advantage,
        max_grad_norm=0.5,
        normalize_advantage=True,
        device="cpu",
        seed=0,
    )
    model.learn(64)
    buffer = model.rollout_buffer
    assert np.any(buffer.terminal_values != 0)  # truncation bootstraps were stored
    assert np.all(buffer.post_observations >= 0)
    action, _ = model.predict(np.array([2.0], dtype=np.float32), deterministic=True)
    assert model.action_space.contains(action.astype(model.action_space.dtype))
    assert np.isfinite(model.logger.name_to_value["train/value_loss"])
