"""The robustness harness: each perturbation moves its parameter, the nominal level is the
unperturbed env, and ``opsrl eval --perturb`` evaluates saved runs level by level."""

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from opsrl import perturb
from opsrl.cli import main
from opsrl.experiment import (
    evaluate_run_dir,
    execute_run,
    expand,
    make_vec_env,
    spec_from_dict,
)
from opsrl.perturb import (
    PERTURBATION_TABLE,
    PerturbationError,
    PerturbedSpec,
    evaluate_perturbed,
    make_perturbed_env,
    nominal_value,
    parse_perturb,
    perturbations,
    summarize_perturbed,
)
from opsrl.spec import EnvSpec

LOT = "opsrl/LotSizing-v0"
SMALL_LOT = {"instance": "3x2", "horizon": 30}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _play(env: gym.Env, seed: int, max_steps: int | None = None) -> tuple[list, list, dict]:
    """Observations and rewards of one episode under a seeded random (masked) policy."""
    obs, info = env.reset(seed=seed)
    space = env.action_space
    space.seed(seed)
    observations, rewards, done, steps = [obs], [], False, 0
    while not done and (max_steps is None or steps < max_steps):
        masks = getattr(env.unwrapped, "action_masks", None)
        if isinstance(space, gym.spaces.Discrete) and masks is not None:
            action = space.sample(mask=masks().astype(np.int8))
        else:
            action = space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        done = terminated or truncated
        steps += 1
    return observations, rewards, info


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a), np.asarray(b))


def _first_candidate_episode(env: gym.Env, seed: int) -> dict:
    env.reset(seed=seed)
    done = False
    while not done:
        action = int(np.flatnonzero(env.unwrapped.action_masks())[0])
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return info["kpi"]


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


def test_table_lists_the_documented_perturbations():
    names = {(p.env_id, p.name) for p in PERTURBATION_TABLE}
    assert names == {
        (LOT, "demand_scale"),
        ("opsrl/JobShop-v0", "shutdown_prob"),
        ("opsrl/RideSharing-v0", "demand_rate"),
        ("opsrl/UAMFleet-v0", "route_closure_prob"),
        ("opsrl/SimulatedLinearMDP-v0", "failure_prob"),
        ("opsrl/AmericanPut-v0", "up_prob"),
    }
    for p in PERTURBATION_TABLE:
        assert p.parameter and p.meaning
        assert f"| {p.env_id} | {p.name} |" in perturb.__doc__  # the doc page's table
        assert perturbations(p.env_id)[p.name] is p
    assert perturbations(LOT)["demand_scale"].how == "wrapper"
    assert perturbations("opsrl/JobShop-v0")["shutdown_prob"].how == "kwarg"
    assert perturbations("opsrl/JobShop-v0")["shutdown_prob"].valid_range == "[0, 1)"
    assert perturbations("opsrl/RideSharing-v0")["demand_rate"].valid_range == "(0, inf)"
    assert perturbations("opsrl/ESGPortfolio-v0") == {}


@pytest.mark.parametrize(
    ("text", "env_id", "expected"),
    [
        ("demand_scale=0.5,1,1.5", None, ("demand_scale", [0.5, 1.0, 1.5])),
        (" demand_scale = 2, 0.5 ,2", LOT, ("demand_scale", [2.0, 0.5])),
        ("shutdown_prob=0,0.1", "opsrl/JobShop-v0", ("shutdown_prob", [0.0, 0.1])),
    ],
)
def test_parse_perturb(text, env_id, expected):
    assert parse_perturb(text, env_id) == expected


