"""The ``opsrl`` command line as a user runs it: list, run (flags, spec, resume), eval, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from opsrl.cli import main

TINY = [
    "-n",
    "512",
    "--hyperparams",
    "n_steps:128",
    "batch_size:64",
    "n_epochs:1",
    "--eval-episodes",
    "2",
    "--no-progress",
]


def test_list_shows_envs_agents_baselines(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("opsrl/LotSizing-v0", "maskable_ppo", "ppo", "random"):
        assert name in out


def test_run_flags_writes_runs_table_and_eval(tmp_path, capsys):
    code = main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--agent",
            "ppo",
            "--seed",
            "3",
            "--baseline",
            "random",
            "--name",
            "smoke",
            "--output",
            str(tmp_path),
            "--eval-freq",
            "256",
            *TINY,
        ]
    )
    assert code == 0
    exp = tmp_path / "smoke"
    run_dir = exp / "CartPole-v1__ppo__3"
    for name in ("config.yaml", "model.zip", "eval.json", "progress.csv", "results.csv"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*")), "TensorBoard log missing"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["run"]["agent"]["hyperparams"] == {
        "n_steps": 128,
        "batch_size": 64,
        "n_epochs": 1,
    }
    assert config["resolved"]["hyperparams"]["gamma"] == 0.99
    table = pd.read_parquet(exp / "results.parquet")
    assert list(table.columns) == ["run", "env", "agent", "seed", "kind", "step", "metric", "value"]
    assert set(table["agent"]) == {"ppo", "random"}
    assert "eval/return" in set(table["metric"])
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert [e["seed"] for e in evaluation["episodes"]] == [1_000_000, 1_000_001]
    random_eval = json.loads((exp / "CartPole-v1__random__3" / "eval.json").read_text())
    assert random_eval["seeds"] == evaluation["seeds"]  # same episodes for agents and baselines
    assert "ppo" in capsys.readouterr().out

    # re-evaluating the saved model reproduces the recorded evaluation
    assert main(["eval", str(run_dir), "--output", str(tmp_path / "re.json")]) == 0
    again = json.loads((tmp_path / "re.json").read_text())
    assert again["summary"]["return"] == pytest.approx(evaluation["summary"]["return"])

    # a second run of the same experiment refuses to overwrite finished runs
    assert (
        main(
            [
                "run",
                "--env",
                "CartPole-v1",
                "--agent",
                "ppo",
                "--seed",
                "3",
                "--name",
                "smoke",
                "--output",
                str(tmp_path),
                *TINY,
            ]
        )
        == 2
    )
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--env", "opsrl/Nope-v0", "--agent", "ppo"], "unknown env id 'opsrl/Nope-v0'"),
        (["run", "--env", "CartPole-v1", "--agent", "pp0"], "unknown agent 'pp0'"),
        (
            ["run", "--env", "CartPole-v1", "--agent", "ppo", "--hyperparams", "lr:1"],
            "PPO has no hyperparameter 'lr'",
        ),
        (
            [
                "run",
                "--env",
                "opsrl/LotSizing-v0",
                "--agent",
                "ppo",
                "--env-kwargs",
                "instance:9x9",
            ],
            "9x9",
        ),
        (["run", "no_such_spec.yaml"], "experiment spec not found: no_such_spec.yaml"),
        (["eval", "no_such_dir"], "is not a run directory"),
    ],
)
def test_user_mistakes_are_one_line_errors(args, message, capsys, tmp_path):
    assert main([*args, "--output", str(tmp_path)] if args[0] == "run" else args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_bad_yaml_key_is_named(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("envs: [CartPole-v1]\nagents: [ppo]\ntimestep: 100\n")
    assert main(["run", str(spec)]) == 2
    assert "unknown key 'timestep'" in capsys.readouterr().err


def test_agent_that_cannot_handle_the_action_space_fails_cleanly(tmp_path, capsys):
    code = main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--agent",
            "sac",
            "--name",
            "x",
            "--output",
            str(tmp_path),
            "-n",
            "100",
            "--no-progress",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "agent 'sac' cannot run on" in out
    assert not (tmp_path / "x" / "CartPole-v1__sac__0").exists()
    assert not list((tmp_path / "x").glob(".*partial"))


def test_resume_after_killed_run_keeps_finished_runs(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "killed",
                "output_dir": str(tmp_path / "runs"),
                "envs": ["CartPole-v1"],
                "agents": [{"name": "ppo", "hyperparams": {"n_steps": 256, "n_epochs": 2}}],
                "seeds": [0, 1],
                "timesteps": 20_000,
                "eval": {"episodes": 1},
                "workers": 1,
            }
        )
    )
    exp = tmp_path / "runs" / "killed"
    first, second = exp / "CartPole-v1__ppo__0", exp / "CartPole-v1__ppo__1"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "opsrl.cli", "run", str(spec), "--no-progress", "-n", "6000"]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not first.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.exists(), "the first run did not finish in time"
        time.sleep(0.5)  # the second run is now training
        assert process.poll() is None, "the experiment ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not second.exists(), "a killed run must leave no result directory"
    kept = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    model_bytes = (first / "model.zip").read_bytes()

    done = subprocess.run(
        [*command, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "1 finished run(s) kept, 1 to run" in done.stdout
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == kept
    assert (first / "model.zip").read_bytes() == model_bytes
    assert (second / "eval.json").is_file()
    assert not list(exp.glob(".*partial"))
    table = pd.read_parquet(exp / "results.parquet")
    assert set(table["seed"]) == {0, 1}

    # a changed spec cannot silently reuse the finished runs
    changed = subprocess.run(
        [*command[:-1], "7000", "--resume"], env=env, capture_output=True, text=True, timeout=120
    )
    assert changed.returncode == 2
    assert "made with other settings" in changed.stderr
    assert Path(first / "model.zip").read_bytes() == model_bytes
