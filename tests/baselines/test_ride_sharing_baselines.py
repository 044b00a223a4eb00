"""Ride-sharing dispatch baselines: every policy's intended matching is what env.step executes,
greedy is first come first served to the nearest vehicle, the min-cost flow is a maximum
matching of least cost (brute force), and on the same seeds min-cost flow serves at least as
many orders as greedy, greedy as many as random."""

import itertools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import opsrl  # noqa: F401  (registers the env ids)
from opsrl.baselines.ride_sharing import (
    COST_SCALE,
    GreedyNearestPolicy,
    MinCostFlowPolicy,
    RandomDispatchPolicy,
    greedy_nearest_matching,
    matching_scores,
    pair_costs,
    solve,
)
from opsrl.envs.ride_sharing.env import RideSharingEnv, RideSharingParallelEnv
from opsrl.envs.ride_sharing.sim import resolve_matching
from opsrl.evaluation import evaluate_policy_on_seeds

DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MANHATTAN = DATA_DIR / "manhattan_taxi_zones.csv"
POLICIES = (RandomDispatchPolicy, GreedyNearestPolicy, MinCostFlowPolicy)
#: A small city with more demand than the fleet can take, so that vehicles compete for
#: orders and orders for vehicles.
BUSY = dict(num_vehicles=8, num_zones=9, demand_rate=4.0, episode_minutes=10)
#: Tiny enough to enumerate every matching over the candidate slots.
TINY = dict(num_vehicles=5, num_candidates=3, num_zones=6, demand_rate=2.5, episode_minutes=12)


def manhattan_path() -> Path:
    if not MANHATTAN.is_file():
        pytest.skip(
            f"real data not found: {MANHATTAN} (the shared data folder beside the checkout)"
        )
    return MANHATTAN


def play_checking_matchings(env, policy, seed):
    """Play one episode; at every minute the platform must match exactly the policy's pairs.

    Returns the number of minutes with at least one intended pair.
    """
    env.reset(seed=seed)
    policy.reset(env)
    sim = env.unwrapped.sim
    busy_minutes, done = 0, False
    while not done:
        masks = env.unwrapped.action_masks()
        action, _ = policy.predict(None, action_masks=masks)
        assert env.action_space.contains(action)
        pairs = policy.last_pairs.copy()
        slots = policy.last_slots.copy()
        # The intended pairs are candidate slots, which the masks allow.
        assert masks.reshape(sim.config.num_vehicles, -1)[pairs[:, 0], slots[pairs[:, 0]] + 1].all()
        assert np.unique(pairs[:, 1]).size == len(pairs)
        _, _, terminated, truncated, info = env.step(action)
        assert info["matched"] == len(pairs)
        assert (sim.order_vehicle[pairs[:, 1]] == pairs[:, 0]).all()
        busy_minutes += len(pairs) > 0
        done = terminated or truncated
    return busy_minutes


def all_matchings(candidate_orders):
    """Every matching over the candidate slots: (M,) slot per vehicle, -1 for none."""
    num_vehicles, k = candidate_orders.shape
    options = [
        [-1] + [s for s in range(k) if candidate_orders[v, s] >= 0] for v in range(num_vehicles)
    ]
    for choice in itertools.product(*options):
        orders = [candidate_orders[v, s] for v, s in enumerate(choice) if s >= 0]
        if len(orders) == len(set(orders)):
            yield np.array(choice)


def slot_costs(sim):
    """(M, K) integer cost of every filled candidate slot (0 elsewhere)."""
    candidates = sim.candidates()
    costs = np.zeros(candidates.order.shape, dtype=np.int64)
    valid = candidates.valid
    costs[valid] = pair_costs(candidates.pairs, sim)[candidates.pair[valid]]
    return costs


# ----------------------------------------------------------------------------- acting


@pytest.mark.parametrize("policy_cls", POLICIES, ids=lambda c: c.__name__)
def test_env_step_executes_exactly_the_intended_matching(policy_cls):
    env = RideSharingEnv(**BUSY)
    policy = policy_cls(env, seed=0)
    busy_minutes = sum(play_checking_matchings(env, policy, seed) for seed in (0, 1))
    assert busy_minutes >= 10


def test_matching_scores_make_the_platform_pick_any_given_matching():
    rng = np.random.default_rng(0)
    for _ in range(200):
        num_vehicles, k = rng.integers(1, 7), rng.integers(1, 4)
        candidate_orders = rng.integers(-1, 6, size=(num_vehicles, k))
        matchings = list(all_matchings(candidate_orders))
        slots = matchings[rng.integers(len(matchings))]
        chosen = resolve_matching(matching_scores(slots, k), candidate_orders)
        assert chosen.tolist() == slots.tolist()


