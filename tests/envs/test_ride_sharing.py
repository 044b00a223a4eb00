"""Ride-sharing dispatch family: data loaders, simulator invariants, rewards, the platform
matching, the PettingZoo/Gymnasium faces and the per-vehicle VecEnv."""

import itertools
import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo.test import parallel_api_test, parallel_seed_test
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.ride_sharing.data import (
    GravityDemand,
    TripOrders,
    haversine_km,
    load_tlc_trips,
    load_zones,
    synthetic_zones,
)
from opsrl.envs.ride_sharing.env import RideSharingEnv, RideSharingParallelEnv
from opsrl.envs.ride_sharing.sim import (
    ASSIGNED,
    DELIVERED,
    EXPIRED,
    FUTURE,
    ONBOARD,
    PENDING,
    RideSharingSim,
    SimConfig,
    match_reward,
    resolve_matching,
)

ENV_ID = "opsrl/RideSharing-v0"
DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
MANHATTAN = DATA_DIR / "manhattan_taxi_zones.csv"
SMALL = dict(num_vehicles=6, num_zones=9, demand_rate=2.0, episode_minutes=12)


def manhattan_path() -> Path:
    if not MANHATTAN.is_file():
        pytest.skip(
            f"real data not found: {MANHATTAN} (the shared data folder beside the checkout)"
        )
    return MANHATTAN


def random_scores(rng, env):
    return {agent: rng.uniform(-1, 1, env.core.num_candidates + 1) for agent in env.agents}


# ----------------------------------------------------------------------------- data


def test_synthetic_zones_are_a_seeded_grid_in_the_box():
    layout = synthetic_zones(num_zones=20, size_km=5.0, seed=3)
    assert layout.num_zones == 20 and list(layout.location_ids) == list(range(1, 21))
    assert synthetic_zones(num_zones=20, size_km=5.0, seed=3).lat.tolist() == layout.lat.tolist()
    assert synthetic_zones(num_zones=20, size_km=5.0, seed=4).lat.tolist() != layout.lat.tolist()
    # All centroids within the 5 km box, so no two farther apart than its diagonal.
    assert layout.distances_km().max() < 5.0 * math.sqrt(2)
    nearest = np.sort(layout.distances_km(), axis=1)[:, 1]
    assert 0.3 < nearest.min() and nearest.max() < 2.0
    with pytest.raises(ValueError, match="num_zones"):
        synthetic_zones(num_zones=1)


def test_manhattan_zones_csv():
    layout = load_zones(manhattan_path())
    assert layout.num_zones == 69
    assert layout.names[list(layout.location_ids).index(12)] == "Battery Park"
    # The OSPO code normalises with this box (Worker.norm).
    lat_min, lat_max, lon_min, lon_max = layout.bounds
    assert lat_min == pytest.approx(40.6888, abs=1e-3) and lat_max == pytest.approx(
        40.8760, abs=1e-3
    )
    assert lon_min == pytest.approx(-74.0453, abs=1e-3) and lon_max == pytest.approx(
        -73.9104, abs=1e-3
    )
    assert layout.zone_index([12, 1, 263]).tolist()[1] == -1


def test_travel_time_between_two_manhattan_centroids():
    layout = load_zones(manhattan_path())
    battery, bloomingdale = layout.zone_index([12, 24])
    lat1, lon1 = layout.lat[battery], layout.lon[battery]
    lat2, lon2 = layout.lat[bloomingdale], layout.lon[bloomingdale]
    # Independent formula (spherical law of cosines) on the same sphere.
    phi1, phi2, dlon = map(math.radians, (lat1, lat2, lon2 - lon1))
    cosines = math.acos(
        math.sin(phi1) * math.sin(phi2) + math.cos(phi1) * math.cos(phi2) * math.cos(dlon)
    )
    expected_km = 6371.0088 * cosines
    assert float(haversine_km(lat1, lon1, lat2, lon2)) == pytest.approx(expected_km, rel=1e-9)
    assert expected_km == pytest.approx(11.79, abs=0.01)
    sim = RideSharingSim(layout.lat, layout.lon, SimConfig())
    minutes = float(sim.travel_minutes(lat1, lon1, lat2, lon2))
    assert minutes == pytest.approx(expected_km * 1.3 / 15.0 * 60.0, rel=1e-9)  # ~61.3 min
    assert float(sim.road_km(lat1, lon1, lat2, lon2)) == pytest.approx(expected_km * 1.3)


