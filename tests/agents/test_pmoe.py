"""PMOE-SAC and PMOE-PPO: mixture log-likelihoods against direct computations, sampling and
the deterministic action, the Q-best-expert gradient and the routing loss on crafted batches,
save/load, errors, and learning Pendulum."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from scipy.special import logsumexp
from scipy.stats import norm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from opsrl.agents.pmoe import (
    PMOEPPO,
    PMOESAC,
    GMMActorCriticPolicy,
    GMMDistribution,
    PMOESACPolicy,
    routing_loss,
)
from opsrl.baselines import RandomPolicy
from opsrl.evaluation import evaluate_policy_on_seeds


class DictReachTarget(gym.Env):
    """Move a point on [-1, 1]^2 toward the origin, observed as a Dict; reward -|position|.
    20 steps."""

    observation_space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,), np.float32)})
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self) -> None:
        self.position = np.zeros(2, dtype=np.float32)
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.steps = 0
        return {"position": self.position.copy()}, {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self.position = np.clip(self.position + 0.2 * action, -1.0, 1.0).astype(np.float32)
        self.steps += 1
        reward = -float(np.linalg.norm(self.position))
        return {"position": self.position.copy()}, reward, False, self.steps >= 20, {}


# --------------------------------------------------------------------------------------------
# The mixture
# --------------------------------------------------------------------------------------------


def test_gmm_log_prob_matches_a_direct_computation():
    generator = th.Generator().manual_seed(0)
    batch, n_experts, action_dim = 7, 3, 2
    dist = GMMDistribution(action_dim, n_experts)
    logits = th.randn(batch, n_experts, generator=generator)
    means = 2 * th.randn(batch, n_experts * action_dim, generator=generator)
    log_std = 0.5 * th.randn(n_experts, action_dim, generator=generator)
    actions = 2 * th.randn(batch, action_dim, generator=generator)
    log_prob = dist.proba_distribution(logits, means, log_std).log_prob(actions).numpy()

    weights = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    mu = means.numpy().reshape(batch, n_experts, action_dim)
    sigma = np.exp(log_std.numpy())
    expected = np.log(
        [
            sum(weights[b, k] * np.prod(norm.pdf(actions[b], mu[b, k], sigma[k])) for k in range(3))
            for b in range(batch)
        ]
    )
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5)
    # ... and torch's own mixture
    torch_log_prob = dist.as_torch_distribution().log_prob(actions).numpy()
    np.testing.assert_allclose(log_prob, torch_log_prob, rtol=1e-5)
    assert dist.entropy() is None


def test_one_expert_is_a_diagonal_gaussian():
    generator = th.Generator().manual_seed(1)
    means = th.randn(5, 3, generator=generator)
    log_std = 0.3 * th.randn(1, 3, generator=generator)
    actions = th.randn(5, 3, generator=generator)
    gmm = GMMDistribution(3, 1).proba_distribution(th.randn(5, 1), means, log_std)
    gaussian = DiagGaussianDistribution(3).proba_distribution(means, log_std[0])
    th.testing.assert_close(gmm.log_prob(actions), gaussian.log_prob(actions))
    th.testing.assert_close(gmm.mode(), means)


def test_gmm_samples_each_expert_with_its_weight_and_mode_is_the_heaviest_mean():
    weights = th.tensor([[0.6, 0.3, 0.1]])
    means = th.tensor([[[-5.0], [0.0], [5.0]]]).expand(20_000, -1, -1)
    dist = GMMDistribution(1, 3).proba_distribution(
        th.log(weights).expand(20_000, -1), means, th.full((3, 1), -2.0)
    )
    th.manual_seed(0)
    samples = dist.sample().numpy().ravel()
    nearest = np.abs(samples[:, None] - np.array([-5.0, 0.0, 5.0])).argmin(axis=1)
    np.testing.assert_allclose(
        np.bincount(nearest, minlength=3) / len(samples), [0.6, 0.3, 0.1], atol=0.015
    )
    np.testing.assert_array_equal(dist.mode().numpy().ravel(), np.full(20_000, -5.0))
    per_expert = dist.expert_samples()
    assert per_expert.shape == (20_000, 3, 1)
    np.testing.assert_allclose(per_expert.mean(dim=0).numpy().ravel(), [-5, 0, 5], atol=0.01)


def test_routing_loss_is_the_mse_to_the_one_hot_best_expert():
    probs = th.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    loss = routing_loss(probs, th.tensor([0, 1]))
    expected = np.mean(np.square(probs.numpy() - np.array([[1, 0, 0], [0, 1, 0]])))
    assert loss.item() == pytest.approx(expected)


def sac_model(env: gym.Env | str = "Pendulum-v1", **kwargs) -> PMOESAC:
    kwargs.setdefault("policy_kwargs", {"net_arch": [32, 32], "n_experts": 3})
    return PMOESAC(
        "MlpPolicy", env, learning_starts=32, batch_size=32, device="cpu", seed=0, **kwargs
    )


def test_sac_actor_log_probs_match_a_direct_computation():
    model = sac_model()
    actor = model.actor
    obs = th.as_tensor(np.stack([model.observation_space.sample() for _ in range(6)]))
    with th.no_grad():
        logits, mean, log_std = actor.mixture_params(obs)
        _, expert_actions, expert_log_probs = actor.expert_actions_log_prob(obs)
        actions = th.tanh(th.randn(6, 1))
        mixture_log_prob = actor.log_prob(obs, actions)
    logits, mean, sigma = logits.numpy(), mean.numpy(), np.exp(log_std.numpy())

    def component(a: np.ndarray, b: int, k: int) -> float:
        """log density of a = tanh(u), u ~ N(mean, sigma): Gaussian at atanh(a) + Jacobian."""
        u = np.arctanh(a)
        return float(np.sum(norm.logpdf(u, mean[b, k], sigma[b, k]) - np.log1p(-(a**2))))

    log_weights = logits - logsumexp(logits, axis=1, keepdims=True)
    for b in range(6):
        for k in range(3):
            assert expert_log_probs[b, k].item() == pytest.approx(
                component(expert_actions[b, k].numpy().astype(np.float64), b, k), rel=1e-3, abs=1e-3
            )
        expected = logsumexp(
            [log_weights[b, k] + component(actions[b].numpy(), b, k) for k in range(3)]
        )
        assert mixture_log_prob[b].item() == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_deterministic_actions_are_the_heaviest_experts_mean():
    sac = sac_model()
    obs = np.stack([sac.observation_space.sample() for _ in range(8)])
    with th.no_grad():
        logits, mean, _ = sac.actor.mixture_params(th.as_tensor(obs))
    best = logits.argmax(dim=1)
    squashed = th.tanh(mean[th.arange(8), best]).numpy()
    action, _ = sac.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, sac.policy.unscale_action(squashed), rtol=1e-5, atol=1e-6)

    ppo = PMOEPPO("MlpPolicy", "Pendulum-v1", n_steps=64, device="cpu", seed=0)
    with th.no_grad():
        dist = ppo.policy.get_distribution(th.as_tensor(obs))
        heaviest = dist.means[th.arange(8), dist.mixing_probs.argmax(dim=1)].numpy()
    action, _ = ppo.predict(obs, deterministic=True)
    np.testing.assert_allclose(action, np.clip(heaviest, -2.0, 2.0), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# PMOE-SAC: Q-best-expert gradient and routing on a crafted batch
# --------------------------------------------------------------------------------------------


class OneStep(gym.Env):
    """One-step env with 2-d observations and a 1-d action in [-1, 1]."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.mark.parametrize("q_slope", [10.0, -10.0], ids=["positive-best", "negative-best"])
