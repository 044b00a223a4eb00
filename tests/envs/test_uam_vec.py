"""The batched UAM fleet env: step-for-step equality with SB3's DummyVecEnv of single envs
(observations, rewards, dones, masks, terminal observations, KPIs) over several days with
automatic resets, for both observation kinds, both rewards, with and without uncertainties;
invalid actions; the VecEnv API; argument errors; and MaskablePPO training on it."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from opsrl.envs.uam import UAMConfig, UAMFleetEnv, generate_scenario
from opsrl.envs.uam.sim import Decision
from opsrl.envs.uam.vec import KPI_NAMES, UAMFleetVecEnv

ENV_ID = "opsrl/UAMFleet-v0"
#: small days (about 140 decisions with 8 aircraft) so that a test covers several of them
SMALL = {"n_vertiports": 4, "n_aircraft": 8}
#: constraints that bind often: few stands, chargers and corridor slots, many closures and
#: groundings, and a new layout every day
TIGHT = {
    "n_vertiports": 4,
    "n_aircraft": 10,
    "parking_capacity": 4,
    "charging_capacity": 3,
    "corridor_capacity": 1,
    "route_closure_prob": 0.2,
    "downtime_prob": 0.5,
    "layout_seed": None,
}


def make_single(kwargs: dict, registered: bool) -> gym.Env:
    if not registered:
        return UAMFleetEnv(**kwargs)
    if ENV_ID not in gym.registry:  # registered by opsrl.envs; stay usable without it
        gym.register(id=ENV_ID, entry_point="opsrl.envs.uam.env:UAMFleetEnv")
    return gym.make(ENV_ID, **kwargs)


def assert_same_observation(batched, single) -> None:
    if isinstance(single, dict):
        assert set(batched) == set(single)
        for key, value in single.items():
            assert batched[key].dtype == np.float32
            np.testing.assert_array_equal(batched[key], value, err_msg=key)
    else:
        assert batched.dtype == np.float32
        np.testing.assert_array_equal(batched, single)


def random_masked_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random feasible destination per copy."""
    return np.array([rng.choice(np.flatnonzero(mask)) for mask in masks])


@pytest.mark.parametrize(
    ("kwargs", "registered"),
    [
        ({"config": SMALL}, True),
        ({"config": SMALL, "observation": "flat", "reward": "per_flight"}, False),
        (
            {"config": SMALL, "uncertainty": False, "reward": "per_flight", "reward_scale": 500.0},
            True,
        ),
        ({"config": TIGHT, "observation": "flat"}, False),
        ({"config": {**TIGHT, "corridor_capacity": None}, "uncertainty": False}, False),
    ],
    ids=["graph-daily", "flat-per_flight", "graph-calm-scaled", "flat-tight", "graph-tight-calm"],
)
def test_batched_env_equals_dummy_vec_env_step_for_step(kwargs, registered):
    n_envs, seed = 3, 11
    venv = UAMFleetVecEnv(n_envs, seed=seed, **kwargs)
    dummy = DummyVecEnv([lambda: make_single(kwargs, registered) for _ in range(n_envs)])
    dummy.seed(seed)  # copy i reset with seed + i, as make_vec_env does
    assert_same_observation(venv.reset(), dummy.reset())
    for mine, theirs in zip(venv.reset_infos, dummy.reset_infos, strict=True):
        assert mine["kpi"] == theirs["kpi"] and mine["aircraft"] == theirs["aircraft"]
    rng = np.random.default_rng(0)
    days = np.zeros(n_envs, dtype=int)
    steps = 0
    while days.min() < 2:  # every copy finishes two days (and auto-resets twice)
        masks = venv.action_masks()
        assert masks.dtype == bool
        np.testing.assert_array_equal(masks, np.stack(dummy.env_method("action_masks")))
        actions = random_masked_actions(masks, rng)
        obs, rewards, dones, infos = venv.step(actions)
        single_obs, single_rewards, single_dones, single_infos = dummy.step(actions)
        steps += 1
        assert_same_observation(obs, single_obs)
        assert rewards.dtype == np.float32
        np.testing.assert_array_equal(rewards, single_rewards)
        np.testing.assert_array_equal(dones, single_dones)
        kpi = venv.kpi()
        for i, (info, single) in enumerate(zip(infos, single_infos, strict=True)):
            assert info["invalid_action"] is single["invalid_action"] is False
            assert info["time"] == single["time"] and info["aircraft"] == single["aircraft"]
            decision = single["decision"]
            for field in Decision._fields:
                assert venv.last_decision[field][i] == getattr(decision, field), field
            if dones[i]:
                assert_same_observation(
                    info["terminal_observation"], single["terminal_observation"]
                )
                assert info["kpi"] == single["kpi"]  # the day's final KPIs, exactly
                assert info["aircraft"] == -1 and info["time"] == 18.0
                assert venv.reset_infos[i]["kpi"] == dummy.reset_infos[i]["kpi"]
                days[i] += 1
            else:
                assert "terminal_observation" not in info and "kpi" not in info
                # the vectorised day-to-date KPIs are the single env's info["kpi"]
                assert {name: kpi[name][i] for name in KPI_NAMES} == single["kpi"]
    assert steps > 2 * 100  # several days of a hundred-odd decisions each
    assert venv.get_attr("time") == [env.unwrapped.sim.time for env in dummy.envs]


