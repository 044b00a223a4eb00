"""Per-agent (parameter-shared) agents on a multi-agent env through the experiment runner:
trained on the env's per-agent VecEnv, evaluated on its registered single-agent view."""

import json

import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO

from opsrl.cli import main
from opsrl.evaluation import PerAgentPolicy
from opsrl.experiment import RunError, evaluate_run_dir, make_agents_vec_env
from opsrl.spec import EnvSpec

SMALL_CITY = {"num_vehicles": 6, "num_candidates": 3, "episode_minutes": 10}


@pytest.mark.parametrize(
    ("agent", "hyperparams"),
    [("shared_ppo", {"n_steps": 16}), ("ospo", {"n_steps": 16, "batch_size": 32})],
)
def test_per_agent_agent_trains_per_agent_and_evaluates_on_the_platform_view(
    agent, hyperparams, tmp_path, capsys
):
    spec = tmp_path / "shared.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "shared",
                "output_dir": str(tmp_path / "runs"),
                "envs": [{"id": "opsrl/RideSharing-v0", "kwargs": SMALL_CITY}],
                "agents": [{"name": agent, "hyperparams": hyperparams}],
                "timesteps": 192,
                "n_envs": 2,
                "eval": {"episodes": 2},
            }
        )
    )
    assert main(["run", str(spec), "--no-progress", "--no-report"]) == 0
    run_dir = tmp_path / "runs" / "shared" / f"RideSharing-v0__{agent}__0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["resolved"]["vec_env"] == "agents"
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert len(evaluation["episodes"]) == 2
    assert "kpi/served_orders" in evaluation["summary"]
    again = evaluate_run_dir(run_dir)
    assert again["summary"]["return"] == pytest.approx(evaluation["summary"]["return"])


def test_per_agent_policy_splits_and_joins():
    venv = make_agents_vec_env(EnvSpec("opsrl/RideSharing-v0", SMALL_CITY), 1, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, seed=0)
    policy = PerAgentPolicy(model, model.observation_space, model.action_space)
    per_agent_obs = venv.reset()
    action, _ = policy.predict(per_agent_obs.reshape(-1))
    expected, _ = model.predict(per_agent_obs, deterministic=True)
    np.testing.assert_allclose(action, expected.reshape(-1))
    with pytest.raises(ValueError, match="whole number of agent observations"):
        policy.predict(np.zeros(per_agent_obs.shape[1] + 1))
    venv.close()


def test_single_agent_env_has_no_per_agent_view():
    with pytest.raises(RunError, match="not a multi-agent env"):
        make_agents_vec_env(EnvSpec("opsrl/LotSizing-v0"), 1, seed=0)
