"""`opsrl bench`: the measurement library (env steps/s, PPO throughput, tables) and its CLI."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from opsrl import bench, cli
from opsrl.bench import BenchEnv, BenchSettings, RandomValidActions
from opsrl.envs import ENV_TABLE

REPO = Path(__file__).resolve().parents[1]
ESG_BATCHED = "opsrl.envs.esg_portfolio.vec:ESGPortfolioVecEnv"
TINY_ESG = {"n_assets": 4, "n_days": 40, "lookback": 5, "episode_days": 6}
TINY_LOT_SIZING = {"instance": "3x2", "horizon": 8}


def tiny_settings(**overrides) -> BenchSettings:
    """Smaller still than --quick, so that the tests stay fast on a loaded machine."""
    return BenchSettings.quick(
        copies=(4, 16),
        dummy_envs=2,
        seconds=0.01,
        ppo_steps=32,
        ppo_envs=2,
        ppo_rollout=16,
        scaling_sizes=1,
        **overrides,
    )


def table_rows(markdown: str, title: str) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of the markdown table under ``### title``."""
    section = markdown.split(f"### {title}")[1].split("###")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


def number(cell: str) -> float:
    return float(cell.split(" ")[0].replace(",", ""))


# ----------------------------------------------------------------------------- envs


def test_or_envs_cover_the_or_families_and_follow_the_env_table(monkeypatch):
    envs = bench.or_envs()
    assert [env.family for env in envs] == list(bench.OR_FAMILIES)
    assert {env.env_id for env in envs} == {
        "opsrl/LotSizing-v0",
        "opsrl/JobShop-v0",
        "opsrl/UAMFleet-v0",
        "opsrl/RideSharing-v0",
        "opsrl/ESGPortfolio-v0",
    }  # no multi-objective variant, no Mario
    lot_sizing = envs[0]
    assert lot_sizing.batched_entry_point == "opsrl.envs.lot_sizing.vec:LotSizingVecEnv"
    assert bench.or_envs(["job_shop", "LotSizing-v0", "opsrl/JobShop-v0"]) == envs[1::-1]
    with pytest.raises(ValueError, match="unknown env 'Pong' for opsrl bench; known: opsrl/"):
        bench.or_envs(["Pong"])
    # A family whose entry gains a batched_entry_point gets its batched columns, unchanged code.
    patched = tuple(
        dataclasses.replace(entry, batched_entry_point=ESG_BATCHED)
        if entry.id == "opsrl/ESGPortfolio-v0"
        else entry
        for entry in ENV_TABLE
    )
    monkeypatch.setattr(bench, "ENV_TABLE", patched)
    (esg,) = bench.or_envs(["esg_portfolio"])
    assert esg.batched_entry_point == ESG_BATCHED


def test_random_valid_actions_respect_masks_and_bounds():
    rng = np.random.default_rng(1)
    discrete = RandomValidActions(spaces.Discrete(5, start=2), 50, seed=0, batches=4)
    masks = rng.random((50, 5)) < 0.4
    masks[:, 3] = True
    for step in range(4):
        actions = discrete(step, masks)
        assert actions.shape == (50,)
        assert masks[np.arange(50), actions - 2].all()
    assert set(np.unique(discrete(0))) <= set(range(2, 7))  # no masks: any option

    multi = RandomValidActions(spaces.MultiDiscrete([3, 4]), 40, seed=0, batches=2)
    masks = rng.random((40, 7)) < 0.5
    masks[:, [0, 3]] = True
    actions = multi(1, masks)
    assert masks[np.arange(40), actions[:, 0]].all()
    assert masks[np.arange(40), 3 + actions[:, 1]].all()
    # every allowed option comes up
    only_two = np.zeros((40, 7), dtype=bool)
    only_two[:, [1, 2, 4, 6]] = True
    seen = np.concatenate([multi(step, only_two) for step in range(2)])
    assert set(seen[:, 0]) == {1, 2} and set(seen[:, 1]) == {1, 3}

    box = RandomValidActions(spaces.Box(-2.0, 3.0, (6,), dtype=np.float32), 8, seed=0)
    actions = box(5)
    assert actions.shape == (8, 6) and actions.dtype == np.float32
    assert actions.min() >= -2.0 and actions.max() <= 3.0
    with pytest.raises(ValueError, match="Box, Discrete and 1-D MultiDiscrete"):
        RandomValidActions(spaces.MultiBinary(3), 2)


def test_env_steps_per_second_of_each_vectorisation():
    esg = BenchEnv("opsrl/ESGPortfolio-v0", TINY_ESG, "esg_portfolio", ESG_BATCHED)
    for kind, n_envs in (("single", 1), ("dummy", 3), ("batched", 8)):
        rate = bench.measure_env_steps(esg, kind, n_envs, seconds=0.01, repeats=1)
        assert rate > 0
    # whole episodes: the run goes on to an episode's end
    rate = bench.measure_env_steps(esg, "batched", 8, seconds=0.001, repeats=2, episode_length=6)
    assert rate > 0
    # by this process's CPU time, steadier on a shared machine
    assert bench.measure_env_steps(esg, "batched", 8, seconds=0.01, repeats=1, clock="cpu") > 0
    with pytest.raises(ValueError, match="clock must be one of wall, cpu"):
        bench.measure_env_steps(esg, "single", seconds=0.01, clock="gpu")
    with pytest.raises(ValueError, match="no batched VecEnv"):
        bench.make_vec(dataclasses.replace(esg, batched_entry_point=None), "batched", 2)


