"""Batched ride-sharing platform env (RideSharingVecEnv): step-for-step equality with SB3's
DummyVecEnv of the single env, the batched matching, the VecEnv API and a PPO smoke run."""

import itertools
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

import opsrl.envs.ride_sharing.batched as batched_module
import opsrl.envs.ride_sharing.sim as sim_module
from opsrl.envs.ride_sharing.batched import (
    RideSharingVecEnv,
    _segment_sums,
    resolve_matchings,
)
from opsrl.envs.ride_sharing.env import RideSharingEnv
from opsrl.envs.ride_sharing.sim import resolve_matching
from opsrl.registry import load_object

ENV_ID = "opsrl/RideSharing-v0"
BATCHED_ENTRY_POINT = "opsrl.envs.ride_sharing.batched:RideSharingVecEnv"
MANHATTAN = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "manhattan_taxi_zones.csv"
)
SMALL = dict(num_vehicles=6, num_zones=9, demand_rate=2.0, episode_minutes=8)


@pytest.fixture(scope="module", autouse=True)
def registered():
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="opsrl.envs.ride_sharing.env:RideSharingEnv")


def random_actions(rng, masks, width, ties):
    """Scores in [-1, 1] per copy; with ``ties`` rounded to halves (as clipped policy outputs
    are often equal), so that matchings have ties. Masked-out slots get junk: ignored."""
    scores = rng.uniform(-1.0, 1.0, (masks.shape[0], width))
    if ties:
        scores = np.round(scores * 2.0) / 2.0
    junk = rng.uniform(-5.0, 5.0, scores.shape)
    return np.where(masks, scores, junk).astype(np.float32)


def assert_same_steps(kwargs, n_envs, seed, n_steps, use_make=False, tie_every=2):
    """Step RideSharingVecEnv and DummyVecEnv of the single env side by side."""
    batched = RideSharingVecEnv(n_envs, seed=seed, **kwargs)

    def make():
        return gym.make(ENV_ID, **kwargs) if use_make else RideSharingEnv(**kwargs)

    reference = DummyVecEnv([make for _ in range(n_envs)])
    reference.seed(seed)
    obs, expected_obs = batched.reset(), reference.reset()
    rng = np.random.default_rng(seed)
    width = batched.action_space.shape[0]
    episodes_ended = 0
    for step in range(n_steps):
        np.testing.assert_array_equal(obs, expected_obs)
        assert obs.dtype == expected_obs.dtype == np.float32
        assert batched.reset_infos == reference.reset_infos
        masks = batched.action_masks()
        np.testing.assert_array_equal(masks, np.stack(reference.env_method("action_masks")))
        assert masks.dtype == bool
        actions = random_actions(rng, masks, width, ties=step % tie_every == 0)
        obs, rewards, dones, infos = batched.step(actions)
        expected_obs, expected_rewards, expected_dones, expected_infos = reference.step(actions)
        np.testing.assert_array_equal(rewards, expected_rewards)
        np.testing.assert_array_equal(dones, expected_dones)
        kpi = batched.kpi()
        for i, (info, expected) in enumerate(zip(infos, expected_infos, strict=True)):
            for key in ("matched", "acting_vehicles", "fairness_penalty"):
                assert info[key] == expected[key], (step, i, key)
            if dones[i]:
                np.testing.assert_array_equal(
                    info["terminal_observation"], expected["terminal_observation"]
                )
                assert info["TimeLimit.truncated"] and expected["TimeLimit.truncated"]
                assert info["kpi"] == expected["kpi"]  # the finished episode's, exactly
            else:
                assert {name: kpi[name][i] for name in kpi} == expected["kpi"]
        episodes_ended += int(dones.all())
        assert dones.all() or not dones.any()  # the copies end together
    return batched, episodes_ended


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize(
    "kwargs, n_envs, use_make",
    [
        (SMALL, 4, True),
        # Busy city: pooled vehicles, several rounds of the candidate search, big components.
        (dict(num_vehicles=12, num_zones=12, demand_rate=9.0, episode_minutes=10), 3, False),
        # Pooling with 4 seats, 6 candidates and a tight timeout: infeasible insertions and
        # timeouts; a later start of the hour (other demand), a small pickup radius.
        (
            dict(
                num_vehicles=10,
                num_zones=9,
                demand_rate=6.0,
                capacity=4,
                num_candidates=6,
                timeout_minutes=15.0,
                start_minute=35,
                max_pickup_minutes=6.0,
                episode_minutes=9,
            ),
            3,
            False,
        ),
        # One seat, short waits, other travel model.
        (
            dict(
                num_vehicles=8,
                num_zones=16,
                city_seed=3,
                demand_rate=5.0,
                capacity=1,
                max_wait_minutes=2,
                speed_kmh=25.0,
                detour_factor=1.0,
                episode_minutes=7,
            ),
            2,
            False,
        ),
        # Little demand: minutes without orders, vehicles without candidates.
        (dict(num_vehicles=3, num_zones=4, demand_rate=1.0, episode_minutes=5), 5, False),
    ],
    ids=["small-gym-make", "busy", "pooling-4-seats", "one-seat", "sparse"],
)
def test_batched_env_equals_dummy_vec_env_step_for_step(kwargs, n_envs, use_make):
    minutes = kwargs["episode_minutes"]
    n_steps = 2 * minutes + minutes // 2  # two and a half episodes: across auto-resets
    _, episodes_ended = assert_same_steps(kwargs, n_envs, 7, n_steps, use_make=use_make)
    assert episodes_ended == 2