@pytest.mark.parametrize(
    ("text", "env_id", "message"),
    [
        ("demand_scale", None, "--perturb takes NAME=V1,V2,..."),
        ("=1,2", None, "--perturb takes NAME=V1,V2,..."),
        ("demand_scale=", None, "no levels given"),
        ("demand_scale=1,,2", None, "empty level"),
        ("demand_scale=1,abc", None, "level 'abc' is not a number"),
        ("demand_scale=inf", None, "not a finite number"),
        (
            "demand_scal=1",
            LOT,
            "unknown perturbation 'demand_scal' for opsrl/LotSizing-v0; known: demand_scale",
        ),
        (
            "demand_scale=-0.5",
            LOT,
            "demand_scale=-0.5 is out of range for opsrl/LotSizing-v0: it must lie in [0, inf)",
        ),
        ("shutdown_prob=1", "opsrl/JobShop-v0", "must lie in [0, 1)"),
        ("demand_rate=0", "opsrl/RideSharing-v0", "must lie in (0, inf)"),
        ("x=1", "opsrl/ESGPortfolio-v0", "has no documented perturbations; envs with some:"),
    ],
)
def test_parse_perturb_errors_are_one_line(text, env_id, message):
    with pytest.raises(PerturbationError) as error:
        parse_perturb(text, env_id)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# --------------------------------------------------------------------------------------------
# each perturbation moves its parameter; the nominal level is the unperturbed env
# --------------------------------------------------------------------------------------------

NOMINAL_CASES = [
    (LOT, SMALL_LOT, "demand_scale", None),
    (LOT, {**SMALL_LOT, "demand": {"name": "uniform", "low": 2, "high": 9}}, "demand_scale", None),
    ("opsrl/JobShop-v0", {"observation": "flat"}, "shutdown_prob", 0.05),
    ("opsrl/JobShop-v0", {"shutdown_prob": 0.1}, "shutdown_prob", 0.1),
    ("opsrl/RideSharing-v0", {"num_vehicles": 8}, "demand_rate", 3.0),
    ("opsrl/UAMFleet-v0", {"observation": "flat"}, "route_closure_prob", 0.05),
    ("opsrl/UAMFleet-v0", {"config": {"route_closure_prob": 0.2}}, "route_closure_prob", 0.2),
]


@pytest.mark.parametrize(("env_id", "kwargs", "name", "nominal"), NOMINAL_CASES)
def test_nominal_level_reproduces_the_unperturbed_env(env_id, kwargs, name, nominal):
    expected_nominal = 1.0 if nominal is None else nominal
    assert nominal_value(env_id, name, kwargs) == expected_nominal
    plain = gym.make(env_id, **kwargs)
    perturbed = make_perturbed_env(env_id, kwargs, {name: expected_nominal})
    assert perturbed.unwrapped is not plain.unwrapped
    for seed in (0, 7):
        obs_a, rewards_a, info_a = _play(plain, seed, max_steps=300)
        obs_b, rewards_b, info_b = _play(perturbed, seed, max_steps=300)
        assert len(obs_a) == len(obs_b)
        assert all(_same(a, b) for a, b in zip(obs_a, obs_b, strict=True))
        assert rewards_a == rewards_b
        assert info_a["kpi"] == info_b["kpi"]


@pytest.mark.parametrize(
    "demand",
    [
        None,  # Binomial(20, 0.4)
        {"name": "poisson", "lam": [3.0, 8.0, 0.5]},
        {"name": "uniform", "low": [0, 1, 2], "high": [5, 7, 2]},
    ],
)
def test_demand_scale_multiplies_every_items_mean_demand(demand):
    kwargs = {**SMALL_LOT, **({"demand": demand} if demand else {})}
    nominal_env = gym.make(LOT, **kwargs)
    instance = nominal_env.unwrapped.instance
    mean = instance.demand.mean(instance.n_items)
    nominal_paths = []
    for seed in range(40):
        nominal_env.reset(seed=seed)
        nominal_paths.append(nominal_env.unwrapped.demand_path)
    for scale in (0.0, 0.5, 1.7, 2.5):
        env = make_perturbed_env(LOT, kwargs, {"demand_scale": scale})
        table = env.unwrapped.plant.demand_cdf
        exact = np.broadcast_to((1.0 - table).sum(axis=1), mean.shape)
        np.testing.assert_allclose(exact, scale * mean, rtol=1e-9, atol=1e-12)
        assert perturbations(LOT)["demand_scale"].effective(env) == pytest.approx(scale)
        paths = []
        for seed in range(40):
            env.reset(seed=seed)
            paths.append(env.unwrapped.demand_path)
        # over 40 x 30 periods the sample mean is within a few percent of scale x mean
        np.testing.assert_allclose(
            np.concatenate(paths).mean(axis=0), scale * mean, rtol=0.08, atol=0.05
        )
        # the same uniforms: demand grows with the level, period by period
        for scaled, nominal in zip(paths, nominal_paths, strict=True):
            assert (scaled >= nominal).all() if scale >= 1 else (scaled <= nominal).all()
        # planners keep the nominal model
        assert env.unwrapped.instance.demand == instance.demand