def write_zones(path, rows):
    pd.DataFrame(rows, columns=["location_id", "zone", "centroid_lat", "centroid_lon"]).to_csv(
        path, index=False
    )
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        ("location_id,zone,centroid_lat\n1,a,40.7\n2,b,40.8\n", "missing column.*centroid_lon"),
        (
            "location_id,zone,centroid_lat,centroid_lon\n1,a,40.7,-74\n1,b,40.8,-73.9\n",
            "more than once",
        ),
        (
            "location_id,zone,centroid_lat,centroid_lon\n1,a,north,-74\n2,b,40.8,-73.9\n",
            "centroid_lat.*non-numeric",
        ),
        (
            "location_id,zone,centroid_lat,centroid_lon\n1,a,95,-74\n2,b,40.8,-73.9\n",
            r"\[-90, 90\]",
        ),
        ("location_id,zone,centroid_lat,centroid_lon\n1,a,40.7,-74\n", "at least 2 zones"),
    ],
)
def test_malformed_zones_csv_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "zones.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_zones(path)
    assert "\n" not in str(error.value)


def test_missing_zones_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_zones(tmp_path / "nowhere.csv")


@pytest.fixture
def small_city(tmp_path):
    """Three zones (TLC ids 4, 12, 13) and trips of July 2024 around 19:00."""
    zones = load_zones(
        write_zones(
            tmp_path / "zones.csv",
            [
                (4, "Alphabet City", 40.7238, -73.9770),
                (12, "Battery Park", 40.7029, -74.0156),
                (13, "Battery Park City", 40.7120, -74.0161),
            ],
        )
    )
    trips = pd.DataFrame(
        {
            "VendorID": 1,
            "tpep_pickup_datetime": [
                "2024-07-17 19:00:10",
                "2024-07-17 19:05:00",
                "2024-07-17 19:05:59",
                "2024-07-17 19:59:00",
                "2024-07-17 19:30:00",  # zone 1 is not in the layout
                "2024-07-17 18:59:59",
                "2024-07-17 20:00:00",
                "2024-07-18 19:10:00",
            ],
            "PULocationID": [4, 12, 13, 4, 1, 4, 4, 4],
            "DOLocationID": [12, 13, 4, 4, 12, 12, 12, 12],
        }
    )
    return zones, trips


def test_tlc_loader_reads_one_day_and_hour(tmp_path, small_city):
    zones, trips = small_city
    path = tmp_path / "trips.csv"
    trips.to_csv(path, index=False)
    orders = load_tlc_trips(path, day=17, hour=19, zones=zones, sample_frac=1.0)
    assert orders.appear_minute.tolist() == [0, 5, 5, 59]
    assert orders.origin_zone.tolist() == [0, 1, 2, 0]
    assert orders.destination_zone.tolist() == [1, 2, 0, 0]
    same = load_tlc_trips(path, day="2024-07-17", hour=19, zones=zones, sample_frac=1.0)
    assert same.appear_minute.tolist() == orders.appear_minute.tolist()
    # A shuffled file gives the same orders and the same subsample.
    shuffled = tmp_path / "shuffled.csv"
    trips.sample(frac=1.0, random_state=1).to_csv(shuffled, index=False)
    first = load_tlc_trips(path, 17, 19, zones, sample_frac=0.5, seed=0)
    second = load_tlc_trips(shuffled, 17, 19, zones, sample_frac=0.5, seed=0)
    assert len(first) == 2
    assert first.origin_zone.tolist() == second.origin_zone.tolist()


def test_tlc_loader_reads_parquet(tmp_path, small_city):
    pytest.importorskip("pyarrow")
    zones, trips = small_city
    path = tmp_path / "trips.parquet"
    trips.assign(tpep_pickup_datetime=pd.to_datetime(trips["tpep_pickup_datetime"])).to_parquet(
        path
    )
    orders = load_tlc_trips(path, day=17, hour=19, zones=zones, sample_frac=1.0)
    assert orders.appear_minute.tolist() == [0, 5, 5, 59]
    assert orders.destination_zone.tolist() == [1, 2, 0, 0]


def test_tlc_loader_errors(tmp_path, small_city):
    zones, trips = small_city
    path = tmp_path / "trips.csv"
    trips.to_csv(path, index=False)
    with pytest.raises(ValueError, match="no trip on day 17 at 03:00"):
        load_tlc_trips(path, 17, 3, zones)
    with pytest.raises(ValueError, match="hour must be"):
        load_tlc_trips(path, 17, 24, zones)
    with pytest.raises(ValueError, match="sample_frac"):
        load_tlc_trips(path, 17, 19, zones, sample_frac=0.0)
    two_months = trips.assign(
        tpep_pickup_datetime=trips["tpep_pickup_datetime"].str.replace("2024-07-18", "2024-08-17")
    )
    two_months.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(ValueError, match="ambiguous"):
        load_tlc_trips(tmp_path / "two.csv", 17, 19, zones)
    trips.drop(columns="DOLocationID").to_csv(tmp_path / "nodrop.csv", index=False)
    with pytest.raises(ValueError, match="missing column.*DOLocationID"):
        load_tlc_trips(tmp_path / "nodrop.csv", 17, 19, zones)
    broken = trips.astype({"tpep_pickup_datetime": object})
    broken.loc[2, "tpep_pickup_datetime"] = "yesterday"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(ValueError, match="tpep_pickup_datetime.*'yesterday'"):
        load_tlc_trips(tmp_path / "broken.csv", 17, 19, zones)
    (tmp_path / "trips.json").write_text("{}")
    with pytest.raises(ValueError, match=r"\.csv, \.csv\.gz or \.parquet"):
        load_tlc_trips(tmp_path / "trips.json", 17, 19, zones)