def test_sac_routes_to_the_q_best_expert_and_only_it_gets_gradient(q_slope):
    """Critics Q(s, a) = q_slope * a (linear, exact for rewards q_slope * a on terminal
    transitions, so they stay put); expert 0 acts near +0.76, expert 1 near -0.76."""
    model = PMOESAC(
        "MlpPolicy",
        OneStep(),
        learning_rate=5e-2,
        ent_coef=0.01,
        policy_kwargs={"net_arch": {"pi": [8], "qf": []}, "n_experts": 2},
        device="cpu",
        seed=0,
    )
    model.set_logger(configure(None, []))
    rng = np.random.default_rng(0)
    for _ in range(256):
        action = rng.uniform(-1, 1, (1, 1)).astype(np.float32)
        obs = rng.uniform(-1, 1, (1, 2)).astype(np.float32)
        model.replay_buffer.add(obs, obs, action, q_slope * action[0], np.array([True]), [{}])
    with th.no_grad():
        for critic in (model.critic, model.critic_target):
            for q_net in critic.q_networks:
                q_net[0].weight.copy_(th.tensor([[0.0, 0.0, q_slope]]))
                q_net[0].bias.zero_()
        actor = model.actor
        actor.mu.weight.zero_()
        actor.mu.bias.copy_(th.tensor([1.0, -1.0]))
        actor.log_std.weight.zero_()
        actor.log_std.bias.fill_(-2.0)
        actor.mixing_net.weight.zero_()
        actor.mixing_net.bias.zero_()
    best, other = (0, 1) if q_slope > 0 else (1, 0)
    other_mu = (actor.mu.weight[other].clone(), actor.mu.bias[other].clone())
    other_log_std = (actor.log_std.weight[other].clone(), actor.log_std.bias[other].clone())

    model.train(gradient_steps=60, batch_size=64)

    assert model.logger.name_to_value[f"train/best_expert_{best}"] == 1.0
    obs = th.as_tensor(rng.uniform(-1, 1, (100, 2)).astype(np.float32))
    with th.no_grad():
        alpha = actor.mixing_probs(obs)
    assert alpha[:, best].min() > 0.9, alpha[:, best].min()
    # The other expert is never the best: its output rows get no gradient at all.
    th.testing.assert_close(actor.mu.weight[other], other_mu[0], rtol=0, atol=0)
    th.testing.assert_close(actor.mu.bias[other], other_mu[1], rtol=0, atol=0)
    th.testing.assert_close(actor.log_std.weight[other], other_log_std[0], rtol=0, atol=0)
    th.testing.assert_close(actor.log_std.bias[other], other_log_std[1], rtol=0, atol=0)
    # ... while the best expert moved toward larger Q.
    initial_best_mean = 1.0 if best == 0 else -1.0
    assert (actor.mu.bias[best].item() - initial_best_mean) * np.sign(q_slope) > 0.1
    # The critics were exact, so they barely moved.
    weight = model.critic.q_networks[0][0].weight[0, 2].item()
    assert weight == pytest.approx(q_slope, abs=0.5)


