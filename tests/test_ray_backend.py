"""The ray backend on a local Ray with 2 CPUs: the same results as the local backend, and a run
whose worker is killed is retried with nothing lost."""

import json

import pandas as pd
import pytest
import yaml

ray = pytest.importorskip("ray", reason='the ray backend needs the ray extra: pip install ".[ray]"')

from opsrl.cli import main  # noqa: E402
from opsrl.ray_backend import KILL_ONCE_ENV  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _write_spec(tmp_path, name):
    spec = {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "envs": [{"id": "opsrl/LotSizing-v0", "kwargs": {"instance": "3x2"}}],
        "agents": [{"name": "ppo", "hyperparams": {"n_steps": 32, "batch_size": 32}}],
        "baselines": ["base_stock"],
        "seeds": [0, 1],
        "timesteps": 64,
        "n_envs": 2,
        "eval": {"episodes": 2},
        "workers": 2,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _comparable(exp_dir):
    table = pd.read_parquet(exp_dir / "results.parquet")
    table = table[table["metric"] != "wall_time_s"]
    return table.sort_values(["run", "metric", "step"]).reset_index(drop=True)


def test_ray_gives_the_local_results(tmp_path, local_ray, capsys):
    assert main(["run", str(_write_spec(tmp_path, "on_ray")), "--no-progress", "--no-report",
                 "--backend", "ray"]) == 0  # fmt: skip
    assert main(["run", str(_write_spec(tmp_path, "local")), "--no-progress", "--no-report",
                 "--workers", "1"]) == 0  # fmt: skip
    on_ray, local = (
        _comparable(tmp_path / "runs" / "on_ray"),
        _comparable(tmp_path / "runs" / "local"),
    )
    assert len(on_ray) and set(on_ray["run"]) == set(local["run"])
    pd.testing.assert_frame_equal(on_ray, local)


def test_killed_worker_is_retried_and_nothing_is_lost(tmp_path, local_ray, monkeypatch, capsys):
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_ONCE_ENV, str(marker))
    ray.shutdown()  # the workers must start with the fault-injection variable
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    assert main(["run", str(_write_spec(tmp_path, "killed")), "--no-progress", "--no-report",
                 "--backend", "ray", "--max-retries", "2"]) == 0  # fmt: skip
    assert marker.is_file()  # a worker was killed mid-run
    exp = tmp_path / "runs" / "killed"
    assert json.loads((exp / "failures.json").read_text()) == {}
    table = pd.read_parquet(exp / "results.parquet")
    assert set(table["run"]) == {
        "LotSizing-v0__ppo__0", "LotSizing-v0__ppo__1", "LotSizing-v0__base_stock__0"
    }  # fmt: skip
    assert not list(exp.glob(".*.partial"))  # no half-written run left behind
