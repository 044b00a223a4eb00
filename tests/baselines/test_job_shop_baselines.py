"""Job shop baselines: CP-SAT reproduces the known classic and BWS optima with feasible
schedules, its models contain every schedule the simulator produces, the dispatching rules pick
what they say, and the CP-SAT policies replay their plans in the env."""

from unittest import mock

import gymnasium as gym
import numpy as np
import pytest
from ortools.sat.python import cp_model

import opsrl  # noqa: F401  (registers the env ids)
from opsrl import registry
from opsrl.baselines import job_shop
from opsrl.baselines.base import Solution
from opsrl.baselines.common import RandomPolicy
from opsrl.baselines.job_shop import (
    RULES,
    ClairvoyantCPSATPolicy,
    CPSATPolicy,
    DispatchingRulePolicy,
    SPTPolicy,
    machine_sequences,
    rule_schedule,
    solve,
)
from opsrl.envs.job_shop.data import JobShopInstance, generate_instance, load_instance
from opsrl.envs.job_shop.sim import JobShopSim
from opsrl.evaluation import evaluate_policy_on_seeds

ENV_ID = "opsrl/JobShop-v0"
MODES = {
    "classic": {"blocking": False, "shutdown_prob": 0.0},
    "bws": {"blocking": True, "swap": True, "shutdown_prob": 0.0},
    "isbjssp": {"blocking": True, "swap": True, "shutdown_prob": 0.1},
}
RULE_CLASSES = {cls.rule: cls for cls in DispatchingRulePolicy.__subclasses__()}


# --------------------------------------------------------------------------------------------
# Independent checks
# --------------------------------------------------------------------------------------------


def schedule_problems(
    instance, start, end, leave, mode, windows=None, downtime="pause", horizon=None
):
    """Everything wrong with a schedule, checked tick by tick.

    Classic: a job leaves its machine when its operation ends. BWS: it holds the machine over
    ``[start, leave)``, leaves it when it enters its next one, and leaves its last machine when
    its last operation ends. Windows, ``pause``: an operation enters only an operational
    machine, its processing counts operational ticks only, and in BWS a job leaves only when
    both machines are operational. ``exclude``: no job is on a machine while it is down.
    """
    start, end, leave = (np.asarray(a, dtype=np.int64) for a in (start, end, leave))
    n_jobs, n_ops = instance.durations.shape
    horizon = int(max(leave.max(), end.max()) + 1) if horizon is None else horizon
    down = np.zeros((instance.n_machines, horizon + 1), dtype=bool)
    for machine, machine_windows in enumerate(windows or []):
        for low, high in machine_windows:
            down[machine, low : min(high, horizon + 1)] = True
    problems = []
    holding = np.zeros((instance.n_machines, horizon + 1), dtype=np.int64)
    for j in range(n_jobs):
        for k in range(n_ops):
            machine, p = instance.machines[j, k], instance.durations[j, k]
            where = f"job {j} op {k}"
            s, e, out = start[j, k], end[j, k], leave[j, k]
            holding[machine, s:out] += 1
            if k + 1 < n_ops and start[j, k + 1] < e:
                problems.append(f"{where}: next operation starts before this one ends")
            last = k == n_ops - 1
            if mode == "classic" or last:
                if out != e:
                    problems.append(f"{where}: leaves at {out}, not when it ends ({e})")
            elif out != start[j, k + 1] or out < e:
                problems.append(f"{where}: leaves at {out}, not into its next operation")
            if downtime == "pause":
                if down[machine, s]:
                    problems.append(f"{where}: enters a down machine at {s}")
                if (~down[machine, s:e]).sum() != p or down[machine, e - 1]:
                    problems.append(f"{where}: [{s}, {e}) is not {p} operational ticks")
                if mode == "bws" and not last and down[machine, out]:
                    problems.append(f"{where}: leaves a down machine at {out}")
            else:
                if e != s + p:
                    problems.append(f"{where}: ends at {e}, not start + {p}")
                if down[machine, s:out].any():
                    problems.append(f"{where}: on machine {machine} while it is down")
    if (holding > 1).any():
        machines, ticks = np.nonzero(holding > 1)
        problems.append(f"machine {machines[0]} holds two jobs at {ticks[0]}")
    return problems