def test_policies_act_on_the_registered_env_through_wrappers():
    env = gym.make("opsrl/RideSharing-v0", **BUSY)
    for policy_cls in POLICIES:
        assert play_checking_matchings(env, policy_cls(env, seed=1), seed=2) > 0


# ----------------------------------------------------------------------------- greedy


def test_greedy_is_first_come_first_served_to_the_nearest_vehicle():
    env = RideSharingEnv(**BUSY)
    policy = GreedyNearestPolicy(env)
    checked = 0
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        policy.reset(env)
        sim = env.sim
        done = False
        while not done:
            slots = greedy_nearest_matching(sim)
            candidates = sim.candidates()
            orders = candidates.order
            pickup = candidates.field("pickup_minutes", fill=np.inf)
            appear = sim.order_appear_minute
            assigned = {int(orders[v, s]): v for v, s in enumerate(slots) if s >= 0}
            vehicle_order = {v: int(orders[v, s]) for v, s in enumerate(slots) if s >= 0}
            for v, s in itertools.product(*map(range, orders.shape)):
                order = int(orders[v, s])
                if order < 0:
                    continue
                # Maximal: no candidate pair left with both ends unmatched.
                assert order in assigned or v in vehicle_order
                winner = assigned.get(order)
                nearer = winner is None or (pickup[v, s], v) < (
                    pickup[winner, slots[winner]],
                    winner,
                )
                if nearer and v != winner:
                    # v offered this order and was nearer (or it went unserved): v was taken
                    # by an order that came first.
                    assert v in vehicle_order
                    first = vehicle_order[v]
                    assert (appear[first], first) < (appear[order], order)
                    checked += 1
            _, _, terminated, truncated, _ = env.step(policy.predict(None)[0])
            done = terminated or truncated
    assert checked > 0


# ----------------------------------------------------------------------------- min-cost flow


def test_min_cost_flow_is_a_maximum_matching_of_least_cost_by_brute_force():
    env = RideSharingEnv(**TINY)
    greedy = GreedyNearestPolicy(env)
    contested = 0
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        greedy.reset(env)
        sim = env.sim
        done = False
        while not done:
            solution = solve(env, time_limit=5)
            assert solution.status == "optimal" and solution.bound == solution.objective
            costs = slot_costs(sim)
            orders = sim.candidates().order
            best = min(
                (-np.count_nonzero(m >= 0), int(costs[m >= 0, m[m >= 0]].sum()))
                for m in all_matchings(orders)
            )
            slots = solution.metadata["slots"]
            assert solution.metadata["matched"] == -best[0] == np.count_nonzero(slots >= 0)
            assert solution.objective == best[1]
            assert solution.objective == costs[slots >= 0, slots[slots >= 0]].sum()
            greedy_slots = greedy_nearest_matching(sim)
            assert np.count_nonzero(greedy_slots >= 0) <= solution.metadata["matched"]
            contested += np.count_nonzero(orders >= 0) > np.unique(orders[orders >= 0]).size
            # Drive the episode with greedy, so that the states are not the flow's own.
            _, _, terminated, truncated, _ = env.step(greedy.predict(None)[0])
            done = terminated or truncated
    assert contested >= 5  # minutes where two vehicles offered the same order


def test_min_cost_flow_matches_at_least_as_many_as_greedy_every_minute():
    env = RideSharingEnv(num_vehicles=40, demand_rate=8.0, episode_minutes=15)
    greedy = GreedyNearestPolicy(env)
    env.reset(seed=4)
    greedy.reset(env)
    more, done = 0, False
    while not done:
        flow = solve(env).metadata["matched"]
        action, _ = greedy.predict(None)
        assert len(greedy.last_pairs) <= flow
        more += len(greedy.last_pairs) < flow
        # Every feasible pair, not only the candidates: never fewer matches.
        assert solve(env, restrict_to_candidates=False).metadata["matched"] >= flow
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    assert more > 0


def test_pair_cost_is_the_reward_without_bonus_and_timeouts():
    env = RideSharingEnv(**BUSY)
    env.reset(seed=0)
    policy = GreedyNearestPolicy(env)
    checked = 0
    for _ in range(6):
        pairs = env.sim.feasible_pairs()
        cost = pair_costs(pairs, env.sim)
        plain = (pairs.n_timeout == 0) & (pairs.added_minutes <= 40.0)
        # There reward = 3 + d - 3 t_pick - 3 t_add (hours), and cost = 100 (3 t_pick + 3 t_add
        # - d) rounded.
        np.testing.assert_allclose(
            cost[plain] / COST_SCALE, 3.0 - pairs.reward[plain], atol=0.5 / COST_SCALE + 1e-9
        )
        checked += plain.sum()
        env.step(policy.predict(None)[0])
    assert checked > 10


