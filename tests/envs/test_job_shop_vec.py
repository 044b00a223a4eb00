"""The batched job shop env: step-for-step equality with SB3's DummyVecEnv of JobShopEnv
(observations, rewards, dones, masks, terminal observations, KPIs, across auto-resets) for
every mode and observation, its shutdown-window machinery against the simulator's, the VecEnv
API, and training with MaskablePPO and GnnPPO."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from opsrl.envs.job_shop import JobShopEnv, JobShopSim, load_instance
from opsrl.envs.job_shop.vec import (
    JobShopVecEnv,
    _instance_tables,
    _numpy_stream_states,
    _ShopBatch,
    _stream_states,
)


def assert_same(expected: Any, actual: Any, what: str) -> None:
    if isinstance(expected, dict):
        assert expected.keys() == actual.keys(), what
        for key in expected:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{what}: {key}")
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def run_side_by_side(kwargs: dict[str, Any], n_envs: int, seed: int, steps: int) -> dict:
    """Step a DummyVecEnv of JobShopEnv and the batched env with the same random masked
    actions; assert equality of everything SB3 sees; return counts of what happened."""
    single = DummyVecEnv([lambda: JobShopEnv(**kwargs) for _ in range(n_envs)])
    single.seed(seed)
    batched = JobShopVecEnv(n_envs, seed=seed, **kwargs)
    assert_same(single.reset(), batched.reset(), "reset observation")
    for i in range(n_envs):
        assert batched.reset_infos[i] == single.reset_infos[i]
    rng = np.random.default_rng(seed)
    seen = {"episodes": 0, "deadlocks": 0, "invalid": 0, "swaps": 0.0}
    for step in range(steps):
        masks = np.stack(single.env_method("action_masks"))
        assert_same(masks, batched.action_masks(), f"masks at step {step}")
        assert_same(masks, np.stack(batched.env_method("action_masks")), "env_method masks")
        actions = np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])
        if step % 7 == 3 and not masks[0].all():  # a non-candidate: replaced and flagged
            actions[0] = np.flatnonzero(~masks[0])[0]
        obs, rewards, dones, infos = single.step(actions)
        batched_obs, batched_rewards, batched_dones, batched_infos = batched.step(actions)
        assert_same(obs, batched_obs, f"observation at step {step}")
        assert_same(rewards, batched_rewards, f"rewards at step {step}")
        assert_same(dones, batched_dones, f"dones at step {step}")
        for i in range(n_envs):
            info, batched_info = infos[i], batched_infos[i]
            assert batched_info["invalid_action"] == info["invalid_action"]
            seen["invalid"] += info["invalid_action"]
            if not dones[i]:
                continue
            seen["episodes"] += 1
            seen["deadlocks"] += info["deadlock"]
            seen["swaps"] += info["kpi"]["swaps"]
            assert_same(
                info["terminal_observation"], batched_info["terminal_observation"], "terminal"
            )
            for key in ("kpi", "deadlock", "time", "instance", "TimeLimit.truncated"):
                assert batched_info[key] == info[key], (step, i, key)
            assert batched.reset_infos[i] == single.reset_infos[i]
    return seen


EQUALITY_CASES = {
    # the registered default: ISBJSSP (blocking, swaps, geometric shutdowns) on ft06, graph
    "isbjssp-graph": ({}, 4, 60),
    "isbjssp-flat-lower-bound": (
        {"observation": "flat", "reward": "lower_bound", "reward_scale": 10.0},
        3,
        50,
    ),
    "classic-graph": ({"blocking": False, "shutdown_prob": 0.0}, 3, 80),
    "classic-flat-fixed-shutdowns": (
        {
            "blocking": False,
            "observation": "flat",
            "shutdown_prob": 0.2,
            "downtime": 3,
            "downtime_model": "fixed",
        },
        3,
        80,
    ),
    "bws-graph": ({"shutdown_prob": 0.0, "instance": "la01"}, 3, 110),
    "no-swap-deadlocks": (
        {"swap": False, "shutdown_prob": 0.1, "instance": "la01", "reward": "lower_bound"},
        4,
        60,
    ),
    "random-sizes-padded": (
        {
            "instance": [{"jobs": 3, "machines": 2}, {"jobs": 5, "machines": 4}],
            "max_jobs": 6,
            "max_machines": 5,
            "shutdown_prob": 0.3,
            "downtime": 3,
            "downtime_model": "fixed",
        },
        4,
        60,
    ),
    "benchmarks-by-seed-flat": (
        {
            "instance": ["ft06", {"jobs": 4, "machines": 6, "seed": 1}],
            "instance_selection": "seed",
            "observation": "flat",
            "max_jobs": 7,
        },
        3,
        60,
    ),
}


@pytest.mark.parametrize("case", sorted(EQUALITY_CASES))
def test_batched_env_equals_dummy_vec_env_step_for_step(case):
    kwargs, n_envs, steps = EQUALITY_CASES[case]
    seen = run_side_by_side(kwargs, n_envs=n_envs, seed=11, steps=steps)
    assert seen["episodes"] >= n_envs  # auto-resets were compared too
    assert seen["invalid"] > 0
    if case == "no-swap-deadlocks":
        assert seen["deadlocks"] > 0
    if case in ("isbjssp-graph", "bws-graph"):
        assert seen["swaps"] > 0


@pytest.mark.parametrize("model", ["geometric", "fixed"])
def test_shutdown_windows_match_the_simulator_far_beyond_the_first_sample(model):
    # long times force the batched env to draw more batches of windows lazily; the operational
    # ticks, shutdown flags and ends, and operation end times must agree with the simulator
    instance = load_instance("ft06")
    kwargs = {"shutdown_prob": 0.3, "downtime": 4.0, "downtime_model": model}
    tables = _instance_tables(instance, 6, 6, blocking=True, swap=True)
    shop = _ShopBatch(3, 6, 6, blocking=True, swap=True, **kwargs)
    seeds = [5, 2**40 + 3, 123456789]
    shop.load(np.arange(3), [tables] * 3, seeds)
    sims = []
    for seed in seeds:
        sim = JobShopSim(instance, **kwargs)
        sim.reset(seed=seed)
        sim.ensure_windows(6000)
        sims.append(sim)
    rows = np.arange(3)
    for time in (0, 1, 7, 300, 301, 2500, 2501, 5000):
        shop.time[:] = time
        shop._advance(rows)
        shop._refresh(rows)
        downtime = [sim.downtime_until(time) for sim in sims]
        np.testing.assert_array_equal(shop.downtime_until_now(rows), downtime)
        for row, sim in enumerate(sims):
            up_now = shop._up_now_at(np.full(6, row), np.arange(6))
            np.testing.assert_array_equal(up_now, sim._up[:, time])
            down = sim._up[:, time + 1] == sim._up[:, time]
            np.testing.assert_array_equal(shop.down[row, :6], down)
            for machine in np.flatnonzero(down):
                ends = [end for start, end in sim.downtime_windows[machine] if start <= time]
                assert shop.down_until[row, machine] == ends[-1]
            targets = up_now + np.array([1, 5, 40, 99, 300, 700])
            machines = np.arange(6)
            expected = sim._first_time_with_up(machines, targets)
            actual = shop._first_time_with_up(np.full(6, row), machines, targets)
            np.testing.assert_array_equal(actual, expected)
    assert shop._w_drawn.max() > 1  # more than the first batch was drawn


def test_window_streams_are_numpy_s_spawned_streams():
    rng = np.random.default_rng(0)
    seeds = np.concatenate([rng.integers(0, 2**63 - 1, 40), [0, 1, 2**32 - 1, 2**32]])
    children = rng.integers(0, 20, seeds.size)
    states = _stream_states(seeds.astype(np.uint64), children)
    for seed, child, state in zip(seeds.tolist(), children.tolist(), states, strict=True):
        assert state == _numpy_stream_states(seed, child + 1)[child]


def test_same_seed_same_episodes_and_seed_method():
    kwargs = {"instance": {"jobs": 4, "machines": 3}, "shutdown_prob": 0.1}
    first, second = JobShopVecEnv(3, seed=4, **kwargs), JobShopVecEnv(3, **kwargs)
    assert second.seed(4) == [4, 5, 6]
    assert_same(first.reset(), second.reset(), "same seed")
    assert [first.get_attr("instance")[i].name for i in range(3)] == [
        second.get_attr("instance")[i].name for i in range(3)
    ]
    other = JobShopVecEnv(3, seed=5, **kwargs)
    obs = other.reset()
    assert not np.array_equal(obs["node_features"][0], first.reset()["node_features"][0])
    # copy i of seed 4 is copy i - 1 of seed 5
    first.seed(4)
    np.testing.assert_array_equal(first.reset()["node_features"][1], obs["node_features"][0])


def test_vec_env_api_masks_attributes_and_methods():
    venv = JobShopVecEnv(3, seed=0, instance=["ft06", "la01"], max_jobs=10, max_machines=6)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros(3, dtype=np.int64))
    venv.reset()
    masks = venv.action_masks()
    assert masks.shape == (3, 10) and masks.dtype == bool
    getters = venv.get_attr("action_masks")
    np.testing.assert_array_equal(np.stack([get() for get in getters]), masks)
    np.testing.assert_array_equal(venv.env_method("action_masks", indices=[2])[0], masks[2])
    names = [instance.name for instance in venv.get_attr("instance")]
    assert set(names) <= {"ft06", "la01"}
    for name, mask in zip(names, masks, strict=True):
        assert not mask[6:].any() if name == "ft06" else mask.any()
    assert venv.get_attr("time") == [0, 0, 0]
    assert venv.get_attr("max_jobs", indices=[0, 1]) == [10, 10]
    bounds = venv.env_method("lower_bound")
    assert bounds == [get() for get in venv.get_attr("lower_bound")]
    assert all(
        bound >= instance.durations.sum(axis=1).max()
        for bound, instance in zip(bounds, venv.get_attr("instance"), strict=True)
    )
    assert venv.env_is_wrapped(VecMonitor) == [False] * 3
    with pytest.raises(AttributeError, match="does not support"):
        venv.env_method("schedule")
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    venv.set_attr("reward_scale", 2.0)
    assert venv.reward_scale == 2.0
    with pytest.raises(ValueError, match="all copies"):
        venv.set_attr("reward_scale", 3.0, indices=[0])
    with pytest.raises(AttributeError, match="read-only"):
        venv.set_attr("instance", "ft06")
    kpi = venv.kpi()
    assert set(kpi) == {"makespan", "utilisation", "blocked_time", "downtime", "swaps", "deadlock"}
    assert all(value.shape == (3,) for value in kpi.values())


def test_invalid_and_malformed_actions():
    kwargs = {"instance": "ft06", "shutdown_prob": 0.0}
    venv = JobShopVecEnv(2, seed=0, **kwargs)
    venv.reset()
    masks = venv.action_masks()
    bad = np.array([np.flatnonzero(~masks[0])[0] if (~masks[0]).any() else 0, 0])
    bad[1] = np.flatnonzero(masks[1])[0]
    _, _, _, infos = venv.step(bad)
    assert infos[0]["invalid_action"] == (not masks[0][bad[0]])
    assert not infos[1]["invalid_action"]
    for actions, message in (
        (np.array([0, 6]), "job indices"),
        (np.array([0.5, 1.0]), "job indices"),
        (np.array([0, 1, 2]), "one per copy"),
        (np.array(["a", "b"]), "one per copy"),
    ):
        with pytest.raises(ValueError, match=message):
            venv.step(actions)
    strict = JobShopVecEnv(2, seed=0, invalid_action="raise", **kwargs)
    strict.reset()
    masks = strict.action_masks()
    if (~masks[0, :6]).any():
        actions = np.array([np.flatnonzero(~masks[0, :6])[0], np.flatnonzero(masks[1])[0]])
        with pytest.raises(ValueError, match="not a candidate"):
            strict.step(actions)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0,), {}, "num_envs"),
        ((True,), {}, "num_envs"),
        ((2,), {"seed": -1}, "seed"),
        ((2,), {"render_mode": "ansi"}, "render_mode"),
        ((2,), {"observation": "image"}, "observation"),
        ((2,), {"shutdown_prob": 1.5}, "shutdown_prob"),
        ((2,), {"instance": "la99"}, "la99"),
        ((2,), {"max_jobs": 3}, "max_jobs"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        JobShopVecEnv(*args, **kwargs)


def test_reset_options_are_refused():
    venv = JobShopVecEnv(2, seed=0)
    venv.set_options({"downtime_windows": [[] for _ in range(6)]})
    with pytest.raises(ValueError, match="reset options"):
        venv.reset()


def test_maskable_ppo_learns_on_both_observations_under_vec_monitor():
    from sb3_contrib import MaskablePPO

    for observation, policy in (("graph", "MultiInputPolicy"), ("flat", "MlpPolicy")):
        venv = VecMonitor(
            JobShopVecEnv(4, seed=0, instance={"jobs": 3, "machines": 3}, observation=observation)
        )
        model = MaskablePPO(
            policy, venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu"
        )
        model.learn(256)
        assert model.num_timesteps == 256 and len(model.ep_info_buffer) > 0
        obs = venv.reset()
        actions, _ = model.predict(obs, action_masks=np.stack(venv.env_method("action_masks")))
        assert venv.unwrapped.action_masks()[np.arange(4), actions].all()


def test_gnn_ppo_learns_on_the_batched_env():
    from opsrl.agents.gnn_dispatch.gnn_ppo import GnnPPO

    venv = VecMonitor(
        JobShopVecEnv(
            4,
            seed=0,
            instance=[{"jobs": 3, "machines": 3}, {"jobs": 4, "machines": 2}],
            max_jobs=4,
            max_machines=3,
            shutdown_prob=0.05,
        )
    )
    model = GnnPPO(
        "GraphDispatchPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(128)
    assert model.num_timesteps == 128 and len(model.ep_info_buffer) > 0


def test_experiment_runner_builds_it_for_vec_env_batched(monkeypatch):
    """With ``batched_entry_point`` in the JobShop EnvEntry, ``vec_env: batched`` (and
    ``auto``) give this env under VecMonitor, copy i seeded with seed + i."""
    import dataclasses

    from opsrl import registry
    from opsrl.experiment import make_vec_env
    from opsrl.spec import EnvSpec

    env_id = "opsrl/JobShop-v0"
    entry = dataclasses.replace(
        registry.env_entry(env_id),
        batched_entry_point="opsrl.envs.job_shop.vec:JobShopVecEnv",
    )
    monkeypatch.setattr(registry, "env_entry", lambda name: entry if name == env_id else None)
    kwargs = {"instance": {"jobs": 4, "machines": 3}, "observation": "flat"}
    for kind in ("batched", "auto"):
        venv = make_vec_env(EnvSpec(env_id, kwargs), 3, 11, kind)
        assert isinstance(venv, VecMonitor) and isinstance(venv.venv, JobShopVecEnv)
        reference = DummyVecEnv([lambda: JobShopEnv(**kwargs) for _ in range(3)])
        reference.seed(11)
        np.testing.assert_array_equal(venv.reset(), reference.reset())
        venv.close()
