"""The continuous-control agents on the OR envs whose spaces they support: the ESG portfolio
(Box weights) for all of them, lot sizing (MultiDiscrete setups) for the on-policy ones that take
discrete actions. Trained briefly through the experiment runner's own builders."""

import numpy as np
import pytest

from opsrl.experiment import build_agent, make_env, make_vec_env
from opsrl.spec import AgentSpec, EnvSpec

ESG = EnvSpec("opsrl/ESGPortfolio-v0", {"episode_days": 20})
LOT = EnvSpec("opsrl/LotSizing-v0", {"instance": "3x2"})

SMALL = {
    "pmoe_sac": {"learning_starts": 32, "batch_size": 32},
    "mdpo_off": {"learning_starts": 32, "batch_size": 32},
    "pmoe_ppo": {"n_steps": 64, "batch_size": 32, "n_epochs": 1},
    "props": {"n_steps": 64, "batch_size": 32, "props_n_steps": 32, "n_epochs": 1},
    "mdpo": {"n_steps": 64, "batch_size": 32},
}
CASES = [(name, ESG) for name in SMALL] + [(name, LOT) for name in ("props", "mdpo")]


@pytest.mark.parametrize(("name", "env_spec"), CASES, ids=lambda v: getattr(v, "id", v))
def test_agent_trains_and_acts_on_or_env(name, env_spec):
    venv = make_vec_env(env_spec, n_envs=1, seed=0, vec_env="dummy")
    model = build_agent(AgentSpec(name, hyperparams=SMALL[name]), venv, seed=0, device="cpu")
    model.learn(128)
    env = make_env(env_spec)
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        action, _ = model.predict(obs, deterministic=True)
        assert env.action_space.contains(np.asarray(action, dtype=env.action_space.dtype))
        obs, reward, terminated, truncated, info = env.step(action)
        assert np.isfinite(reward)
    assert "kpi" in info
    venv.close()
    env.close()