def test_demand_scale_beyond_a_binomial_probability_of_one_is_refused():
    with pytest.raises(PerturbationError, match="allows at most 2.5"):
        make_perturbed_env(LOT, SMALL_LOT, {"demand_scale": 2.6})


def test_shutdowns_become_more_frequent():
    rates = {}
    for level in (0.02, 0.2):
        env = make_perturbed_env(
            "opsrl/JobShop-v0", {"observation": "flat"}, {"shutdown_prob": level}
        )
        assert env.unwrapped.shutdown_prob == level
        windows = up_ticks = 0
        for seed in range(5):
            kpi = _first_candidate_episode(env, seed)
            makespan, machines = kpi["makespan"], env.unwrapped.sim.n_machines
            windows += sum(
                start < makespan for m in env.unwrapped.sim.downtime_windows for start, _ in m
            )
            up_ticks += makespan * machines - kpi["downtime"]
        rates[level] = windows / up_ticks  # shutdowns per operational machine tick
        assert rates[level] == pytest.approx(level, rel=0.35)
    assert rates[0.2] > 4 * rates[0.02]


def test_route_closures_become_more_frequent_and_nest():
    closed = {}
    for level in (0.05, 0.3):
        env = make_perturbed_env(
            "opsrl/UAMFleet-v0", {"observation": "flat"}, {"route_closure_prob": level}
        )
        assert env.unwrapped.config.route_closure_prob == level
        days = []
        for seed in range(6):
            env.reset(seed=seed)
            days.append(np.asarray(env.unwrapped.scenario.route_closed))
        closed[level] = np.stack(days)
        n = closed[level].shape[-1]
        upper = closed[level][..., np.triu_indices(n, k=1)[0], np.triu_indices(n, k=1)[1]]
        assert upper.mean() == pytest.approx(level, abs=0.04)  # 6 days x 12 h x 28 routes
    # the same random numbers: every route closed at 0.05 is closed at 0.3 too
    assert (closed[0.3] >= closed[0.05]).all() and closed[0.3].sum() > closed[0.05].sum()


def test_route_closure_prob_without_uncertainty_is_an_error():
    with pytest.raises(PerturbationError, match="does not take effect"):
        make_perturbed_env("opsrl/UAMFleet-v0", {"uncertainty": False}, {"route_closure_prob": 0.2})


def test_orders_per_minute_follow_the_demand_rate():
    for level in (1.5, 6.0):
        env = make_perturbed_env(
            "opsrl/RideSharing-v0", {"num_vehicles": 8}, {"demand_rate": level}
        )
        demand = env.unwrapped.core.demand
        assert demand.demand_rate == level
        minutes = env.unwrapped.core.config.episode_minutes
        expected = float(demand.rate(np.arange(minutes)).sum())  # orders per episode
        appeared = []
        for seed in range(12):
            env.reset(seed=seed)
            done = False
            while not done:  # scores of 0: the orders appear whatever the dispatch
                _, _, _, done, info = env.step(np.zeros(env.action_space.shape, np.float32))
            appeared.append(info["kpi"]["appeared_orders"])
        # Poisson counts: 12 episodes put the mean within 4 standard errors
        assert np.mean(appeared) == pytest.approx(expected, abs=4 * np.sqrt(expected / 12))


