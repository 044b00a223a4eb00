"""Multi-policy agents (C-MORL, the linear-scalarisation PPO grid) through the experiment runner:
the Pareto set is saved with the run, every policy is evaluated on the experiment's seeds, and
the run reports the front's hypervolume, expected utility and sparsity."""

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("pymoo", reason="the Pareto metrics need pymoo (the `mo` extra)")

from opsrl.agents.cmorl import CMORL  # noqa: E402
from opsrl.cli import main  # noqa: E402
from opsrl.mo import hypervolume, reference_point  # noqa: E402

PPO_KWARGS = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}


def test_cmorl_and_ppo_grid_runs_score_their_fronts(tmp_path, capsys):
    spec = tmp_path / "mo.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "mo",
                "output_dir": str(tmp_path / "runs"),
                "envs": [{"id": "opsrl/mo-lot-sizing-v0", "kwargs": {"instance": "3x2"}}],
                "agents": [
                    {
                        "name": "cmorl",
                        "hyperparams": {
                            "weight_step": 0.5,
                            "num_select": 1,
                            "update_iters": 1,
                            "eval_episodes": 1,
                            "ppo_kwargs": PPO_KWARGS,
                        },
                    },
                    {
                        "name": "ppo_grid",
                        "hyperparams": {
                            "weight_step": 0.5,
                            "eval_episodes": 1,
                            "ppo_kwargs": PPO_KWARGS,
                        },
                    },
                ],
                "timesteps": 288,
                "eval": {"episodes": 2},
            }
        )
    )
    assert main(["run", str(spec), "--no-progress", "--no-report"]) == 0
    exp = tmp_path / "runs" / "mo"
    table = pd.read_parquet(exp / "results.parquet")
    for agent in ("cmorl", "ppo_grid"):
        run_dir = exp / f"mo-lot-sizing-v0__{agent}__0"
        front = pd.read_csv(run_dir / "pareto.csv")
        values = front[["objective_0", "objective_1"]].to_numpy()
        assert len(values) >= 1 and np.all(np.isfinite(values))
        # the reference point follows the env's arguments (here the small 3x2 instance)
        ref = reference_point(gym.make("opsrl/mo-lot-sizing-v0", instance="3x2"))
        rows = table[table["run"] == run_dir.name].set_index("metric")["value"]
        assert rows["mo/hypervolume"] == pytest.approx(hypervolume(values, ref))
        assert rows["return"] == rows["mo/hypervolume"]
        assert rows["mo/pareto_size"] == len(values)
        evaluation = json.loads((run_dir / "eval.json").read_text())
        assert evaluation["reference_point"] == pytest.approx(list(ref))
        assert (run_dir / "pareto.png").stat().st_size > 0
    # the grid trains 3 preferences (w in {0, .5, 1}) and nothing else; C-MORL extends them
    loaded = CMORL.load(exp / "mo-lot-sizing-v0__cmorl__0" / "pareto")
    assert len(loaded.pareto_set()) >= 1
    summary = pd.read_csv(exp / "summary.csv")
    assert {"mo/hypervolume", "mo/expected_utility", "mo/sparsity"} <= set(summary.columns)