def test_gravity_demand_rate_profile_and_direction():
    layout = synthetic_zones(num_zones=16, size_km=5.0, seed=0)
    demand = GravityDemand(layout, demand_rate=4.0, peak_minute=20.0)
    assert demand.rate(np.arange(60)).mean() == pytest.approx(4.0)
    assert demand.rate(20.0) > demand.rate(50.0)
    early, late = demand.od_probabilities(0.0), demand.od_probabilities(59.0)
    assert np.allclose(np.diag(early), 0.0) and early.sum() == pytest.approx(1.0)
    centre = np.hypot(layout.lat - layout.lat.mean(), layout.lon - layout.lon.mean())
    central = centre < np.median(centre)
    # Early trips head to the centre, late trips leave it.
    assert early[:, central].sum() > late[:, central].sum()
    assert early[central, :].sum() < late[central, :].sum()
    first = demand.sample(np.random.default_rng(5), 0, 30)
    second = demand.sample(np.random.default_rng(5), 0, 30)
    assert first.origin_zone.tolist() == second.origin_zone.tolist()
    assert np.all(first.origin_zone != first.destination_zone)
    assert 0 <= first.appear_minute.min() and first.appear_minute.max() < 30
    with pytest.raises(ValueError, match="demand_rate"):
        GravityDemand(layout, demand_rate=0.0)


# ----------------------------------------------------------------------------- simulator

EQUATOR_STEP = 0.01  # degrees of longitude between neighbouring test zones on the equator


def line_sim(timeout=40.0, num_vehicles=1, **config):
    """Zones A, B, C on the equator (a great circle, so distances add up exactly)."""
    lon = np.array([0.0, 1.0, 2.0]) * EQUATOR_STEP
    sim = RideSharingSim(
        np.zeros(3),
        lon,
        SimConfig(num_vehicles=num_vehicles, timeout_minutes=timeout, **config),
    )
    tau = float(sim.travel_minutes(0.0, 0.0, 0.0, EQUATOR_STEP))
    km = float(sim.road_km(0.0, 0.0, 0.0, EQUATOR_STEP))
    return sim, tau, km


def orders(*rows):
    """(appear minute, origin zone, destination zone) rows."""
    minute, origin, destination = zip(*rows, strict=True)
    return TripOrders(np.array(minute), np.array(origin), np.array(destination))


def test_reward_formula_for_a_single_and_a_pooled_match():
    sim, tau, km = line_sim()
    assert tau == pytest.approx(km / 15.0 * 60.0)
    sim.reset(np.random.default_rng(0), orders((0, 0, 2), (1, 1, 2)), start_zones=[0])
    pairs = sim.feasible_pairs()
    assert pairs.order.tolist() == [0] and pairs.pickup_minutes[0] == pytest.approx(0.0)
    # Alone: t_add is the new order's whole trip, A -> C.
    assert pairs.added_minutes[0] == pytest.approx(2 * tau)
    expected = 3 + 2 * km - 0.0 - 0 - 3 * (2 * tau) / 60
    assert pairs.reward[0] == pytest.approx(expected)
    rewards = sim.match([(0, 0)])
    assert rewards[0] == pytest.approx(expected)
    sim.advance()
    # One minute on, the vehicle is tau - 1 minutes before B; pooling B -> C delays nobody.
    pairs = sim.feasible_pairs()
    assert pairs.order.tolist() == [1]
    assert pairs.pickup_minutes[0] == pytest.approx(tau - 1)
    assert pairs.added_minutes[0] == pytest.approx(2 * tau - 1)
    assert pairs.n_timeout[0] == 0
    expected = 3 + km - 3 * (tau - 1) / 60 - 0 - 3 * (2 * tau - 1) / 60
    assert sim.match([(0, 1)])[0] == pytest.approx(expected)
    assert sim.income[0] == pytest.approx(rewards[0] + expected)
    while sim.order_status[1] != DELIVERED:
        sim.advance()
    assert sim.minute == math.ceil(2 * tau)
    kpi = sim.kpi()
    assert kpi["delivered_orders"] == 2 and kpi["served_orders"] == 2
    assert kpi["mean_delivery_minutes"] == pytest.approx((2 * tau + 2 * tau - 1) / 2)
    assert kpi["mean_detour_minutes"] == pytest.approx(0.0, abs=1e-9)
    assert kpi["mean_pickup_minutes"] == pytest.approx((tau - 1) / 2)
    assert kpi["mean_confirmation_minutes"] == 0.0