def non_delay_problems(instance, start, end, leave):
    """Ticks at which a machine holds no job while an operation on it is ready (no windows)."""
    start, end, leave = (np.asarray(a) for a in (start, end, leave))
    ready = np.concatenate([np.zeros((instance.n_jobs, 1), dtype=np.int64), end[:, :-1]], axis=1)
    problems = []
    for t in range(int(leave.max())):
        held = start <= t
        held &= t < leave
        busy = set(instance.machines[held].tolist())
        waiting = (ready <= t) & (t < start)
        for j, k in np.argwhere(waiting):
            if instance.machines[j, k] not in busy:
                problems.append(f"machine {instance.machines[j, k]} idle at {t}, job {j} ready")
    return problems


def check_solution(instance, solution, mode, windows=None, downtime="pause"):
    meta = solution.metadata
    assert meta["mode"] == mode
    problems = schedule_problems(
        instance, meta["start"], meta["end"], meta["leave"], mode, windows, downtime
    )
    assert problems == []
    assert solution.objective == meta["end"][:, -1].max()
    assert solution.bound is not None and solution.bound <= solution.objective
    for machine, sequence in enumerate(meta["sequences"]):
        assert sorted(sequence) == sorted(map(tuple, np.argwhere(instance.machines == machine)))
        assert [meta["start"][j, k] for j, k in sequence] == sorted(
            meta["start"][j, k] for j, k in sequence
        )


def sim_schedule(sim):
    shape = sim.instance.durations.shape
    start, end, leave = (np.full(shape, -1, dtype=np.int64) for _ in range(3))
    for record in sim.schedule:
        start[record.job, record.op] = record.start
        end[record.job, record.op] = record.end
        leave[record.job, record.op] = record.leave
    return start, end, leave


def two_job_swap():
    """Two jobs crossing two machines: with blocking, both finish at 2 only by swapping."""
    return JobShopInstance("swap", machines=[[0, 1], [1, 0]], durations=[[1, 1], [1, 1]])


def waiting_pays():
    """Keeping machine 0 idle for one tick (for job 1) beats starting the ready job 0 there:
    the optimum (9) is not a non-delay schedule; the best non-delay one takes 12."""
    return JobShopInstance(
        "waiting-pays", machines=[[0, 1, 2], [1, 0, 2]], durations=[[5, 1, 1], [1, 1, 5]]
    )


# --------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, optimum", [("ft06", 55), ("la01", 666)])
def test_classic_model_proves_known_optimum(name, optimum):
    instance = load_instance(name)
    solution = solve(instance, mode="classic", time_limit=10.0, workers=2)
    assert solution.status == "optimal"
    assert solution.objective == optimum == solution.bound == instance.optimum
    assert 0 < solution.wall_time < 12.0
    assert solution.metadata["status_name"] == "OPTIMAL"
    check_solution(instance, solution, "classic")


def test_bws_model_proves_ft06_63():
    instance = load_instance("ft06")
    solution = solve(instance, mode="bws", time_limit=10.0, workers=2)
    assert solution.status == "optimal"
    assert solution.objective == 63 == solution.bound == instance.bws_optimum
    check_solution(instance, solution, "bws")
    # Blocking costs time on ft06: some job waits on a machine after its operation ended.
    assert (solution.metadata["leave"] > solution.metadata["end"]).any()


@pytest.mark.slow
def test_bws_model_proves_la01_793():
    # About 18 s on two idle cores (ortools 9.15); the limit leaves room for a busy machine.
    instance = load_instance("la01")
    solution = solve(instance, mode="bws", time_limit=150.0, workers=2)
    assert solution.status == "optimal"
    assert solution.objective == 793 == solution.bound == instance.bws_optimum
    check_solution(instance, solution, "bws")


def test_bws_model_swaps_blocked_jobs_in_zero_time():
    instance = two_job_swap()
    solution = solve(instance, mode="bws", time_limit=5.0)
    assert solution.status == "optimal" and solution.objective == 2
    check_solution(instance, solution, "bws")
    # Both jobs hold one machine over [0, 1) and enter the other at 1: a cyclic transfer.
    np.testing.assert_array_equal(solution.metadata["start"], [[0, 1], [0, 1]])
    np.testing.assert_array_equal(solution.metadata["leave"], [[1, 2], [1, 2]])


