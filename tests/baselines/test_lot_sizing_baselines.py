"""Lot-sizing baselines: the perfect-information MIP matches the env and bounds every policy;
rolling-horizon MIP and base stock are valid, deterministic and beat random."""

import itertools
from unittest import mock

import gymnasium as gym
import numpy as np
import pytest

import opsrl  # noqa: F401  (registers the env ids)
from opsrl.baselines import lot_sizing
from opsrl.baselines.common import RandomPolicy
from opsrl.baselines.lot_sizing import (
    BaseStockPolicy,
    PerfectInformationPolicy,
    RollingHorizonMIPPolicy,
    solve_perfect_information,
)
from opsrl.envs.lot_sizing.data import DemandModel, LotSizingInstance
from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.evaluation import evaluate_policy_on_seeds

ENV_ID = "opsrl/LotSizing-v0"
SEEDS = [0, 1, 2]
#: fast settings for the MIP policies on the small instances
ROLLING = {"lookahead": 4, "time_limit": 0.2}


def tiny_instance(**overrides):
    """Two items, two machines, a small store: discards, setup losses and a loss above the
    production rate (machine 1, item 2: makes 3, loses 4) all occur."""
    data = dict(
        machine_production=[[5, 0], [4, 3]],
        setup_costs=[[2.5, 0.0], [1.25, 0.75]],
        setup_loss=[[1, 0], [1, 4]],
        holding_costs=[0.1, 0.05],
        lost_sales_costs=[1.0, 0.7],
        max_inventory_level=[6, 5],
        initial_inventory=[2, 1],
        initial_setup=[1, 2],
        horizon=4,
        demand=DemandModel.poisson(3.0),
        name="brute-force",
    )
    data.update(overrides)
    return LotSizingInstance(**data)


def episode_cost(env, actions, seed):
    env.reset(seed=seed)
    return -sum(env.step(action)[1] for action in actions)


def returns(policy, env, seeds=SEEDS):
    return np.array([r.episode_return for r in evaluate_policy_on_seeds(policy, env, seeds)])


# --------------------------------------------------------------------------------------------
# Perfect information
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["3x2", "5x3"])
def test_pi_objective_equals_env_cost_of_its_plan(size):
    env = gym.make(ENV_ID, instance=size, horizon=8, infeasible_action="raise")
    policy = PerfectInformationPolicy(env, time_limit=20.0)
    for seed in SEEDS:
        [result] = evaluate_policy_on_seeds(policy, env, [seed])
        solution = policy.solution
        assert solution.status == "optimal"
        assert -result.episode_return == pytest.approx(solution.objective, abs=1e-9)
        assert result.bound == pytest.approx(-solution.bound, abs=1e-9)
        assert solution.bound == pytest.approx(solution.objective, abs=1e-9)
        split = sum(solution.metadata[key] for key in ("setup_cost", "holding_cost"))
        split += solution.metadata["lost_sales_cost"]
        assert split == pytest.approx(solution.objective, abs=1e-9)
        assert result.kpi["total_cost"] == pytest.approx(solution.objective, abs=1e-9)
        plan = solution.metadata["plan"]
        assert plan.shape == (8, env.unwrapped.instance.n_machines) and plan.dtype == np.int64


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pi_optimum_equals_brute_force_over_all_action_sequences(seed):
    instance = tiny_instance()
    env = LotSizingEnv(instance=instance, infeasible_action="raise")
    env.reset(seed=seed)
    path, inventory, setup = env.demand_path.copy(), env.inventory, env.setup
    per_machine = [np.flatnonzero(env.action_masks()[m * 3 : (m + 1) * 3]) for m in range(2)]
    per_period = list(itertools.product(*per_machine))
    best = min(
        episode_cost(env, actions, seed)
        for actions in itertools.product(per_period, repeat=instance.horizon)
    )
    solution = solve_perfect_information(instance, path, inventory, setup, time_limit=10.0)
    assert solution.status == "optimal"
    assert solution.objective == pytest.approx(best, abs=1e-9)
    assert solution.bound == pytest.approx(best, abs=1e-9)


def test_brute_force_optima_discard_units():
    """The discard variable matters: on these paths the optimal plans throw units away
    (a machine keeps its setup by producing into a full store)."""
    instance = tiny_instance()
    env = LotSizingEnv(instance=instance)
    discarded = 0
    for seed in range(4):
        env.reset(seed=seed)
        solution = solve_perfect_information(
            instance, env.demand_path, env.inventory, env.setup, time_limit=10.0
        )
        trajectory = lot_sizing._simulate_plan(
            env.plant, solution.metadata["plan"], env.demand_path, env.inventory, env.setup
        )
        discarded += trajectory["discard"].sum()
    assert discarded > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_pi_bound_is_below_the_cost_of_every_policy_on_the_path(seed):
    env = gym.make(ENV_ID, instance="5x3", horizon=8)
    pi = PerfectInformationPolicy(env, time_limit=10.0)
    [pi_result] = evaluate_policy_on_seeds(pi, env, [seed])
    assert pi.solution.status == "optimal"
    upper = pi_result.bound  # an upper bound on the return of every policy
    others = [
        BaseStockPolicy(env),
        RollingHorizonMIPPolicy(env, **ROLLING),
        *(RandomPolicy(env, seed=k) for k in range(3)),
    ]
    for policy in others:
        [result] = evaluate_policy_on_seeds(policy, env, [seed])
        assert result.episode_return <= upper + 1e-9
        assert result.episode_return <= pi_result.episode_return + 1e-9