@pytest.mark.parametrize(
    ("env_id", "name"),
    [("opsrl/SimulatedLinearMDP-v0", "failure_prob"), ("opsrl/AmericanPut-v0", "up_prob")],
)
def test_robust_testbed_perturbations(env_id, name):
    if env_id not in gym.registry:
        pytest.skip(f"{env_id} is not registered yet")
    nominal = nominal_value(env_id, name)
    assert nominal == perturbations(env_id)[name].nominal  # the documented default
    plain = gym.make(env_id)
    same = make_perturbed_env(env_id, None, {name: nominal})
    for seed in (0, 1):
        obs_a, rewards_a, _ = _play(plain, seed, max_steps=200)
        obs_b, rewards_b, _ = _play(same, seed, max_steps=200)
        assert all(_same(a, b) for a, b in zip(obs_a, obs_b, strict=True))
        assert rewards_a == rewards_b
    other = 0.9 if nominal < 0.5 else 0.1
    shifted = make_perturbed_env(env_id, None, {name: other})
    effective = perturbations(env_id)[name].effective(shifted)
    assert effective is None or effective == pytest.approx(other)


def test_perturbed_vec_env_is_perturbed_and_nominal_without_levels():
    spec = EnvSpec(LOT, SMALL_LOT)
    plain = make_vec_env(spec, 2, seed=3, vec_env="dummy")
    same = PerturbedSpec(spec).make_vec(2, seed=3)
    scaled = PerturbedSpec(spec, {"demand_scale": 2.0}).make_vec(2, seed=3)
    obs = [venv.reset() for venv in (plain, same, scaled)]
    np.testing.assert_array_equal(obs[0], obs[1])
    paths = [np.stack(venv.get_attr("demand_path")) for venv in (plain, same, scaled)]
    np.testing.assert_array_equal(paths[0], paths[1])
    assert paths[2].mean() > 1.8 * paths[0].mean()
    for venv in (plain, same, scaled):
        venv.close()