# --------------------------------------------------------------------------------------------
# PMOE-PPO: routing through the auxiliary Q head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q_slope", [10.0, -10.0], ids=["positive-best", "negative-best"])
def test_ppo_routes_to_the_aux_q_best_expert(q_slope):
    """A crafted Q head Q(s, a) = q_slope * a (frozen: q_coef 0), expert 0 acting near +1 and
    expert 1 near -1, and no other signal (zero rewards, a zero value head that is not trained,
    so every advantage is 0): the update is the routing loss alone."""
    model = PMOEPPO(
        "MlpPolicy",
        OneStep(),
        n_steps=256,
        batch_size=32,
        n_epochs=10,
        learning_rate=3e-2,
        normalize_advantage=False,
        vf_coef=0.0,
        q_coef=0.0,
        policy_kwargs={"net_arch": [8], "q_net_arch": [], "n_experts": 2, "log_std_init": -1.0},
        device="cpu",
        seed=0,
    )
    policy = model.policy
    with th.no_grad():
        policy.q_net[0].weight.copy_(th.tensor([[0.0, 0.0, q_slope]]))
        policy.q_net[0].bias.zero_()
        policy.action_net.weight.zero_()
        policy.action_net.bias.copy_(th.tensor([1.0, -1.0]))
        policy.value_net.weight.zero_()
        policy.value_net.bias.zero_()
    model.learn(256)  # one rollout, one update: 80 minibatch steps

    best = 0 if q_slope > 0 else 1
    assert model.logger.name_to_value[f"train/best_expert_{best}"] > 0.95
    obs = th.as_tensor(np.random.default_rng(0).uniform(-1, 1, (100, 2)).astype(np.float32))
    with th.no_grad():
        alpha = policy.get_distribution(obs).mixing_probs
    assert alpha[:, best].min() > 0.9, alpha[:, best].min()
    # The routing loss moves the mixing weights only: the experts and the Q head are as set.
    th.testing.assert_close(policy.action_net.bias, th.tensor([1.0, -1.0]))
    th.testing.assert_close(policy.q_net[0].weight, th.tensor([[0.0, 0.0, q_slope]]))