def test_pi_solves_each_episode_once_and_follows_new_episodes():
    env = gym.make(ENV_ID, instance="3x2", horizon=5)
    policy = PerfectInformationPolicy(env, time_limit=5.0)
    with mock.patch.object(
        lot_sizing, "solve_perfect_information", wraps=solve_perfect_information
    ) as solve:
        results = evaluate_policy_on_seeds(policy, env, [0, 1, 0])
        assert solve.call_count == 3
        policy.episode_bound(env)  # same episode: cached
        assert solve.call_count == 3
    assert results[0].episode_return == results[2].episode_return
    assert results[0].bound == results[2].bound


def test_pi_plans_lazily_without_reset_but_not_mid_episode():
    env = LotSizingEnv(instance="3x2", horizon=4)
    policy = PerfectInformationPolicy(env, time_limit=5.0)
    obs, _ = env.reset(seed=4)
    action, _ = policy.predict(obs)  # no policy.reset: plans at period 0
    assert action.dtype == env.action_space.dtype
    env.step(action)
    fresh = PerfectInformationPolicy(env, time_limit=5.0)
    with pytest.raises(RuntimeError, match="reset"):
        fresh.predict(obs)


def test_pi_time_limit_gives_a_plan_and_a_bound_below_it():
    env = LotSizingEnv(instance="15x5", horizon=12)
    env.reset(seed=0)
    solution = solve_perfect_information(
        env.instance, env.demand_path, env.inventory, env.setup, time_limit=0.3
    )
    assert solution.status in ("optimal", "feasible")
    assert solution.bound <= solution.objective + 1e-9
    assert solution.metadata["plan"].shape == (12, 5)
    assert solution.metadata["cost_scale"] == 100
    assert 0 < solution.metadata["solve_time"] <= solution.wall_time
    cost = episode_cost(env, solution.metadata["plan"], seed=0)
    assert cost == pytest.approx(solution.objective, abs=1e-9)
    [base_stock] = evaluate_policy_on_seeds(BaseStockPolicy(env), env, [0])
    assert -base_stock.episode_return >= solution.bound - 1e-9


# --------------------------------------------------------------------------------------------
# Rolling horizon and base stock
# --------------------------------------------------------------------------------------------


def test_rolling_mip_and_base_stock_beat_random():
    env = gym.make(ENV_ID, instance="5x3", horizon=15)
    random_return = np.mean([returns(RandomPolicy(env, seed=k), env).mean() for k in range(3)])
    base_stock = returns(BaseStockPolicy(env), env)
    rolling = returns(RollingHorizonMIPPolicy(env, **ROLLING), env)
    assert base_stock.mean() > random_return
    assert rolling.mean() > random_return


@pytest.mark.parametrize(
    "make_policy",
    [
        lambda env: BaseStockPolicy(env),
        lambda env: BaseStockPolicy(env, safety_periods=2.0),
        lambda env: BaseStockPolicy(env, levels=[50, 0, 10, 30, 100]),
        lambda env: RollingHorizonMIPPolicy(env, **ROLLING),
        lambda env: PerfectInformationPolicy(env, time_limit=5.0),
    ],
    ids=["base_stock", "base_stock_short", "base_stock_levels", "rolling_mip", "pi_mip"],
)
def test_policies_return_masked_valid_actions_of_the_space_dtype(make_policy):
    env = gym.make(ENV_ID, instance="5x3", horizon=6, infeasible_action="raise")
    policy = make_policy(env)
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        policy.reset(env)
        done = False
        while not done:
            mask = env.unwrapped.action_masks()
            action, _ = policy.predict(obs, action_masks=mask)
            assert action.dtype == env.action_space.dtype and action.shape == (3,)
            assert env.action_space.contains(action)
            assert mask.reshape(3, 6)[np.arange(3), action].all()
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated


@pytest.mark.parametrize(
    "make_policy",
    [lambda env: BaseStockPolicy(env), lambda env: RollingHorizonMIPPolicy(env, **ROLLING)],
    ids=["base_stock", "rolling_mip"],
)
def test_policies_respect_a_narrower_mask(make_policy):
    env = LotSizingEnv(instance="5x3", horizon=3)
    policy = make_policy(env)
    obs, _ = env.reset(seed=0)
    policy.reset(env)
    mask = env.action_masks().reshape(3, 6)
    mask[:, 1:] = False  # only idling allowed
    action, _ = policy.predict(obs, action_masks=mask.ravel())
    assert np.all(action == 0)
    with pytest.raises(ValueError, match="action_masks"):
        policy.predict(obs, action_masks=np.ones(5, dtype=bool))


