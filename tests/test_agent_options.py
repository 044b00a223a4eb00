"""Per-agent options of a spec: ``normalize`` (VecNormalize, the MuJoCo references' wrapper:
statistics saved with the run, every evaluation acting on normalized observations) and
``timesteps`` (a budget per agent, as rl-zoo's per-algorithm ``n_timesteps``)."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import yaml

from opsrl.cli import main
from opsrl.evaluation import ObservationNormalizedPolicy
from opsrl.experiment import evaluate_run_dir
from opsrl.spec import AgentSpec, SpecError, spec_from_dict


def _spec(tmp_path, normalize):
    return {
        "name": "norm",
        "output_dir": str(tmp_path / "runs"),
        "envs": ["Pendulum-v1"],
        "agents": [
            {
                "name": "ppo",
                "normalize": normalize,
                "hyperparams": {"n_steps": 64, "batch_size": 64, "gamma": 0.95},
            }
        ],
        "timesteps": 256,
        "eval": {"episodes": 2, "freq": 128},
    }


def test_normalized_run_saves_statistics_and_evaluates_on_them(tmp_path, capsys):
    path = tmp_path / "norm.yaml"
    path.write_text(yaml.safe_dump(_spec(tmp_path, {"norm_reward": True, "clip_obs": 5.0})))
    assert main(["run", str(path), "--no-progress", "--no-report"]) == 0
    run_dir = tmp_path / "runs" / "norm" / "Pendulum-v1__ppo__0"
    with open(run_dir / "vecnormalize.pkl", "rb") as handle:
        stats = pickle.load(handle)
    # the reward discount follows the agent's gamma; the statistics saw the training steps
    assert stats.gamma == pytest.approx(0.95) and stats.clip_obs == 5.0
    assert stats.obs_rms.count > 256
    table = pd.read_csv(run_dir / "results.csv")
    assert (table["metric"] == "eval/return").sum() == 2  # the periodic evaluations ran
    saved = json.loads((run_dir / "eval.json").read_text())["summary"]["return"]
    # `opsrl eval` reloads model and statistics: the same seeds give the same returns
    again = evaluate_run_dir(run_dir)
    assert again["summary"]["return"] == pytest.approx(saved)
    # and the returns are the env's own rewards (Pendulum: between -16.3 and 0 per step)
    assert -16.3 * 200 <= saved <= 0
    # without the statistics the same model acts differently: they are really used
    (run_dir / "vecnormalize.pkl").unlink()
    assert evaluate_run_dir(run_dir)["summary"]["return"] != pytest.approx(saved)


def test_unnormalized_run_identity_has_no_normalize_key(tmp_path):
    from opsrl.experiment import run_identity
    from opsrl.spec import expand

    spec = spec_from_dict(_spec(tmp_path, False))
    identity = run_identity(expand(spec)[0], spec)
    assert "normalize" not in identity["agent"]
    spec = spec_from_dict(_spec(tmp_path, True))
    assert run_identity(expand(spec)[0], spec)["agent"]["normalize"] is True


def test_normalize_mistakes_are_named(tmp_path):
    with pytest.raises(SpecError, match="unknown 'normalize' key 'norm_observations'"):
        spec_from_dict(_spec(tmp_path, {"norm_observations": True}))
    with pytest.raises(SpecError, match="normalize"):
        spec_from_dict(_spec(tmp_path, "yes"))
    assert AgentSpec("ppo").normalize_kwargs() is None
    assert AgentSpec("ppo", normalize=True).normalize_kwargs() == {}


def test_cli_normalize_flag_and_rl_zoo_hyperparameter(tmp_path, capsys):
    args = ["run", "--env", "Pendulum-v1", "--agent", "ppo", "-n", "64", "--eval-episodes", "1"]
    args += ["--output", str(tmp_path), "--no-progress", "--no-report", "--name", "flag"]
    assert main([*args, "--hyperparams", "n_steps:64", "batch_size:32", "normalize:true"]) == 0
    assert (tmp_path / "flag" / "Pendulum-v1__ppo__0" / "vecnormalize.pkl").is_file()


class _Recorder:
    def __init__(self):
        self.seen = None

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        self.seen = observation
        return np.zeros(1), state


def test_observation_normalized_policy_uses_current_statistics():
    class Stats:
        def normalize_obs(self, obs):
            return (obs - 1.0) / 2.0

    model = _Recorder()
    policy = ObservationNormalizedPolicy(model, Stats())
    policy.predict(np.array([3.0, 5.0]))
    np.testing.assert_allclose(model.seen, [1.0, 2.0])
    assert policy.seen is model.seen  # other attributes come from the model


def test_agent_timesteps_override_the_experiment_budget(tmp_path, capsys):
    from opsrl.experiment import run_identity
    from opsrl.spec import expand

    data = _spec(tmp_path, False)
    data["agents"].append({"name": "a2c", "timesteps": 40, "hyperparams": {"n_steps": 8}})
    spec = spec_from_dict(data)
    ppo, a2c = expand(spec)
    assert run_identity(ppo, spec)["timesteps"] == 256
    assert "timesteps" not in run_identity(ppo, spec)["agent"]
    assert run_identity(a2c, spec)["timesteps"] == 40
    path = tmp_path / "budgets.yaml"
    data["eval"] = {"episodes": 1}
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--no-progress", "--no-report"]) == 0
    table = pd.read_parquet(tmp_path / "runs" / "norm" / "results.parquet")
    final = table[table["metric"] == "return"].set_index("agent")["step"]
    assert final["ppo"] == 256 and final["a2c"] == 40
    with pytest.raises(SpecError, match="'timesteps' must be >= 1"):
        data["agents"][1]["timesteps"] = 0
        spec_from_dict(data)


def test_agent_env_kwargs_apply_to_that_agent_only(tmp_path):
    from opsrl.experiment import run_identity
    from opsrl.spec import expand

    data = _spec(tmp_path, False)
    data["envs"] = [{"id": "opsrl/LotSizing-v0", "kwargs": {"instance": "3x2"}}]
    data["agents"].append({"name": "a2c", "label": "a2c_5x3", "env_kwargs": {"instance": "5x3"}})
    data["baselines"] = ["random"]
    spec = spec_from_dict(data)
    ppo, a2c, random = expand(spec)
    assert ppo.env.kwargs == {"instance": "3x2"} == random.env.kwargs
    assert a2c.env.kwargs == {"instance": "5x3"} and a2c.env.label == ppo.env.label
    assert "env_kwargs" not in run_identity(ppo, spec)["agent"]
    assert run_identity(a2c, spec)["env"]["kwargs"] == {"instance": "5x3"}


def test_ray_options_mistakes_are_named(tmp_path):
    data = _spec(tmp_path, False)
    for key, value, message in (
        ("cpus_per_run", 0, "'ray.cpus_per_run' must be > 0"),
        ("gpus_per_run", -1, "'ray.gpus_per_run' must be >= 0"),
        ("max_retries", -1, "'ray.max_retries' must be >= 0"),
        ("cpu_per_run", 1, "unknown key 'ray.cpu_per_run'"),
    ):
        with pytest.raises(SpecError, match=message):
            spec_from_dict({**data, "backend": "ray", "ray": {key: value}})
    assert spec_from_dict({**data, "backend": "ray"}).ray.max_retries == 2