def test_non_delay_model_never_idles_a_machine_with_a_ready_job():
    instance = waiting_pays()
    free = solve(instance, mode="classic", time_limit=5.0)
    restricted = solve(instance, mode="classic", time_limit=5.0, non_delay=True)
    assert (free.objective, restricted.objective) == (9, 12)
    assert restricted.status == "optimal" and restricted.metadata["non_delay"]
    meta = free.metadata
    assert non_delay_problems(instance, meta["start"], meta["end"], meta["leave"]) != []
    meta = restricted.metadata
    assert non_delay_problems(instance, meta["start"], meta["end"], meta["leave"]) == []
    check_solution(instance, restricted, "classic")
    # ft06: the non-delay optima are above the classic and BWS optima (55 and 63).
    ft06 = load_instance("ft06")
    classic = solve(ft06, mode="classic", time_limit=10.0, non_delay=True)
    assert classic.status == "optimal" and classic.objective == 57
    meta = classic.metadata
    assert non_delay_problems(ft06, meta["start"], meta["end"], meta["leave"]) == []


def test_windows_pause_processing_or_exclude_operations():
    # One operation of 3 ticks, machine down over [1, 2): it pauses (ends at 4) or waits for a
    # gap of 3 (starts at 2, ends at 5).
    single = JobShopInstance("single", machines=[[0]], durations=[[3]])
    windows = [[(1, 2)]]
    paused = solve(single, time_limit=5.0, downtime_windows=windows)
    excluded = solve(single, time_limit=5.0, downtime_windows=windows, downtime="exclude")
    assert (paused.objective, excluded.objective) == (4, 5)
    np.testing.assert_array_equal(excluded.metadata["start"], [[2]])
    # One job, M0 then M1 (1 tick each), M0 down over [2, 3) and M1 over [1, 3). Classic and
    # paused BWS enter M1 at 3 (BWS holds M0 through its shutdown); excluded BWS may not hold
    # M0 while it is down, so the job starts at 3.
    chain = JobShopInstance("chain", machines=[[0, 1]], durations=[[1, 1]])
    windows = [[(2, 3)], [(1, 3)]]
    results = {}
    for mode in ("classic", "bws"):
        for downtime in ("pause", "exclude"):
            solution = solve(
                chain, mode=mode, time_limit=5.0, downtime_windows=windows, downtime=downtime
            )
            assert solution.metadata["clairvoyant"]
            check_solution(chain, solution, mode, windows, downtime)
            results[mode, downtime] = solution.objective
    assert results == {
        ("classic", "pause"): 4,
        ("classic", "exclude"): 4,
        ("bws", "pause"): 4,
        ("bws", "exclude"): 5,
    }


def test_windows_on_a_benchmark_instance():
    instance = load_instance("ft06")
    sim = JobShopSim(instance, blocking=True, swap=True, shutdown_prob=0.05, downtime=5)
    sim.reset(seed=3)
    windows = sim.ensure_windows(600)
    for mode, static in (("classic", 55), ("bws", 63)):
        for downtime in ("pause", "exclude"):
            solution = solve(
                instance, mode=mode, time_limit=1.0, downtime_windows=windows, downtime=downtime
            )
            assert solution.objective is not None and solution.objective >= static
            check_solution(instance, solution, mode, windows, downtime)


def fix_schedule(instance, mode, start, windows=None, non_delay=False):
    """Solve the model with every start fixed to ``start``: is that schedule in the model?"""
    horizon = max(job_shop._serial_schedule(instance, mode, windows, "pause")[1], 1)
    built = job_shop._build_model(instance, mode, horizon, windows, "pause", non_delay)
    for j in range(instance.n_jobs):
        for k in range(instance.n_ops):
            built.model.add(built.start[j][k] == int(start[j, k]))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    status = solver.solve(built.model)
    assert status == cp_model.OPTIMAL, solver.status_name(status)

    def values(rows):
        return np.array([[solver.value(item) for item in row] for row in rows])

    return solver.objective_value, values(built.end), values(built.leave)


