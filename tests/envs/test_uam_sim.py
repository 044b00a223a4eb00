"""The UAM fleet simulator and its data: invariants under random feasible policies (capacities,
range, seats, demand conservation, corridors, clock), hand-checked legs, the demand peaks, each
uncertainty's effect, determinism, cloning and parameter errors."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from opsrl.envs.uam import (
    CHARGING,
    FLYING,
    PARKED,
    UAMConfig,
    UAMSim,
    as_config,
    expected_demand,
    generate_scenario,
)

#: a small, tight day: constraints bind often (few stands, chargers and corridor slots)
TIGHT = UAMConfig(
    n_vertiports=4,
    n_aircraft=12,
    parking_capacity=4,
    charging_capacity=3,
    corridor_capacity=1,
    route_closure_prob=0.2,
    downtime_prob=0.5,
)
#: no random effects: the only random inputs are demand and the fleet's start
CALM = UAMConfig(n_vertiports=4, n_aircraft=8, uncertainty=False)
#: two vertiports 30 miles apart, both suburban (far from the urban centre)
PAIR = dict(n_vertiports=2, vertiport_positions=((0.0, 0.0), (30.0, 0.0)), uncertainty=False)


def random_day(sim: UAMSim, seed: int, policy_seed: int = 0, check=None) -> list:
    """Play a day with a uniformly random feasible policy; ``check(sim, before)`` after each
    step (``before`` is a dict of state copied before it)."""
    rng = np.random.default_rng(policy_seed)
    sim.reset(seed)
    while not sim.finished:
        mask = sim.feasible_destinations()
        assert mask[sim.location[sim.deciding_aircraft()]], "staying must always be feasible"
        before = {
            "time": sim.time,
            "remaining": sim.remaining_demand.copy(),
            "mask": mask,
            "aircraft": sim.deciding_aircraft(),
            "chargers_used": sim.charging + sim.inbound,
            "corridor": sim.corridor_flights.copy(),
        }
        sim.step(int(rng.choice(np.flatnonzero(mask))))
        if check is not None:
            check(sim, before)
    return sim.log


def check_invariants(sim: UAMSim, before: dict) -> None:
    config = sim.config
    # capacities
    assert np.all(sim.parked <= sim.parking_capacity)
    assert np.all(sim.charging + sim.inbound <= sim.charging_capacity)
    assert np.all(sim.parked >= 0) and np.all(sim.charging >= 0) and np.all(sim.inbound >= 0)
    # the counters agree with the aircraft states
    n = sim.n_vertiports
    ground = sim.status != FLYING
    np.testing.assert_array_equal(
        sim.parked, np.bincount(sim.location[sim.status == PARKED], minlength=n)
    )
    np.testing.assert_array_equal(
        sim.charging, np.bincount(sim.location[sim.status == CHARGING], minlength=n)
    )
    flying = sim.status == FLYING
    np.testing.assert_array_equal(sim.inbound, np.bincount(sim.destination[flying], minlength=n))
    assert np.all(sim.destination[ground] == sim.location[ground])
    corridor = np.zeros((n, n), dtype=np.int64)
    np.add.at(corridor, (sim.location[flying], sim.destination[flying]), 1)
    np.testing.assert_array_equal(sim.corridor_flights, corridor)
    if config.corridor_capacity is not None:
        assert sim.corridor_flights.max() <= config.corridor_capacity
    # the clock never goes back and no decision is due in the past
    assert sim.time >= before["time"]
    if not sim.finished:
        assert sim.next_decision_time.min() >= sim.time
    # the mask offered only destinations with a free charger, open corridor and in range
    decision = sim.log[-1]
    assert decision.aircraft == before["aircraft"] and before["mask"][decision.destination]
    offered = before["mask"].copy()
    offered[decision.origin] = False
    assert np.all(before["chargers_used"][offered] < sim.charging_capacity[offered])
    assert np.all(sim.in_range[decision.origin, offered])
    if config.corridor_capacity is not None:
        assert np.all(before["corridor"][decision.origin, offered] < config.corridor_capacity)
    if decision.is_flight:
        i, j = decision.origin, decision.destination
        assert sim.distance[i, j] <= config.aircraft_range + 1e-9
        remaining = before["remaining"][decision.demand_bin, i, j]
        assert 0 <= decision.passengers <= min(config.seats, remaining)
        assert decision.passengers == min(config.seats, remaining)  # boards all it can
        assert decision.arrival_time > decision.departure_time >= decision.decision_time
        assert decision.next_decision_time >= decision.arrival_time
    else:
        assert decision.passengers == 0 and decision.revenue == 0 and decision.energy_kwh == 0
    assert decision.demand_bin == config.demand_bin(decision.decision_time)


def check_conservation(sim: UAMSim) -> None:
    demand = sim.scenario.demand
    carried = np.zeros_like(demand)
    for d in sim.log:
        carried[d.demand_bin, d.origin, d.destination] += d.passengers
    np.testing.assert_array_equal(carried, demand - sim.remaining_demand)
    kpi = sim.kpi()
    assert kpi["passengers_served"] + kpi["unserved_demand"] == kpi["total_demand"]
    assert kpi["total_demand"] == demand.sum()
    assert kpi["passengers_served"] == sum(d.passengers for d in sim.log)
    assert math.isclose(kpi["revenue"], sum(d.revenue for d in sim.log))
    assert math.isclose(kpi["profit"], sum(d.profit for d in sim.log))
    assert kpi["flights"] == sum(d.is_flight for d in sim.log)


# ---------------------------------------------------------------------- invariants
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_invariants_hold_under_a_random_feasible_policy(seed):
    sim = UAMSim(TIGHT)
    random_day(sim, seed, policy_seed=seed, check=check_invariants)
    assert sim.finished and sim.time == TIGHT.day_end
    check_conservation(sim)
    assert sim.flights > 0 and sim.stays > 0


def test_default_day_random_policy_invariants_and_binding_constraints():
    sim = UAMSim(UAMConfig())
    seen = {"charger_full": 0, "corridor_full": 0, "out_of_range": 0}

    def check(sim, before):
        check_invariants(sim, before)
        seen["charger_full"] += int(np.any(sim.charging + sim.inbound == sim.charging_capacity))
        seen["corridor_full"] += int(sim.corridor_flights.max() == sim.corridor_capacity)
        seen["out_of_range"] += int(not sim.in_range[~np.eye(8, dtype=bool)].all())

    random_day(sim, seed=3, check=check)
    check_conservation(sim)
    # the defaults exercise the constraints the invariants are about
    assert all(count > 0 for count in seen.values()), seen
    assert sim.decisions == len(sim.log) > 8 * 12


def test_event_loop_terminates_without_deadlock_on_a_crowded_network():
    # one stand and one charger per vertiport for nearly as many aircraft as stands
    config = UAMConfig(
        n_vertiports=3,
        n_aircraft=3,
        parking_capacity=1,
        charging_capacity=1,
        vertiport_positions=((0.0, 0.0), (10.0, 0.0), (0.0, 10.0)),
    )
    sim = UAMSim(config)
    log = random_day(sim, seed=0, check=check_invariants)
    # each decision moves its aircraft at least min(stay, take-off + landing) ahead
    step = min(config.stay_time, config.takeoff_time + config.landing_time)
    assert len(log) <= config.n_aircraft * (config.day_length / step + 1)
    assert sim.finished


# ---------------------------------------------------------------------- hand-checked legs
def test_a_flight_hand_checked():
    config = UAMConfig(n_aircraft=1, **PAIR)
    sim = UAMSim(config)
    scenario = generate_scenario(config, 0)
    sim.reset(scenario=scenario)
    origin = int(sim.location[0])
    other = 1 - origin
    demand = int(scenario.demand[0, origin, other])
    decision = sim.step(other)
    assert decision.decision_time == decision.departure_time == 6.0  # no delay
    assert math.isclose(decision.arrival_time, 6.0 + 0.1 + 30 / 74.5 + 0.1)
    assert math.isclose(decision.energy_kwh, 30 * 110 / 50)
    assert math.isclose(decision.energy_cost, 0.2 * 66.0)
    assert math.isclose(decision.next_decision_time, decision.arrival_time + 66.0 / 150.0)
    assert decision.passengers == min(4, demand)
    assert decision.revenue == decision.passengers * 45  # floor(1.5 * 30)
    assert sim.time == decision.next_decision_time and sim.status[0] == CHARGING
    assert sim.location[0] == other and sim.charging[other] == 1 and sim.inbound.sum() == 0
    # a stay after charging moves the aircraft to a stand and frees the charger
    decision = sim.step(other)
    assert not decision.is_flight and sim.status[0] == PARKED
    assert sim.charging[other] == 0 and sim.parked[other] == 1
    assert math.isclose(sim.time, decision.decision_time + 0.25)


def test_an_aircraft_keeps_its_charger_when_no_stand_is_free():
    config = UAMConfig(n_aircraft=2, parking_capacity=1, charging_capacity=1, **PAIR)
    sim = UAMSim(config)
    sim.reset(0)
    home, other = int(sim.location[0]), int(sim.location[1])
    assert home != other  # one stand per vertiport
    assert sim.deciding_aircraft() == 0  # both decide at 06:00; the lower index first
    sim.step(other)  # aircraft 0 flies to where aircraft 1 is parked, reserving the charger
    assert sim.inbound[other] == 1 and sim.parked[home] == 0
    while sim.deciding_aircraft() != 0:
        assert sim.deciding_aircraft() == 1
        sim.step(other)  # aircraft 1 stays on its stand
    sim.step(other)  # aircraft 0 stays, but the only stand is taken: it keeps the charger
    assert sim.status[0] == CHARGING and sim.charging[other] == 1 and sim.parked[other] == 1
    # aircraft 1 leaves; the next stay of aircraft 0 takes the freed stand
    while sim.deciding_aircraft() != 1:
        sim.step(other)
    sim.step(home)
    while sim.deciding_aircraft() != 0:
        sim.step(int(sim.location[sim.deciding_aircraft()]))
    sim.step(other)
    assert sim.status[0] == PARKED and sim.charging[other] == 0 and sim.parked[other] == 1


def test_out_of_range_destination_is_masked_and_raises():
    config = UAMConfig(n_aircraft=1, aircraft_range=20.0, **PAIR)
    sim = UAMSim(config)
    sim.reset(0)
    origin = int(sim.location[0])
    assert sim.feasible_destinations().tolist() == [i == origin for i in range(2)]
    with pytest.raises(ValueError, match="out of range"):
        sim.step(1 - origin)
    with pytest.raises(ValueError, match="destination must be in 0..1"):
        sim.step(2)


# ---------------------------------------------------------------------- demand
def test_demand_has_13_points_and_peaks_at_09_00_and_16_30():
    config = UAMConfig()
    assert config.n_demand_points == 13
    np.testing.assert_allclose(config.demand_times, np.arange(6.0, 18.5, 1.0))
    urban = np.array([True, True, False, False, True, False, False, False])
    rates = expected_demand(config, urban) / config.demand_bin_lengths[:, None, None]
    urban_urban, to_suburb, to_urban, flat = (
        rates[:, 0, 1],
        rates[:, 0, 2],
        rates[:, 2, 0],
        rates[:, 2, 3],
    )
    hour = {int(t): k for k, t in enumerate(config.demand_times)}
    assert urban_urban.argmax() == hour[9]
    # the afternoon peak lies halfway between 16:00 and 17:00 (not at 04:30)
    assert math.isclose(urban_urban[hour[16]], urban_urban[hour[17]])
    assert urban_urban[hour[16]] > urban_urban[hour[15]] > urban_urban[hour[13]]
    assert urban_urban[hour[16]] > urban_urban[hour[6]]
    assert to_suburb[hour[16]] > to_suburb[hour[9]] and to_urban[hour[9]] > to_urban[hour[16]]
    assert np.ptp(flat) == 0
    # with half-hour points the afternoon maximum is at 16:30 itself
    half = replace(config, demand_interval=0.5)
    times = half.demand_times
    rates = expected_demand(half, urban)[:, 0, 1] / half.demand_bin_lengths
    afternoon = times >= 13
    assert times[afternoon][rates[afternoon].argmax()] == 16.5
    # the edge bins are half an hour and every time of the day maps to one bin
    assert config.demand_bin_lengths.sum() == config.day_length
    assert [config.demand_bin(t) for t in (6.0, 6.49, 6.5, 17.49, 17.5, 17.99)] == [
        0,
        0,
        1,
        11,
        12,
        12,
    ]


def test_realised_demand_is_poisson_around_the_expectation():
    config = UAMConfig()
    scenario = generate_scenario(config, 0)
    assert scenario.demand.dtype.kind == "i" and np.all(np.diagonal(scenario.demand, 0, 1, 2) == 0)
    days = [generate_scenario(config, seed).demand for seed in range(20)]
    mean = np.mean(days, axis=0).sum()
    assert abs(mean - scenario.expected_demand.sum()) < 0.01 * scenario.expected_demand.sum()


# ---------------------------------------------------------------------- uncertainties
def test_uncertainty_off_leaves_demand_as_the_only_random_input():
    days = [generate_scenario(CALM, seed) for seed in (1, 2)]
    np.testing.assert_array_equal(days[0].positions, days[1].positions)  # fixed layout
    for day in days:
        assert not day.takeoff_delay_mean.any() and not day.route_closed.any()
        assert np.all(np.isinf(day.downtime_start))
    assert not np.array_equal(days[0].demand, days[1].demand)
    # the dynamics hold no randomness: a replayed day gives the same log
    sim = UAMSim(CALM)
    logs = []
    for _ in range(2):
        sim.reset(scenario=days[0])
        while not sim.finished:
            sim.step(int(np.flatnonzero(sim.feasible_destinations())[-1]))
        logs.append(list(sim.log))
    assert logs[0] == logs[1]
    # switching the uncertainties on keeps the demand and the fleet's start of the seed
    stormy = generate_scenario(replace(CALM, uncertainty=True), 1)
    np.testing.assert_array_equal(stormy.demand, days[0].demand)
    np.testing.assert_array_equal(stormy.initial_location, days[0].initial_location)


def test_takeoff_delays_postpone_departures():
    config = replace(CALM, uncertainty=True, route_closure_prob=0.0, downtime_prob=0.0)
    sim = UAMSim(config)
    log = [d for d in random_day(sim, 0) if d.is_flight]
    delays = np.array([d.departure_time - d.decision_time for d in log])
    assert np.all(delays >= 0) and delays.max() > 0
    assert np.all(sim.scenario.takeoff_delay_mean <= config.takeoff_delay_mean_max)
    for d in log:
        cruise = sim.flight_time[d.origin, d.destination]
        assert math.isclose(d.arrival_time - d.departure_time, 0.2 + cruise)
    calm = [d for d in random_day(UAMSim(CALM), 0) if d.is_flight]
    assert all(d.departure_time == d.decision_time for d in calm)


def test_route_closures_mask_routes():
    config = replace(CALM, uncertainty=True, takeoff_delay_mean_max=0.0, downtime_prob=0.0)
    closed_all = UAMSim(replace(config, route_closure_prob=1.0))
    log = random_day(closed_all, 0)
    assert log and not any(d.is_flight for d in log)  # everything closed: only stays

    sim = UAMSim(replace(config, route_closure_prob=0.5))
    masked = []

    def check(sim, before):
        hour = sim.config.closure_hour(before["time"])
        i = sim.log[-1].origin
        shut = sim.scenario.route_closed[hour, i]
        assert not np.any(before["mask"] & shut)
        masked.append(shut.any())

    random_day(sim, 0, check=check)
    route_closed = sim.scenario.route_closed
    assert np.array_equal(route_closed, route_closed.transpose(0, 2, 1))
    assert any(masked)
    with pytest.raises(ValueError, match="route closed"):
        closed_all.reset(0)
        origin = int(closed_all.location[closed_all.deciding_aircraft()])
        closed_all.step(int(np.flatnonzero(closed_all.in_range[origin])[0]))


def test_downtime_grounds_an_aircraft_for_its_window():
    config = replace(
        CALM, uncertainty=True, takeoff_delay_mean_max=0.0, route_closure_prob=0.0,
        downtime_prob=1.0,
    )  # fmt: skip
    sim = UAMSim(config)
    log = random_day(sim, 0)
    start, end = sim.scenario.downtime_start, sim.scenario.downtime_end
    assert np.all(np.isfinite(start))
    length = end - start
    assert np.all((length >= 1.0) & (length <= 3.0))
    for d in log:
        assert not start[d.aircraft] <= d.decision_time < end[d.aircraft]
    # aircraft whose window opened during the day resume exactly at its end
    resumed = {d.aircraft for d in log if np.isclose(d.decision_time, end[d.aircraft])}
    assert resumed
    calm = UAMSim(CALM)
    calm.reset(0)
    assert not calm.is_down().any()


def test_corridor_capacity_limits_simultaneous_flights_per_pair():
    def greedy_day(corridor):
        # always the farthest feasible destination: everyone wants the same long routes
        sim = UAMSim(replace(CALM, n_aircraft=8, corridor_capacity=corridor))
        sim.reset(0)
        while not sim.finished:
            mask = sim.feasible_destinations()
            origin = sim.location[sim.deciding_aircraft()]
            sim.step(int(np.argmax(np.where(mask, sim.distance[origin], -1.0))))
        return sim

    def most_at_once(sim):
        flights = [d for d in sim.log if d.is_flight]
        worst = 0
        for d in flights:
            at_once = sum(
                e.origin == d.origin
                and e.destination == d.destination
                and e.decision_time <= d.decision_time < e.arrival_time
                for e in flights
            )
            worst = max(worst, at_once)
        return worst

    assert most_at_once(greedy_day(1)) == 1
    assert most_at_once(greedy_day(None)) > 1


# ---------------------------------------------------------------------- determinism and clones
def test_same_seed_same_day_and_clones_are_independent():
    sim = UAMSim(TIGHT)
    first = list(random_day(sim, 5, policy_seed=1))
    second = list(random_day(sim, 5, policy_seed=1))
    assert first == second
    assert list(random_day(sim, 6, policy_seed=1)) != first

    sim.reset(5)
    for _ in range(10):
        sim.step(int(np.flatnonzero(sim.feasible_destinations())[-1]))
    twin = sim.clone()
    state = (sim.time, sim.parked.copy(), sim.remaining_demand.copy(), len(sim.log))
    rng = np.random.default_rng(0)
    while not twin.finished:
        twin.step(int(rng.choice(np.flatnonzero(twin.feasible_destinations()))))
    assert (sim.time, len(sim.log)) == (state[0], state[3])
    np.testing.assert_array_equal(sim.parked, state[1])
    np.testing.assert_array_equal(sim.remaining_demand, state[2])
    # replaying the clone's choices on the original gives the same outcome
    for decision in twin.log[state[3] :]:
        assert sim.deciding_aircraft() == decision.aircraft
        assert sim.step(decision.destination) == decision
    assert sim.kpi() == twin.kpi()


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_vertiports": 1}, "n_vertiports"),
        ({"n_aircraft": 0}, "n_aircraft"),
        ({"n_aircraft": 50, "parking_capacity": 6}, "parking_capacity"),
        ({"charging_capacity": (1, 2)}, "charging_capacity"),
        ({"corridor_capacity": 0}, "corridor_capacity"),
        ({"vertiport_positions": ((0, 0), (1, 1))}, "vertiport_positions"),
        ({"area_size": -1.0}, "area_size"),
        ({"day_end": 5.0}, "day_end"),
        ({"demand_interval": 0.7}, "demand_interval"),
        ({"route_closure_prob": 1.5}, "route_closure_prob"),
        ({"downtime_prob": -0.1}, "downtime_prob"),
        ({"downtime_hours": (3.0, 1.0)}, "downtime_hours"),
        ({"day_end": 8.0}, "downtime_hours"),
        ({"takeoff_time": 0.0, "landing_time": 0.0}, "takeoff_time"),
        ({"cruise_speed": 0}, "cruise_speed"),
        ({"seats": 0}, "seats"),
        ({"uncertainty": "yes"}, "uncertainty"),
        ({"peak_std": 0.0}, "peak_std"),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UAMConfig(**kwargs)


def test_as_config_and_scenario_checks():
    assert as_config({"n_aircraft": 10}, n_vertiports=4).n_vertiports == 4
    assert as_config(None, n_aircraft=None) == UAMConfig()
    with pytest.raises(ValueError, match="unknown fields"):
        as_config({"n_evtols": 10})
    with pytest.raises(ValueError, match="config must be"):
        as_config(42)
    config = UAMConfig()
    assert config.parking_capacities.tolist() == [10] * 8
    assert config.charging_capacities.tolist() == [6] * 8
    scenario = generate_scenario(replace(config, n_aircraft=10), 0)
    sim = UAMSim(config)
    with pytest.raises(ValueError, match="initial_location"):
        sim.reset(scenario=scenario)
    with pytest.raises(ValueError, match="rng must be"):
        generate_scenario(config, "seed")
    with pytest.raises(RuntimeError, match="reset"):
        UAMSim(config).step(0)