def test_solve_reads_the_env_its_wrappers_the_parallel_env_and_the_sim():
    env = gym.make("opsrl/RideSharing-v0", **BUSY)
    env.reset(seed=5)
    reference = solve(env.unwrapped.sim)
    for instance in (env, env.unwrapped):
        again = solve(instance)
        assert again.objective == reference.objective
        assert again.metadata["pairs"].tolist() == reference.metadata["pairs"].tolist()
    assert reference.metadata["reward"] > 0 and reference.wall_time >= 0
    assert reference.metadata["minute"] == 0 and reference.metadata["over_time_limit"] is False
    parallel = RideSharingParallelEnv(**BUSY)
    parallel.reset(seed=5)
    assert solve(parallel).metadata["pairs"].tolist() == reference.metadata["pairs"].tolist()
    # Nothing changed: the flow only reads the state.
    assert env.unwrapped.sim.kpi()["served_orders"] == 0


def test_bad_arguments_and_wrong_envs_are_named():
    env = RideSharingEnv(**BUSY)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="time_limit"):
        solve(env, time_limit=0)
    with pytest.raises(ValueError, match="cost_scale"):
        solve(env, cost_scale=0.5)
    with pytest.raises(ValueError, match="cost_scale"):
        MinCostFlowPolicy(env, cost_scale=-1)
    with pytest.raises(ValueError, match="restrict_to_candidates"):
        solve(env, restrict_to_candidates="yes")
    with pytest.raises(ValueError, match=r"needs a ride-sharing env .*CartPoleEnv has no 'sim"):
        GreedyNearestPolicy(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="needs a ride-sharing env"):
        solve(object())
    policy = MinCostFlowPolicy(env)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(policy.predict(None)[0])
        done = terminated or truncated
    with pytest.raises(RuntimeError, match="episode is over"):
        policy.predict(None)
    with pytest.raises(RuntimeError, match="episode is over"):
        solve(env)


# ----------------------------------------------------------------------------- episodes


def served(policy_cls, env, seeds, policy_seed=0):
    results = evaluate_policy_on_seeds(policy_cls(env, seed=policy_seed), env, seeds)
    return np.array([r.kpi["served_orders"] for r in results]), results


def test_on_the_default_city_min_cost_flow_serves_most_then_greedy_then_random():
    env = gym.make("opsrl/RideSharing-v0")
    seeds = [0, 1, 2, 3]
    random_served, _ = served(RandomDispatchPolicy, env, seeds)
    greedy_served, greedy_results = served(GreedyNearestPolicy, env, seeds)
    flow_served, flow_results = served(MinCostFlowPolicy, env, seeds)
    assert flow_served.mean() >= greedy_served.mean() >= random_served.mean()
    assert flow_served.mean() > random_served.mean()
    # The flow also earns more: same pickups, but less added time per match.
    assert np.mean([r.episode_return for r in flow_results]) > np.mean(
        [r.episode_return for r in greedy_results]
    )


def test_deterministic_baselines_repeat_their_episodes_and_random_follows_its_seed():
    env = RideSharingEnv(**BUSY)
    for policy_cls in (GreedyNearestPolicy, MinCostFlowPolicy):
        first = evaluate_policy_on_seeds(policy_cls(env, seed=0), env, [3, 4])
        second = evaluate_policy_on_seeds(policy_cls(env, seed=9), env, [3, 4])
        assert [(r.episode_return, r.kpi) for r in first] == [
            (r.episode_return, r.kpi) for r in second
        ]
    first = evaluate_policy_on_seeds(RandomDispatchPolicy(env, seed=1), env, [3, 4])
    again = evaluate_policy_on_seeds(RandomDispatchPolicy(env, seed=1), env, [3, 4])
    other = evaluate_policy_on_seeds(RandomDispatchPolicy(env, seed=2), env, [3, 4])
    assert [r.episode_return for r in first] == [r.episode_return for r in again]
    assert [r.episode_return for r in first] != [r.episode_return for r in other]


def test_manhattan_zones_end_to_end():
    zones = manhattan_path()
    env = gym.make(
        "opsrl/RideSharing-v0",
        zones=str(zones),
        num_vehicles=60,
        demand_rate=9.0,
        episode_minutes=8,
    )
    counts = {}
    for policy_cls in POLICIES:
        assert play_checking_matchings(env, policy_cls(env, seed=0), seed=0) > 0
        counts[policy_cls.__name__] = env.unwrapped.sim.kpi()["served_orders"]
    assert counts["MinCostFlowPolicy"] >= counts["GreedyNearestPolicy"] > 0
    assert counts["RandomDispatchPolicy"] > 0
