"""The UAM fleet env: env checkers, a random feasible day, both rewards, observations and their
unflattening, masks, invalid actions, scenario replay, traces, rendering and argument errors."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.uam import UAMConfig, UAMFleetEnv, unflatten_graph_observation
from opsrl.envs.uam.env import (
    AIRCRAFT_FEATURES,
    DECISION_COLUMNS,
    EDGE_FEATURES,
    GRAPH_KEYS,
    TRACE_COLUMNS,
    vertiport_feature_names,
)

SMALL = {"n_vertiports": 4, "n_aircraft": 8}


def play_day(env, seed, policy_seed=0):
    """A uniformly random masked policy; returns (rewards, observations, last info)."""
    rng = np.random.default_rng(policy_seed)
    observation, info = env.reset(seed=seed)
    rewards, observations = [], [observation]
    terminated = truncated = False
    while not (terminated or truncated):
        action = rng.choice(np.flatnonzero(env.action_masks()))
        observation, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        observations.append(observation)
    assert terminated and not truncated
    return rewards, observations, info


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"observation": "flat", "reward": "per_flight"},
        {"config": SMALL, "uncertainty": False, "reward_scale": 1000.0},
    ],
)
def test_env_checkers_pass_without_warnings(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = UAMFleetEnv(**kwargs)
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_registered_id_makes_the_env():
    env = gym.make("opsrl/UAMFleet-v0", config=SMALL, observation="flat")
    assert isinstance(env.unwrapped, UAMFleetEnv) and env.spec.max_episode_steps is None
    env.reset(seed=0)
    env.close()


def test_random_feasible_day_finishes_with_consistent_kpis():
    env = UAMFleetEnv()
    rewards, observations, info = play_day(env, seed=0)
    kpi = info["kpi"]
    # the daily reward: zero until the day's normalised profit at the end
    assert all(r == 0.0 for r in rewards[:-1])
    potential = env.scenario.potential_revenue
    assert math.isclose(rewards[-1], kpi["profit"] / potential)
    assert math.isclose(kpi["normalised_profit"], rewards[-1])
    assert kpi["passengers_served"] + kpi["unserved_demand"] == kpi["total_demand"]
    assert kpi["flights"] > 0 and kpi["profit"] > 0
    assert math.isclose(kpi["profit"], kpi["revenue"] - kpi["energy_cost"])
    assert info["aircraft"] == -1 and info["time"] == 18.0
    assert all(
        env.observation_space.contains(o) for o in observations[:: max(1, len(rewards) // 50)]
    )
    assert env.observation_space.contains(observations[-1])
    assert not env.action_masks().any()  # the day is over
    with pytest.raises(RuntimeError, match="day is over"):
        env.step(0)


def test_per_flight_reward_sums_to_the_daily_reward():
    daily, _, info = play_day(UAMFleetEnv(config=SMALL), seed=4, policy_seed=1)
    dense, _, dense_info = play_day(
        UAMFleetEnv(config=SMALL, reward="per_flight"), seed=4, policy_seed=1
    )
    assert len(daily) == len(dense) and info["kpi"] == dense_info["kpi"]
    assert math.isclose(sum(dense), sum(daily), rel_tol=1e-9)
    assert sum(r != 0 for r in dense) > 1
    scaled, _, scaled_info = play_day(
        UAMFleetEnv(config=SMALL, reward_scale=100.0), seed=4, policy_seed=1
    )
    assert math.isclose(scaled[-1], scaled_info["kpi"]["profit"] / 100.0)


def test_graph_observation_shapes_content_and_unflattening():
    config = UAMConfig(**SMALL)
    env = UAMFleetEnv(config=config)
    observation, info = env.reset(seed=1)
    assert set(observation) == set(GRAPH_KEYS)
    n, a, p = 4, 8, 13
    graph = unflatten_graph_observation(observation)
    assert graph["vertiport_features"].shape == (n, len(vertiport_feature_names(config)))
    assert graph["vertiport_edges"].shape == (2, n * (n - 1))
    assert graph["vertiport_edge_features"].shape == (n * (n - 1), len(EDGE_FEATURES))
    assert graph["aircraft_features"].shape == (a, len(AIRCRAFT_FEATURES))
    assert graph["demand"].shape == (p, n, n) and graph["fares"].shape == (n, n)
    # the edge list is the complete directed graph without self-loops
    source, target = graph["vertiport_edges"].astype(int)
    assert np.all(source != target) and len(set(zip(source, target, strict=True))) == n * (n - 1)

    sim = env.sim
    aircraft = sim.deciding_aircraft()
    assert graph["deciding"].tolist() == [aircraft, sim.location[aircraft]]
    np.testing.assert_array_equal(graph["action_mask"], env.action_masks())
    deciding = AIRCRAFT_FEATURES.index("deciding")
    assert graph["aircraft_features"][:, deciding].tolist() == [
        float(k == aircraft) for k in range(a)
    ]
    names = vertiport_feature_names(config)
    features = graph["vertiport_features"]
    parked = np.bincount(sim.location, minlength=n) / config.parking_capacities
    np.testing.assert_allclose(features[:, names.index("parked")], parked, rtol=1e-6)
    assert features[sim.location[aircraft], names.index("deciding_here")] == 1.0
    # the demand series is the remaining demand, and serving a pair lowers it
    np.testing.assert_allclose(
        graph["demand"],
        np.minimum(sim.remaining_demand / config.peak_bin_demand, 4.0),
        rtol=1e-6,
    )
    # batched torch-style leading dimensions
    batch = {key: np.stack([value, value]) for key, value in observation.items()}
    assert unflatten_graph_observation(batch)["aircraft_features"].shape == (2, a, 12)

    # flat: one vector of fixed size for every day
    flat = UAMFleetEnv(config=config, observation="flat")
    first, _ = flat.reset(seed=1)
    second, _ = flat.reset(seed=2)
    assert first.shape == second.shape == flat.observation_space.shape
    assert first[0] == 0.0 and first[1 + aircraft] == 1.0


def test_invalid_action_is_replaced_by_a_stay_or_raises():
    config = {**SMALL, "route_closure_prob": 1.0}  # every route closed: only stays
    env = UAMFleetEnv(config=config)
    env.reset(seed=0)
    aircraft = env.sim.deciding_aircraft()
    origin = int(env.sim.location[aircraft])
    elsewhere = (origin + 1) % 4
    assert env.action_masks().tolist() == [i == origin for i in range(4)]
    _, _, _, _, info = env.step(elsewhere)
    assert info["invalid_action"] and not info["decision"].is_flight
    assert info["decision"].aircraft == aircraft

    strict = UAMFleetEnv(config=config, invalid_action="raise")
    strict.reset(seed=0)
    with pytest.raises(ValueError, match="route closed"):
        strict.step(elsewhere)
    for bad in (4, -1, 1.5, [0, 1], "a"):
        with pytest.raises(ValueError, match="action must be"):
            strict.step(bad)


def test_reset_is_seeded_and_replays_a_scenario():
    env = UAMFleetEnv(config=SMALL)
    first = play_day(env, seed=3)
    log = env.decision_log()
    scenario = env.scenario
    again = play_day(env, seed=3)
    assert first[0] == again[0] and first[2]["kpi"] == again[2]["kpi"]
    other = play_day(env, seed=4)
    assert other[2]["kpi"] != first[2]["kpi"]
    # replaying the scenario with the same choices replays the day
    env.reset(options={"scenario": scenario})
    for destination in log["destination"]:
        env.step(int(destination))
    assert env.decision_log().equals(log)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"day": 1})
    with pytest.raises(ValueError, match="scenario must be"):
        env.reset(options={"scenario": "monday"})


def test_episode_trace_decision_log_and_render():
    env = UAMFleetEnv(config=SMALL, render_mode="ansi")
    _, _, info = play_day(env, seed=0)
    log = env.decision_log()
    assert tuple(log.columns) == DECISION_COLUMNS and set(log["kind"]) == {"flight", "stay"}
    trace = env.episode_trace()
    assert tuple(trace.columns) == TRACE_COLUMNS and len(trace) == len(log)
    assert trace["time"].is_monotonic_increasing
    assert math.isclose(trace["profit"].iloc[-1], info["kpi"]["profit"])
    assert trace["flights"].iloc[-1] == info["kpi"]["flights"]
    text = env.render()
    assert "profit" in text and text.count("\n") == 4
    env.reset(seed=0)
    assert env.render().startswith("06:00")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"observation": "image"}, "observation"),
        ({"reward": "weekly"}, "reward"),
        ({"reward_scale": 0.0}, "reward_scale"),
        ({"reward_scale": True}, "reward_scale"),
        ({"invalid_action": "ignore"}, "invalid_action"),
        ({"render_mode": "human"}, "render_mode"),
        ({"config": {"fleet": 3}}, "unknown fields"),
        ({"n_aircraft": 0}, "n_aircraft"),
        ({"n_vertiports": 1}, "n_vertiports"),
        ({"config": {"corridor_capacity": -2}}, "corridor_capacity"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UAMFleetEnv(**kwargs)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        UAMFleetEnv(config=SMALL).step(0)


def test_maskable_ppo_runs_on_the_graph_observation():
    from sb3_contrib import MaskablePPO

    env = UAMFleetEnv(config=SMALL)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0)
    model.learn(64)
    observation, _ = env.reset(seed=0)
    action, _ = model.predict(observation, action_masks=env.action_masks(), deterministic=True)
    assert env.action_masks()[int(action)]