@pytest.mark.parametrize("mode", ["classic", "bws"])
@pytest.mark.parametrize("shutdown_prob", [0.0, 0.1])
def test_every_simulated_schedule_is_in_the_model(mode, shutdown_prob):
    # The bounds rest on this: whatever a policy does in the env, CP-SAT's model (non-delay
    # without shutdowns; paused processing with the episode's windows) contains the schedule,
    # with the same processing ends and machine hand-overs.
    for seed in range(4):
        instance = generate_instance(4, 3, seed=seed, duration_range=(1, 9))
        sim = JobShopSim(instance, blocking=mode == "bws", shutdown_prob=shutdown_prob, downtime=3)
        sim.reset(seed=seed)
        rng = np.random.default_rng(seed)
        while not sim.finished:
            sim.dispatch(rng.choice(np.flatnonzero(sim.candidate_mask())))
        assert sim.terminated
        start, end, leave = sim_schedule(sim)
        windows = sim.ensure_windows(4 * instance.total_processing_time) if shutdown_prob else None
        assert schedule_problems(instance, start, end, leave, mode, windows) == []
        if windows is None:
            assert non_delay_problems(instance, start, end, leave) == []
        makespan, model_end, model_leave = fix_schedule(
            instance, mode, start, windows, non_delay=windows is None
        )
        assert makespan == sim.time
        np.testing.assert_array_equal(model_end, end)
        np.testing.assert_array_equal(model_leave, leave)


def test_hint_and_horizon():
    instance = load_instance("ft06")
    first = solve(instance, mode="bws", time_limit=5.0)
    again = solve(instance, mode="bws", time_limit=5.0, hint=first, horizon=63)
    from_array = solve(instance, mode="classic", time_limit=5.0, hint=first.metadata["start"])
    assert again.objective == 63 and from_array.objective == 55
    too_short = solve(instance, mode="bws", time_limit=5.0, horizon=62)
    assert too_short.status == "infeasible" and too_short.objective is None


def test_machine_sequences_orders_by_start():
    start = np.array([[0, 5], [2, 3]])
    assert machine_sequences(two_job_swap(), start) == [[(0, 0), (1, 1)], [(1, 0), (0, 1)]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "bns"}, "mode must be one of classic, bws"),
        ({"time_limit": 0}, "time_limit must be a positive"),
        ({"time_limit": float("inf")}, "time_limit must be a positive"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"workers": 1.5}, "workers must be a positive integer"),
        ({"downtime_windows": [[(0, 1)]]}, "one list per machine"),
        ({"downtime_windows": [[(3, 3)], []]}, r"downtime_windows\[0\] has window"),
        ({"downtime": "skip"}, "downtime must be one of pause, exclude"),
        ({"non_delay": "yes"}, "non_delay must be True or False"),
        ({"non_delay": True, "downtime_windows": [[(1, 2)], []]}, "non_delay applies"),
        ({"horizon": 0}, "horizon must be a positive integer"),
        ({"hint": np.zeros((3, 2), dtype=int)}, "hint must be a Solution or an integer"),
        ({"hint": Solution(objective=1.0, status="feasible")}, "without a schedule"),
    ],
)
def test_solve_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(two_job_swap(), **kwargs)


def test_solve_rejects_a_non_instance():
    with pytest.raises(ValueError, match="instance must be a JobShopInstance"):
        solve("ft06")


# --------------------------------------------------------------------------------------------
# Dispatching rules
# --------------------------------------------------------------------------------------------


def expected_choice(rule, sim, candidates):
    """The rule's choice, from its definition: smallest key, lowest job on ties."""
    instance = sim.instance

    def key(job):
        op = sim.next_op[job]
        work = instance.durations[job, op:].sum()
        ops_left = instance.n_ops - op
        return {
            "spt": instance.durations[job, op],
            "lpt": -instance.durations[job, op],
            "fifo": sim.job_ready_time[job],
            "mor": -ops_left,
            "lor": ops_left,
            "mwkr": -work,
            "lwkr": work,
        }[rule]

    return min(candidates, key=lambda job: (key(job), job))


def test_rule_names_match_the_registry():
    assert set(RULE_CLASSES) == set(RULES)
    for rule, cls in RULE_CLASSES.items():
        assert registry.load_object(registry.baseline_entry(rule).class_path) is cls


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rules_pick_by_their_definition_and_finish_episodes(mode):
    env = gym.make(ENV_ID, instance="ft06", **MODES[mode])
    base = env.unwrapped
    for rule, cls in RULE_CLASSES.items():
        policy = cls(env)
        env.reset(seed=7)
        policy.reset(env)
        done, makespans = False, []
        while not done:
            masks = base.action_masks()
            action, _ = policy.predict(None, action_masks=masks)
            assert action == expected_choice(rule, base.sim, np.flatnonzero(masks).tolist())
            _, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        assert terminated and not truncated and info["kpi"]["deadlock"] == 0
        start, end, leave = sim_schedule(base.sim)
        windows = base.sim.downtime_windows if MODES[mode]["shutdown_prob"] else None
        family = "classic" if mode == "classic" else "bws"
        assert schedule_problems(base.sim.instance, start, end, leave, family, windows) == []
        # Deterministic, and the runner's evaluation gives the same makespan.
        makespans = [r.kpi["makespan"] for r in evaluate_policy_on_seeds(policy, env, [7, 7])]
        assert makespans == [info["kpi"]["makespan"]] * 2


