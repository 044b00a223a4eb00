"""OR baselines for the UAM fleet env (``opsrl/UAMFleet-v0``).

- :class:`RandomFeasiblePolicy` -- a uniformly random feasible destination (the precursor's
  ``Feas_RND``).
- :class:`GreedyProfitPolicy` -- the destination with the largest immediate profit.
- :func:`solve_ga` and :class:`GeneticAlgorithmPolicy` -- a genetic algorithm over the day's
  destination choices (CapTAIN's comparison baseline), planned at 06:00 and executed during
  the day.
- :func:`solve` and :class:`MILPPolicy` -- a time-expanded flow model of the day (OR-Tools
  model builder, HiGHS) whose optimum on the realised day bounds every policy's profit from
  above.

**Ranked destinations.** The greedy rule, the genetic algorithm and the MILP policy's
fall-back share one order of the deciding aircraft's feasible destinations
(:func:`ranked_destinations`): by immediate profit, highest first -- the fare of the
passengers the flight would carry now, ``fare[i, j] x min(seats, remaining demand of (i, j)
in this demand bin)``, minus its electricity cost; staying earns 0 --, ties going to staying,
then to the lowest vertiport index. The greedy rule takes the first.

**Genetic algorithm.** A genome holds one gene per aircraft and per decision of that aircraft
during the day, a random key in [0, 1): the aircraft's m-th decision takes rank
``floor(key x n_feasible)`` of its ranked feasible destinations at that moment, so every
genome decodes to a feasible day (an infeasible choice cannot be expressed: the gene is
"repaired" by decoding it against the feasible set of the moment) and the all-zero genome is
the greedy day. Genes are keyed by aircraft, not by global decision number, so that a change
early in the day does not shift every later gene to another aircraft. The fitness of a
genome is the day's profit when the fleet follows it from 06:00. Whole populations are
simulated at once in numpy (:class:`_FleetBatch`, the dynamics of
:class:`~opsrl.envs.uam.sim.UAMSim` on a leading population axis, checked against
``UAMSim`` by the tests); the best genome is replayed in a :meth:`UAMSim.clone` at the end and
that profit is the reported objective. Operators: tournament selection, uniform crossover of
whole aircraft rows, uniform random reset of single genes, elitism; the initial population is
the greedy genome and perturbations of it (or random keys, ``greedy_seeding=False``).

What the planner knows: by default (``clairvoyant=False``) the day as it can be known at
06:00 (:func:`expected_scenario`): the layout, the fleet's start, each vertiport's mean
take-off delay (all observable), the **expected** demand rounded to whole passengers, every
take-off waiting its mean delay, no route closure and no downtime. ``clairvoyant=True`` plans
on the realised day itself (demand, delays, closures, downtime), a reference no real
dispatcher has; the plan then replays exactly in the env. During the day the policy decodes
the next gene of the deciding aircraft against the realised state, so where the day departs
from the plan it keeps choosing feasible destinations, ranked by the profit they pay now.

Measured on the default day (8 vertiports, 40 aircraft, seeds 0-4, one shared CPU core): the
defaults (64 genomes, 60 generations) plan a day in 15-40 s and gain 2.5-3.5% over the greedy
day they start from on the day they plan. That gain does not survive the realised day when
the plan is made on the expected one: mean profit 79,100 $ against greedy's 79,600 $ with the
uncertainties on (83,200 $ against 83,100 $ without), and planning on 4 or 8 demand draws
(``demand_samples``) does not change this (79,100 $ and 79,000 $). The clairvoyant plan
replays its gain (81,800 $ and 86,000 $).

**Time-expanded model.** Time is cut into slots of ``slot_hours`` (default 0.1 h, 120
slots from 06:00 to 18:00). Flows of aircraft (counts: the fleet is homogeneous and every leg
starts on a full battery, so no state of charge is needed) move on

- flight arcs ``x[s, i, j]``: flights from i to j decided in slot s, for pairs in range and
  routes open in that slot (closures: realised day only); they reach node
  ``(j, s + d_ij)`` with ``d_ij = floor(cycle_ij / slot_hours)`` where ``cycle_ij`` =
  take-off + cruise + landing + recharge of the leg (the sim's recharge after every leg is
  modelled exactly: it is part of the cycle, and its energy is paid per flight);
- hold arcs ``y[s, i]``: aircraft at i from slot s to s + 1 (staying, charging, waiting);

from the fleet's start at slot 0 (or, without a day, any start within the stands). Passengers
``w[b, i, j] <= demand[b, i, j]`` and ``<= seats x`` the flights of (i, j) decided in slots
overlapping demand bin b. Capacities, counted just before the end of each slot s: the
flights to j decided at or before s whose arc has not reached j yet use chargers
(``<= charging_capacity[j]``); those plus the aircraft holding at j use stands or chargers
(``<= parking_capacity[j] + charging_capacity[j]``); the flights on (i, j) decided in the
last ``floor((take-off + cruise + landing) / slot_hours)`` slots are in the corridor
(``<= corridor_capacity``). Both windowed counts are running-sum columns with a recursion
row each (sparser than summing the window in every row: the LP solves about twice as fast).
Objective: ``sum fare x w - sum energy cost x x``.

Solving it: the model is a degenerate network LP (flights shift between slots at equal
profit) on which simplex methods stall (dual simplex: minutes for the default day), so by
default :func:`solve` solves its LP relaxation, integrality relaxed too, by HiGHS's interior
point method through OR-Tools' model builder: about 5-10 s and 15,000 columns for the default
day (8 vertiports, 40 aircraft). The LP optimum is an upper bound on the integer optimum;
the integrality gap is small (on the small days of the tests the MILP optimum equals the LP
optimum). ``integer=True`` runs HiGHS's branch and bound after the LP for integer flows, on
small days only.

Why its optimum bounds the realised day's profit of **every** policy (``demand="realised"``):
map any simulated day to the model by putting each decision at time t in the slot holding t.
A flight's next decision comes at least ``cycle_ij`` after it (take-off delays and downtime
only postpone it), so at least ``d_ij`` slots later: it fits the flight arc followed by hold
arcs; stays are hold arcs. Between a decision to fly to j and its next decision the aircraft
is inbound to or charging at j (it leaves its charger only at a decision), and between
decisions an aircraft is inbound to, charging at or parked at its vertiport, so every
aircraft the capacity rows count for slot s holds a charger (or a stand) at one instant, the
end of slot s, where the sim's invariants ``charging + inbound <= charging_capacity``,
``parked <= parking_capacity`` and the corridor limit hold. The flights and passengers of the
day then satisfy every row and its profit is the model's objective. The relaxations:
fractional flows (by default), decision times rounded down to slots (arcs up to one slot
shorter than the real cycle), take-off delays and downtime ignored, parking and charging
pooled for aircraft holding at a vertiport, passengers of a flight in a slot that straddles
two demand bins counted against either bin. ``slot_hours`` must not exceed the shortest
cycle (every arc at least one slot). Smaller slots tighten the bound and grow the model: on
the default day (seed 0, no uncertainty) 0.2 h gives 169,000 $ (short hops become
one-slot arcs), 0.1 h 93,900 $ in about 6 s, 0.05 h 91,900 $ in about 24 s. With
``demand="expected"`` the model plans the expected day (no closures), which bounds nothing
about a realised day.

Its bound in reward units: the env's return is the day's profit divided by
``env.reward_scale`` (default: the day's potential revenue), under both reward modes, so
:meth:`MILPPolicy.episode_bound` returns the solver's upper bound divided by that scale.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import scipy.sparse as sp
from ortools.linear_solver.python import model_builder as mb

from opsrl.baselines.base import (
    BaselinePolicy,
    Solution,
    check_positive_int,
    check_time_limit,
    require_env,
)
from opsrl.baselines.common import RandomPolicy
from opsrl.envs.uam.data import (
    UAMConfig,
    UAMScenario,
    as_config,
    distance_matrix,
    fare_table,
    leg_matrices,
    urban_vertiports,
    vertiport_layout,
)
from opsrl.envs.uam.data import expected_demand as expected_demand_table
from opsrl.envs.uam.sim import CHARGING, FLYING, PARKED, UAMSim

__all__ = [
    "DEMANDS",
    "GeneticAlgorithmPolicy",
    "GreedyProfitPolicy",
    "MILPPolicy",
    "RandomFeasiblePolicy",
    "expected_scenario",
    "genes_per_aircraft",
    "immediate_profits",
    "ranked_destinations",
    "solve",
    "solve_ga",
]

#: what the MILP plans on
DEMANDS = ("expected", "realised")
#: sort key of a flight that pays exactly nothing: just after staying (key 0)
_AFTER_STAY = float(np.nextafter(0.0, 1.0))


# --------------------------------------------------------------------------------------------
# Argument checks and env access
# --------------------------------------------------------------------------------------------


def _check_probability(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not 0.0 <= value <= 1.0
    ):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_positive_number(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not np.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _uam_sim(env: gym.Env, who: str) -> UAMSim:
    """The env's simulator (``env.unwrapped.sim``), checked to be a UAM fleet simulator."""
    return require_env(
        getattr(env.unwrapped, "sim", None),
        # attributes a simulator has before its first reset (policies are built before it)
        ("config", "scenario", "feasible_destinations", "deciding_aircraft", "clone"),
        who,
        "a UAM fleet env (opsrl/UAMFleet-v0)",
        type(env.unwrapped).__name__,
        prefix="sim.",
    )