def test_ppo_ratio_uses_the_mixture_likelihood():
    model = PMOEPPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, device="cpu", seed=0)
    model.learn(32)
    buffer = model.rollout_buffer
    obs = th.as_tensor(buffer.observations.reshape(32, -1))
    actions = th.as_tensor(buffer.actions.reshape(32, -1))
    policy = model.policy
    # Undo the update: the stored log-probs are the collection-time policy's.
    fresh = PMOEPPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, device="cpu", seed=0)
    with th.no_grad():
        dist = fresh.policy.get_distribution(obs)
        mixture = th.logsumexp(th.log(dist.mixing_probs) + dist.component_log_prob(actions), dim=1)
    np.testing.assert_allclose(buffer.log_probs.ravel(), mixture.numpy(), rtol=1e-5, atol=1e-5)
    with th.no_grad():
        _, log_prob, _ = policy.evaluate_actions(obs, actions)
        _, log_prob_2, probs, q_taken, q_experts = policy.evaluate_actions_and_experts(obs, actions)
    th.testing.assert_close(log_prob, log_prob_2)
    assert probs.shape == (32, 5) and q_taken.shape == (32,) and q_experts.shape == (32, 5)


# --------------------------------------------------------------------------------------------
# SB3 machinery: save/load, callbacks, loggers, Dict observations, errors
# --------------------------------------------------------------------------------------------


def test_sac_save_load_round_trip(tmp_path):
    model = sac_model(ent_coef="auto_0.5")
    model.learn(80)
    model.save(tmp_path / "pmoe_sac.zip")
    loaded = PMOESAC.load(tmp_path / "pmoe_sac.zip", device="cpu")
    assert loaded.actor.n_experts == 3 and loaded.routing_coef == model.routing_coef
    obs = np.stack([model.observation_space.sample() for _ in range(6)])
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert loaded.log_ent_coef.item() == pytest.approx(model.log_ent_coef.item())
    for name in ("actor", "critic"):
        saved = getattr(model, name).optimizer.state_dict()["state"]
        restored = getattr(loaded, name).optimizer.state_dict()["state"]
        th.testing.assert_close(saved[0]["exp_avg"], restored[0]["exp_avg"])
    loaded.set_env(gym.make("Pendulum-v1"))
    loaded.learn(40, reset_num_timesteps=False)


def test_ppo_save_load_round_trip(tmp_path):
    model = PMOEPPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        routing_coef=0.5,
        policy_kwargs={"n_experts": 3, "q_net_arch": [16]},
        device="cpu",
        seed=0,
    )
    model.learn(64)
    model.save(tmp_path / "pmoe_ppo.zip")
    loaded = PMOEPPO.load(tmp_path / "pmoe_ppo.zip", device="cpu")
    assert loaded.policy.n_experts == 3 and loaded.routing_coef == 0.5
    assert loaded.policy.q_net_arch == [16]
    obs = np.stack([model.observation_space.sample() for _ in range(6)])
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    actions = th.as_tensor(np.stack([model.action_space.sample() for _ in range(6)]))
    with th.no_grad():
        th.testing.assert_close(
            model.policy.predict_q_values(th.as_tensor(obs), actions),
            loaded.policy.predict_q_values(th.as_tensor(obs), actions),
        )
    loaded.set_env(gym.make("Pendulum-v1"))
    loaded.learn(64, reset_num_timesteps=False)