def test_ppo_throughput_splits_collection_env_and_training():
    lot_sizing = BenchEnv(
        "opsrl/LotSizing-v0",
        TINY_LOT_SIZING,
        "lot_sizing",
        "opsrl.envs.lot_sizing.vec:LotSizingVecEnv",
    )
    timing = bench.measure_ppo(lot_sizing, "batched", 4, 64, rollout=32, n_epochs=1)
    assert timing.algorithm == "MaskablePPO" and timing.steps == 64
    assert 0 < timing.env_s < timing.collection_s < timing.total_s
    assert timing.steps_per_s > 0 and timing.training_s > 0
    assert timing.bound_by in ("env", "learner")


def test_quick_table_has_every_column_and_positive_numbers():
    envs = [
        BenchEnv("opsrl/LotSizing-v0", TINY_LOT_SIZING, "lot_sizing", None),
        BenchEnv("opsrl/ESGPortfolio-v0", TINY_ESG, "esg_portfolio", ESG_BATCHED),
    ]
    report = bench.run_bench(tiny_settings(), envs, progress=None)
    markdown = bench.render_markdown(report)

    header, rows = table_rows(markdown, "Env steps per second")
    assert header == [
        "env",
        "settings",
        "single",
        "DummyVecEnv(2)",
        "SubprocVecEnv(2)",
        "batched(4)",
        "batched(16)",
    ]
    assert [row[0] for row in rows] == ["LotSizing-v0", "ESGPortfolio-v0"]
    assert rows[0][5:] == ["-", "-"]  # no batched entry point, no batched columns
    for row in rows:
        assert all(number(cell) > 0 for cell in row[2:] if cell != "-")
    for cell in rows[1][5:]:  # batched rate (ratio to DummyVecEnv)
        assert re.fullmatch(r"[\d,]+ \(\d+\.\dx\)", cell)

    header, rows = table_rows(markdown, "PPO training throughput")
    assert header[:4] == ["env", "algorithm", "vectorisation", "env steps/s"]
    assert [row[2] for row in rows] == [
        "DummyVecEnv(2)",
        "SubprocVecEnv(2)",
        "DummyVecEnv(2)",
        "SubprocVecEnv(2)",
        "batched(2)",
    ]
    assert [row[1] for row in rows] == ["MaskablePPO"] * 2 + ["PPO"] * 3
    for row in rows:
        # throughput positive; the time splits may round to 0.00 s at these tiny settings
        assert number(row[3]) > 0 and all(number(cell) >= 0 for cell in row[4:7])
        assert row[7] in ("env", "learner")

    header, rows = table_rows(markdown, "Step cost against problem size")
    assert header[:3] == ["env", "size parameter", "size"]
    assert [(row[0], row[2]) for row in rows] == [
        ("LotSizing-v0", "5x3"),
        ("ESGPortfolio-v0", "10"),
    ]
    assert rows[0][4] == "-" and number(rows[1][4]) > 0 and number(rows[1][3]) > 0
    assert report.machine in markdown


# ----------------------------------------------------------------------------- CLI


def run_cli(args, capsys):
    code = cli.main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_runs_the_table_and_writes_it(monkeypatch, capsys, tmp_path):
    small = {"lot_sizing": TINY_LOT_SIZING}
    monkeypatch.setattr(bench, "DEFAULT_KWARGS", small)
    output = tmp_path / "bench.md"
    code, out, err = run_cli(
        [
            "--quick",
            "--envs",
            "lot_sizing",
            "--copies",
            "3,5",
            "--ppo-steps",
            "0",
            "--no-scaling",
            "--seconds",
            "0.01",
            "--output",
            str(output),
        ],
        capsys,
    )
    assert code == 0, err
    assert "| LotSizing-v0 | instance=3x2, horizon=8 |" in out
    assert "batched(3)" in out and "batched(5)" in out
    assert "PPO training throughput" not in out and "problem size" not in out
    assert "LotSizing-v0: env steps" in err  # progress goes to stderr
    written = output.read_text()
    assert written.startswith("Command: `opsrl bench --quick --envs lot_sizing --copies 3,5")
    assert "| LotSizing-v0 |" in written


@pytest.mark.parametrize(
    "args, message",
    [
        (["--envs", "Pong"], "unknown env 'Pong' for opsrl bench"),
        (["--copies", "64,x"], "--copies takes positive integers"),
        (["--copies", "0"], "--copies takes positive integers"),
        (["--ppo-steps", "-1"], "--ppo-steps must be at least 0"),
        (["--repeats", "0"], "--repeats must be at least 1"),
        (["--seconds", "0"], "--seconds must be positive"),
        (["--envs", ","], "--envs needs at least one"),
        (["no_such_script"], "unknown benchmark 'no_such_script'; known: "),
        (["--envs", "job_shop", "lot_sizing_vec"], "--envs apply to the env table"),
        (["--list", "lot_sizing_vec"], "--list takes no script name"),
    ],
)
def test_cli_errors_are_one_line(args, message, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("opsrl bench: error: ")
    assert message in err


def test_cli_lists_and_runs_scripts_with_their_arguments(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(REPO)
    code, out, _ = run_cli(["--list"], capsys)
    assert code == 0 and "vec_envs" in out and "lot_sizing_vec" in out

    # a script sees its own arguments in sys.argv, as under `python benchmarks/NAME.py ...`
    scripts = tmp_path / "benchmarks"
    scripts.mkdir()
    (scripts / "echo_args.py").write_text("import sys\nprint('argv', sys.argv[1:])\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["echo_args", "--repeats", "1", "extra"], capsys)
    assert code == 0 and "argv ['--repeats', '1', 'extra']" in out
    code, out, _ = run_cli(["--quick", "echo_args"], capsys)
    assert code == 0 and "argv ['--quick']" in out
    monkeypatch.chdir(tmp_path / "benchmarks")
    code, _, err = run_cli(["echo_args"], capsys)
    assert code == 2 and "no benchmarks/ directory here" in err
