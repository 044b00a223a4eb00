"""MDPO, on- and off-policy: the KL term against the closed-form Gaussian KL by hand, the t_k
schedule, the clipped value loss, separate actor and critic optimizers, the old-policy
refreshes of the off-policy agent and its actor loss, save/load, bad arguments, learning."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from opsrl.agents.mdpo import (
    MDPO,
    MDPOPolicy,
    OffPolicyMDPO,
    clipped_value_loss,
    mirror_descent_terms,
)

# --------------------------------------------------------------------------------------------
# A linear Gaussian policy with known parameters: mu(s) = W s + b, sigma = exp(log_std)
# --------------------------------------------------------------------------------------------

OBS_SPACE = spaces.Box(-10.0, 10.0, (3,), np.float32)
ACT_SPACE = spaces.Box(-1.0, 1.0, (2,), np.float32)
OBSERVATIONS = np.array(
    [[0.5, -1.0, 2.0], [0.0, 0.3, -0.7], [1.5, 1.0, 0.0], [-2.0, 0.4, 0.9]], dtype=np.float32
)
ACTIONS = np.array([[0.2, -0.4], [1.1, 0.0], [-0.6, 0.9], [0.3, 0.3]], dtype=np.float32)
ADVANTAGES = np.array([1.0, -0.5, 2.0, -1.5], dtype=np.float32)


def linear_policy(weight: np.ndarray, bias: np.ndarray, log_std: np.ndarray) -> MDPOPolicy:
    """An MDPOPolicy whose Gaussian has mean W s + b (no hidden actor layers)."""
    policy = MDPOPolicy(
        OBS_SPACE, ACT_SPACE, lambda _: 1e-3, net_arch={"pi": [], "vf": [8]}, ortho_init=False
    )
    with th.no_grad():
        policy.action_net.weight.copy_(th.as_tensor(weight))
        policy.action_net.bias.copy_(th.as_tensor(bias))
        policy.log_std.copy_(th.as_tensor(log_std))
    return policy


NEW = (
    np.array([[0.3, -0.2, 0.1], [0.0, 0.5, -0.4]]),
    np.array([0.1, -0.3]),
    np.array([-0.2, 0.4]),
)
OLD = (
    np.array([[0.1, 0.0, 0.2], [-0.3, 0.2, 0.0]]),
    np.array([0.0, 0.2]),
    np.array([0.3, -0.5]),
)


def gaussian_by_hand(params: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    weight, bias, log_std = params
    return OBSERVATIONS.astype(np.float64) @ weight.T + bias, np.exp(log_std) * np.ones((4, 2))


def log_density_by_hand(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    z = (ACTIONS - mean) / std
    return np.sum(-0.5 * z**2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=1)


def kl_by_hand(p: tuple[np.ndarray, ...], q: tuple[np.ndarray, ...]) -> np.ndarray:
    """KL(N_p || N_q) per state, diagonal Gaussians, summed over action dimensions."""
    mean_p, std_p = gaussian_by_hand(p)
    mean_q, std_q = gaussian_by_hand(q)
    per_dim = np.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5
    return per_dim.sum(axis=1)


def test_kl_term_is_the_closed_form_gaussian_kl_new_to_old():
    new_policy, old_policy = linear_policy(*NEW), linear_policy(*OLD)
    obs = th.as_tensor(OBSERVATIONS)
    with th.no_grad():
        old_distribution = old_policy.get_distribution(obs)
        old_log_prob = old_distribution.log_prob(th.as_tensor(ACTIONS))
    surrogate, kl = mirror_descent_terms(
        new_policy.get_distribution(obs),
        old_distribution,
        th.as_tensor(ACTIONS),
        old_log_prob,
        th.as_tensor(ADVANTAGES),
    )
    expected_kl = kl_by_hand(NEW, OLD).mean()
    assert kl.item() == pytest.approx(expected_kl, rel=1e-5)
    # the other direction differs on this batch: the test tells them apart
    assert abs(kl_by_hand(OLD, NEW).mean() - expected_kl) > 0.1
    ratio = np.exp(log_density_by_hand(*gaussian_by_hand(NEW)) - old_log_prob.numpy())
    assert surrogate.item() == pytest.approx(np.mean(ratio * ADVANTAGES), rel=1e-5)
    np.testing.assert_allclose(
        old_log_prob.numpy(), log_density_by_hand(*gaussian_by_hand(OLD)), rtol=1e-5
    )


class OneStepBox(gym.Env):
    """Observations from OBSERVATIONS, 2-d Box actions, reward -|a|^2; episodes of 4 steps."""

    observation_space = OBS_SPACE
    action_space = ACT_SPACE

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return OBSERVATIONS[0], {}

    def step(self, action):
        self.t += 1
        reward = -float(np.sum(np.square(action)))
        return OBSERVATIONS[self.t % 4], reward, self.t >= 4, False, {}


class Recording(MDPO):
    """MDPO that keeps what each train() logged and the policy's Gaussian around it."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self.records: list[dict[str, float]] = []
        self.gaussians: list[tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]] = []

    def train(self) -> None:
        obs = th.as_tensor(OBSERVATIONS)
        with th.no_grad():
            before = self.policy.get_distribution(obs).distribution
            mean_before, std_before = before.mean.clone(), before.stddev.clone()
        super().train()
        with th.no_grad():
            after = self.policy.get_distribution(obs).distribution
        self.gaussians.append((mean_before, std_before, after.mean.clone(), after.stddev.clone()))
        self.records.append(dict(self.logger.name_to_value))