class CountSteps(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _on_step(self) -> bool:
        self.calls += 1
        return True


@pytest.mark.filterwarnings("ignore:rich is experimental")  # SB3's tqdm.rich progress bar
@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_callbacks_loggers_progress_bar_and_dict_observations(algo, tmp_path):
    env = DictReachTarget()
    if algo == "sac":
        model = PMOESAC(
            "MultiInputPolicy", env, learning_starts=16, batch_size=16, device="cpu", seed=0
        )
    else:
        model = PMOEPPO(
            "MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, device="cpu", seed=0
        )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = CountSteps()
    model.learn(64, callback=callback, log_interval=1, progress_bar=True)
    assert callback.calls == 64
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"train/routing_loss", "train/mixing_max", "train/best_expert_0"} <= set(header)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="n_experts"):
        PMOESAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"n_experts": 0})
    with pytest.raises(ValueError, match="n_experts"):
        PMOEPPO("MlpPolicy", "Pendulum-v1", policy_kwargs={"n_experts": 2.5})
    with pytest.raises(ValueError, match="routing_coef"):
        PMOESAC("MlpPolicy", "Pendulum-v1", routing_coef=-1.0)
    with pytest.raises(ValueError, match="q_coef"):
        PMOEPPO("MlpPolicy", "Pendulum-v1", q_coef=float("nan"))
    with pytest.raises(ValueError, match="Box"):
        PMOEPPO("MlpPolicy", "CartPole-v1")
    with pytest.raises(ValueError, match="Box"):
        PMOESAC("MlpPolicy", "CartPole-v1")
    box = spaces.Box(-1.0, 1.0, (1,), np.float32)
    with pytest.raises(ValueError, match="use_sde"):
        PMOESACPolicy(box, box, lambda _: 1e-3, use_sde=True)
    with pytest.raises(ValueError, match="use_sde"):
        GMMActorCriticPolicy(box, box, lambda _: 1e-3, use_sde=True)


# --------------------------------------------------------------------------------------------
# Learning
# --------------------------------------------------------------------------------------------


def mean_return(model, env: gym.Env, seeds: list[int]) -> float:
    return float(np.mean([e.episode_return for e in evaluate_policy_on_seeds(model, env, seeds)]))


@pytest.mark.slow
def test_pmoe_sac_learns_pendulum():
    """5k steps (about 1 min on one free core): mean return over 10 seeded episodes at least
    40% better than a random policy's (about -1250)."""
    model = PMOESAC(
        "MlpPolicy",
        "Pendulum-v1",
        learning_rate=1e-3,
        learning_starts=200,
        batch_size=128,
        policy_kwargs={"net_arch": [64, 64]},
        device="cpu",
        seed=0,
    )
    model.learn(5_000)
    env = gym.make("Pendulum-v1")
    seeds = list(range(100, 110))
    learned = mean_return(model, env, seeds)
    random = mean_return(RandomPolicy(env, 0), env, seeds)
    assert learned > random + 0.4 * abs(random), (learned, random)


@pytest.mark.slow
def test_pmoe_ppo_learns_pendulum():
    """32,768 steps on 4 envs (about 1-2 min on one free core; Pendulum settings of the
    rl-zoo without gSDE): mean return over 10 seeded episodes at least 50% better than a
    random policy's (about -1250)."""
    venv = make_vec_env("Pendulum-v1", n_envs=4, seed=0)
    model = PMOEPPO(
        "MlpPolicy",
        venv,
        n_steps=512,
        batch_size=64,
        n_epochs=10,
        gamma=0.9,
        learning_rate=1e-3,
        device="cpu",
        seed=0,
    )
    model.learn(32_768)
    env = gym.make("Pendulum-v1")
    seeds = list(range(100, 110))
    learned = mean_return(model, env, seeds)
    random = mean_return(RandomPolicy(env, 0), env, seeds)
    assert learned > random + 0.5 * abs(random), (learned, random)
