"""Every registered agent trains a few steps through the experiment builder and survives a
save()/load() round trip with identical predictions."""

import gymnasium as gym
import numpy as np
import pytest

from opsrl.experiment import build_agent, make_agents_vec_env, make_vec_env
from opsrl.registry import AGENT_TABLE, agent_class, agent_entry
from opsrl.spec import AgentSpec, EnvSpec

#: a small env whose action space each agent supports
ENV_FOR = {
    "ppo": "opsrl/LotSizing-v0",
    "a2c": "opsrl/LotSizing-v0",
    "maskable_ppo": "opsrl/LotSizing-v0",
    "trpo": "opsrl/LotSizing-v0",
    "pdppo": "opsrl/LotSizing-v0",
    "gnn_ppo": "opsrl/JobShop-v0",
    "pmoe_sac": "Pendulum-v1",
    "pmoe_ppo": "Pendulum-v1",
    "props": "Pendulum-v1",
    "mdpo": "opsrl/LotSizing-v0",
    "mdpo_off": "Pendulum-v1",
    "recurrent_ppo": "CartPole-v1",
    "dqn": "CartPole-v1",
    "qrdqn": "CartPole-v1",
    "sac": "Pendulum-v1",
    "td3": "Pendulum-v1",
    "tqc": "Pendulum-v1",
    "shared_ppo": "opsrl/RideSharing-v0",
    "reptile": "CartPole-v1",
    "ospo": "opsrl/RideSharing-v0",
    "grpo": "opsrl/RideSharing-v0",
    "graph_fleet_ppo": "opsrl/UAMFleet-v0",
    "subpo": "opsrl/Coverage-v0",
    "drrpo": "opsrl/SimulatedLinearMDP-v0",
}
SMALL = {
    "ppo": {"n_steps": 32, "batch_size": 32},
    "maskable_ppo": {"n_steps": 32, "batch_size": 32},
    "trpo": {"n_steps": 32, "batch_size": 32},
    "recurrent_ppo": {"n_steps": 32, "batch_size": 32},
    "a2c": {"n_steps": 8},
    "pdppo": {"n_steps": 32, "n_epochs": 2},
    "gnn_ppo": {"n_steps": 32, "batch_size": 32},
    "pmoe_sac": {"learning_starts": 16},
    "pmoe_ppo": {"n_steps": 32, "batch_size": 32},
    "props": {"n_steps": 32, "props_n_steps": 16, "batch_size": 32, "props_batch_size": 32},
    "mdpo": {"n_steps": 32, "batch_size": 32},
    "mdpo_off": {"learning_starts": 16, "old_policy_interval": 8},
    "dqn": {"learning_starts": 16},
    "qrdqn": {"learning_starts": 16},
    "sac": {"learning_starts": 16},
    "td3": {"learning_starts": 16},
    "tqc": {"learning_starts": 16},
    "shared_ppo": {"n_steps": 8, "batch_size": 32},
    "reptile": {
        "base_kwargs": {"n_steps": 32, "batch_size": 32},
        "inner_timesteps": 32,
        "meta_batch_size": 1,
    },
    "ospo": {"n_steps": 6, "batch_size": 32},
    "grpo": {"n_steps": 6, "batch_size": 32},
    "graph_fleet_ppo": {"n_steps": 32, "batch_size": 32},
    "subpo": {"episodes_per_update": 4},
    "drrpo": {"episodes_per_iteration": 2},
}


#: env kwargs where the default (lot sizing's "3x2" instance for opsrl envs) does not fit
ENV_KWARGS = {
    "gnn_ppo": {"instance": {"jobs": 3, "machines": 3}},
    "shared_ppo": {"num_vehicles": 4, "num_candidates": 2, "episode_minutes": 5},
    "ospo": {"num_vehicles": 4, "num_zones": 9, "episode_minutes": 6},
    "grpo": {"num_vehicles": 4, "num_zones": 9, "episode_minutes": 6},
    "graph_fleet_ppo": {"config": {"n_vertiports": 4, "n_aircraft": 6}},
    "subpo": {"size": [5, 5], "horizon": 8},
    "drrpo": {},
}


def test_every_agent_has_a_test_env():
    # multi-policy agents (a Pareto set from an env id) have their own runner test:
    # tests/test_multi_policy_runs.py
    single = {entry.name for entry in AGENT_TABLE if not entry.multi_policy}
    assert single == set(ENV_FOR)


@pytest.mark.parametrize("name", sorted(ENV_FOR))
def test_train_save_load_round_trip(name, tmp_path):
    default_kwargs = {"instance": "3x2"} if ENV_FOR[name].startswith("opsrl") else {}
    env_spec = EnvSpec(ENV_FOR[name], ENV_KWARGS.get(name, default_kwargs))
    if agent_entry(name).per_agent:  # one slot per agent of a multi-agent env
        venv = make_agents_vec_env(env_spec, n_copies=2, seed=0)
    else:  # the batched lot-sizing env and SB3's DummyVecEnv, by turns
        kind = "dummy" if name == "a2c" else "auto"
        venv = make_vec_env(env_spec, n_envs=2, seed=0, vec_env=kind)
    model = build_agent(AgentSpec(name, hyperparams=SMALL[name]), venv, seed=0, device="cpu")
    model.learn(64)
    model.save(tmp_path / "model.zip")
    loaded = agent_class(name).load(tmp_path / "model.zip", device="cpu")
    if agent_entry(name).per_agent:
        obs = venv.reset()[0]
        space = venv.observation_space
    else:
        env = gym.make(env_spec.id, **env_spec.kwargs)
        obs, _ = env.reset(seed=1)
        space = env.observation_space
    samples = [obs] + [space.sample() for _ in range(4)]
    if isinstance(obs, dict):
        observations = {key: np.stack([sample[key] for sample in samples]) for key in obs}
    else:
        observations = np.stack(samples)
    before, _ = model.predict(observations, deterministic=True)
    after, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(before, after)
    venv.close()