def test_train_logs_the_closed_form_kl_between_the_updated_and_the_rollout_policy():
    # A linear actor: the 4 observations the env cycles through make up every rollout, so the
    # logged KL (mean over the rollout) is the mean over those 4 states.
    model = Recording(
        "MlpPolicy",
        OneStepBox(),
        n_steps=8,
        n_policy_steps=3,
        learning_rate=0.05,
        policy_kwargs={"net_arch": {"pi": [], "vf": [8]}},
        seed=0,
        device="cpu",
    )
    model.learn(16)
    assert len(model.records) == 2
    for (mean_old, std_old, mean_new, std_new), record in zip(
        model.gaussians, model.records, strict=True
    ):
        mean_old, std_old = mean_old.double().numpy(), std_old.double().numpy()
        mean_new, std_new = mean_new.double().numpy(), std_new.double().numpy()
        per_dim = (
            np.log(std_old / std_new)
            + (std_new**2 + (mean_new - mean_old) ** 2) / (2 * std_old**2)
            - 0.5
        )
        expected = per_dim.sum(axis=1).mean()
        assert expected > 1e-4  # the policy moved
        assert record["train/kl_divergence"] == pytest.approx(expected, rel=1e-4)
        assert record["train/policy_loss"] == pytest.approx(
            -record["train/policy_objective"]
            + record["train/kl_coef"] * record["train/kl_divergence"],
            rel=1e-5,
        )


# --------------------------------------------------------------------------------------------
# t_k schedule
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "kwargs", "expected"),
    [
        (32, {}, [1.0, 0.75, 0.5, 0.25]),  # K = 4 iterations: t_k = 1 - (k - 1) / 4
        (25, {"min_step_size": 0.1}, [1.0, 1 - 8 / 25, 1 - 16 / 25, 0.1]),  # floored
        (24, {"kl_coef": 4.0}, [0.25, 0.25, 0.25]),  # fixed KL weight
    ],
)
def test_step_size_schedule(total, kwargs, expected):
    model = Recording("MlpPolicy", OneStepBox(), n_steps=8, seed=0, device="cpu", **kwargs)
    model.learn(total)
    step_sizes = [record["train/step_size"] for record in model.records]
    assert step_sizes == pytest.approx(expected)
    kl_coefs = [record["train/kl_coef"] for record in model.records]
    assert kl_coefs == pytest.approx([1 / t for t in expected])


# --------------------------------------------------------------------------------------------
# Critic: clipped loss, separate optimizer
# --------------------------------------------------------------------------------------------