def test_timeouts_are_penalised_and_counted():
    timeout = 10.0
    sim, tau, km = line_sim(timeout=timeout)
    assert 2 * tau - 1 > timeout  # both trips below exceed the limit
    sim.reset(np.random.default_rng(0), orders((0, 0, 2), (1, 1, 2)), start_zones=[0])
    first = sim.match([(0, 0)])[0]
    excess = 2 * tau - timeout
    assert first == pytest.approx(3 + 2 * km - 1 - 3 * 2 * tau / 60 - 5 * excess / 60)
    assert first == pytest.approx(match_reward(2 * km, 0.0, 1, 2 * tau, timeout))
    sim.advance()
    # An onboard trip already over the limit does not block pooling; both late trips count.
    pairs = sim.feasible_pairs()
    assert pairs.n_timeout.tolist() == [2]
    added = 2 * tau - 1
    assert pairs.reward[0] == pytest.approx(
        3 + km - 3 * (tau - 1) / 60 - 2 - 3 * added / 60 - 5 * (added - timeout) / 60
    )
    sim.match([(0, 1)])
    while not sim.done and sim.order_status[1] != DELIVERED:
        sim.advance()
    assert sim.kpi()["timeouts"] == 2


def test_insertion_that_pushes_an_onboard_trip_past_the_limit_is_infeasible():
    # Going back to A for a B-bound order delays order 0 (A -> C) by 2 minutes: to 2 tau + 2.
    sim, tau, _ = line_sim(timeout=40.0)
    limit_between = 2 * tau + 1  # order 0 is on time before the insertion, late after it
    for timeout, feasible in ((limit_between, False), (2 * tau + 2.5, True)):
        sim, tau, _ = line_sim(timeout=timeout)
        sim.reset(np.random.default_rng(0), orders((0, 0, 2), (1, 0, 1)), start_zones=[0])
        sim.match([(0, 0)])
        sim.advance()
        assert sim.free_vehicles()[0]
        candidates = sim.candidates()
        if feasible:
            assert candidates.order[0].tolist() == [1, -1, -1, -1]
            # Best drop order: B (the new order) first, then C.
            pair = candidates.pairs
            assert pair.stop_orders[0].tolist() == [1, 0, -1]
            assert pair.stop_minutes[0, :2] == pytest.approx([1 + tau, 1 + 2 * tau])
            assert pair.added_minutes[0] == pytest.approx(tau + 3)
            assert pair.n_timeout[0] == 0
        else:
            assert not candidates.valid.any() and len(sim.feasible_pairs()) == 0
            with pytest.raises(ValueError, match="timeout_minutes"):
                sim.match([(0, 1)])


def test_match_rejects_bad_pairs_before_changing_anything():
    sim, _, _ = line_sim(num_vehicles=2, max_pickup_minutes=3.0)
    sim.reset(
        np.random.default_rng(0),
        orders((0, 0, 2), (0, 0, 1), (0, 2, 0), (3, 1, 2)),
        start_zones=[0, 0],
    )
    with pytest.raises(ValueError, match="order 0 appears in more than one pair"):
        sim.match([(0, 0), (1, 0)])
    with pytest.raises(ValueError, match="vehicle 0 appears in more than one pair"):
        sim.match([(0, 0), (0, 1)])
    with pytest.raises(ValueError, match="more than max_pickup_minutes=3"):
        sim.match([(0, 2)])
    with pytest.raises(ValueError, match="order 3 is not pending .*future"):
        sim.match([(0, 3)])
    with pytest.raises(ValueError, match="vehicle 7 does not exist"):
        sim.match([(7, 0)])
    assert sim.kpi()["served_orders"] == 0 and (sim.order_status[:3] == PENDING).all()
    sim.match([(0, 0)])
    sim.match([])  # nothing to do
    with pytest.raises(ValueError, match="vehicle 0 is busy"):
        sim.match([(0, 1)])
    with pytest.raises(ValueError, match="order 0 is not pending .*assigned"):
        sim.match([(1, 0)])


def test_unmatched_orders_expire_after_max_wait_minutes():
    sim, _, _ = line_sim(max_wait_minutes=5, episode_minutes=12)
    sim.reset(np.random.default_rng(0), orders((0, 0, 2), (2, 1, 2)), start_zones=[0])
    nobody = np.zeros((1, 5))
    nobody[:, 0] = 1.0  # "no order" always scores best
    status = []
    while not sim.done:
        status.append(sim.order_status.tolist())
        sim.dispatch(nobody)
    assert [s[0] for s in status[:6]] == [PENDING] * 5 + [EXPIRED]
    assert [s[1] for s in status[:8]] == [FUTURE] * 2 + [PENDING] * 5 + [EXPIRED]
    assert sim.kpi()["unmatched_orders"] == 2 and sim.kpi()["served_orders"] == 0


