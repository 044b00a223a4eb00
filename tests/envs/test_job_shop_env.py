"""The job shop simulator and env: hand-checked scenarios, deadlock-freedom properties over
random instances and policies (checked by the independent schedule checker), rewards, KPIs,
observations, padding, arguments."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_checker import ScheduleError, check_schedule
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.job_shop import (
    BLOCKED,
    DONE,
    JobShopEnv,
    JobShopInstance,
    JobShopSim,
    generate_instance,
    load_instance,
    unflatten_graph_observation,
)
from opsrl.envs.job_shop.env import NODE_FEATURES, SCHEDULE_COLUMNS

#: two jobs crossing two machines: classic and swap finish at 5, blocking without swap must
#: serialise them
CROSS = JobShopInstance("cross", machines=[[0, 1], [1, 0]], durations=[[3, 2], [3, 2]])

MODES = {
    "classic": {"blocking": False},
    "swap": {"blocking": True, "swap": True},
    "no_swap": {"blocking": True, "swap": False},
}


def run_episode(env, seed, policy_seed=0, options=None):
    """A random masked policy; returns (return, last info, number of steps)."""
    rng = np.random.default_rng(policy_seed)
    env.reset(seed=seed, options=options)
    total, steps, done, info = 0.0, 0, False, {}
    while not done:
        action = rng.choice(np.flatnonzero(env.action_masks()))
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        done = terminated or truncated
    return total, info, steps


def check_env_schedule(env, complete=True):
    sim = env.sim
    return check_schedule(
        sim.instance.machines,
        sim.instance.durations,
        env.schedule(),
        blocking=sim.blocking,
        swap=sim.swap,
        windows=sim.downtime_windows,
        complete=complete,
    )


def first_candidate_run(instance, windows=None, **flags):
    sim = JobShopSim(instance, **flags)
    sim.reset(seed=0, windows=windows)
    while not sim.finished:
        sim.dispatch(int(np.flatnonzero(sim.candidate_mask())[0]))
    return sim


# ---------------------------------------------------------------------- hand-checked cases
def test_crossing_jobs_classic_swap_and_no_swap():
    classic = first_candidate_run(CROSS, blocking=False)
    assert classic.time == 5 and classic.swaps == 0
    swap = first_candidate_run(CROSS, blocking=True, swap=True)
    assert swap.time == 5 and swap.swaps == 1
    firsts = [r for r in swap.schedule if r.op == 0]
    assert all(r.swap and r.leave == 3 for r in firsts)
    # without swap the second dispatch at t=0 would deadlock, so it is masked and waits
    no_swap = JobShopSim(CROSS, blocking=True, swap=False)
    no_swap.reset(seed=0)
    assert no_swap.candidate_mask().tolist() == [True, True]
    no_swap.dispatch(0)
    assert no_swap.time == 3 and not no_swap.deadlock
    while not no_swap.finished:
        no_swap.dispatch(int(np.flatnonzero(no_swap.candidate_mask())[0]))
    assert no_swap.terminated and no_swap.time == 10


def test_processing_pauses_during_a_shutdown():
    single = JobShopInstance("single", machines=[[0]], durations=[[5]])
    sim = first_candidate_run(single, windows=[[(2, 4)]])
    (record,) = sim.schedule
    assert (record.start, record.end, record.leave, record.paused) == (0, 7, 7, 2)


def test_reset_replays_given_windows():
    env = JobShopEnv(CROSS, shutdown_prob=0.0)
    windows = [[(1, 3)], [(0, 2), (4, 5)]]
    total, _, _ = run_episode(env, seed=0, options={"downtime_windows": windows})
    assert env.sim.downtime_windows == windows
    assert check_env_schedule(env) == -total
    with pytest.raises(ValueError, match="sorted and disjoint"):
        env.reset(options={"downtime_windows": [[(3, 5), (4, 6)], []]})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"windows": windows})


def test_down_machine_receives_no_job():
    single = JobShopInstance("single", machines=[[0]], durations=[[1]])
    sim = first_candidate_run(single, windows=[[(0, 4)]])
    assert sim.schedule[0].start == 4 and sim.time == 5


def test_blocked_job_cannot_leave_a_down_machine():
    chain = JobShopInstance("chain", machines=[[0, 1]], durations=[[2, 1]])
    windows = [[(2, 5)], []]
    blocked = first_candidate_run(chain, windows=windows, blocking=True)
    assert [(r.start, r.end, r.leave) for r in blocked.schedule] == [(0, 2, 5), (5, 6, 6)]
    # classic: processing ended as the shutdown began, the job leaves into the buffer
    classic = first_candidate_run(chain, windows=windows, blocking=False)
    assert [(r.start, r.end, r.leave) for r in classic.schedule] == [(0, 2, 2), (2, 3, 3)]


def test_swap_waits_for_a_down_machine():
    sim = first_candidate_run(CROSS, windows=[[], [(3, 6)]], blocking=True, swap=True)
    assert sim.swaps == 1
    assert sorted((r.op, r.start, r.leave) for r in sim.schedule) == [
        (0, 0, 6),
        (0, 0, 6),
        (1, 6, 8),
        (1, 6, 8),
    ]


def test_job_status_and_candidate_definition():
    sim = JobShopSim(CROSS, blocking=True, swap=False)
    sim.reset(seed=0)
    sim.dispatch(0)  # job 1 is masked (deadlock), time jumps to job 0's end
    assert sim.job_status.tolist() == [BLOCKED, 0] and sim.job_ready_time.tolist() == [3, 0]
    assert sim.candidate_mask().tolist() == [True, False]
    with pytest.raises(ValueError, match="cannot be dispatched"):
        sim.dispatch(1)
    with pytest.raises(ValueError):
        sim.next_op[0] = 5  # public state is read-only


# ---------------------------------------------------------------------- properties
instances = st.builds(
    lambda jobs, machines, seed: generate_instance(
        jobs, machines, seed=seed, duration_range=(1, 9)
    ),
    st.integers(2, 6),
    st.integers(2, 5),
    st.integers(0, 2**31 - 1),
)
PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SHUTDOWN_PROBS = (0.0, 0.1, 0.3)
DOWNTIME_MODELS = ("geometric", "fixed")


@pytest.mark.parametrize("downtime_model", DOWNTIME_MODELS)
@pytest.mark.parametrize("shutdown_prob", SHUTDOWN_PROBS)
@pytest.mark.parametrize(
    "flags",
    [
        {"blocking": False, "swap": False},
        {"blocking": False, "swap": True},
        {"blocking": True, "swap": True},
    ],
    ids=["classic", "classic-swap-ignored", "swap"],
)
@PROPERTY_SETTINGS
@given(instance=instances, downtime=st.sampled_from([1, 3, 10]), seed=st.integers(0, 2**31 - 1))
def test_classic_and_swap_modes_never_deadlock(
    flags, shutdown_prob, downtime_model, instance, downtime, seed
):
    env = JobShopEnv(
        instance,
        shutdown_prob=shutdown_prob,
        downtime=downtime,
        downtime_model=downtime_model,
        **flags,
    )
    total, info, _ = run_episode(env, seed=seed, policy_seed=seed + 1)
    sim = env.sim
    assert sim.terminated and not sim.truncated and not info["deadlock"]
    assert sim.time <= sim.time_limit
    makespan = check_env_schedule(env)
    assert makespan == sim.time == info["kpi"]["makespan"] == -total


@pytest.mark.parametrize("downtime_model", DOWNTIME_MODELS)
@pytest.mark.parametrize("shutdown_prob", SHUTDOWN_PROBS)
@PROPERTY_SETTINGS
@given(instance=instances, seed=st.integers(0, 2**31 - 1))
def test_blocking_without_swap_finishes_or_reports_deadlock(
    shutdown_prob, downtime_model, instance, seed
):
    env = JobShopEnv(
        instance,
        blocking=True,
        swap=False,
        shutdown_prob=shutdown_prob,
        downtime=3,
        downtime_model=downtime_model,
    )
    total, info, _ = run_episode(env, seed=seed, policy_seed=seed + 1)
    sim = env.sim
    assert not sim.truncated
    if sim.terminated:
        assert not info["deadlock"] and check_env_schedule(env) == sim.time == -total
    else:
        assert info["deadlock"] and info["kpi"]["deadlock"] == 1.0
        check_env_schedule(env, complete=False)
        assert total == -sim.time_limit  # charged as if run to the safety horizon
        statuses = sim.job_status
        assert (statuses == BLOCKED).sum() >= 2 and (statuses != DONE).any()


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(instance=instances, mode=st.sampled_from(sorted(MODES)), seed=st.integers(0, 2**20))
def test_lower_bound_reward_telescopes_to_bound_minus_makespan(instance, mode, seed):
    env = JobShopEnv(instance, reward="lower_bound", reward_scale=2.0, **MODES[mode])
    env.reset(seed=seed)
    initial_bound = env.sim.lower_bound()
    assert initial_bound >= max(instance.durations.sum(axis=1).max(), 1)
    total, info, _ = run_episode(env, seed=seed, policy_seed=seed)
    end = env.sim.time_limit if info["deadlock"] else env.sim.time
    assert total == pytest.approx((initial_bound - end) / 2.0)


def test_deadlocks_happen_and_are_reported_on_a_benchmark():
    env = JobShopEnv("la01", blocking=True, swap=False, shutdown_prob=0.0)
    outcomes = []
    for seed in range(6):
        total, info, _ = run_episode(env, seed=seed, policy_seed=seed)
        outcomes.append(info["deadlock"])
        if info["deadlock"]:
            check_env_schedule(env, complete=False)
            assert total == -env.sim.time_limit
    assert any(outcomes)


def test_la01_swap_schedule_is_valid_and_not_better_than_the_optimum():
    instance = load_instance("la01")
    for flags, best in (({"blocking": False}, instance.optimum), ({}, instance.bws_optimum)):
        env = JobShopEnv(instance, shutdown_prob=0.0, **flags)
        total, _, steps = run_episode(env, seed=0)
        assert check_env_schedule(env) == -total >= best
        assert steps <= instance.n_jobs * instance.n_ops


def test_checker_rejects_broken_schedules():
    env = JobShopEnv(CROSS, blocking=True, swap=True, shutdown_prob=0.0)
    run_episode(env, seed=0)
    good = env.schedule()
    check_env_schedule(env)
    flags = {"blocking": True, "swap": True}
    broken = good.copy()
    broken.loc[broken["op"] == 1, "start"] += 1  # entered the next machine late
    with pytest.raises(ScheduleError):
        check_schedule(CROSS.machines, CROSS.durations, broken, **flags)
    with pytest.raises(ScheduleError, match="cycle"):
        check_schedule(
            CROSS.machines, CROSS.durations, good.assign(swap=False), blocking=True, swap=False
        )
    with pytest.raises(ScheduleError, match="processed"):
        check_schedule(CROSS.machines, CROSS.durations, good, windows=[[(1, 2)], []], **flags)


# ---------------------------------------------------------------------- rewards and KPIs
def test_return_is_minus_makespan_and_kpis_match_the_schedule():
    env = JobShopEnv("ft06", shutdown_prob=0.1, reward_scale=4.0)
    total, info, _ = run_episode(env, seed=3)
    kpi, frame = info["kpi"], env.schedule()
    ops = frame[frame["kind"] == "op"]
    assert kpi["makespan"] == ops["leave"].max() == -4.0 * total
    assert kpi["blocked_time"] == (ops["leave"] - ops["end"]).sum()
    assert kpi["utilisation"] == pytest.approx(
        env.instance.durations.sum() / (kpi["makespan"] * env.instance.n_machines)
    )
    downtime = sum(
        max(0, min(end, kpi["makespan"]) - start)
        for windows in env.sim.downtime_windows
        for start, end in windows
    )
    assert kpi["downtime"] == downtime > 0
    swapped = ops[ops["swap"]]
    cycles = 0
    for _, group in swapped.groupby("leave"):
        moves = {}
        for row in group.itertuples():
            nxt = ops[(ops["job"] == row.job) & (ops["op"] == row.op + 1)].iloc[0]
            moves[row.machine] = int(nxt["machine"])
        seen = set()
        for machine in moves:
            if machine not in seen:
                cycles += 1
                while machine not in seen:
                    seen.add(machine)
                    machine = moves[machine]
    assert kpi["swaps"] == cycles
    assert list(frame.columns) == list(SCHEDULE_COLUMNS)
    assert env.episode_trace().equals(frame)


def test_windows_are_common_random_numbers():
    def windows_before(sim, horizon):
        return [[w for w in machine if w[0] < horizon] for machine in sim.ensure_windows(horizon)]

    env = JobShopEnv("ft06", shutdown_prob=0.2)
    run_episode(env, seed=11, policy_seed=1)
    first = windows_before(env.sim, 400)
    run_episode(env, seed=11, policy_seed=2)
    assert windows_before(env.sim, 400) == first
    run_episode(env, seed=12, policy_seed=1)
    assert windows_before(env.sim, 400) != first
    # extending lazily draws the same windows as sampling far at once
    sim = JobShopSim(load_instance("ft06"), shutdown_prob=0.2)
    sim.reset(seed=5)
    short = windows_before(sim, 50)
    assert windows_before(sim, 5000) != short
    assert windows_before(sim, 50) == short
    fresh = JobShopSim(load_instance("ft06"), shutdown_prob=0.2)
    fresh.reset(seed=5)
    assert windows_before(fresh, 5000)[0][:3] == windows_before(sim, 5000)[0][:3]
    for machine in windows_before(sim, 5000):
        assert all(a[1] < b[0] for a, b in zip(machine, machine[1:], strict=False))


# ---------------------------------------------------------------------- observations
def graph_invariants(env, obs):
    sim = env.sim
    graph = unflatten_graph_observation(obs)
    width = env.max_machines
    features, mask = graph["node_features"], graph["node_mask"]
    assert features.shape == (env.max_jobs * width, len(NODE_FEATURES))
    op_index = np.arange(width)
    jobs = np.arange(env.max_jobs)
    alive = np.zeros((env.max_jobs, width), dtype=bool)
    for job in range(sim.n_jobs):
        first_alive = sim.next_op[job] - (1 if sim.job_machine[job] >= 0 else 0)
        alive[job] = (op_index >= first_alive) & (op_index < sim.n_ops)
    np.testing.assert_array_equal(mask, alive.ravel())
    assert not features[mask == 0].any()
    live = features[mask == 1]
    np.testing.assert_array_equal(live[:, :5].sum(axis=1), 1)  # status one-hot
    ready = features[:, NODE_FEATURES.index("ready")].reshape(env.max_jobs, width)
    np.testing.assert_array_equal(ready.any(axis=1), env.action_masks())
    machines = np.full(env.max_jobs * width, -1)
    machines.reshape(env.max_jobs, width)[: sim.n_jobs, : sim.n_ops] = sim.instance.machines
    conj = graph["conjunctive_edges"].astype(int)
    conj = conj[:, conj[0] >= 0]
    assert (conj[1] == conj[0] + 1).all() and mask[conj].all()
    expected_conj = sum(max(0, int(row.sum()) - 1) for row in alive)
    assert conj.shape[1] == expected_conj
    disj = graph["disjunctive_edges"].astype(int)
    assert (disj[:, disj[0] < 0] == -1).all()
    disj = disj[:, disj[0] >= 0]
    assert (disj[0] < disj[1]).all() and mask[disj].all()
    assert (machines[disj[0]] == machines[disj[1]]).all()
    per_machine = np.bincount(machines[mask == 1], minlength=sim.n_machines)
    assert disj.shape[1] == (per_machine * (per_machine - 1) // 2).sum()
    candidates = obs["candidate_nodes"].astype(int)
    for job in jobs:
        if job < sim.n_jobs and sim.next_op[job] < sim.n_ops:
            assert candidates[job] == job * width + sim.next_op[job]
        else:
            assert candidates[job] == -1


def test_graph_observation_invariants_along_an_episode():
    env = JobShopEnv("ft06", shutdown_prob=0.2)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=2)
    done = False
    while not done:
        assert obs in env.observation_space
        graph_invariants(env, obs)
        obs, _, terminated, truncated, _ = env.step(rng.choice(np.flatnonzero(env.action_masks())))
        done = terminated or truncated
    graph_invariants(env, obs)
    assert not obs["node_mask"].any()


def test_padding_shares_one_space_across_sizes():
    env = JobShopEnv(
        [{"jobs": 3, "machines": 2}, {"jobs": 5, "machines": 4}],
        max_jobs=6,
        max_machines=5,
        shutdown_prob=0.1,
    )
    sizes = set()
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        sizes.add((env.instance.n_jobs, env.instance.n_ops))
        assert env.action_space.n == 6 and not env.action_masks()[env.instance.n_jobs :].any()
        done = False
        while not done:
            assert obs in env.observation_space
            graph_invariants(env, obs)
            obs, _, terminated, truncated, info = env.step(5)  # padded job: replaced
            assert info["invalid_action"]
            done = terminated or truncated
    assert sizes == {(3, 2), (5, 4)}
    # the random instance follows the reset seed
    env.reset(seed=3)
    first = env.instance.durations.copy()
    env.reset(seed=3)
    np.testing.assert_array_equal(env.instance.durations, first)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"observation": "flat"},
        {"observation": "flat", "blocking": False, "max_jobs": 8},
        {"blocking": True, "swap": False, "reward": "lower_bound"},
        {"instance": {"jobs": 4, "machines": 3}, "max_jobs": 5, "max_machines": 4},
    ],
)
def test_env_checkers_pass_for_variants(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = JobShopEnv(**kwargs)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_flat_observation_describes_jobs_and_machines():
    env = JobShopEnv("ft06", observation="flat", shutdown_prob=0.3)
    obs, _ = env.reset(seed=0)
    jobs = obs[: 6 * 11].reshape(6, 11)
    machines = obs[6 * 11 :].reshape(6, 7)
    np.testing.assert_array_equal(jobs[:, 0], env.action_masks())
    np.testing.assert_array_equal(machines[:, 3], env.sim.machine_down)
    assert obs in env.observation_space


# ---------------------------------------------------------------------- API
def test_invalid_actions_are_replaced_or_raise():
    env = JobShopEnv(CROSS, blocking=True, swap=False, shutdown_prob=0.0)
    env.reset(seed=0)
    env.step(0)
    assert env.action_masks().tolist() == [True, False]
    _, _, _, _, info = env.step(1)
    assert info["invalid_action"]
    strict = JobShopEnv(CROSS, blocking=True, swap=False, invalid_action="raise")
    strict.reset(seed=0)
    strict.step(0)
    with pytest.raises(ValueError, match="not a candidate"):
        strict.step(1)
    with pytest.raises(ValueError, match="job index"):
        strict.step(7)


def test_step_outside_an_episode_raises():
    env = JobShopEnv(CROSS)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    run_episode(env, seed=0)
    with pytest.raises(RuntimeError, match="over"):
        env.step(0)


def test_ansi_render_draws_one_row_per_machine():
    env = JobShopEnv("ft06", render_mode="ansi", shutdown_prob=0.1)
    run_episode(env, seed=0)
    text = env.render()
    assert isinstance(text, str) and text.count("\nM") == 6 and "#" in text


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"shutdown_prob": 1.0}, "shutdown_prob"),
        ({"shutdown_prob": -0.1}, "shutdown_prob"),
        ({"downtime": 0.5}, "downtime"),
        ({"downtime": 2.5, "downtime_model": "fixed"}, "downtime"),
        ({"downtime_model": "weibull"}, "downtime_model"),
        ({"blocking": "yes"}, "blocking"),
        ({"swap": 1}, "swap"),
        ({"observation": "image"}, "observation"),
        ({"reward": "profit"}, "reward"),
        ({"reward_scale": 0}, "reward_scale"),
        ({"max_jobs": 3}, "max_jobs"),
        ({"max_machines": 0}, "max_machines"),
        ({"invalid_action": "ignore"}, "invalid_action"),
        ({"render_mode": "human"}, "render_mode"),
        ({"instance": "la99"}, "la99"),
        ({"instance": []}, "instance"),
        ({"instance": {"jobs": 3, "machines": 2, "colour": 1}}, "unknown keys"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        JobShopEnv(**kwargs)


def test_registered_id_defaults_to_the_isbjssp():
    env = gym.make("opsrl/JobShop-v0")
    sim = env.unwrapped.sim
    assert sim.blocking and sim.swap and sim.shutdown_prob == 0.05
    assert sim.instance.name == "ft06"
    env.close()


def test_maskable_ppo_trains_on_the_graph_observation():
    from sb3_contrib import MaskablePPO

    env = JobShopEnv({"jobs": 3, "machines": 3}, shutdown_prob=0.1)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
    model.learn(64)
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
    assert env.action_masks()[int(action)]


def test_instance_selection_by_seed_cycles_through_the_list_and_reports_the_gap():
    names = ["ft06", "la01", "la02"]
    env = JobShopEnv(instance=names, shutdown_prob=0.0, instance_selection="seed")
    seen = []
    for seed in range(6):
        env.reset(seed=seed)
        seen.append(env.instance.name)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
            done = terminated or truncated
        best = env.instance.best_known(blocking=True)
        assert info["kpi"]["best_known"] == best
        assert info["kpi"]["gap_pct"] == pytest.approx(
            100 * (info["kpi"]["makespan"] - best) / best
        )
        assert info["kpi"]["makespan"] >= best  # BWS optimum / best known is a lower bound here
    assert seen == names + names
    with pytest.raises(ValueError, match="instance_selection"):
        JobShopEnv(instance=names, instance_selection="cycle")