def test_clipped_value_loss_by_hand():
    values = th.tensor([1.0, 0.0, -2.0, 0.5])
    old_values = th.tensor([0.5, 0.5, -1.0, 0.5])
    returns = th.tensor([3.0, -1.0, 0.0, 0.0])
    # V_clip = old + clip(V - old, -0.2, 0.2) = [0.7, 0.3, -1.2, 0.5]
    unclipped = np.array([4.0, 1.0, 4.0, 0.25])
    clipped = np.array([2.3**2, 1.3**2, 1.2**2, 0.25])
    loss = clipped_value_loss(values, old_values, returns, 0.2)
    assert loss.item() == pytest.approx(np.maximum(unclipped, clipped).mean())
    assert clipped_value_loss(values, old_values, returns, None).item() == pytest.approx(
        unclipped.mean()
    )


def test_actor_and_critic_have_separate_networks_and_optimizers():
    model = MDPO("MlpPolicy", OneStepBox(), n_steps=8, seed=0, device="cpu")
    policy = model.policy
    actor = {id(p) for group in policy.optimizer.param_groups for p in group["params"]}
    critic = {id(p) for group in policy.critic_optimizer.param_groups for p in group["params"]}
    assert actor and critic and not actor & critic
    assert actor | critic == {id(p) for p in policy.parameters()}
    assert policy.pi_features_extractor is not policy.vf_features_extractor


@pytest.mark.parametrize("frozen", ["actor", "critic"])
def test_each_optimizer_moves_only_its_network(frozen):
    rates = {"learning_rate": 0.0} if frozen == "actor" else {"critic_learning_rate": 0.0}
    model = MDPO("MlpPolicy", OneStepBox(), n_steps=8, seed=0, device="cpu", **rates)
    actor_before = [p.detach().clone() for p in model.policy.actor_parameters()]
    critic_before = [p.detach().clone() for p in model.policy.critic_parameters()]
    model.learn(16)
    actor_same = all(
        th.equal(a, b) for a, b in zip(actor_before, model.policy.actor_parameters(), strict=True)
    )
    critic_same = all(
        th.equal(a, b) for a, b in zip(critic_before, model.policy.critic_parameters(), strict=True)
    )
    assert (actor_same, critic_same) == ((True, False) if frozen == "actor" else (False, True))


# --------------------------------------------------------------------------------------------
# Off-policy MDPO: old-policy refreshes and the actor loss
# --------------------------------------------------------------------------------------------