def brute_force_best(scores, candidate_orders):
    options = [
        [-1] + [k for k in range(candidate_orders.shape[1]) if candidate_orders[v, k] >= 0]
        for v in range(scores.shape[0])
    ]
    best = -np.inf
    for choice in itertools.product(*options):
        taken = [candidate_orders[v, k] for v, k in enumerate(choice) if k >= 0]
        if len(taken) != len(set(taken)):
            continue
        best = max(best, sum(scores[v, k + 1] for v, k in enumerate(choice)))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_hungarian_matching_reaches_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    num_vehicles, k = int(rng.integers(1, 6)), 3
    candidate_orders = np.full((num_vehicles, k), -1)
    for v in range(num_vehicles):
        present = int(rng.integers(0, k + 1))
        candidate_orders[v, :present] = rng.choice(5, size=present, replace=False)
    scores = rng.uniform(-1, 1, (num_vehicles, k + 1))
    chosen = resolve_matching(scores, candidate_orders)
    taken = [candidate_orders[v, c] for v, c in enumerate(chosen) if c >= 0]
    assert len(taken) == len(set(taken))
    assert all(candidate_orders[v, c] >= 0 for v, c in enumerate(chosen) if c >= 0)
    total = sum(scores[v, c + 1] for v, c in enumerate(chosen))
    assert total == pytest.approx(brute_force_best(scores, candidate_orders))


def test_matching_ties_keep_no_order_and_conflicts_go_to_the_higher_score():
    candidate_orders = np.array([[7, -1], [7, 8]])
    scores = np.array([[0.0, 0.9, 0.0], [0.5, 0.5, 0.5]])
    # Vehicle 1 is indifferent between its orders and nothing: it keeps nothing.
    assert resolve_matching(scores, candidate_orders).tolist() == [0, -1]
    scores[1, 2] = 0.6
    assert resolve_matching(scores, candidate_orders).tolist() == [0, 1]
    scores[1, 1] = 2.0  # gains 0.9 + 0.1 < 1.5: order 7 goes to vehicle 1
    assert resolve_matching(scores, candidate_orders).tolist() == [-1, 0]


def check_state(sim, capacity):
    held = sim.vehicle_orders
    assert (np.count_nonzero(held >= 0, axis=1) <= capacity).all()
    ids = held[held >= 0]
    assert ids.size == np.unique(ids).size  # no order in two vehicles
    status = sim.order_status
    in_vehicle = np.zeros(sim.num_orders, dtype=bool)
    in_vehicle[ids] = True
    assert np.array_equal(in_vehicle, np.isin(status, (ASSIGNED, ONBOARD)))
    owner = np.full(sim.num_orders, -1)
    rows, _ = np.nonzero(held >= 0)
    owner[ids] = rows
    assert np.array_equal(owner[in_vehicle], sim.order_vehicle[in_vehicle])
    kpi = sim.kpi()
    # Conservation: every order that appeared is served, expired or pending.
    appeared = np.count_nonzero(status != FUTURE)
    assert appeared == kpi["appeared_orders"]
    assert appeared == kpi["served_orders"] + kpi["unmatched_orders"] + kpi["pending_orders"]
    assert kpi["served_orders"] == np.count_nonzero(np.isin(status, (ASSIGNED, ONBOARD, DELIVERED)))
    assert kpi["delivered_orders"] == np.count_nonzero(status == DELIVERED)
    assert kpi["unmatched_orders"] == np.count_nonzero(status == EXPIRED)
    assert sim.income.sum() == pytest.approx(kpi["total_reward"])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_vehicles=8, num_zones=9, demand_rate=4.0, episode_minutes=40),
        dict(
            num_vehicles=5,
            num_zones=12,
            demand_rate=6.0,
            capacity=2,
            num_candidates=2,
            timeout_minutes=15.0,
            episode_minutes=40,
        ),
        dict(num_vehicles=4, num_zones=6, demand_rate=3.0, capacity=1, max_wait_minutes=2),
    ],
)
def test_fleet_invariants_under_random_dispatch(kwargs):
    env = RideSharingParallelEnv(**kwargs)
    sim, capacity = env.sim, env.core.config.capacity
    rng = np.random.default_rng(1)
    for episode in range(2):
        env.reset(seed=episode)
        previous = sim.order_status.copy()
        ever_matched = set()
        while env.agents:
            free = sim.free_vehicles().copy()
            mask = env.action_masks()
            assert np.array_equal(mask[:, 1:].any(axis=1) & ~free, np.zeros_like(free))
            candidates = sim.candidates()
            _, rewards, _, _, infos = env.step(random_scores(rng, env))
            matched = np.array([infos[a]["matched_slot"] for a in env.possible_agents])
            orders_now = [infos[a]["matched_order"] for a in env.possible_agents]
            got = matched >= 0
            assert free[got].all()  # busy vehicles are never matched
            assert [candidates.order[v, matched[v]] for v in np.flatnonzero(got)] == [
                orders_now[v] for v in np.flatnonzero(got)
            ]
            new = [o for o in orders_now if o >= 0]
            assert len(new) == len(set(new)) and not ever_matched & set(new)
            ever_matched |= set(new)
            assert all((rewards[a] != 0.0) == got[i] for i, a in enumerate(env.possible_agents))
            status = sim.order_status
            # Statuses only move forward: future -> pending -> assigned -> onboard -> delivered,
            # or pending -> expired; so a delivered order is delivered once.
            assert (status >= previous).all()
            assert not ((previous == EXPIRED) & (status != EXPIRED)).any()
            assert not ((previous == FUTURE) & (status > PENDING)).any()
            previous = status.copy()
            check_state(sim, capacity)


