"""A tiny YAML experiment through the process-pool backend, as `opsrl run SPEC` runs it."""

import json

import pandas as pd
import yaml

from opsrl.cli import main


def test_tiny_spec_on_process_pool(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "output_dir": str(tmp_path / "runs"),
                "envs": [{"id": "opsrl/LotSizing-v0", "kwargs": {"instance": "3x2"}}],
                "agents": [
                    {"name": "maskable_ppo", "hyperparams": {"n_steps": 32, "batch_size": 64}}
                ],
                "baselines": ["random"],
                "seeds": [0, 1],
                "timesteps": 256,
                "n_envs": 4,
                "eval": {"episodes": 2, "freq": 128},
                "workers": 2,
            }
        )
    )
    assert main(["run", str(spec), "--no-progress"]) == 0
    exp = tmp_path / "runs" / "tiny"
    table = pd.read_parquet(exp / "results.parquet")
    assert set(table["run"]) == {
        f"LotSizing-v0__{a}__{s}" for a in ("maskable_ppo", "random") for s in (0, 1)
    }
    finals = table[table["metric"] == "kpi/fill_rate"]
    assert len(finals) == 4 and finals["value"].between(0, 1).all()
    summary = pd.read_csv(exp / "summary.csv")
    assert set(summary["agent"]) == {"maskable_ppo", "random"}
    assert (exp / "curves.png").stat().st_size > 0
    config = yaml.safe_load((exp / "LotSizing-v0__maskable_ppo__0" / "config.yaml").read_text())
    assert config["resolved"]["vec_env"] == "batched"
    evaluation = json.loads((exp / "LotSizing-v0__random__1" / "eval.json").read_text())
    assert len(evaluation["episodes"]) == 2
    out = capsys.readouterr().out
    assert "maskable_ppo" in out and "random" in out


def test_subproc_vec_env_workers_know_the_opsrl_ids():
    from opsrl.experiment import make_vec_env
    from opsrl.spec import EnvSpec

    venv = make_vec_env(
        EnvSpec(id="opsrl/LotSizing-v0", kwargs={"instance": "3x2"}),
        n_envs=2,
        seed=0,
        vec_env="subproc",
    )
    try:
        obs = venv.reset()
        assert obs.shape[0] == 2
        venv.step([venv.action_space.sample() for _ in range(2)])
    finally:
        venv.close()