class RecordingSyncs(OffPolicyMDPO):
    """Off-policy MDPO that remembers when it refreshed the old policy, and the actor then."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self.sync_updates: list[int] = []
        self.last_synced_actor: list[th.Tensor] = []

    def sync_old_policy(self) -> None:
        super().sync_old_policy()
        self.sync_updates.append(self._n_updates)
        self.last_synced_actor = [p.detach().clone() for p in self.actor.parameters()]


def test_old_policy_is_refreshed_every_m_gradient_steps():
    model = RecordingSyncs(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=10,
        batch_size=8,
        old_policy_interval=5,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    model.learn(37)
    n_updates = model._n_updates
    assert n_updates == 27  # one gradient step per env step after the first 10
    assert model.old_policy_syncs == math.ceil(n_updates / 5) == 6
    assert model.sync_updates == [0, 5, 10, 15, 20, 25]
    assert model.logger.name_to_value["train/old_policy_syncs"] == 6
    # the old actor is the actor as it was at the last refresh, two steps ago
    old = list(model.actor_old.parameters())
    assert all(th.equal(a, b) for a, b in zip(old, model.last_synced_actor, strict=True))
    assert not all(th.equal(a, b) for a, b in zip(old, model.actor.parameters(), strict=True))
    assert not any(p.requires_grad for p in old)
    assert all(
        id(p) not in {id(q) for g in model.actor.optimizer.param_groups for q in g["params"]}
        for p in old
    )


def off_policy_model(**kwargs) -> OffPolicyMDPO:
    return OffPolicyMDPO(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=16,
        batch_size=16,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
        **kwargs,
    )


def test_off_policy_actor_loss_is_the_mdpo_loss():
    model = off_policy_model(kl_coef=2.0, ent_coef=0.3, reg_coef=0.01, old_policy_interval=7)
    model.learn(40)  # the actor has moved away from the old copy
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(32)]))
    ent_coef = th.tensor(0.3)
    loss, parts = model.actor_loss(obs, ent_coef)
    actions = parts["actions"]
    with th.no_grad():
        old_mean, old_log_std, _ = model.actor_old.get_action_dist_params(obs)
        old_log_prob = model.actor_old.action_dist.proba_distribution(
            old_mean, old_log_std
        ).log_prob(actions)  # through atanh, independently of the loss's own path
        mean, log_std, _ = model.actor.get_action_dist_params(obs)
        log_prob = model.actor.action_dist.proba_distribution(mean, log_std).log_prob(actions)
        q1 = model.critic.q1_forward(obs, actions).flatten()
    np.testing.assert_allclose(parts["old_log_prob"], old_log_prob, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(parts["log_prob"], log_prob, rtol=1e-3, atol=1e-3)
    expected = (2.0 * (log_prob - old_log_prob) + 0.3 * old_log_prob - q1).mean() + 0.01 * (
        mean.pow(2).mean() + log_std.pow(2).mean()
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-3, abs=1e-3)
    assert parts["kl"].item() == pytest.approx((log_prob - old_log_prob).mean().item(), abs=1e-3)

    # right after a refresh the KL sample is 0 and the loss is SAC's (with Q1)
    model.sync_old_policy()
    loss, parts = model.actor_loss(obs, ent_coef)
    assert parts["kl"].item() == 0.0
    with th.no_grad():
        q1 = model.critic.q1_forward(obs, parts["actions"]).flatten()
    sac_like = (0.3 * parts["log_prob"] - q1).mean() + 0.01 * parts["regulariser"]
    assert loss.item() == pytest.approx(sac_like.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in model.actor_old.parameters())


def test_off_policy_learns_with_a_learned_entropy_coefficient():
    model = off_policy_model(ent_coef="auto_0.5", old_policy_interval=10)
    model.learn(60)
    values = model.logger.name_to_value
    assert values["train/ent_coef"] != pytest.approx(0.5)  # it moved
    assert np.isfinite(values["train/actor_loss"]) and np.isfinite(values["train/critic_loss"])


# --------------------------------------------------------------------------------------------
# Save / load
# --------------------------------------------------------------------------------------------


def test_on_policy_save_load_round_trip(tmp_path):
    model = MDPO("MlpPolicy", OneStepBox(), n_steps=8, seed=0, device="cpu")
    model.learn(16)
    model.save(tmp_path / "mdpo.zip")
    loaded = MDPO.load(tmp_path / "mdpo.zip", device="cpu")
    obs = OBSERVATIONS
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    for optimizer in ("optimizer", "critic_optimizer"):
        saved = getattr(model.policy, optimizer).state_dict()["state"]
        restored = getattr(loaded.policy, optimizer).state_dict()["state"]
        assert saved.keys() == restored.keys() and saved
        for key in saved:
            assert th.equal(saved[key]["exp_avg"], restored[key]["exp_avg"])
    assert loaded._n_updates == model._n_updates == 2
    loaded.set_env(make_vec_env(OneStepBox, n_envs=1))
    loaded.learn(8, reset_num_timesteps=False)  # training goes on from the loaded state


def test_off_policy_save_load_round_trip(tmp_path):
    model = off_policy_model(old_policy_interval=4)
    model.learn(30)
    model.save(tmp_path / "mdpo_off.zip")
    loaded = OffPolicyMDPO.load(tmp_path / "mdpo_off.zip", device="cpu")
    obs = np.stack([model.observation_space.sample() for _ in range(5)])
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert loaded.old_policy_syncs == model.old_policy_syncs == 4
    assert loaded.actor_old is loaded.policy.actor_old
    for a, b in zip(model.actor_old.parameters(), loaded.actor_old.parameters(), strict=True):
        assert th.equal(a, b)
    assert (loaded.kl_coef, loaded.old_policy_interval) == (model.kl_coef, 4)


# --------------------------------------------------------------------------------------------
# Arguments and spaces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_policy_steps": 0}, "n_policy_steps"),
        ({"n_critic_epochs": 0}, "n_critic_epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"kl_coef": 0.0}, "kl_coef"),
        ({"min_step_size": 0.0}, "min_step_size"),
        ({"clip_range_vf": -0.1}, "clip_range_vf"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ],
)
def test_on_policy_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MDPO("MlpPolicy", OneStepBox(), n_steps=8, device="cpu", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"old_policy_interval": 0}, "old_policy_interval"),
        ({"kl_coef": 0.0}, "kl_coef"),
        ({"reg_coef": -1.0}, "reg_coef"),
        ({"ent_coef": -0.2}, "ent_coef"),
        ({"ent_coef": "learned"}, "ent_coef"),
    ],
)
def test_off_policy_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OffPolicyMDPO("MlpPolicy", "Pendulum-v1", device="cpu", **kwargs)


def test_on_policy_runs_on_discrete_and_multidiscrete_actions():
    for env in (gym.make("CartPole-v1"), gym.make("opsrl/LotSizing-v0", instance="3x2")):
        model = MDPO("MlpPolicy", env, n_steps=16, batch_size=8, seed=0, device="cpu")
        model.learn(32)
        assert model.logger.name_to_value["train/kl_divergence"] >= 0.0


class DictObservations(gym.ObservationWrapper):
    """The wrapped env's observation as ``{"state": obs}``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.observation_space = spaces.Dict({"state": env.observation_space})

    def observation(self, observation):
        return {"state": observation}


