"""A tiny YAML experiment through the process-pool backend, as `opsrl run SPEC` runs it."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
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


def test_auto_vec_env_is_batched_from_two_copies():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from opsrl.envs.lot_sizing.vec import LotSizingVecEnv
    from opsrl.experiment import make_vec_env, resolve_vec_env
    from opsrl.spec import EnvSpec

    env = EnvSpec("opsrl/LotSizing-v0", {"instance": "3x2"})
    assert resolve_vec_env(env, "auto", 1) == "dummy"
    assert resolve_vec_env(env, "auto", 2) == "batched"
    assert resolve_vec_env(env, "batched", 1) == "batched"  # asked for, it is kept
    one, two = make_vec_env(env, 1, 0, "auto"), make_vec_env(env, 2, 0, "auto")
    assert isinstance(getattr(one, "venv", one), DummyVecEnv)
    assert isinstance(two.venv, LotSizingVecEnv)


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


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_pool_workers_end_with_a_killed_parent(tmp_path):
    # A killed `opsrl run` cannot shut its pool down; its workers must not train on (and
    # write into the experiment directory) as orphans.
    spec = tmp_path / "long.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "long",
                "output_dir": str(tmp_path / "runs"),
                "envs": ["CartPole-v1"],
                "agents": ["ppo"],
                "seeds": [0, 1],
                "timesteps": 10_000_000,
                "workers": 2,
            }
        )
    )
    parent = subprocess.Popen(
        [sys.executable, "-m", "opsrl.cli", "run", str(spec), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        # the pool's workers (and the Manager's server): wait until the runs have started
        while time.monotonic() < deadline and not any(
            p.name.endswith(".partial") for p in (tmp_path / "runs" / "long").glob(".*")
        ):
            time.sleep(0.5)
        workers = _children(parent.pid)
        assert len(workers) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.5)
        assert not [p for p in workers if _alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