def test_rules_on_a_crafted_state():
    # At time 0 every job is a candidate (first operations on three different machines).
    # Job:        first op   work left   ops left
    #   0            4           6           3
    #   1            2          20           3
    #   2            3           5           3
    instance = JobShopInstance(
        "crafted",
        machines=[[0, 1, 2], [1, 2, 0], [2, 0, 1]],
        durations=[[4, 1, 1], [2, 9, 9], [3, 1, 1]],
    )
    env = gym.make(ENV_ID, instance=instance, shutdown_prob=0.0)
    env.reset(seed=0)
    masks = env.unwrapped.action_masks()
    assert masks.tolist() == [True, True, True]
    picks = {
        rule: int(cls(env).predict(None, action_masks=masks)[0])
        for rule, cls in RULE_CLASSES.items()
    }
    # Ties (equal operations left, all ready at 0) go to the lowest job.
    assert picks == {"spt": 1, "lpt": 0, "fifo": 0, "mor": 0, "lor": 0, "mwkr": 1, "lwkr": 2}
    # Without masks the rule reads the simulator's candidates itself.
    assert SPTPolicy(env).predict(None)[0] == 1


def test_generic_random_baseline_draws_among_candidates():
    # The registry's `random` baseline serves as the random dispatching rule.
    env = gym.make(ENV_ID, instance="ft06", **MODES["isbjssp"])
    policy = RandomPolicy(env, seed=0)
    results = evaluate_policy_on_seeds(policy, env, [0, 1])
    assert all(r.kpi["deadlock"] == 0 and r.kpi["makespan"] > 0 for r in results)


def test_rule_schedule_is_the_env_episode():
    instance = load_instance("ft06")
    makespan, start = rule_schedule(instance, "mwkr", blocking=True)
    env = gym.make(ENV_ID, instance=instance, **MODES["bws"])
    (episode,) = evaluate_policy_on_seeds(RULE_CLASSES["mwkr"](env), env, [0])
    assert makespan == episode.kpi["makespan"]
    np.testing.assert_array_equal(start, sim_schedule(env.unwrapped.sim)[0])
    with pytest.raises(ValueError, match="rule must be one of"):
        rule_schedule(instance, "edd")


# --------------------------------------------------------------------------------------------
# CP-SAT policies
# --------------------------------------------------------------------------------------------


def best_rule_makespan(env, seed):
    return min(
        evaluate_policy_on_seeds(cls(env), env, [seed])[0].kpi["makespan"]
        for cls in RULE_CLASSES.values()
    )


def test_cpsat_replays_its_plan_in_classic_mode():
    # ft06's optimum 55 keeps a machine idle for a job on its way, which the env (every idle
    # machine with a ready job dispatches one) cannot; the best non-delay schedule is 57, and
    # the non-delay model's plan replays exactly.
    env = gym.make(ENV_ID, instance="ft06", **MODES["classic"])
    policy = CPSATPolicy(env, time_limit=10.0)
    (episode,) = evaluate_policy_on_seeds(policy, env, [0])
    meta = policy.solution.metadata
    assert policy.solution.status == "optimal" and policy.solution.objective == 57
    assert episode.kpi["makespan"] == meta["plan_makespan"] == meta["replay_makespan"] == 57
    assert episode.bound == -57 and meta["plan"] == "cpsat"
    assert meta["hint_makespan"] == best_rule_makespan(env, 0) > 57
    # The unrestricted optimum (55) replays approximately, never below 55.
    free = CPSATPolicy(env, time_limit=10.0, non_delay=False)
    (episode,) = evaluate_policy_on_seeds(free, env, [0])
    assert free.solution.objective == 55 and episode.bound == -55
    assert episode.kpi["makespan"] == free.solution.metadata["plan_makespan"] >= 57