def test_both_agents_take_dict_observations(tmp_path):
    on_policy = MDPO(
        "MultiInputPolicy", DictObservations(OneStepBox()), n_steps=16, batch_size=8, seed=0
    )
    off_policy = OffPolicyMDPO(
        "MultiInputPolicy",
        DictObservations(gym.make("Pendulum-v1")),
        learning_starts=8,
        batch_size=8,
        old_policy_interval=4,
        policy_kwargs={"net_arch": [16]},
        seed=0,
    )
    for model in (on_policy, off_policy):
        model.learn(32)
        model.save(tmp_path / "model.zip")
        loaded = type(model).load(tmp_path / "model.zip")
        obs = {"state": np.stack([model.observation_space["state"].sample() for _ in range(3)])}
        np.testing.assert_array_equal(
            model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
        )


# --------------------------------------------------------------------------------------------
# Learning: a clear margin over a random policy
# --------------------------------------------------------------------------------------------


def test_on_policy_learns_cartpole():
    # Random play scores about 22 on CartPole-v1; 10k steps (20 iterations) reach 200+ on
    # seeds 0-2. Rewards are not normalised here, so the value clipping is off.
    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = MDPO(
        "MlpPolicy",
        venv,
        n_steps=128,
        learning_rate=1e-3,
        critic_learning_rate=1e-3,
        clip_range_vf=None,
        seed=0,
        device="cpu",
    )
    model.learn(10_240)
    mean_return, _ = evaluate_policy(
        model, make_vec_env("CartPole-v1", n_envs=1, seed=100), n_eval_episodes=10
    )
    assert mean_return > 150.0


def test_off_policy_smoke_pendulum():
    model = off_policy_model(old_policy_interval=8)
    model.learn(80)
    values = model.logger.name_to_value
    assert model.old_policy_syncs == math.ceil(model._n_updates / 8)
    assert np.isfinite(values["train/actor_loss"]) and np.isfinite(values["train/kl_divergence"])


@pytest.mark.slow
def test_off_policy_learns_pendulum():
    # Random play scores about -1200 on Pendulum-v1; 5k steps reach about -150.
    model = OffPolicyMDPO(
        "MlpPolicy",
        "Pendulum-v1",
        learning_starts=500,
        batch_size=128,
        learning_rate=1e-3,
        policy_kwargs={"net_arch": [64, 64]},
        seed=0,
        device="cpu",
    )
    model.learn(5_000)
    mean_return, _ = evaluate_policy(
        model, make_vec_env("Pendulum-v1", n_envs=1, seed=100), n_eval_episodes=10
    )
    assert mean_return > -400.0