def test_candidates_are_the_nearest_feasible_pairs():
    env = RideSharingParallelEnv(num_vehicles=10, num_zones=12, demand_rate=8.0)
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    sim, k = env.sim, env.core.num_candidates
    for _ in range(15):
        pairs = sim.feasible_pairs()
        candidates = sim.candidates()
        assert (pairs.pickup_minutes <= env.core.config.max_pickup_minutes + 1e-9).all()
        assert sim.free_vehicles()[pairs.vehicle].all()
        assert (sim.order_status[pairs.order] == PENDING).all()
        for v in range(env.core.num_vehicles):
            expected = pairs.order[pairs.vehicle == v][:k].tolist()
            got = [o for o in candidates.order[v].tolist() if o >= 0]
            assert got == expected
        reward = candidates.field("reward")
        assert np.all(reward[~candidates.valid] == 0.0)
        env.step(random_scores(rng, env))


# ----------------------------------------------------------------------------- envs


def test_parallel_env_passes_pettingzoo_api_and_seed_tests():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parallel_api_test(RideSharingParallelEnv(**SMALL), num_cycles=30)
        parallel_seed_test(lambda: RideSharingParallelEnv(**SMALL), num_cycles=30)
    env = RideSharingParallelEnv(**SMALL)
    assert env.metadata["name"] == "ride_sharing_v0"
    assert env.observation_space("vehicle_0") is env.observation_space("vehicle_0")
    assert env.observation_space("vehicle_0") == env.observation_space("vehicle_5")
    obs, _ = env.reset(seed=0)
    assert env.state().shape == env.state_space.shape
    assert env.state_space.contains(env.state())
    assert env.action_mask("vehicle_0").dtype == np.int8
    assert np.array_equal(obs["vehicle_0"][-5:], env.action_mask("vehicle_0"))


def test_platform_view_passes_env_checkers_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(ENV_ID, **SMALL)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)


