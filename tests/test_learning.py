"""Learning works end to end: PPO on a tiny lot-sizing instance beats a random policy."""

import gymnasium as gym
import numpy as np

from opsrl.baselines import RandomPolicy
from opsrl.evaluation import evaluate_policy_on_seeds
from opsrl.experiment import build_agent, make_vec_env
from opsrl.spec import AgentSpec, EnvSpec


def test_ppo_beats_random_on_tiny_lot_sizing():
    env_spec = EnvSpec("opsrl/LotSizing-v0", {"instance": "3x2"})
    venv = make_vec_env(env_spec, n_envs=8, seed=0)
    hyperparams = {"n_steps": 64, "batch_size": 128, "gamma": 0.9, "learning_rate": 1e-3}
    model = build_agent(AgentSpec("ppo", hyperparams=hyperparams), venv, seed=0, device="cpu")
    model.learn(5_000)
    env = gym.make(env_spec.id, **env_spec.kwargs)
    seeds = list(range(100, 110))
    learned = np.mean([e.episode_return for e in evaluate_policy_on_seeds(model, env, seeds)])
    random = np.mean(
        [e.episode_return for e in evaluate_policy_on_seeds(RandomPolicy(env, 0), env, seeds)]
    )
    assert learned > random + 0.2 * abs(random), (learned, random)