def _started_sim(env: gym.Env, who: str) -> UAMSim:
    sim = _uam_sim(env, who)
    if sim.scenario is None:
        raise RuntimeError(f"{who}: call env.reset() before using the policy")
    return sim


def _allowed(sim: UAMSim, action_masks: np.ndarray | None, who: str) -> np.ndarray:
    """The feasible destinations: the runner's mask, else the simulator's."""
    if sim.finished:
        raise RuntimeError(f"{who}: the day is over; call env.reset() and policy.reset(env)")
    mask = sim.feasible_destinations() if action_masks is None else action_masks
    mask = np.asarray(mask, dtype=bool).ravel()
    if mask.shape != (sim.n_vertiports,):
        raise ValueError(
            f"action_masks must hold one flag per vertiport ({sim.n_vertiports}), "
            f"got shape {np.shape(action_masks)}"
        )
    return mask


def _reward_scale(env: gym.Env) -> float:
    """What the env divides the day's profit by (its ``reward_scale`` or potential revenue)."""
    unwrapped = env.unwrapped
    scale = getattr(unwrapped, "reward_scale", None)
    if scale is not None:
        return float(scale)
    potential = unwrapped.sim.scenario.potential_revenue
    return potential if potential > 0 else 1.0


def _decisions_per_aircraft(sim: UAMSim) -> np.ndarray:
    """(A,) decisions each aircraft has made so far today (from the sim's log)."""
    aircraft = [decision.aircraft for decision in sim.log]
    return np.bincount(np.asarray(aircraft, dtype=np.int64), minlength=sim.n_aircraft)


# --------------------------------------------------------------------------------------------
# Immediate profit and the ranked destinations
# --------------------------------------------------------------------------------------------


def immediate_profits(sim: UAMSim, aircraft: int | None = None) -> np.ndarray:
    """(N,) profit of each destination for ``aircraft`` (default: the deciding one) now:
    ``fare x min(seats, remaining demand of the pair in this demand bin) - energy cost``;
    0 for staying. Feasibility is not checked."""
    if aircraft is None:
        aircraft = sim.deciding_aircraft()
    if aircraft < 0:
        raise RuntimeError("the day is over: no aircraft decides")
    origin = int(sim.location[aircraft])
    energy_cost = sim.leg_energy_cost[origin]
    passengers = np.minimum(sim.config.seats, sim.remaining_demand[sim.demand_bin, origin])
    profit = sim.fare[origin] * passengers - energy_cost
    profit[origin] = 0.0
    return profit