def test_base_stock_rule_keeps_setups_and_skips_unprofitable_changeovers():
    instance = tiny_instance(initial_inventory=[0, 0], initial_setup=[1, 0], horizon=2)
    env = LotSizingEnv(instance=instance, random_initial_state=False)
    env.reset(seed=0)
    # Machine 0 is set up for item 1, which is short: it keeps it (shortfall 8 - 5 = 3).
    # Item 2 is more urgent (0.7 * 8 > 1.0 * 3) but machine 1 would make nothing of it after
    # the setup loss, so machine 1 goes to item 1 (setup 1.25 <= 1.0 * 3).
    action, _ = BaseStockPolicy(env, levels=8).predict(None)
    assert action.tolist() == [1, 1]
    assert action.dtype == env.action_space.dtype
    # Shortfalls of 0 and 1 unit: nothing to keep, and 0.7 * 1 does not pay a setup.
    action, _ = BaseStockPolicy(env, levels=[0, 1]).predict(None)
    assert action.tolist() == [0, 0]


def test_policies_are_deterministic():
    env = gym.make(ENV_ID, instance="5x3", horizon=6)
    for make in (lambda: BaseStockPolicy(env), lambda: RollingHorizonMIPPolicy(env, **ROLLING)):
        first, second = returns(make(), env, [3]), returns(make(), env, [3])
        assert first == pytest.approx(second)


def test_expected_demand_rounds_running_totals():
    demand = lot_sizing._expected_demand(np.array([8.0, 7.5, 0.2]), start=3, n_periods=10)
    assert demand.shape == (10, 3) and demand.dtype == np.int64
    assert np.all(demand[:, 0] == 8)
    assert set(demand[:, 1].tolist()) == {7, 8} and demand[:, 1].sum() == 75
    assert demand[:, 2].sum() == 2


def test_cost_scale_is_the_smallest_power_of_ten_making_costs_integers():
    assert lot_sizing._cost_scale(tiny_instance()) == 100
    assert (
        lot_sizing._cost_scale(
            tiny_instance(
                holding_costs=[1.0, 2.0],
                lost_sales_costs=[3.0, 4.0],
                setup_costs=[[2.0, 0.0], [1.0, 5.0]],
            )
        )
        == 1
    )
    assert lot_sizing._cost_scale(tiny_instance(holding_costs=[0.125, 0.05])) == 1000


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda env: PerfectInformationPolicy(env, time_limit=-1.0), "time_limit"),
        (lambda env: PerfectInformationPolicy(env, time_limit=0), "time_limit"),
        (lambda env: PerfectInformationPolicy(env, time_limit="10"), "time_limit"),
        (lambda env: PerfectInformationPolicy(env, num_workers=0), "num_workers"),
        (lambda env: RollingHorizonMIPPolicy(env, lookahead=0), "lookahead"),
        (lambda env: RollingHorizonMIPPolicy(env, lookahead=2.5), "lookahead"),
        (lambda env: RollingHorizonMIPPolicy(env, time_limit=-0.5), "time_limit"),
        (lambda env: RollingHorizonMIPPolicy(env, num_workers=-1), "num_workers"),
        (lambda env: BaseStockPolicy(env, safety_periods=-1), "safety_periods"),
        (lambda env: BaseStockPolicy(env, levels=[1, 2]), "levels"),
        (lambda env: BaseStockPolicy(env, levels=-3), "levels"),
        (lambda env: BaseStockPolicy(gym.make("CartPole-v1")), "lot-sizing env"),
    ],
)
def test_bad_policy_arguments_raise_value_error_naming_them(make, message):
    env = gym.make(ENV_ID, instance="3x2", horizon=4)
    with pytest.raises(ValueError, match=message):
        make(env)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"solver": "gurobi"}, "solver"),
        ({"time_limit": float("nan")}, "time_limit"),
        ({"demand_path": np.zeros((4, 3))}, "demand_path"),
        ({"demand_path": -np.ones((4, 2))}, "demand_path"),
        ({"initial_inventory": [1, 2, 3]}, "initial_inventory"),
        ({"initial_inventory": [1, 99]}, "initial_inventory"),
        ({"initial_setup": [0, 7]}, "initial_setup"),
    ],
)
def test_bad_solver_arguments_raise_value_error_naming_them(kwargs, message):
    instance = tiny_instance()
    arguments = dict(
        demand_path=np.ones((3, 2), dtype=np.int64),
        initial_inventory=[0, 0],
        initial_setup=[0, 0],
    )
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        solve_perfect_information(instance, **arguments)


def test_pi_without_a_solution_in_time_still_gives_a_plan():
    env = LotSizingEnv(instance="15x5", horizon=12)
    env.reset(seed=0)
    solution = solve_perfect_information(
        env.instance, env.demand_path, env.inventory, env.setup, time_limit=1e-4
    )
    assert solution.metadata["plan"].shape == (12, 5)
    assert episode_cost(env, solution.metadata["plan"], seed=0) == pytest.approx(
        solution.objective, abs=1e-9
    )
    assert solution.bound is None or solution.bound <= solution.objective + 1e-9
