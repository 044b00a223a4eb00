"""UAM fleet baselines: every policy flies only feasible legs over whole days, the population
simulator of the genetic algorithm is the UAM simulator, the GA and greedy beat random, the
time-expanded model bounds every policy's profit (also under uncertainty), plans are seeded,
and bad arguments raise ValueErrors that name them."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest

import opsrl  # noqa: F401  (registers the env ids)
from opsrl.baselines.base import Solution
from opsrl.baselines.uam import (
    GeneticAlgorithmPolicy,
    GreedyProfitPolicy,
    MILPPolicy,
    RandomFeasiblePolicy,
    _FleetBatch,
    _replay,
    expected_scenario,
    genes_per_aircraft,
    immediate_profits,
    ranked_destinations,
    solve,
    solve_ga,
)
from opsrl.envs.uam import UAMConfig, UAMSim
from opsrl.evaluation import evaluate_policy_on_seeds

ENV_ID = "opsrl/UAMFleet-v0"
#: a small morning: 4 vertiports, 6 aircraft, 06:00-12:00, no random effects
CALM = dict(n_vertiports=4, n_aircraft=6, day_end=12.0, uncertainty=False)
#: the same with every uncertainty, frequent, and tight capacities
STORMY = dict(
    n_vertiports=4,
    n_aircraft=8,
    day_end=12.0,
    parking_capacity=3,
    charging_capacity=2,
    corridor_capacity=1,
    route_closure_prob=0.2,
    downtime_prob=0.5,
)
#: a GA small enough for tests
QUICK_GA = dict(population_size=12, generations=6)


def make_env(config: dict, **kwargs) -> gym.Env:
    # "raise": an infeasible destination ends the test instead of becoming a stay
    return gym.make(ENV_ID, config=config, invalid_action="raise", **kwargs)


def play(env: gym.Env, policy, seed: int | None = None, scenario=None) -> tuple[float, dict]:
    """One day with ``policy``; checks every chosen destination against the mask."""
    options = None if scenario is None else {"scenario": scenario}
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(env)
    total, done = 0.0, False
    while not done:
        mask = env.unwrapped.action_masks()
        action, _ = policy.predict(obs, action_masks=mask)
        assert mask[int(action)], f"{type(policy).__name__} chose an infeasible destination"
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["invalid_action"]
        total += reward
        done = terminated or truncated
    return total, info["kpi"]


def calm_scenario(env: gym.Env, seed: int):
    """The env's day for ``seed`` with its demand set to the rounded expectation, so that the
    expected and the realised day coincide."""
    env.reset(seed=seed)
    return expected_scenario(env.unwrapped.sim.scenario)


# --------------------------------------------------------------------------------------------
# Feasibility and the shared ranking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy_cls, kwargs",
    [
        (RandomFeasiblePolicy, {}),
        (GreedyProfitPolicy, {}),
        (GeneticAlgorithmPolicy, QUICK_GA),
        (GeneticAlgorithmPolicy, dict(QUICK_GA, clairvoyant=True)),
        (MILPPolicy, {}),
        (MILPPolicy, {"demand": "expected"}),
    ],
)
@pytest.mark.parametrize("config", [CALM, STORMY], ids=["calm", "stormy"])
def test_policies_fly_only_feasible_legs_over_whole_days(policy_cls, kwargs, config):
    env = make_env(config)
    policy = policy_cls(env, seed=0, **kwargs)
    for seed in (0, 1):
        _, kpi = play(env, policy, seed=seed)
        assert env.unwrapped.sim.finished
        assert kpi["flights"] > 0


def test_greedy_takes_the_best_paying_feasible_leg_and_stays_when_none_pays():
    env = make_env(CALM)
    policy = GreedyProfitPolicy(env)
    env.reset(seed=3)
    policy.reset(env)
    sim = env.unwrapped.sim
    for _ in range(30):
        mask = env.unwrapped.action_masks()
        profit = immediate_profits(sim)
        action, _ = policy.predict(None, action_masks=mask)
        best = max(profit[mask].max(), 0.0)
        assert profit[int(action)] == best
        ranked = ranked_destinations(sim, mask)
        assert ranked[0] == int(action) and set(ranked) == set(np.flatnonzero(mask))
        env.step(action)
    # no demand at all: nothing pays, every aircraft stays all day
    empty = replace(sim.scenario, demand=np.zeros_like(sim.scenario.demand))
    _, kpi = play(env, policy, scenario=empty)
    assert kpi["flights"] == 0 and kpi["profit"] == 0.0


def test_population_simulator_is_the_uam_simulator():
    # random genomes and near-greedy ones, on days with delays, closures and downtime
    config = UAMConfig(**STORMY)
    rng = np.random.default_rng(0)
    width = genes_per_aircraft(config)
    for seed in range(3):
        sim = UAMSim(config, record=False)
        sim.reset(seed)
        genomes = rng.random((5, config.n_aircraft, width))
        genomes[0] = 0.0
        genomes[1] **= 8
        start = np.zeros(config.n_aircraft, dtype=np.int64)
        batch = _FleetBatch(sim, start).profits(genomes)
        replayed = [_replay(sim, genome, start).profit for genome in genomes]
        np.testing.assert_array_equal(batch, replayed)


# --------------------------------------------------------------------------------------------
# Genetic algorithm
# --------------------------------------------------------------------------------------------


def test_ga_and_greedy_beat_random_on_the_same_seeds():
    env = make_env(CALM)
    policies = {
        "random": RandomFeasiblePolicy(env, seed=0),
        "greedy": GreedyProfitPolicy(env),
        "ga": GeneticAlgorithmPolicy(env, seed=0, **QUICK_GA),
    }
    seeds = [0, 1, 2]
    profit = {
        name: [play(env, policy, seed=seed)[1]["profit"] for seed in seeds]
        for name, policy in policies.items()
    }
    assert np.mean(profit["ga"]) > np.mean(profit["random"])
    assert np.mean(profit["greedy"]) > np.mean(profit["random"])
    assert all(ga > rnd for ga, rnd in zip(profit["ga"], profit["random"], strict=True))


def test_clairvoyant_ga_replays_its_plan_and_never_loses_to_greedy_on_it():
    env = make_env(STORMY)
    policy = GeneticAlgorithmPolicy(env, seed=1, clairvoyant=True, **QUICK_GA)
    greedy = GreedyProfitPolicy(env)
    for seed in (0, 1):
        _, kpi = play(env, policy, seed=seed)
        solution = policy.solution
        # the plan is made on the realised day, so the day goes exactly as planned
        assert kpi["profit"] == pytest.approx(solution.objective, abs=1e-9)
        assert solution.objective == solution.metadata["batch_profit"]
        # elitism keeps the greedy genome's profit, which is greedy's day
        _, greedy_kpi = play(env, greedy, seed=seed)
        assert solution.metadata["greedy_profit"] == pytest.approx(greedy_kpi["profit"])
        assert solution.objective >= greedy_kpi["profit"]
        assert solution.metadata["history"] == sorted(solution.metadata["history"])


def test_same_seed_same_ga_plan_and_plan_time_recorded():
    env = make_env(CALM)
    env.reset(seed=4)
    first = GeneticAlgorithmPolicy(env, seed=7, **QUICK_GA)
    second = GeneticAlgorithmPolicy(env, seed=7, **QUICK_GA)
    other = GeneticAlgorithmPolicy(env, seed=8, **QUICK_GA)
    for policy in (first, second, other):
        policy.reset(env)
    np.testing.assert_array_equal(first.genome, second.genome)
    assert first.solution.objective == second.solution.objective
    assert not np.array_equal(first.genome, other.genome)
    assert first.last_plan_seconds == first.solution.wall_time > 0
    assert first.solution.metadata["planned_on"] == "expected"


def test_fair_ga_plans_on_the_day_known_in_the_morning():
    env = make_env(STORMY)
    env.reset(seed=2)
    scenario = env.unwrapped.sim.scenario
    known = expected_scenario(scenario)
    np.testing.assert_array_equal(known.demand, np.rint(scenario.expected_demand))
    np.testing.assert_array_equal(known.initial_location, scenario.initial_location)
    np.testing.assert_array_equal(known.takeoff_delay_mean, scenario.takeoff_delay_mean)
    assert not known.route_closed.any() and np.all(np.isinf(known.downtime_start))
    assert np.all(known.takeoff_delay_draws == 1.0)
    solution = solve_ga(env, **QUICK_GA, rng=0)
    sim = UAMSim(env.unwrapped.config, record=False)
    sim.reset(scenario=known)
    replayed = _replay(sim, solution.metadata["genome"], np.zeros(8, dtype=np.int64))
    assert solution.objective == pytest.approx(replayed.profit)


def test_ga_can_plan_on_sampled_demand():
    env = make_env(STORMY)
    env.reset(seed=5)
    solution = solve_ga(env, demand_samples=3, **QUICK_GA, rng=0)
    # the population simulator's mean over the draws is the mean of the UAMSim replays
    assert solution.objective == pytest.approx(solution.metadata["batch_profit"], abs=1e-9)
    assert solution.metadata["demand_samples"] == 3
    policy = GeneticAlgorithmPolicy(env, seed=0, demand_samples=2, **QUICK_GA)
    play(env, policy, seed=5)
    assert policy.solution.metadata["demand_samples"] == 2


# --------------------------------------------------------------------------------------------
# Time-expanded model
# --------------------------------------------------------------------------------------------


def test_model_bounds_every_policy_on_a_calm_day():
    env = make_env(CALM)
    policies = [
        RandomFeasiblePolicy(env, seed=0),
        GreedyProfitPolicy(env),
        GeneticAlgorithmPolicy(env, seed=0, clairvoyant=True, **QUICK_GA),
        MILPPolicy(env),
    ]
    for seed in (0, 1):
        scenario = calm_scenario(env, seed)
        env.reset(options={"scenario": scenario})
        realised = solve(env, demand="realised")
        expected = solve(env, demand="expected")
        assert isinstance(realised, Solution)
        assert realised.status == "optimal" and realised.metadata["status_name"] == "OPTIMAL"
        assert realised.wall_time > 0
        # expected == realised on this day
        assert realised.objective == pytest.approx(expected.objective, rel=1e-6)
        assert realised.bound == pytest.approx(realised.objective)
        for policy in policies:
            total, kpi = play(env, policy, scenario=scenario)
            assert realised.objective >= kpi["profit"]
            bound = policy.episode_bound(env) if isinstance(policy, MILPPolicy) else None
            if bound is not None:
                assert bound == pytest.approx(realised.bound / scenario.potential_revenue)
                assert bound >= total


def test_model_bound_holds_under_uncertainty_and_per_flight_rewards():
    env = make_env(STORMY, reward="per_flight", reward_scale=1000.0)
    policy = MILPPolicy(env)
    others = [
        GreedyProfitPolicy(env),
        RandomFeasiblePolicy(env, seed=1),
        GeneticAlgorithmPolicy(env, seed=0, clairvoyant=True, **QUICK_GA),
    ]
    episodes = evaluate_policy_on_seeds(policy, env, [0, 1, 2])
    for episode in episodes:
        assert episode.bound is not None and episode.bound >= episode.episode_return
        for other in others:
            total, _ = play(env, other, seed=episode.seed)
            assert episode.bound >= total
        # the bound is the dollar bound over the reward scale
        env.reset(seed=episode.seed)
        assert episode.bound == pytest.approx(solve(env).bound / 1000.0)


def test_integer_model_on_a_tiny_day():
    config = dict(
        n_vertiports=3, n_aircraft=2, day_end=8.0, uncertainty=False, downtime_hours=(0.5, 1.0)
    )
    env = make_env(config)
    env.reset(seed=0)
    lp = solve(env)
    milp = solve(env, integer=True, time_limit=20.0)
    assert milp.metadata["model"] == "milp" and milp.status in ("optimal", "feasible")
    assert milp.objective <= lp.objective + 1e-6
    assert milp.bound <= lp.bound + 1e-6 and milp.objective <= milp.bound + 1e-6
    flights = milp.metadata["flights"]
    np.testing.assert_allclose(flights, np.rint(flights), atol=1e-6)
    _, kpi = play(env, GreedyProfitPolicy(env), seed=0)
    if milp.status == "optimal":
        assert milp.objective >= kpi["profit"] - 1e-6


def test_model_without_a_day_lets_the_fleet_start_anywhere():
    config = UAMConfig(**CALM)
    solution = solve(config, demand="expected")
    assert solution.status == "optimal"
    start = solution.metadata["start"]
    assert start.sum() == config.n_aircraft
    assert np.all(start <= config.parking_capacities)
    # a free start can only help
    env = make_env(CALM)
    env.reset(seed=0)
    assert solution.objective >= solve(env, demand="expected").objective - 1e-6


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda env: GeneticAlgorithmPolicy(env, population_size=0), "population_size"),
        (lambda env: GeneticAlgorithmPolicy(env, generations=-1), "generations"),
        (lambda env: GeneticAlgorithmPolicy(env, mutation_rate=1.5), "mutation_rate"),
        (lambda env: GeneticAlgorithmPolicy(env, crossover_rate=-0.1), "crossover_rate"),
        (lambda env: GeneticAlgorithmPolicy(env, population_size=4, elite=4), "elite"),
        (lambda env: GeneticAlgorithmPolicy(env, time_limit=0), "time_limit"),
        (lambda env: GeneticAlgorithmPolicy(env, clairvoyant="yes"), "clairvoyant"),
        (lambda env: GeneticAlgorithmPolicy(env, demand_samples=-1), "demand_samples"),
        (
            lambda env: GeneticAlgorithmPolicy(env, clairvoyant=True, demand_samples=2),
            "demand_samples applies",
        ),
        (lambda env: MILPPolicy(env, demand="forecast"), "demand"),
        (lambda env: MILPPolicy(env, slot_hours=0), "slot_hours"),
        (lambda env: MILPPolicy(env, max_lateness_hours=-1.0), "max_lateness_hours"),
        (lambda env: MILPPolicy(env, time_limit=float("inf")), "time_limit"),
        (lambda env: solve(env, slot_hours=5.0), "slot_hours must be at most"),
        (lambda env: solve(env, demand="forecast"), "demand"),
        (lambda env: solve(env, integer=1), "integer"),
        (lambda env: solve(UAMConfig(**CALM), demand="realised"), "demand='realised' needs"),
        (lambda env: solve(UAMConfig(**CALM, layout_seed=None), demand="expected"), "layout"),
        (lambda env: solve("day"), "UAMConfig"),
        (lambda env: solve_ga(UAMConfig(**CALM)), "needs a day"),
        (lambda env: solve_ga(env, rng="seed"), "rng"),
        (lambda env: GreedyProfitPolicy(gym.make("CartPole-v1")), "UAM fleet env"),
        (lambda env: RandomFeasiblePolicy(gym.make("CartPole-v1")), "UAM fleet env"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, match):
    env = make_env(CALM)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        build(env)


def test_ga_solution_reports_wall_time_and_history():
    env = make_env(CALM)
    env.reset(seed=0)
    solution = solve_ga(env, population_size=6, generations=3, rng=0)
    assert isinstance(solution, Solution)
    assert solution.status == "feasible" and solution.bound is None
    assert solution.wall_time > 0
    assert solution.metadata["generations"] == 3 and len(solution.metadata["history"]) == 4
    assert solution.metadata["evaluations"] == 6 + 3 * 4
    # the time limit stops the generations
    limited = solve_ga(env, population_size=6, generations=10_000, time_limit=0.5, rng=0)
    assert limited.metadata["generations"] < 10_000 and limited.wall_time < 5.0