# --------------------------------------------------------------------------------------------
# saved runs across levels: Python and the command line
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A tiny lot-sizing experiment (PPO with VecNormalize, Reptile adapting at evaluation,
    base stock) and a job shop baseline run."""
    root = tmp_path_factory.mktemp("perturb")
    lot = spec_from_dict(
        {
            "name": "lot",
            "envs": [{"id": LOT, "kwargs": {"instance": "3x2", "horizon": 10}}],
            "agents": [
                {
                    "name": "ppo",
                    "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
                    "normalize": True,  # evaluated through its saved observation statistics
                },
                {
                    "name": "reptile",
                    "hyperparams": {
                        "base_kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
                        "inner_timesteps": 32,
                        "meta_batch_size": 1,
                        "eval_adapt_timesteps": 32,
                    },
                },
            ],
            "baselines": ["base_stock"],
            "timesteps": 64,
            "eval": {"episodes": 2},
            "device": "cpu",
            "output_dir": str(root),
        }
    )
    shop = spec_from_dict(
        {
            "name": "shop",
            "envs": [{"id": "opsrl/JobShop-v0", "kwargs": {"observation": "flat"}}],
            "baselines": ["spt"],
            "eval": {"episodes": 2},
            "output_dir": str(root),
        }
    )
    for spec in (lot, shop):
        # the runs alone: the experiment's table, summary and plots are not needed here
        for run in expand(spec):
            outcome = execute_run(run, spec, root / spec.name)
            assert outcome.status == "finished", outcome.error
    return root


def test_evaluate_perturbed_is_a_tidy_table(experiment):
    frame = evaluate_perturbed(
        [experiment / "lot", experiment / "shop"], "demand_scale", [0.5, 1.0, 2.0]
    )
    runs = ["LotSizing-v0__base_stock__0", "LotSizing-v0__ppo__0", "LotSizing-v0__reptile__0"]
    assert sorted(frame["run"].unique()) == runs
    assert frame.attrs["skipped"] == {
        "JobShop-v0__spt__0": "opsrl/JobShop-v0 has no perturbation 'demand_scale'"
    }
    assert len(frame) == 3 * 3 * 2  # runs x levels x episodes
    for column in ("run", "env", "agent", "level", "nominal", "episode", "seed", "return"):
        assert column in frame
    assert "kpi/total_cost" in frame and (frame["nominal"] == 1.0).all()
    # every level replays the same episode seeds
    assert frame.groupby(["run", "level"])["seed"].apply(tuple).nunique() == 1
    # the nominal level reproduces each run's recorded evaluation
    for run in runs:
        recorded = json.loads((experiment / "lot" / run / "eval.json").read_text())
        at_nominal = frame[(frame["run"] == run) & (frame["level"] == 1.0)]
        assert at_nominal["return"].tolist() == pytest.approx(
            [e["episode_return"] for e in recorded["episodes"]]
        )
    summary = summarize_perturbed(frame)
    assert len(summary) == 9 and (summary["episodes"] == 2).all()
    base_stock = summary[summary["agent"] == "base_stock"].set_index("level")
    # twice the demand costs the (nominally tuned) base-stock policy lost sales
    assert base_stock.loc[2.0, "kpi/lost_sales_cost"] > base_stock.loc[1.0, "kpi/lost_sales_cost"]
    # and evaluate_run_dir records the level
    evaluation = evaluate_run_dir(
        experiment / "lot" / runs[0], episodes=1, perturbation={"demand_scale": 0.5}
    )
    assert evaluation["perturbation"] == {"demand_scale": 0.5}


def test_cli_eval_perturb_prints_a_row_per_level_and_writes_json(experiment, capsys, tmp_path):
    output = tmp_path / "robustness.json"
    code = main(
        [
            "eval",
            str(experiment / "lot"),
            "--perturb",
            "demand_scale=0.5,1.5",
            "--episodes",
            "1",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "demand_scale" in out
    for agent in ("base_stock", "ppo", "reptile"):
        rows = [line for line in out.splitlines() if line.startswith(f"│ {agent} ")]
        assert len(rows) == 2, out  # one per level
    written = json.loads(output.read_text())
    assert written["perturbation"] == "demand_scale" and written["levels"] == [0.5, 1.5]
    assert written["seeds"] == [1_000_000]
    assert len(written["summary"]) == 6 and len(written["episodes"]) == 6
    assert written["definitions"][LOT]["how"] == "wrapper"
    episodes = pd.read_csv(output.with_suffix(".csv"))
    assert len(episodes) == 6 and set(episodes["level"]) == {0.5, 1.5}


def test_cli_eval_perturb_with_a_kwarg_perturbation(experiment, capsys):
    run = experiment / "shop" / "JobShop-v0__spt__0"
    assert main(["eval", str(run), "--perturb", "shutdown_prob=0,0.05,0.3"]) == 0
    out = capsys.readouterr().out
    assert "0.05*" in out  # the run's nominal level is marked
    frame = evaluate_perturbed(run, "shutdown_prob", [0.0, 0.3])
    makespan = frame.groupby("level")["kpi/makespan"].mean()
    assert makespan[0.3] > makespan[0.0]


@pytest.mark.parametrize(
    ("perturb_args", "message"),
    [
        (["--perturb", "nope=1"], "unknown perturbation 'nope' for opsrl/LotSizing-v0; known: "),
        (["--perturb", "demand_scale=a,b"], "level 'a' is not a number"),
        (["--perturb", "demand_scale=-1"], "must lie in [0, inf)"),
        (["--perturb", "demand_scale=3"], "allows at most 2.5"),
        (["--perturb", "demand_scale"], "--perturb takes NAME=V1,V2,..."),
        (["--perturb", "demand_scale=1", "--perturb", "demand_scale=2"], "one --perturb"),
    ],
)
def test_cli_eval_perturb_mistakes_are_one_line_errors(experiment, capsys, perturb_args, message):
    run = experiment / "lot" / "LotSizing-v0__base_stock__0"
    assert main(["eval", str(run), *perturb_args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_eval_several_dirs_need_perturb(experiment, capsys):
    runs = [str(p) for p in sorted((experiment / "lot").glob("LotSizing-v0__*"))]
    assert main(["eval", *runs]) == 2
    assert "go with --perturb" in capsys.readouterr().err


def test_table_ids_are_registered_ids():
    for p in PERTURBATION_TABLE:
        if p.env_id in ("opsrl/SimulatedLinearMDP-v0", "opsrl/AmericanPut-v0"):
            continue  # written by another helper; their tests skip until they exist
        assert p.env_id in gym.registry
