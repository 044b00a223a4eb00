"""PGMORL (morl-baselines) as an opsrl multi-policy agent: budget, Pareto set acting on raw
observations, save/load, errors, and a run through ``opsrl run``."""

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("morl_baselines", reason="pgmorl needs morl-baselines (the `morl` extra)")
pytest.importorskip("pymoo", reason="the Pareto metrics need pymoo (the `mo` extra)")

from opsrl.agents.cmorl.moppo import make_mo_env  # noqa: E402
from opsrl.agents.pgmorl import PGMORLAgent  # noqa: E402
from opsrl.cli import main  # noqa: E402
from opsrl.mo.pareto import non_dominated  # noqa: E402

ESG = "opsrl/mo-esg-portfolio-v0"
ESG_KWARGS = {"episode_days": 10}
#: 4 warm-up weights (delta 1/3), 2 envs x 16 steps per update: 128 env steps per iteration
SMALL = {
    "pop_size": 4,
    "num_envs": 2,
    "steps_per_iteration": 16,
    "delta_weight": 1 / 3,
    "ppo_kwargs": {"update_epochs": 1, "num_minibatches": 2},
}


@pytest.fixture(scope="module")
def trained():
    agent = PGMORLAgent(ESG, ESG_KWARGS, total_timesteps=4 * 128 + 50, seed=0, **SMALL)
    return agent.learn()


def test_budget_is_whole_generations_within_total_timesteps(trained):
    # 4 iterations fit in 562 steps: warm-up 2, then generations of 1 iteration each
    assert (trained.warmup_iterations, trained.evolutionary_iterations) == (2, 1)
    assert trained.planned_timesteps == 4 * 128
    assert trained.num_timesteps == trained.planned_timesteps


def test_pareto_set_is_non_dominated_and_acts_on_raw_observations(trained):
    solutions = trained.pareto_set()
    assert solutions
    values = np.array([s.values for s in solutions])
    assert len(non_dominated(values)) == len(values)
    env = make_mo_env(ESG, ESG_KWARGS)
    obs, _ = env.reset(seed=3)
    for solution in solutions:
        assert solution.weights.sum() == pytest.approx(1.0)
        action, state = solution.policy.predict(obs, deterministic=True)
        assert state is None and env.action_space.contains(action)
        again, _ = solution.policy.predict(obs, deterministic=True)
        np.testing.assert_array_equal(action, again)
        batch, _ = solution.policy.predict(np.stack([obs, obs]))
        np.testing.assert_allclose(batch[0], action, rtol=1e-4, atol=1e-8)
    # one episode with the uniform-weight choice runs to its end
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(trained.predict(obs)[0])
        assert reward.shape == (2,)
        done = terminated or truncated


def test_save_load_round_trip(trained, tmp_path):
    trained.save(tmp_path / "set")
    loaded = PGMORLAgent.load(tmp_path / "set")
    assert loaded.num_timesteps == trained.num_timesteps
    obs, _ = make_mo_env(ESG, ESG_KWARGS).reset(seed=5)
    for before, after in zip(trained.pareto_set(), loaded.pareto_set(), strict=True):
        np.testing.assert_array_equal(before.values, after.values)
        np.testing.assert_array_equal(before.weights, after.weights)
        np.testing.assert_allclose(after.policy.predict(obs)[0], before.policy.predict(obs)[0])


def test_errors_are_one_line():
    with pytest.raises(ValueError, match="needs Box actions.*MultiDiscrete"):
        PGMORLAgent("opsrl/mo-lot-sizing-v0", {"instance": "3x2"})
    with pytest.raises(ValueError, match="below one warm-up and one generation"):
        PGMORLAgent(ESG, ESG_KWARGS, total_timesteps=100, **SMALL)
    with pytest.raises(ValueError, match="pop_size must be between 4 and the warm-up grid's 3"):
        PGMORLAgent(ESG, ESG_KWARGS, pop_size=4, delta_weight=0.5)
    with pytest.raises(ValueError, match="sets 'env_id' itself"):
        PGMORLAgent(ESG, ESG_KWARGS, ppo_kwargs={"env_id": "x"})
    with pytest.raises(ValueError, match="no pgmorl manifest"):
        PGMORLAgent.load("/nonexistent/dir")


def test_pgmorl_run_through_the_experiment_runner(tmp_path):
    spec = tmp_path / "pg.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "pg",
                "output_dir": str(tmp_path / "runs"),
                "envs": [{"id": ESG, "kwargs": ESG_KWARGS}],
                "agents": [{"name": "pgmorl", "hyperparams": SMALL}],
                "timesteps": 3 * 128,
                "eval": {"episodes": 2},
            }
        )
    )
    assert main(["run", str(spec), "--no-progress", "--no-report"]) == 0
    run_dir = tmp_path / "runs" / "pg" / "mo-esg-portfolio-v0__pgmorl__0"
    front = pd.read_csv(run_dir / "pareto.csv")
    assert len(front) >= 1 and np.isfinite(front[["objective_0", "objective_1"]]).all().all()
    table = pd.read_parquet(tmp_path / "runs" / "pg" / "results.parquet")
    rows = table[table["run"] == run_dir.name].set_index("metric")["value"]
    assert rows["mo/hypervolume"] >= 0 and rows["mo/pareto_size"] == len(front)
    assert len(PGMORLAgent.load(run_dir / "pareto").pareto_set()) >= 1