def test_invalid_actions_are_replaced_like_the_single_env_or_raise():
    kwargs = {"config": {**SMALL, "route_closure_prob": 1.0}}  # every route closed: stays only
    venv = UAMFleetVecEnv(2, seed=0, **kwargs)
    envs = [UAMFleetEnv(**kwargs) for _ in range(2)]
    venv.reset()
    for i, env in enumerate(envs):
        env.reset(seed=i)
    origin = [int(env.sim.location[env.sim.deciding_aircraft()]) for env in envs]
    # a destination in range of each decider: closed, not out of range
    in_range = [
        int(np.flatnonzero(env.sim.in_range[o])[0]) for env, o in zip(envs, origin, strict=True)
    ]
    np.testing.assert_array_equal(venv.action_masks(), [[j == o for j in range(4)] for o in origin])
    actions = np.array([in_range[0], origin[1]])  # copy 0 infeasible, copy 1 stays
    obs, rewards, _, infos = venv.step(actions)
    for i, env in enumerate(envs):
        single_obs, reward, _, _, info = env.step(int(actions[i]))
        assert infos[i]["invalid_action"] == info["invalid_action"] == (i == 0)
        assert not info["decision"].is_flight and venv.last_decision["destination"][i] == origin[i]
        np.testing.assert_array_equal(
            obs["vertiport_features"][i], single_obs["vertiport_features"]
        )
        assert rewards[i] == np.float32(reward)

    strict = UAMFleetVecEnv(2, seed=0, invalid_action="raise", **kwargs)
    strict.reset()
    before = strict.time
    with pytest.raises(ValueError, match=r"copy 1: destination .*\(route closed by weather"):
        strict.step(np.array([origin[0], in_range[1]]))
    np.testing.assert_array_equal(strict.time, before)  # nothing moved