def _rank(profit: np.ndarray, mask: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Destinations sorted along the last axis: feasible first, then by profit (highest
    first), staying before a flight of equal profit, then by index. ``origin`` is the
    deciding aircraft's vertiport (same leading shape as ``profit`` without the last axis).

    One stable argsort of one key (the genetic algorithm sorts a whole population per step):
    minus the profit, infinite when infeasible; a flight of profit exactly 0 gets the
    smallest positive float instead of 0, so that staying (0) comes first.
    """
    key = -profit
    flight = np.arange(profit.shape[-1]) != np.asarray(origin)[..., None]
    key[flight & (key == 0.0)] = _AFTER_STAY
    key[~mask] = np.inf
    return np.argsort(key, axis=-1, kind="stable")


def ranked_destinations(sim: UAMSim, action_masks: np.ndarray | None = None) -> np.ndarray:
    """The deciding aircraft's feasible destinations, best immediate profit first (ties: stay,
    then lowest index). Staying is always among them."""
    mask = _allowed(sim, action_masks, "ranked_destinations")
    origin = int(sim.location[sim.deciding_aircraft()])
    order = _rank(immediate_profits(sim), mask, np.int64(origin))
    return order[: int(mask.sum())]


def _decode(sim: UAMSim, key: float, mask: np.ndarray) -> int:
    """The destination a random key picks among the ranked feasible ones."""
    origin = int(sim.location[sim.deciding_aircraft()])
    order = _rank(immediate_profits(sim), mask, np.int64(origin))
    count = int(mask.sum())
    return int(order[min(int(key * count), count - 1)])


# --------------------------------------------------------------------------------------------
# Simple policies
# --------------------------------------------------------------------------------------------


class RandomFeasiblePolicy(RandomPolicy):
    """A uniformly random feasible destination (the CapTAIN precursor's ``Feas_RND``).

    Draws among the runner's ``action_masks`` or, without them, the simulator's feasible
    destinations (staying included). Seeded by ``seed``; the draws continue over episodes.

    Args:
        env: the UAM fleet env (``opsrl/UAMFleet-v0``).
        seed: seed of the draws.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self.sim = _uam_sim(env, type(self).__name__)

    def reset(self, env: gym.Env) -> None:
        """Follow ``env`` (the runner's evaluation env) from its new episode."""
        self.sim = _uam_sim(env, type(self).__name__)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """A feasible destination drawn uniformly."""
        mask = _allowed(self.sim, action_masks, type(self).__name__)
        return np.int64(self.rng.choice(np.flatnonzero(mask))), state


class GreedyProfitPolicy(BaselinePolicy):
    """The feasible destination of largest immediate profit; stays when no flight pays.

    The immediate profit of flying i -> j now is the fare of the passengers the flight would
    carry, ``fare[i, j] x min(seats, remaining demand of (i, j) in the current demand bin)``,
    minus the leg's electricity cost; staying earns 0. Ties go to staying, then to the lowest
    vertiport index, so the rule is deterministic (``seed`` is unused). It is myopic: it
    never repositions an empty aircraft toward demand.

    Args:
        env: the UAM fleet env (``opsrl/UAMFleet-v0``).
        seed: unused; kept for the runner.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self.sim = _uam_sim(env, type(self).__name__)

    def reset(self, env: gym.Env) -> None:
        """Follow ``env`` (the runner's evaluation env) from its new episode."""
        self.sim = _uam_sim(env, type(self).__name__)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The best-paying feasible destination (the deciding aircraft's own when none pays)."""
        mask = _allowed(self.sim, action_masks, type(self).__name__)
        return np.int64(_decode(self.sim, 0.0, mask)), state


# --------------------------------------------------------------------------------------------
# The day a planner knows, and the days of the solvers
# --------------------------------------------------------------------------------------------


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def expected_scenario(scenario: UAMScenario) -> UAMScenario:
    """The day as a dispatcher can know it at 06:00, without clairvoyance.

    Kept: the layout, distances and fares, the fleet's start and each vertiport's mean
    take-off delay (the env observes all of them). Replaced: the demand by its expectation
    rounded to whole passengers, every take-off's delay by its vertiport's mean (standard
    exponential draws set to their mean, 1), no route closure and no downtime.
    """
    n_aircraft = scenario.initial_location.size
    return replace(
        scenario,
        demand=_read_only(np.rint(scenario.expected_demand).astype(np.int64)),
        takeoff_delay_draws=_read_only(np.ones_like(scenario.takeoff_delay_draws)),
        route_closed=_read_only(np.zeros_like(scenario.route_closed)),
        downtime_start=_read_only(np.full(n_aircraft, np.inf)),
        downtime_end=_read_only(np.full(n_aircraft, np.inf)),
    )


def _config_and_scenario(
    source: Any, scenario: UAMScenario | None, who: str
) -> tuple[UAMConfig, UAMScenario | None]:
    """``(config, scenario)`` from a UAM env (its current day), a simulator, or a config (or a
    mapping of its fields) with an optional ``scenario``."""
    if isinstance(source, UAMConfig | Mapping):
        config = as_config(source)
    elif isinstance(source, UAMSim):
        config, scenario = source.config, source.scenario if scenario is None else scenario
    elif isinstance(source, gym.Env):
        sim = _uam_sim(source, who)
        config, scenario = sim.config, sim.scenario if scenario is None else scenario
    else:
        raise ValueError(
            f"{who} needs a UAMConfig, a UAMSim or a UAM fleet env, got {type(source).__name__}"
        )
    if scenario is not None:
        if not isinstance(scenario, UAMScenario):
            raise ValueError(f"scenario must be a UAMScenario, got {type(scenario).__name__}")
        scenario.check(config)
    return config, scenario


# --------------------------------------------------------------------------------------------
# Genetic algorithm
# --------------------------------------------------------------------------------------------


def genes_per_aircraft(config: UAMConfig) -> int:
    """Most decisions one aircraft can make in a day: each moves its next decision at least
    ``min(stay_time, takeoff_time + landing_time)`` ahead."""
    step = min(config.stay_time, config.takeoff_time + config.landing_time)
    return math.ceil(config.day_length / step) + 1


class _FleetBatch:
    """Many copies of one day simulated at once: the :class:`UAMSim` dynamics with a leading
    population axis, each copy driven by its random-key genome (module docstring).

    It mirrors ``UAMSim.step`` and ``UAMSim._advance`` operation by operation (same
    floating-point expressions, same tie-breaking), so that a genome's profit here equals
    its replay in ``UAMSim`` exactly; the tests check this on days with every uncertainty.
    """

    def __init__(self, start: UAMSim, decisions_made: np.ndarray) -> None:
        config = start.config
        self.start = start
        self.decisions_made = np.asarray(decisions_made, dtype=np.int64)
        self.seats = config.seats
        self.stay_time = config.stay_time
        self.takeoff_time = config.takeoff_time
        self.landing_time = config.landing_time
        self.day_start, self.day_end = start.day_start, start.day_end
        self.interval = config.demand_interval
        self.n_bins = config.n_demand_points
        self.n_hours = config.n_closure_hours
        scenario = start.scenario
        self.closed = scenario.route_closed if scenario.route_closed.any() else None
        self.delay_mean = scenario.takeoff_delay_mean
        self.delay_draws = scenario.takeoff_delay_draws
        self.downtime_start = scenario.downtime_start
        self.downtime_end = scenario.downtime_end

    def _postponed(self, aircraft: np.ndarray, when: np.ndarray) -> np.ndarray:
        start, end = self.downtime_start[aircraft], self.downtime_end[aircraft]
        return np.where((start <= when) & (when < end), end, when)

    def profits(self, genomes: np.ndarray, demands: np.ndarray | None = None) -> np.ndarray:
        """(P,) the day's profit of each genome of ``genomes`` (P, A, M); with ``demands``
        (K, P_bins, N, N), each genome's mean profit over those K demand draws (copy
        ``p * K + k`` flies genome p on draw k)."""
        s0 = self.start
        samples = 1 if demands is None else demands.shape[0]
        if samples > 1:
            genomes = np.repeat(genomes, samples, axis=0)
        size = genomes.shape[0]
        width = genomes.shape[2]

        def tile(array: np.ndarray) -> np.ndarray:
            return np.repeat(array[None], size, axis=0)

        time_ = np.full(size, s0.time)
        deciding = np.full(size, s0.deciding_aircraft(), dtype=np.int64)
        status, location = tile(s0.status), tile(s0.location)
        destination, arrival = tile(s0.destination), tile(s0.arrival_time)
        next_decision, flights_flown = tile(s0.next_decision_time), tile(s0.flights_flown)
        parked, charging, inbound = tile(s0.parked), tile(s0.charging), tile(s0.inbound)
        corridor = tile(s0.corridor_flights)
        if demands is None:
            remaining = tile(s0.remaining_demand)
        else:
            remaining = np.tile(demands, (size // samples, 1, 1, 1))
        decisions = tile(self.decisions_made)
        revenue = np.full(size, s0.revenue)
        energy_cost = np.full(size, s0.energy_cost)

        in_range, fare = s0.in_range, s0.fare
        leg_cost, flight_time, charge_time = s0.leg_energy_cost, s0.flight_time, s0.charge_time
        charging_capacity, parking_capacity = s0.charging_capacity, s0.parking_capacity
        corridor_capacity = s0.corridor_capacity
        while True:
            act = np.flatnonzero(deciding >= 0)
            if act.size == 0:
                break
            rows = np.arange(act.size)
            k = deciding[act]
            now = time_[act]
            origin = location[act, k]

            mask = in_range[origin]  # fancy indexing copies
            mask &= (charging[act] + inbound[act]) < charging_capacity
            if self.closed is not None:
                hour = np.minimum((now - self.day_start).astype(np.int64), self.n_hours - 1)
                mask &= ~self.closed[hour, origin]
            if corridor_capacity is not None:
                mask &= corridor[act, origin] < corridor_capacity
            mask[rows, origin] = True

            # now >= day_start, so truncation is the floor of config.demand_bin
            demand_bin = np.minimum(
                ((now - self.day_start) / self.interval + 0.5).astype(np.int64), self.n_bins - 1
            )
            passengers_now = np.minimum(self.seats, remaining[act, demand_bin, origin])
            profit = fare[origin] * passengers_now - leg_cost[origin]
            profit[rows, origin] = 0.0
            order = _rank(profit, mask, origin)
            count = mask.sum(axis=1)
            gene = decisions[act, k]
            key = np.where(gene < width, genomes[act, k, np.minimum(gene, width - 1)], 0.0)
            rank = np.minimum((key * count).astype(np.int64), count - 1)
            target = order[rows, rank]
            decisions[act, k] = gene + 1

            stay = target == origin
            if stay.any():
                p, a, o, t = act[stay], k[stay], origin[stay], now[stay]
                move = (status[p, a] == CHARGING) & (parked[p, o] < parking_capacity[o])
                pm, om = p[move], o[move]
                charging[pm, om] -= 1
                parked[pm, om] += 1
                status[pm, a[move]] = PARKED
                next_decision[p, a] = self._postponed(a, t + self.stay_time)
            fly = ~stay
            if fly.any():
                p, a, o, d, t = act[fly], k[fly], origin[fly], target[fly], now[fly]
                from_stand = status[p, a] == PARKED
                parked[p[from_stand], o[from_stand]] -= 1
                charging[p[~from_stand], o[~from_stand]] -= 1
                inbound[p, d] += 1
                corridor[p, o, d] += 1
                flight = flights_flown[p, a]
                departure = t + self.delay_mean[o] * self.delay_draws[a, flight]
                landed = departure + self.takeoff_time + flight_time[o, d] + self.landing_time
                b = demand_bin[fly]
                carried = np.minimum(self.seats, remaining[p, b, o, d])
                remaining[p, b, o, d] -= carried
                revenue[p] += carried * fare[o, d]
                energy_cost[p] += leg_cost[o, d]
                status[p, a] = FLYING
                destination[p, a] = d
                arrival[p, a] = landed
                next_decision[p, a] = self._postponed(a, landed + charge_time[o, d])
                flights_flown[p, a] = flight + 1

            # advance each copy to its next decision and land what has arrived by then
            upcoming = next_decision[act]
            nxt = np.argmin(upcoming, axis=1)
            when = upcoming[rows, nxt]
            over = when >= self.day_end
            deciding[act[over]] = -1
            going = act[~over]
            deciding[going] = nxt[~over]
            time_[going] = np.maximum(now[~over], when[~over])
            landing = (status[going] == FLYING) & (arrival[going] <= time_[going][:, None])
            p_index, a = np.nonzero(landing)
            if a.size:
                p = going[p_index]
                o, d = location[p, a], destination[p, a]
                np.subtract.at(inbound, (p, d), 1)
                np.add.at(charging, (p, d), 1)
                np.subtract.at(corridor, (p, o, d), 1)
                status[p, a] = CHARGING
                location[p, a] = d
        return (revenue - energy_cost).reshape(-1, samples).mean(axis=1)


def _replay(start: UAMSim, genome: np.ndarray, decisions_made: np.ndarray) -> UAMSim:
    """Follow ``genome`` from ``start`` in a clone of the simulator; return the finished clone."""
    sim = start.clone()
    decisions = np.array(decisions_made, dtype=np.int64)
    width = genome.shape[1]
    while not sim.finished:
        aircraft = sim.deciding_aircraft()
        gene = int(decisions[aircraft])
        key = float(genome[aircraft, gene]) if gene < width else 0.0
        sim.step(_decode(sim, key, sim.feasible_destinations()))
        decisions[aircraft] = gene + 1
    return sim


def _ga_settings(**settings: Any) -> dict[str, Any]:
    """The genetic algorithm's settings, checked (one-line ValueError naming a bad one)."""
    checked = {
        "clairvoyant": _check_bool("clairvoyant", settings["clairvoyant"]),
        "population_size": check_positive_int("population_size", settings["population_size"]),
        "generations": check_positive_int("generations", settings["generations"]),
        "mutation_rate": _check_probability("mutation_rate", settings["mutation_rate"]),
        "crossover_rate": _check_probability("crossover_rate", settings["crossover_rate"]),
        "tournament": check_positive_int("tournament", settings["tournament"]),
        "greedy_seeding": _check_bool("greedy_seeding", settings["greedy_seeding"]),
        "time_limit": check_time_limit(settings["time_limit"]),
    }
    elite = settings["elite"]
    if isinstance(elite, bool) or not isinstance(elite, (int, np.integer)) or elite < 0:
        raise ValueError(f"elite must be a non-negative integer, got {elite!r}")
    if elite >= checked["population_size"]:
        raise ValueError(
            f"elite must be smaller than population_size ({checked['population_size']}), "
            f"got {elite}"
        )
    samples = settings["demand_samples"]
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 0:
        raise ValueError(f"demand_samples must be a non-negative integer, got {samples!r}")
    if checked["clairvoyant"] and samples:
        raise ValueError("demand_samples applies to plans without clairvoyance (clairvoyant=False)")
    return {**checked, "elite": int(elite), "demand_samples": int(samples)}


def solve_ga(
    source: Any,
    scenario: UAMScenario | None = None,
    clairvoyant: bool = False,
    population_size: int = 64,
    generations: int = 60,
    mutation_rate: float = 0.002,
    crossover_rate: float = 0.9,
    elite: int = 2,
    tournament: int = 3,
    greedy_seeding: bool = True,
    demand_samples: int = 0,
    time_limit: float = 60.0,
    rng: np.random.Generator | int | None = None,
) -> Solution:
    """Plan a day with a genetic algorithm over destination choices (module docstring).

    Args:
        source: a UAM fleet env after reset (plans its current day from 06:00), a
            :class:`UAMSim` after reset, or a :class:`UAMConfig` with ``scenario``.
        scenario: the day (default: the env's or simulator's).
        clairvoyant: plan on the realised day (demand, delays, closures, downtime) instead of
            the day known at 06:00 (:func:`expected_scenario`).
        population_size: genomes per generation (at least ``elite + 1``).
        generations: generations after the initial population.
        mutation_rate: probability that each gene is reset to a uniform random key.
        crossover_rate: probability that a child mixes two parents (aircraft rows drawn from
            either with equal probability) instead of copying one.
        elite: best genomes carried unchanged into the next generation.
        tournament: genomes drawn per tournament when selecting a parent.
        greedy_seeding: start from the greedy genome (all zeros) and perturbations of it
            (each gene reset with a probability from 1% to 20%); else from random keys.
        demand_samples: without clairvoyance, 0 plans on the expected demand rounded to
            whole passengers; K > 0 makes the fitness the mean profit over K Poisson draws
            of the day's demand around its expectation (a sample average, drawn once per
            plan), so that the plan does not fit one particular count of passengers.
            Clairvoyant plans use the realised demand (K must be 0).
        time_limit: seconds; no generation starts when the last one would not end in time.
        rng: a numpy Generator or seed (the planning is reproducible when the generations
            end before the time limit).

    Returns:
        A :class:`Solution`: ``objective`` the planned day's profit (dollars; the mean over
        the demand draws with ``demand_samples``) of the best genome replayed in ``UAMSim``,
        ``status`` ``feasible``, ``bound`` None, ``wall_time`` seconds. ``metadata``:
        ``genome`` ((A, M) keys), ``greedy_profit`` (the all-zero genome's profit on the
        planned day), ``history`` (best profit after each generation), ``generations`` run,
        ``evaluations``, ``planned_on`` ("expected" or "realised"), ``demand_samples``,
        ``batch_profit`` (the population simulator's profit of the genome), ``time_limit``.
    """
    who = "solve_ga"
    config, scenario = _config_and_scenario(source, scenario, who)
    if scenario is None:
        raise ValueError("solve_ga needs a day: pass an env or simulator after reset, or scenario=")
    settings = _ga_settings(
        clairvoyant=clairvoyant,
        population_size=population_size,
        generations=generations,
        mutation_rate=mutation_rate,
        crossover_rate=crossover_rate,
        elite=elite,
        tournament=tournament,
        greedy_seeding=greedy_seeding,
        demand_samples=demand_samples,
        time_limit=time_limit,
    )
    clairvoyant, population_size, generations = (
        settings["clairvoyant"],
        settings["population_size"],
        settings["generations"],
    )
    mutation_rate, crossover_rate = settings["mutation_rate"], settings["crossover_rate"]
    elite, tournament = settings["elite"], settings["tournament"]
    greedy_seeding, demand_samples = settings["greedy_seeding"], settings["demand_samples"]
    time_limit = settings["time_limit"]
    if not isinstance(rng, np.random.Generator):
        if rng is not None and (isinstance(rng, bool) or not isinstance(rng, (int, np.integer))):
            raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {rng!r}")
        rng = np.random.default_rng(rng)

    began = time.perf_counter()
    planned = scenario if clairvoyant else expected_scenario(scenario)
    start = UAMSim(config, record=False)
    start.reset(scenario=planned)
    n_aircraft, width = config.n_aircraft, genes_per_aircraft(config)
    decisions_made = np.zeros(n_aircraft, dtype=np.int64)
    batch = _FleetBatch(start, decisions_made)
    demands = None
    if demand_samples:
        demands = rng.poisson(
            scenario.expected_demand, size=(demand_samples, *scenario.expected_demand.shape)
        ).astype(np.int64)

    shape = (n_aircraft, width)
    if greedy_seeding:
        population = np.zeros((population_size, *shape))
        noise = np.linspace(0.01, 0.2, max(population_size - 1, 1))
        for index in range(1, population_size):
            reset = rng.random(shape) < noise[index - 1]
            population[index][reset] = rng.random(int(reset.sum()))
    else:
        population = rng.random((population_size, *shape))
    fitness = batch.profits(population, demands)
    evaluations = population_size
    greedy_profit = float(fitness[0]) if greedy_seeding else None
    history = [float(fitness.max())]
    children_count = population_size - elite
    generation_seconds = 0.0
    done = 0
    for _ in range(generations):
        now = time.perf_counter()
        if now - began + generation_seconds > time_limit:
            break
        best = np.argsort(-fitness, kind="stable")[:elite]
        contenders = rng.integers(population_size, size=(2, children_count, tournament))
        winners = np.take_along_axis(
            contenders, np.argmax(fitness[contenders], axis=2)[..., None], axis=2
        )[..., 0]
        children = population[winners[0]].copy()
        other = population[winners[1]]
        mixed = (rng.random(children_count) < crossover_rate)[:, None] & (
            rng.random((children_count, n_aircraft)) < 0.5
        )
        children[mixed] = other[mixed]
        mutated = rng.random(children.shape) < mutation_rate
        children[mutated] = rng.random(int(mutated.sum()))
        child_fitness = batch.profits(children, demands)
        evaluations += children_count
        population = np.concatenate([population[best], children])
        fitness = np.concatenate([fitness[best], child_fitness])
        history.append(float(fitness.max()))
        generation_seconds = time.perf_counter() - now
        done += 1

    winner = int(np.argmax(fitness))
    genome = population[winner].copy()
    if demands is None:
        objective = _replay(start, genome, decisions_made).profit
    else:
        profits = []
        for draw in demands:
            day = UAMSim(config, record=False)
            day.reset(scenario=replace(planned, demand=draw))
            profits.append(_replay(day, genome, decisions_made).profit)
        objective = float(np.mean(profits))
    wall_time = time.perf_counter() - began
    return Solution(
        objective=float(objective),
        status="feasible",
        bound=None,
        wall_time=wall_time,
        metadata={
            "genome": genome,
            "greedy_profit": greedy_profit,
            "history": history,
            "generations": done,
            "evaluations": evaluations,
            "planned_on": "realised" if clairvoyant else "expected",
            "demand_samples": demand_samples,
            "batch_profit": float(fitness[winner]),
            "time_limit": time_limit,
        },
    )


class _PlanFollower(BaselinePolicy):
    """Shared plumbing of the planning policies: plan at reset, follow during the day."""

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self.sim = _uam_sim(env, type(self).__name__)
        self.env = env
        self.solution: Solution | None = None
        self._planned_for: UAMScenario | None = None
        self._last_decision = -1
        self._last_action = 0

    def reset(self, env: gym.Env) -> None:
        """Plan the new day of ``env`` (the runner's evaluation env)."""
        self.env = env
        self.sim = _started_sim(env, type(self).__name__)
        self._plan()

    def _plan(self) -> None:
        raise NotImplementedError

    def _ensure_plan(self) -> None:
        """Plan if the env moved to another day (or replays one) without ``reset(env)``."""
        sim = _started_sim(self.env, type(self).__name__)
        if (
            sim is not self.sim
            or sim.scenario is not self._planned_for
            or sim.decisions < self._last_decision
        ):
            self.sim = sim
            self._plan()

    def _choose(self, mask: np.ndarray) -> int:
        raise NotImplementedError

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The planned destination of the deciding aircraft (see the class docstring)."""
        self._ensure_plan()
        mask = _allowed(self.sim, action_masks, type(self).__name__)
        # one choice per decision: a second call for the same decision repeats the first
        if self.sim.decisions != self._last_decision:
            self._last_decision = self.sim.decisions
            self._last_action = self._choose(mask)
        return np.int64(self._last_action), state


class GeneticAlgorithmPolicy(_PlanFollower):
    """Plans each day with :func:`solve_ga` at reset, then follows the plan.

    At each decision the deciding aircraft's next gene is decoded against the realised
    feasible destinations, ranked by immediate profit (module docstring): where the day goes
    as planned (``clairvoyant=True``: always) the planned choice is repeated; where it departs
    (realised demand, delays, closures, downtime), the gene still picks a feasible
    destination, by its rank. Past the plan's genes an aircraft acts greedily.

    The planning time of the last day is :attr:`last_plan_seconds` (also
    ``solution.wall_time``), the decision time per day to compare with a learned policy.

    Args:
        env: the UAM fleet env (``opsrl/UAMFleet-v0``).
        seed: seed of the genetic algorithm (one stream over the days).
        clairvoyant: plan on the realised day instead of the expected one.
        population_size, generations, mutation_rate, crossover_rate, elite, tournament,
        greedy_seeding, demand_samples, time_limit: as :func:`solve_ga` (defaults: 64
        genomes, 60 generations, gene reset probability 0.002, crossover 0.9, 2 elites,
        tournaments of 3, greedy seeding, the rounded expected demand, 60 s).
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        clairvoyant: bool = False,
        population_size: int = 64,
        generations: int = 60,
        mutation_rate: float = 0.002,
        crossover_rate: float = 0.9,
        elite: int = 2,
        tournament: int = 3,
        greedy_seeding: bool = True,
        demand_samples: int = 0,
        time_limit: float = 60.0,
    ) -> None:
        super().__init__(env, seed=seed)
        self.settings = _ga_settings(
            clairvoyant=clairvoyant,
            population_size=population_size,
            generations=generations,
            mutation_rate=mutation_rate,
            crossover_rate=crossover_rate,
            elite=elite,
            tournament=tournament,
            greedy_seeding=greedy_seeding,
            demand_samples=demand_samples,
            time_limit=time_limit,
        )
        #: seconds the last day's planning took
        self.last_plan_seconds: float | None = None
        self.genome: np.ndarray | None = None

    def _plan(self) -> None:
        sim = self.sim
        self.solution = solve_ga(sim, rng=self.rng, **self.settings)
        self.genome = self.solution.metadata["genome"]
        self.last_plan_seconds = self.solution.wall_time
        self._planned_for = sim.scenario
        self._decisions = _decisions_per_aircraft(sim)
        self._last_decision = -1

    def _choose(self, mask: np.ndarray) -> int:
        aircraft = self.sim.deciding_aircraft()
        gene = int(self._decisions[aircraft])
        self._decisions[aircraft] = gene + 1
        key = float(self.genome[aircraft, gene]) if gene < self.genome.shape[1] else 0.0
        return _decode(self.sim, key, mask)


# --------------------------------------------------------------------------------------------
# Time-expanded model
# --------------------------------------------------------------------------------------------


def _slot_bins(config: UAMConfig, slot_hours: float, n_slots: int) -> list[range]:
    """The demand bins each slot overlaps."""
    bins = []
    for slot in range(n_slots):
        first = config.day_start + slot * slot_hours
        last = min(first + slot_hours, config.day_end)
        # a bin boundary within 1e-9 h of the slot's end belongs to the next slot
        bins.append(range(config.demand_bin(first), config.demand_bin(last - 1e-9) + 1))
    return bins


def _open_routes(
    config: UAMConfig, route_closed: np.ndarray | None, slot_hours: float, n_slots: int
) -> np.ndarray:
    """(S, N, N) bool: a flight may be decided in the slot (the route is open in at least one
    closure hour the slot overlaps)."""
    n = config.n_vertiports
    if route_closed is None or not route_closed.any():
        return np.ones((n_slots, n, n), dtype=bool)
    open_ = np.zeros((n_slots, n, n), dtype=bool)
    for slot in range(n_slots):
        first = config.day_start + slot * slot_hours
        last = min(first + slot_hours, config.day_end) - 1e-9
        for hour in range(config.closure_hour(first), config.closure_hour(last) + 1):
            open_[slot] |= ~route_closed[hour]
    return open_


class _Columns:
    """Columns (variables) of a sparse model, added block by block."""

    def __init__(self) -> None:
        self.count = 0
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.objective: list[np.ndarray] = []
        self.integer: list[np.ndarray] = []

    def add(self, upper: np.ndarray, objective: Any = 0.0, integer: bool = False) -> np.ndarray:
        """Add ``upper.size`` columns with lower bound 0; return their indices."""
        upper = np.asarray(upper, dtype=np.float64).ravel()
        index = self.count + np.arange(upper.size)
        self.count += upper.size
        self.lower.append(np.zeros(upper.size))
        self.upper.append(upper)
        self.objective.append(np.broadcast_to(np.asarray(objective, np.float64), upper.shape))
        self.integer.append(np.full(upper.size, integer))
        return index


class _Rows:
    """Rows (constraints) of a sparse model as coordinate lists."""

    def __init__(self) -> None:
        self.count = 0
        self.lower: list[np.ndarray] = []
        self.upper: list[np.ndarray] = []
        self.entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Add rows with the given bounds; return their indices."""
        lower = np.asarray(lower, dtype=np.float64).ravel()
        index = self.count + np.arange(lower.size)
        self.count += lower.size
        self.lower.append(lower)
        self.upper.append(
            np.broadcast_to(np.asarray(upper, np.float64).ravel(), lower.shape).copy()
        )
        return index

    def put(self, rows: np.ndarray, columns: np.ndarray, value: Any) -> None:
        """Coefficients ``value`` at ``(rows, columns)`` (rows < 0 are skipped)."""
        rows, columns = np.ravel(rows), np.ravel(columns)
        values = np.broadcast_to(np.asarray(value, np.float64), rows.shape).ravel()
        keep = (rows >= 0) & (columns >= 0)
        self.entries.append((rows[keep], columns[keep], values[keep]))


class _Network:
    """The time-expanded model of one day (module docstring) as sparse arrays: maximise
    ``objective @ v`` s.t. ``row_lower <= matrix @ v <= row_upper``, ``0 <= v <= upper``.

    Column index arrays (-1 where there is no column): ``flight`` (S, N, N) flights decided
    per slot and pair; ``hold`` (S, N); ``passengers`` (P, N, N); ``start`` (N,) or None when
    the fleet's start is given (``start_fleet``).
    """

    def __init__(
        self,
        config: UAMConfig,
        distance: np.ndarray,
        fare: np.ndarray,
        demand_table: np.ndarray,
        start_fleet: np.ndarray | None,
        route_closed: np.ndarray | None,
        slot_hours: float,
    ) -> None:
        n, fleet, seats = config.n_vertiports, config.n_aircraft, config.seats
        legs = leg_matrices(config, distance)
        in_range = legs["in_range"]
        if not in_range.any():
            raise ValueError("no pair of vertiports is within aircraft_range: nothing can fly")
        cycle = legs["cycle_time"]
        shortest = float(cycle[in_range].min())
        if slot_hours > shortest:
            raise ValueError(
                f"slot_hours must be at most the shortest flight cycle ({shortest:.4f} h), so "
                f"that every flight arc spans at least one slot; got {slot_hours}"
            )
        self.slot_hours = slot_hours
        self.n_slots = n_slots = math.ceil(config.day_length / slot_hours - 1e-9)
        # a hair shorter where cycle / slot_hours is within rounding of an integer: still a
        # relaxation
        span = np.floor(cycle / slot_hours - 1e-9).astype(np.int64)
        airborne = config.takeoff_time + legs["flight_time"] + config.landing_time
        corridor_slots = np.floor(airborne / slot_hours - 1e-9).astype(np.int64)
        corridor = config.corridor_capacity
        ground_capacity = config.parking_capacities + config.charging_capacities
        columns, rows = _Columns(), _Rows()

        # flights x[s, i, j]: at most `corridor` per slot when a flight stays in its corridor
        # for a whole slot, since those are then airborne together at the slot's end
        s_, i_, j_ = np.nonzero(_open_routes(config, route_closed, slot_hours, n_slots) & in_range)
        limit = np.full(s_.shape, float(fleet))
        if corridor is not None:
            limit[corridor_slots[i_, j_] >= 1] = min(corridor, fleet)
        self.flight = np.full((n_slots, n, n), -1, dtype=np.int64)
        self.flight[s_, i_, j_] = columns.add(limit, -legs["energy_cost"][i_, j_], integer=True)
        flight = self.flight[s_, i_, j_]
        self.hold = columns.add(np.full(n_slots * n, float(fleet)), integer=True).reshape(
            n_slots, n
        )
        # aircraft that decided to fly to j and whose arc has not reached j yet
        inbound = columns.add(np.tile(config.charging_capacities, n_slots)).reshape(n_slots, n)
        b_, pi_, pj_ = np.nonzero(in_range[None] & (demand_table > 0))
        self.passengers = np.full(demand_table.shape, -1, dtype=np.int64)
        self.passengers[b_, pi_, pj_] = columns.add(demand_table[b_, pi_, pj_], fare[pi_, pj_])
        self.start_fleet = None if start_fleet is None else np.asarray(start_fleet, np.int64)
        self.start = None
        if start_fleet is None:
            self.start = columns.add(config.parking_capacities, integer=True)

        # flow conservation at (s, i): arrivals + hold in - departures - hold out = -start
        balance = np.zeros((n_slots, n))
        if self.start_fleet is not None:
            balance[0] = -self.start_fleet
        flow = rows.add(balance, balance).reshape(n_slots, n)
        arrive = s_ + span[i_, j_]
        rows.put(flow[s_, i_], flight, -1.0)
        rows.put(
            np.where(arrive < n_slots, flow[np.minimum(arrive, n_slots - 1), j_], -1), flight, 1.0
        )
        rows.put(flow, self.hold, -1.0)
        rows.put(flow[1:], self.hold[:-1], 1.0)
        if self.start is not None:
            rows.put(flow[0], self.start, 1.0)
            total = rows.add(np.array([fleet]), fleet)
            rows.put(np.repeat(total, n), self.start, 1.0)

        # inbound[s, j] = inbound[s-1, j] + flights to j decided in s - flights reaching j in s
        pipeline = rows.add(np.zeros(n_slots * n), 0.0).reshape(n_slots, n)
        rows.put(pipeline, inbound, 1.0)
        rows.put(pipeline[1:], inbound[:-1], -1.0)
        rows.put(pipeline[s_, j_], flight, -1.0)
        rows.put(
            np.where(arrive < n_slots, pipeline[np.minimum(arrive, n_slots - 1), j_], -1),
            flight,
            1.0,
        )
        # chargers (the inbound columns' upper bound) and stands or chargers
        ground = rows.add(np.full(n_slots * n, -np.inf), np.tile(ground_capacity, n_slots))
        ground = ground.reshape(n_slots, n)
        rows.put(ground, inbound, 1.0)
        rows.put(ground, self.hold, 1.0)

        # corridor[s, i, j]: flights on (i, j) decided in the last corridor_slots slots
        if corridor is not None:
            pairs = np.argwhere(in_range & (corridor_slots >= 2))
            if pairs.size:
                p_index = np.full((n, n), -1, dtype=np.int64)
                p_index[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
                running = columns.add(np.full(n_slots * len(pairs), float(corridor)))
                running = running.reshape(n_slots, len(pairs))
                window = rows.add(np.zeros(running.size), 0.0).reshape(running.shape)
                rows.put(window, running, 1.0)
                rows.put(window[1:], running[:-1], -1.0)
                pair = p_index[i_, j_]
                has = pair >= 0
                leave = s_ + corridor_slots[i_, j_]
                rows.put(window[s_[has], pair[has]], flight[has], -1.0)
                out = has & (leave < n_slots)
                rows.put(window[leave[out], pair[out]], flight[out], 1.0)

        # passengers of (b, i, j) <= seats x flights of (i, j) decided in slots overlapping b
        served = self.passengers[b_, pi_, pj_]
        carry = rows.add(np.full(served.size, -np.inf), 0.0)
        rows.put(carry, served, 1.0)
        row_of = np.full(demand_table.shape, -1, dtype=np.int64)
        row_of[b_, pi_, pj_] = carry
        slot_bins = _slot_bins(config, slot_hours, n_slots)
        for offset in range(max(len(b) for b in slot_bins)):
            first_bin = np.array(
                [b.start + offset if b.start + offset < b.stop else -1 for b in slot_bins]
            )
            bin_ = first_bin[s_]
            ok = bin_ >= 0
            rows.put(row_of[bin_[ok], i_[ok], j_[ok]], flight[ok], -float(seats))

        self.lower = np.concatenate(columns.lower)
        self.upper = np.concatenate(columns.upper)
        self.objective = np.concatenate(columns.objective)
        self.integer = np.concatenate(columns.integer)
        self.row_lower = np.concatenate(rows.lower)
        self.row_upper = np.concatenate(rows.upper)
        entries = [np.concatenate(part) for part in zip(*rows.entries, strict=True)]
        self.matrix = sp.csr_matrix(
            (entries[2], (entries[0], entries[1])), shape=(rows.count, columns.count)
        )
        self.n_slots = n_slots

    def value(self, values: np.ndarray, index: np.ndarray) -> np.ndarray:
        """Column values at ``index`` (0 where the index is -1)."""
        return np.where(index >= 0, values[np.maximum(index, 0)], 0.0)


def _solve_network(
    network: _Network, time_limit: float, integer: bool
) -> tuple[mb.SolveStatus, float | None, float | None, np.ndarray | None]:
    """``(status, objective, bound, values)`` of the network by HiGHS (OR-Tools model
    builder): the LP relaxation by interior point, or the MIP (integer flows)."""
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(
        network.lower,
        network.upper,
        network.objective,
        network.row_lower,
        network.row_upper,
        network.matrix,
    )
    model.helper.set_maximize(True)
    if integer:
        for column in np.flatnonzero(network.integer):
            model.helper.set_var_integrality(int(column), True)
    solver = mb.Solver("highs")
    solver.set_time_limit_in_seconds(time_limit)
    # the LP is highly degenerate (flights can shift between slots at equal profit): dual
    # simplex needs minutes where the interior point method takes seconds
    solver.set_solver_specific_parameters(
        "output_flag=false" if integer else "solver=ipm\noutput_flag=false"
    )
    status = solver.solve(model)
    if status not in (mb.SolveStatus.OPTIMAL, mb.SolveStatus.FEASIBLE):
        return status, None, None, None
    values = solver.values(model.get_variables()).to_numpy(dtype=np.float64)
    objective = float(solver.objective_value)
    bound = float(solver.best_objective_bound)
    if not math.isfinite(bound):
        bound = None
    return status, objective, bound, values


def solve(
    source: Any,
    scenario: UAMScenario | None = None,
    demand: Literal["expected", "realised"] = "realised",
    time_limit: float = 30.0,
    slot_hours: float = 0.1,
    integer: bool = False,
) -> Solution:
    """Maximise a day's profit on the time-expanded network (module docstring).

    Args:
        source: a UAM fleet env after reset (its current day), a :class:`UAMSim` after reset,
            or a :class:`UAMConfig` (or a mapping of its fields) with or without ``scenario``.
        scenario: the day (default: the env's or simulator's). Without any day, the layout
            comes from the config (``layout_seed`` or ``vertiport_positions``), the fleet may
            start anywhere within the stands and ``demand`` must be ``"expected"``.
        demand: ``"realised"``: the day's demand and route closures; the optimum and the
            bound are upper bounds on every policy's profit that day. ``"expected"``: the
            expected demand and no closures, a plan for the average day.
        time_limit: seconds for the solver (both solves together with ``integer=True``).
        slot_hours: slot length; at most the shortest flight cycle (take-off + cruise +
            landing + recharge) of any pair in range.
        integer: after the LP relaxation, solve the MILP with integer flows (branch and
            bound, HiGHS) in the time left. Small days only: on the default day the MILP's
            root LP alone does not finish in minutes (the LP is degenerate), and the MILP's
            optimum is within a fraction of a percent of the LP's.

    Returns:
        A :class:`Solution`. Without ``integer``: ``status`` ``optimal`` when the LP
        relaxation is solved (``objective`` = ``bound`` = its optimum, dollars), ``unknown``
        otherwise (both None). With ``integer``: ``optimal`` or ``feasible`` for the MILP's
        best solution (``objective``), ``bound`` the smaller of the LP optimum and the MILP's
        bound, or ``bound`` when only the LP was solved. ``wall_time`` in seconds.
        ``metadata``: ``flights`` ((S, N, N) planned flights per decision slot and pair,
        fractional from the LP), ``passengers`` ((P, N, N)), ``hold`` ((S, N)), ``start``
        ((N,) aircraft per vertiport at the start), ``lp_bound``, ``model`` ("lp" or
        "milp": where ``objective`` and the plan come from), ``slot_hours``, ``n_slots``,
        ``demand``, ``status_name`` (HiGHS's), ``variables``, ``constraints``, ``nonzeros``,
        ``time_limit``.
    """
    who = "solve"
    config, scenario = _config_and_scenario(source, scenario, who)
    if demand not in DEMANDS:
        raise ValueError(f"demand must be one of {', '.join(DEMANDS)}, got {demand!r}")
    time_limit = check_time_limit(time_limit)
    slot_hours = _check_positive_number("slot_hours", slot_hours)
    integer = _check_bool("integer", integer)
    if scenario is None and demand == "realised":
        raise ValueError(
            "demand='realised' needs a day: pass an env or simulator after reset, or scenario="
        )

    began = time.perf_counter()
    if scenario is not None:
        distance, fare = scenario.distance, scenario.fare
        start_fleet = np.bincount(scenario.initial_location, minlength=config.n_vertiports)
        table = scenario.demand if demand == "realised" else scenario.expected_demand
        route_closed = scenario.route_closed if demand == "realised" else None
    else:
        if config.layout_seed is None and config.vertiport_positions is None:
            raise ValueError(
                "solve without a scenario needs a fixed layout (config.layout_seed or "
                "config.vertiport_positions)"
            )
        positions = vertiport_layout(config)
        distance = distance_matrix(positions)
        fare = fare_table(config, distance)
        table = expected_demand_table(config, urban_vertiports(config, positions))
        start_fleet, route_closed = None, None
    network = _Network(
        config, distance, fare, np.asarray(table, np.float64), start_fleet, route_closed, slot_hours
    )

    status, objective, bound, values = _solve_network(network, time_limit, integer=False)
    lp_bound = bound if status == mb.SolveStatus.OPTIMAL else None
    result = "optimal" if lp_bound is not None else "unknown"
    if lp_bound is None:
        objective, values = None, None
    else:
        objective = bound = lp_bound
    model = "lp"
    if integer:
        left = time_limit - (time.perf_counter() - began)
        mip = (
            _solve_network(network, left, integer=True) if left > 0 else (status, None, None, None)
        )
        status = mip[0]
        if mip[1] is not None:
            model, objective, values = "milp", mip[1], mip[3]
            result = "optimal" if status == mb.SolveStatus.OPTIMAL else "feasible"
            bounds = [b for b in (lp_bound, mip[2]) if b is not None]
            bound = min(bounds) if bounds else None
        elif lp_bound is not None:
            result, objective = "bound", None
    wall_time = time.perf_counter() - began

    metadata: dict[str, Any] = {
        "lp_bound": lp_bound,
        "model": model,
        "slot_hours": slot_hours,
        "n_slots": network.n_slots,
        "demand": demand,
        "status_name": status.name,
        "variables": int(network.matrix.shape[1]),
        "constraints": int(network.matrix.shape[0]),
        "nonzeros": int(network.matrix.nnz),
        "time_limit": time_limit,
    }
    if values is not None:
        start = (
            network.start_fleet
            if network.start is None
            else np.rint(values[network.start]).astype(np.int64)
        )
        metadata.update(
            flights=network.value(values, network.flight),
            passengers=network.value(values, network.passengers),
            hold=values[network.hold],
            start=start,
        )
    return Solution(
        objective=objective, status=result, bound=bound, wall_time=wall_time, metadata=metadata
    )


class MILPPolicy(_PlanFollower):
    """Solves the day's time-expanded model (:func:`solve`) at reset and follows its flights.

    With ``demand="realised"`` (default) the model sees the realised day's demand and route
    closures: a clairvoyant reference, not a policy one could run, whose bound is an upper
    bound on every policy's profit that day; :meth:`episode_bound` returns it in the env's
    reward units (divided by ``env.reward_scale``, by default the day's potential revenue:
    the return of both reward modes is the day's profit over that scale). With
    ``demand="expected"`` it plans the expected day and :meth:`episode_bound` returns None
    (that model bounds nothing about the realised day).

    Following the plan: the model's flights (fractional from the LP) leave vertiport i in
    slot s. When an aircraft at i decides in slot s, the flights planned from i to each j in
    the slots from ``max_lateness_hours`` before s up to s and not yet flown are summed (the
    model's arcs are a little shorter than real cycles, so the real fleet runs late); among
    the feasible j with at least half a flight left it takes the best-paying one now and
    strikes one flight off the plan, earliest slots first. With no such j it acts greedily
    (:class:`GreedyProfitPolicy`).

    Args:
        env: the UAM fleet env (``opsrl/UAMFleet-v0``).
        seed: unused (the solver is deterministic); kept for the runner.
        demand: ``"realised"`` or ``"expected"``.
        time_limit: solver seconds per day.
        slot_hours: slot length of the model.
        integer: solve the MILP after the LP (see :func:`solve`; small days only).
        max_lateness_hours: how late a planned flight may still be flown.
    """

    def __init__(
        self,
        env: gym.Env,
        seed: int | None = None,
        demand: Literal["expected", "realised"] = "realised",
        time_limit: float = 30.0,
        slot_hours: float = 0.1,
        integer: bool = False,
        max_lateness_hours: float = 1.0,
    ) -> None:
        super().__init__(env, seed=seed)
        if demand not in DEMANDS:
            raise ValueError(f"demand must be one of {', '.join(DEMANDS)}, got {demand!r}")
        self.settings = {
            "demand": demand,
            "time_limit": check_time_limit(time_limit),
            "slot_hours": _check_positive_number("slot_hours", slot_hours),
            "integer": _check_bool("integer", integer),
        }
        if (
            isinstance(max_lateness_hours, bool)
            or not isinstance(max_lateness_hours, (int, float, np.integer, np.floating))
            or not np.isfinite(max_lateness_hours)
            or max_lateness_hours < 0
        ):
            raise ValueError(
                f"max_lateness_hours must be a non-negative number, got {max_lateness_hours!r}"
            )
        self.max_lateness_hours = float(max_lateness_hours)
        #: seconds the last day's solve took
        self.last_plan_seconds: float | None = None

    def _plan(self) -> None:
        sim = self.sim
        self.solution = solve(sim, **self.settings)
        self.last_plan_seconds = self.solution.wall_time
        flights = self.solution.metadata.get("flights")
        self._flights_left = None if flights is None else flights.copy()
        self._planned_for = sim.scenario
        self._last_decision = -1

    def episode_bound(self, env: gym.Env) -> float | None:
        """The model's bound on the realised day's profit, in reward units (None when the
        model planned the expected day or was not solved)."""
        sim = _started_sim(env, type(self).__name__)
        if self.settings["demand"] != "realised":
            return None
        if self.solution is None or sim.scenario is not self._planned_for:
            self.env, self.sim = env, sim
            self._plan()
        if self.solution.bound is None:
            return None
        return self.solution.bound / _reward_scale(env)

    def _choose(self, mask: np.ndarray) -> int:
        sim = self.sim
        origin = int(sim.location[sim.deciding_aircraft()])
        ranked = _rank(immediate_profits(sim), mask, np.int64(origin))[: int(mask.sum())]
        if self._flights_left is not None:
            slot_hours = self.settings["slot_hours"]
            last = len(self._flights_left) - 1
            slot = min(int((sim.time - sim.day_start) / slot_hours), last)
            first = max(0, slot - int(self.max_lateness_hours / slot_hours + 1e-9))
            window = self._flights_left[first : slot + 1, origin]
            planned = window.sum(axis=0)
            for destination in ranked:
                if destination != origin and planned[destination] >= 0.5:
                    # strike one flight off, earliest slots first
                    taken = np.cumsum(window[:, destination])
                    window[:, destination] = np.maximum(taken - 1.0, 0.0) - np.concatenate(
                        [[0.0], np.maximum(taken[:-1] - 1.0, 0.0)]
                    )
                    return int(destination)
        return int(ranked[0])