def test_cpsat_in_bws_mode_is_at_least_63_and_at_most_the_best_rule():
    env = gym.make(ENV_ID, instance="ft06", **MODES["bws"])
    policy = CPSATPolicy(env, time_limit=1.5)
    (episode,) = evaluate_policy_on_seeds(policy, env, [0])
    meta = policy.solution.metadata
    assert episode.kpi["makespan"] == meta["plan_makespan"]
    assert 63 <= episode.kpi["makespan"] <= best_rule_makespan(env, 0)
    assert -episode.bound <= episode.kpi["makespan"]


def test_cpsat_gives_no_bound_with_shutdowns():
    env = gym.make(ENV_ID, instance="ft06", **MODES["isbjssp"])
    policy = CPSATPolicy(env, time_limit=1.0)
    results = evaluate_policy_on_seeds(policy, env, [0, 1])
    assert [r.bound for r in results] == [None, None]
    assert all(r.kpi["makespan"] >= 63 for r in results)


def test_cpsat_solves_each_instance_once():
    job_shop._SOLUTION_CACHE.clear()
    env = gym.make(ENV_ID, instance=generate_instance(4, 3, seed=1), **MODES["bws"])
    with mock.patch.object(job_shop, "solve", wraps=job_shop.solve) as spy:
        evaluate_policy_on_seeds(CPSATPolicy(env, time_limit=2.0), env, [0, 1, 2])
        evaluate_policy_on_seeds(CPSATPolicy(env, time_limit=2.0), env, [3])
    assert spy.call_count == 1


def test_clairvoyant_plan_beats_the_rules_and_bounds_every_policy():
    # With the episode's shutdown windows known the plan replays exactly, is no worse than
    # any rule on the same episode, and the pause model's bound holds for all of them.
    env = gym.make(ENV_ID, instance="ft06", **MODES["isbjssp"])
    for seed in (0, 1):
        policy = ClairvoyantCPSATPolicy(env, time_limit=1.5)
        (episode,) = evaluate_policy_on_seeds(policy, env, [seed])
        meta = policy.solution.metadata
        assert meta["clairvoyant"] and meta["downtime"] == "pause"
        assert episode.kpi["makespan"] == meta["plan_makespan"]
        rule_makespans = [
            evaluate_policy_on_seeds(cls(env), env, [seed])[0].kpi["makespan"]
            for cls in RULE_CLASSES.values()
        ]
        assert episode.kpi["makespan"] <= min(rule_makespans)
        assert -episode.bound <= min(min(rule_makespans), episode.kpi["makespan"])
        check_solution(
            env.unwrapped.instance, policy.solution, "bws", env.unwrapped.sim.downtime_windows
        )


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (CPSATPolicy, {"time_limit": 0}, "time_limit must be a positive"),
        (CPSATPolicy, {"workers": 0}, "workers must be a positive integer"),
        (CPSATPolicy, {"non_delay": 1}, "non_delay must be True or False"),
        (ClairvoyantCPSATPolicy, {"time_limit": -1.0}, "time_limit must be a positive"),
    ],
)
def test_policy_arguments_are_checked(cls, kwargs, message):
    env = gym.make(ENV_ID, instance="ft06")
    with pytest.raises(ValueError, match=message):
        cls(env, **kwargs)


def test_policies_refuse_blocking_without_swap_and_other_envs():
    env = gym.make(ENV_ID, instance="ft06", blocking=True, swap=False)
    with pytest.raises(ValueError, match="no model for blocking without swap"):
        CPSATPolicy(env)
    SPTPolicy(env)  # the rules apply to every mode
    other = gym.make("opsrl/LotSizing-v0")
    with pytest.raises(ValueError, match="needs a job shop env"):
        SPTPolicy(other)


def test_every_registered_job_shop_baseline_runs_an_episode():
    env = gym.make(ENV_ID, instance=generate_instance(4, 3, seed=3), **MODES["isbjssp"])
    names = [e.name for e in registry.BASELINE_TABLE if ENV_ID in e.env_ids]
    assert set(names) == {*RULES, "cpsat", "cpsat_clairvoyant"}
    for name in names:
        entry = registry.baseline_entry(name)
        assert not entry.stochastic
        kwargs = {"time_limit": 1.0} if name.startswith("cpsat") else {}
        policy = registry.load_object(entry.class_path)(env, seed=0, **kwargs)
        (episode,) = evaluate_policy_on_seeds(policy, env, [5])
        assert episode.kpi["deadlock"] == 0 and episode.kpi["makespan"] > 0