@pytest.mark.parametrize(
    "actions",
    [
        np.array([4, 0]),
        np.array([-1, 0]),
        np.array([0.5, 0.0]),
        np.array([0]),
        np.array(["a", "b"]),
    ],
)
def test_bad_actions_raise(actions):
    venv = UAMFleetVecEnv(2, seed=0, config=SMALL)
    venv.reset()
    with pytest.raises(ValueError, match="vertiport index"):
        venv.step(actions)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, "num_envs"),
        ((True,), {}, "num_envs"),
        (("4",), {}, "num_envs"),
        ((2,), {"seed": -1}, "seed"),
        ((2,), {"seed": 1.5}, "seed"),
        ((2,), {"render_mode": "ansi"}, "render_mode"),
        ((2,), {"observation": "image"}, "observation"),
        ((2,), {"reward": "weekly"}, "reward"),
        ((2,), {"reward_scale": 0.0}, "reward_scale"),
        ((2,), {"invalid_action": "ignore"}, "invalid_action"),
        ((2,), {"config": {"fleet": 3}}, "unknown fields"),
        ((2,), {"n_aircraft": 0}, "n_aircraft"),
    ],
)
def test_bad_arguments_raise_value_error(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        UAMFleetVecEnv(*args, **kwargs)


def test_vec_env_api_seeds_attributes_masks_and_scenario_replay():
    venv = UAMFleetVecEnv(3, seed=5, config=SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros(3, dtype=int))
    obs = venv.reset()
    single = UAMFleetEnv(config=SMALL)
    single_obs, _ = single.reset(seed=6)
    np.testing.assert_array_equal(obs["aircraft_features"][1], single_obs["aircraft_features"])

    masks = venv.env_method("action_masks")
    assert len(masks) == 3
    np.testing.assert_array_equal(np.stack(masks), venv.action_masks())
    np.testing.assert_array_equal(venv.get_attr("action_masks", 1)[0](), masks[1])
    assert venv.env_method("action_masks", indices=[2])[0].tolist() == masks[2].tolist()
    assert venv.has_attr("action_masks") and not venv.has_attr("no_such_attribute")
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="supported: action_masks"):
        venv.env_method("decision_log")
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    assert venv.get_attr("config", [0, 2]) == [venv.config] * 2
    assert venv.get_attr("deciding_aircraft") == venv.deciding_aircraft.tolist()
    assert venv.get_attr("kpi", 0)[0] == {name: venv.kpi()[name][0] for name in KPI_NAMES}
    with pytest.raises(AttributeError, match="read-only"):
        venv.set_attr("scenario", None)
    with pytest.raises(ValueError, match="all copies"):
        venv.set_attr("reward_scale", 2.0, indices=[0])
    scenarios = venv.get_attr("scenario")
    np.testing.assert_array_equal(scenarios[1].demand, single.scenario.demand)

    # seeds apply once; the generators go on, and seed() replays the first days
    assert not np.array_equal(venv.reset()["demand"], obs["demand"])
    assert venv.seed(5) == [5, 6, 7]
    np.testing.assert_array_equal(venv.reset()["demand"], obs["demand"])

    # a scenario given through set_options is replayed at the next reset, once
    venv.set_options([{"scenario": scenarios[2]}, {}, {}])
    replayed = venv.reset()
    for key in ("demand", "aircraft_features", "vertiport_features"):
        np.testing.assert_array_equal(replayed[key][0], obs[key][2])
    venv.set_options({"day": 1})
    with pytest.raises(ValueError, match="unknown reset options"):
        venv.reset()
    venv.set_options({"scenario": "monday"})
    with pytest.raises(ValueError, match="scenario must be"):
        venv.reset()
    other = generate_scenario(UAMConfig(n_vertiports=5), 0)
    venv.set_options({"scenario": other})
    with pytest.raises(ValueError, match="scenario.positions"):
        venv.reset()


def test_daily_reward_is_the_days_normalised_profit():
    venv = UAMFleetVecEnv(2, seed=3, config={"n_vertiports": 3, "n_aircraft": 3})
    venv.reset()
    rng = np.random.default_rng(1)
    returns, finished = np.zeros(2), []
    while len(finished) < 2:
        _, rewards, dones, infos = venv.step(random_masked_actions(venv.action_masks(), rng))
        returns += rewards
        for i in np.flatnonzero(dones):
            assert math.isclose(rewards[i], infos[i]["kpi"]["normalised_profit"], rel_tol=1e-6)
            kpi = infos[i]["kpi"]
            assert kpi["passengers_served"] + kpi["unserved_demand"] == kpi["total_demand"]
            finished.append(i)
        assert np.all(rewards[~dones] == 0.0)


def test_maskable_ppo_trains_on_the_batched_env_under_vec_monitor():
    from sb3_contrib import MaskablePPO

    tiny = {"n_vertiports": 3, "n_aircraft": 2}  # about 70 decisions a day
    venv = VecMonitor(UAMFleetVecEnv(4, seed=0, config=tiny, reward="per_flight"))
    model = MaskablePPO(
        "MultiInputPolicy", venv, n_steps=64, batch_size=128, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(512)
    assert len(model.ep_info_buffer) > 0  # whole days went through VecMonitor
    flat = VecMonitor(UAMFleetVecEnv(4, seed=0, config=tiny, observation="flat"))
    model = MaskablePPO("MlpPolicy", flat, n_steps=64, batch_size=128, n_epochs=1, seed=0)
    model.learn(256)
    obs = flat.reset()
    actions, _ = model.predict(obs, action_masks=np.stack(flat.env_method("action_masks")))
    assert flat.unwrapped.action_masks()[np.arange(4), actions].all()


def test_graph_fleet_ppo_trains_on_the_batched_env():
    from opsrl.agents.uam_graph import GraphFleetPPO

    config = {"n_vertiports": 3, "n_aircraft": 2}
    venv = VecMonitor(UAMFleetVecEnv(4, seed=0, config=config, reward="per_flight"))
    model = GraphFleetPPO(
        "GraphFleetPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(384)
    assert model.num_timesteps >= 384 and len(model.ep_info_buffer) > 0