def test_batched_env_equals_on_real_zones_and_trip_records(tmp_path):
    """Zones CSV and TLC trips (each copy subsamples the hour's trips at every reset)."""
    zones = pd.DataFrame(
        {
            "location_id": [4, 12, 13, 24, 41, 42],
            "zone": ["a", "b", "c", "d", "e", "f"],
            "centroid_lat": [40.7238, 40.7029, 40.7120, 40.8010, 40.8045, 40.8184],
            "centroid_lon": [-73.9770, -74.0156, -74.0161, -73.9650, -73.9520, -73.9410],
        }
    )
    zones_path = tmp_path / "zones.csv"
    zones.to_csv(zones_path, index=False)
    rng = np.random.default_rng(0)
    n = 300
    minutes, seconds = rng.integers(0, 60, n), rng.integers(0, 60, n)
    trips = pd.DataFrame(
        {
            "tpep_pickup_datetime": [
                f"2024-07-17 19:{m:02d}:{s:02d}" for m, s in zip(minutes, seconds, strict=True)
            ],
            "PULocationID": rng.choice(zones["location_id"], n),
            "DOLocationID": rng.choice(zones["location_id"], n),
        }
    )
    trips_path = tmp_path / "trips.csv"
    trips.to_csv(trips_path, index=False)
    kwargs = dict(
        num_vehicles=8,
        zones=str(zones_path),
        trips=str(trips_path),
        day=17,
        hour=19,
        start_minute=10,
        sample_frac=0.7,
        episode_minutes=6,
    )
    assert_same_steps(kwargs, 3, 0, 15)


def test_batched_env_equals_on_manhattan_zones():
    if not MANHATTAN.is_file():
        pytest.skip(
            f"real data not found: {MANHATTAN} (the shared data folder beside the checkout)"
        )
    kwargs = dict(num_vehicles=15, zones=str(MANHATTAN), demand_rate=6.0, episode_minutes=6)
    assert_same_steps(kwargs, 2, 3, 9)


def test_episodes_without_any_order_run():
    """No order at all in some copies (the single env cannot reset into such an episode:
    its observation indexes the empty order table)."""
    venv = RideSharingVecEnv(3, seed=0, num_vehicles=4, demand_rate=1e-6, episode_minutes=4)
    obs = venv.reset()
    assert (venv.kpi()["appeared_orders"] == 0).all()
    for _ in range(6):
        masks = venv.action_masks()
        assert masks.reshape(3, 4, 5)[:, :, 1:].sum() == 0
        assert all(venv.observation_space.contains(row) for row in obs)
        obs, rewards, _, infos = venv.step(np.ones((3, 20), dtype=np.float32))
        assert (rewards == 0.0).all() and all(info["matched"] == 0 for info in infos)


# ----------------------------------------------------------------------------- internals