def test_platform_view_equals_the_parallel_env():
    platform, parallel = RideSharingEnv(**SMALL), RideSharingParallelEnv(**SMALL)
    obs, _ = platform.reset(seed=11)
    agent_obs, _ = parallel.reset(seed=11)
    rng = np.random.default_rng(3)
    width = platform.core.num_candidates + 1
    truncated = False
    while not truncated:
        assert np.array_equal(obs, np.concatenate([agent_obs[a] for a in parallel.agents]))
        action = rng.uniform(-1, 1, platform.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = platform.step(action)
        agents = list(parallel.agents)
        scores = {a: action[i * width : (i + 1) * width] for i, a in enumerate(agents)}
        agent_obs, rewards, _, truncations, infos = parallel.step(scores)
        assert not terminated and truncated == all(truncations.values())
        assert reward == pytest.approx(sum(rewards.values()))
        assert info["kpi"] == infos["vehicle_0"]["kpi"]
        assert info["matched"] == sum(i["matched_slot"] >= 0 for i in infos.values())
    assert platform.sim.minute == SMALL["episode_minutes"] and parallel.agents == []
    with pytest.raises(RuntimeError, match="reset"):
        parallel.step({})
    with pytest.raises(RuntimeError, match="reset"):
        platform.step(action)


def test_busy_vehicles_actions_are_ignored_and_acting_ones_are_required():
    kwargs = dict(num_vehicles=8, num_zones=9, demand_rate=5.0)
    env, twin = RideSharingParallelEnv(**kwargs), RideSharingParallelEnv(**kwargs)
    env.reset(seed=4)
    twin.reset(seed=4)
    rng = np.random.default_rng(0)
    while True:  # go to a minute with both acting and idle (busy or candidate-less) vehicles
        masks = env.action_masks()
        acting = [a for i, a in enumerate(env.agents) if masks[i, 1:].any()]
        idle = [a for a in env.agents if a not in acting]
        if acting and idle and env.sim.en_route.any():
            break
        scores = random_scores(rng, env)
        env.step(scores)
        twin.step(scores)
    scores = {a: rng.uniform(-1, 1, 5) for a in acting}
    noisy = dict(scores, **{a: np.full(5, 1.0) for a in idle})  # ignored: masked out
    first, second = env.step(scores), twin.step(noisy)
    for a in env.possible_agents:
        np.testing.assert_array_equal(first[0][a], second[0][a])
        assert first[1][a] == second[1][a]
    assert all(first[4][a]["matched_slot"] == -1 for a in idle)
    assert not any(first[4][a]["acted"] for a in idle)
    masks = env.action_masks()
    acting = [a for i, a in enumerate(env.agents) if masks[i, 1:].any()]
    if acting:
        with pytest.raises(ValueError, match="no action for agent"):
            env.step({})
    with pytest.raises(ValueError, match="unknown agent"):
        env.step({"taxi_1": np.zeros(5)})
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        env.step({a: np.zeros(3) for a in env.agents})
    with pytest.raises(ValueError, match="finite"):
        env.step({a: np.full(5, np.nan) for a in env.agents})


def test_fairness_penalty_is_minus_the_change_of_income_std():
    env = RideSharingParallelEnv(**SMALL)
    env.reset(seed=1)
    rng = np.random.default_rng(2)
    before = env.sim.income.std()
    while env.agents:
        _, _, _, _, infos = env.step(random_scores(rng, env))
        after = env.sim.income.std()
        assert infos["vehicle_0"]["fairness_penalty"] == pytest.approx(-(after - before))
        assert infos["vehicle_0"]["kpi"]["income_std"] == pytest.approx(after)
        before = after


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_vehicles=0), "num_vehicles"),
        (dict(num_candidates=1.5), "num_candidates"),
        (dict(capacity=5), "capacity"),
        (dict(episode_minutes=0), "episode_minutes"),
        (dict(max_pickup_minutes=-1), "max_pickup_minutes"),
        (dict(speed_kmh=0), "speed_kmh"),
        (dict(detour_factor=0.9), "detour_factor"),
        (dict(max_wait_minutes=0), "max_wait_minutes"),
        (dict(timeout_minutes=float("inf")), "timeout_minutes"),
        (dict(demand_rate=-2.0), "demand_rate"),
        (dict(num_zones=1), "num_zones"),
        (dict(city_seed=-1), "city_seed"),
        (dict(start_minute=-1), "start_minute"),
        (dict(day=17), "day is only used with trips"),
        (dict(sample_frac=0.5), "sample_frac is only used with trips"),
        (dict(trips="trips.csv"), "trips need zones"),
        (dict(zones=3), "zones must be None, a path"),
        (dict(zones="no/such/zones.csv"), "zones file .* does not exist"),
        (dict(render_mode="human"), "render_mode"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    for cls in (RideSharingParallelEnv, RideSharingEnv):
        with pytest.raises(ValueError, match=message):
            cls(**kwargs)


def test_argument_combinations_with_real_zones(tmp_path):
    zones = manhattan_path()
    with pytest.raises(ValueError, match="num_zones is only used by the synthetic city"):
        RideSharingParallelEnv(zones=zones, num_zones=10)
    trips = tmp_path / "trips.csv"
    pd.DataFrame(
        {"tpep_pickup_datetime": ["2024-07-17 19:01:00"], "PULocationID": [4], "DOLocationID": [12]}
    ).to_csv(trips, index=False)
    with pytest.raises(ValueError, match="trips need day and hour"):
        RideSharingParallelEnv(zones=zones, trips=trips)
    with pytest.raises(ValueError, match="demand_rate is only used"):
        RideSharingParallelEnv(zones=zones, trips=trips, day=17, hour=19, demand_rate=2.0)
    with pytest.raises(ValueError, match="start_minute \\+ episode_minutes must be <= 60"):
        RideSharingParallelEnv(zones=zones, trips=trips, day=17, hour=19, start_minute=40)


def test_manhattan_zones_and_tlc_trips_end_to_end(tmp_path):
    layout = load_zones(manhattan_path())
    rng = np.random.default_rng(0)
    n = 400
    minutes = rng.integers(0, 60, n)
    seconds = rng.integers(0, 60, n)
    ids = layout.location_ids
    trips = pd.DataFrame(
        {
            "tpep_pickup_datetime": [
                f"2024-07-17 19:{m:02d}:{s:02d}" for m, s in zip(minutes, seconds, strict=True)
            ],
            "PULocationID": rng.choice(ids, n),
            "DOLocationID": np.where(rng.random(n) < 0.9, rng.choice(ids, n), 1),  # 1: Newark
        }
    )
    path = tmp_path / "yellow_tripdata_2024-07.csv"
    trips.to_csv(path, index=False)
    kwargs = dict(
        num_vehicles=40, zones=manhattan_path(), trips=path, day=17, hour=19, start_minute=10
    )
    env = RideSharingParallelEnv(**kwargs)
    inside = (trips["DOLocationID"] != 1) & (minutes >= 10) & (minutes < 40)
    assert len(env.core.trips) == int(inside.sum())
    env.reset(seed=0)
    assert env.sim.num_orders == round(0.95 * int(inside.sum()))
    while env.agents:
        env.step(random_scores(rng, env))
        check_state(env.sim, 3)
    kpi = env.sim.kpi()
    assert kpi["served_orders"] > 0 and kpi["delivered_orders"] > 0
    assert kpi["appeared_orders"] == env.sim.num_orders
    # The same layout with the synthetic gravity demand, through the platform view.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        platform = RideSharingEnv(num_vehicles=40, zones=manhattan_path(), demand_rate=20.0)
        sb3_check_env(platform, warn=True)


# ----------------------------------------------------------------------------- VecEnv


def test_agent_vec_env_matches_the_parallel_env_step_for_step():
    from opsrl.envs.ride_sharing.vec import RideSharingAgentVecEnv

    kwargs = dict(num_vehicles=4, num_zones=9, demand_rate=3.0, episode_minutes=6)
    vec = RideSharingAgentVecEnv(2, seed=5, **kwargs)
    assert vec.num_envs == 8 and vec.action_space.shape == (5,)
    copies = [RideSharingParallelEnv(**kwargs) for _ in range(2)]
    obs = vec.reset()
    expected = [env.reset(seed=5 + c)[0] for c, env in enumerate(copies)]
    rng = np.random.default_rng(0)
    for step in range(15):  # two and a half episodes: across automatic resets
        flat = np.concatenate([np.stack(list(e.values())) for e in expected])
        np.testing.assert_array_equal(obs, flat)
        np.testing.assert_array_equal(
            vec.action_masks(), np.concatenate([e.action_masks() for e in copies])
        )
        actions = rng.uniform(-1, 1, (8, 5)).astype(np.float32)
        obs, rewards, dones, infos = vec.step(actions)
        for c, env in enumerate(copies):
            minute = env.sim.minute
            scores = {a: actions[c * 4 + i] for i, a in enumerate(env.agents)}
            next_obs, rew, _, trunc, info = env.step(scores)
            for i, a in enumerate(env.possible_agents):
                slot = c * 4 + i
                assert rewards[slot] == pytest.approx(rew[a])
                assert infos[slot]["matched_slot"] == info[a]["matched_slot"]
                assert infos[slot]["acted"] == info[a]["acted"]
                assert infos[slot]["copy"] == c and infos[slot]["minute"] == minute
                assert infos[slot]["kpi"] == info[a]["kpi"]
                assert dones[slot] == trunc[a]
                if trunc[a]:
                    np.testing.assert_array_equal(infos[slot]["terminal_observation"], next_obs[a])
                    assert infos[slot]["TimeLimit.truncated"]
            expected[c] = env.reset()[0] if not env.agents else next_obs
        assert dones.any() == ((step + 1) % 6 == 0)


def test_agent_vec_env_api_and_ppo_smoke():
    from stable_baselines3 import PPO

    from opsrl.envs.ride_sharing import RideSharingAgentVecEnv

    vec = RideSharingAgentVecEnv(2, seed=0, num_vehicles=4, num_zones=9, demand_rate=3.0)
    vec.reset()
    assert vec.seed(3) == [3] * 4 + [4] * 4
    assert len(vec.env_method("action_masks")) == 8
    assert vec.env_method("action_mask", indices=[5])[0].shape == (5,)
    assert vec.get_attr("sim", indices=[0, 5]) == [vec.cores[0].sim, vec.cores[1].sim]
    assert vec.get_attr("num_agents") == [4] * 8
    assert vec.env_is_wrapped(gym.Wrapper) == [False] * 8
    with pytest.raises(ValueError, match="all"):
        vec.set_attr("note", 1, indices=[0])
    vec.set_attr("note", 1)
    with pytest.raises(AttributeError, match="read-only"):
        vec.set_attr("sim", None)
    with pytest.raises(AttributeError, match="does not support"):
        vec.env_method("render")
    with pytest.raises(ValueError, match="n_copies"):
        RideSharingAgentVecEnv(0)
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps >= 256


def test_an_episode_without_orders_runs():
    # very low demand can leave a whole episode without an order; observations must still build
    import gymnasium as gym

    env = gym.make("opsrl/RideSharing-v0", demand_rate=1e-6, episode_minutes=5)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert truncated and reward == 0.0 and obs.shape == env.observation_space.shape