def test_resolve_matchings_equals_the_single_matching_copy_by_copy(monkeypatch):
    """Disjoint copies at once, ties included; both the shortcut and the solver are used."""
    calls = {"single": 0, "batched": 0}

    def counting(name, solver):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return solver(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(
        sim_module, "linear_sum_assignment", counting("single", sim_module.linear_sum_assignment)
    )
    monkeypatch.setattr(
        batched_module,
        "linear_sum_assignment",
        counting("batched", batched_module.linear_sum_assignment),
    )
    rng = np.random.default_rng(0)
    for trial in range(40):
        n_copies, num_vehicles, k = 6, int(rng.integers(1, 12)), int(rng.integers(1, 5))
        pool = int(rng.integers(1, 10))  # orders per copy: few, so vehicles compete
        local = np.full((n_copies, num_vehicles, k), -1, dtype=np.int64)
        for c, v in itertools.product(range(n_copies), range(num_vehicles)):
            n_candidates = int(rng.integers(0, min(k, pool) + 1))
            local[c, v, :n_candidates] = np.sort(rng.choice(pool, n_candidates, replace=False))
        scores = rng.uniform(-1.0, 1.0, (n_copies, num_vehicles, k + 1))
        if trial % 2:
            scores = np.round(scores * 2.0) / 2.0  # ties
        global_orders = np.where(local >= 0, local + pool * np.arange(n_copies)[:, None, None], -1)
        chosen = resolve_matchings(scores.reshape(-1, k + 1), global_orders.reshape(-1, k)).reshape(
            n_copies, num_vehicles
        )
        for c in range(n_copies):
            np.testing.assert_array_equal(chosen[c], resolve_matching(scores[c], local[c]))
    assert 0 < calls["batched"] < calls["single"]


def test_segment_sums_equal_numpy_sums_bit_for_bit():
    rng = np.random.default_rng(1)
    lengths = np.array([0, 1, 3, 9, 9, 17, 130, 0, 260, 2])
    values = rng.standard_normal(int(lengths.sum())) * 1e3
    segment = np.repeat(np.arange(lengths.size), lengths)
    sums = _segment_sums(values, segment, lengths.size)
    starts = np.cumsum(lengths) - lengths
    for s, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        assert sums[s] == values[start : start + length].sum()


# ----------------------------------------------------------------------------- VecEnv API


def test_vec_env_api():
    venv = RideSharingVecEnv(3, seed=10, **SMALL)
    assert venv.num_envs == 3
    assert venv.observation_space == RideSharingEnv(**SMALL).observation_space
    assert venv.action_space.shape == (6 * 5,)
    with pytest.raises(RuntimeError, match="reset"):
        venv.action_masks()
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((3, 30), dtype=np.float32))
    venv.reset()
    assert venv.get_attr("minute") == [0, 0, 0]
    masks = venv.env_method("action_masks")
    assert len(masks) == 3 and masks[1].shape == (30,)
    np.testing.assert_array_equal(np.stack(masks), venv.action_masks())
    np.testing.assert_array_equal(venv.get_attr("action_masks", indices=[2])[0](), masks[2])
    assert venv.get_attr("kpi", indices=1)[0]["appeared_orders"] == venv.kpi()["appeared_orders"][1]
    assert venv.get_attr("num_vehicles") == [6, 6, 6]
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 3
    candidate_orders = venv.candidate_orders()
    assert candidate_orders.shape == (3, 6, 4)
    np.testing.assert_array_equal(
        candidate_orders >= 0, venv.action_masks().reshape(3, 6, 5)[:, :, 1:]
    )
    with pytest.raises(AttributeError, match="does not support"):
        venv.env_method("render")
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="read-only"):
        venv.set_attr("minute", 3)
    with pytest.raises(ValueError, match="all copies"):
        venv.set_attr("note", 1, indices=[0])
    venv.set_attr("note", 1)
    assert venv.get_attr("note") == [1, 1, 1]
    with pytest.raises(ValueError, match=r"shape \(num_envs"):
        venv.step(np.zeros((3, 29), dtype=np.float32))
    bad = np.zeros((3, 30), dtype=np.float32)
    bad[2, 7] = np.nan
    with pytest.raises(ValueError, match="finite.*copy 2"):
        venv.step(bad)
    # Steps accept any finite scores, even outside the Box (used as given).
    _, rewards, dones, infos = venv.step(np.full((3, 30), 3.0, dtype=np.float32))
    assert rewards.dtype == np.float32 and dones.dtype == bool and len(infos) == 3
    assert venv.minute == 1 and venv.last_vehicle_rewards.shape == (3, 6)
    np.testing.assert_array_equal(venv.last_vehicle_rewards.sum(axis=1).astype(np.float32), rewards)


def test_seed_reseeds_every_copy_at_the_next_reset():
    venv = RideSharingVecEnv(2, **SMALL)
    assert venv.seed(5) == [5, 6]
    first = venv.reset()
    venv.step(np.zeros((2, 30), dtype=np.float32))
    assert venv.seed(5) == [5, 6]
    np.testing.assert_array_equal(venv.reset(), first)
    single = RideSharingEnv(**SMALL)
    np.testing.assert_array_equal(first[1], single.reset(seed=6)[0])
    # Without a new seed, a reset continues each copy's generator: another episode.
    assert not np.array_equal(venv.reset(), first)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((0,), {}, "num_envs"),
        ((2.5,), {}, "num_envs"),
        ((2,), {"seed": -1}, "seed"),
        ((2,), {"render_mode": "human"}, "render_mode"),
        ((2,), {"num_vehicles": 0}, "num_vehicles"),
        ((2,), {"capacity": 5}, "capacity"),
        ((2,), {"day": 17}, "day is only used with trips"),
        ((2,), {"zones": "no/such/zones.csv"}, "zones file .* does not exist"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RideSharingVecEnv(*args, **kwargs)


def test_batched_entry_point_loads_the_class():
    assert load_object(BATCHED_ENTRY_POINT) is RideSharingVecEnv


def test_ppo_learns_a_few_hundred_steps_on_the_batched_env():
    from stable_baselines3 import PPO

    venv = VecMonitor(RideSharingVecEnv(4, seed=0, **SMALL))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(384)
    assert model.num_timesteps >= 384
    # 96 steps per copy of 8-minute episodes: VecMonitor saw whole episodes end.
    assert len(model.ep_info_buffer) >= 4 * 11
    assert all(np.isfinite(info["r"]) for info in model.ep_info_buffer)
