"""Event-driven simulator of an electric air-taxi (eVTOL) fleet over one day.

Plain numpy, no Gymnasium: :class:`UAMSim` holds the fleet and vertiport state on a clock in
hours and advances it from one decision to the next. :mod:`opsrl.envs.uam.env` wraps it.

The model (after the precursor of CapTAIN, iamstevepaul/UAM_fleet_Scheduling; see
``shared/specs/uam_ride_sharing_esg_mario.md`` section A and :mod:`opsrl.envs.uam.data`):

- **Decisions**: every aircraft has a next decision time. The aircraft with the earliest one
  (ties: lowest index) decides, and the clock jumps there. It picks a destination vertiport;
  its own vertiport means *stay*: wait ``stay_time`` (15 minutes) and decide again.
- **A flight** from i to j decided at t: the aircraft leaves its stand or charger at i at
  once and waits its take-off delay on the departure pad (not capacity limited), then takes
  ``takeoff_time``, flies ``distance / cruise_speed`` and lands in ``landing_time``; it then
  recharges the leg's energy (``distance x battery_capacity / aircraft_range`` kWh) at
  ``charging_power`` and decides again when full. A charger at j is reserved from the
  decision on, so an arriving aircraft always finds one.
- **Passengers**: the flight carries ``min(seats, remaining demand of (i, j) in the demand
  bin of t)`` passengers, each paying ``fare[i, j]``; the energy is paid at
  ``electricity_price``. Revenue and energy cost are booked at the decision.
- **Occupancy** per vertiport: ``parked`` (on a stand), ``charging`` (on a charger: charging,
  or charged and not yet moved) and ``inbound`` (flying there with a reserved charger).
  Invariants: ``parked <= parking_capacity`` and ``charging + inbound <= charging_capacity``.
  An aircraft that stays after charging moves to a stand if one is free and otherwise keeps
  its charger, so *staying is always feasible* and the fleet never deadlocks.
- **Feasible destinations** j != i: within range (every leg starts on a full battery),
  a charger free at j (counting reservations), the route open this hour, and fewer than
  ``corridor_capacity`` flights on (i, j) between their decision and their landing.
- **Downtime**: a decision that falls inside an aircraft's grounding window waits until the
  window ends (a flight under way completes).
- **End of day**: when no decision is due before ``day_end``. Flights decided before then
  complete; their fares and energy count.

The clock never goes back, each decision moves the deciding aircraft's next decision at
least ``min(stay_time, takeoff_time + landing_time)`` ahead, so a day has finitely many
decisions. All randomness is in the :class:`~opsrl.envs.uam.data.UAMScenario` drawn at
reset: the sim itself holds no random generator, and :meth:`UAMSim.clone` gives an
independent copy for look-ahead (genetic algorithm, rollouts).
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np

from opsrl.envs.uam.data import UAMConfig, UAMScenario, generate_scenario, leg_matrices

__all__ = ["CHARGING", "FLYING", "PARKED", "STATUS_NAMES", "Decision", "UAMSim"]

#: aircraft status codes (``UAMSim.status``)
PARKED, CHARGING, FLYING = 0, 1, 2
STATUS_NAMES = ("parked", "charging", "flying")


class Decision(NamedTuple):
    """What one decision did. A stay has ``destination == origin`` and zero flows."""

    aircraft: int
    origin: int
    destination: int
    #: clock time of the decision
    decision_time: float
    #: take-off start (decision time + take-off delay); = decision time for a stay
    departure_time: float
    #: landing end; = decision time for a stay
    arrival_time: float
    #: the aircraft's next decision (after recharging or waiting, postponed by downtime)
    next_decision_time: float
    #: demand bin of the decision
    demand_bin: int
    passengers: int
    revenue: float
    energy_kwh: float
    energy_cost: float

    @property
    def is_flight(self) -> bool:
        """True for a flight, False for a stay."""
        return self.destination != self.origin

    @property
    def profit(self) -> float:
        """Revenue minus energy cost of this decision."""
        return self.revenue - self.energy_cost


class UAMSim:
    """Fleet and vertiport state with the decision dynamics (model in the module docstring).

    Use: ``sim.reset(rng)`` (or ``sim.reset(scenario=...)``), then while not
    ``sim.finished``: read ``k = sim.deciding_aircraft()`` and ``sim.feasible_destinations()``,
    call ``sim.step(destination)``. ``sim.clone()`` copies the state for look-ahead.

    Static data after reset (read-only): ``config``, ``scenario``, ``distance`` and ``fare``
    (N, N), ``flight_time``, ``leg_energy``, ``charge_time``, ``cycle_time``,
    ``leg_energy_cost`` (N, N), ``in_range`` (N, N) bool, ``parking_capacity`` and
    ``charging_capacity`` (N,). State (numpy arrays updated in place; treat as read-only):

    - ``time`` (hours); ``status`` (A,): ``PARKED``, ``CHARGING`` or ``FLYING``;
    - ``location`` (A,): the vertiport the aircraft is at (its origin while flying);
      ``destination`` (A,): where it flies (= ``location`` when on the ground);
    - ``next_decision_time``, ``departure_time``, ``arrival_time`` (A,) hours;
      ``flights_flown`` (A,);
    - ``parked``, ``charging``, ``inbound`` (N,) and ``corridor_flights`` (N, N) counts;
    - ``remaining_demand`` (P, N, N): passengers not yet carried per demand bin and pair;
    - day totals ``revenue``, ``energy_cost``, ``energy_kwh``, ``passengers_served``,
      ``flights``, ``empty_flights``, ``stays``, ``decisions``;
    - ``log``: the :class:`Decision` list of the day (when ``record=True``).
    """

    def __init__(self, config: UAMConfig | None = None, record: bool = True) -> None:
        self.config = config if config is not None else UAMConfig()
        self.record = bool(record)
        config = self.config
        self.n_vertiports = config.n_vertiports
        self.n_aircraft = config.n_aircraft
        self.parking_capacity = config.parking_capacities
        self.charging_capacity = config.charging_capacities
        self.corridor_capacity = config.corridor_capacity
        self.day_start = float(config.day_start)
        self.day_end = float(config.day_end)
        self.scenario: UAMScenario | None = None
        self._started = False

    # ------------------------------------------------------------------ setup
    def reset(
        self,
        rng: np.random.Generator | int | None = None,
        scenario: UAMScenario | None = None,
    ) -> None:
        """Start a day: draw a scenario from ``rng`` (Generator or int seed), or replay the
        given ``scenario``; every aircraft parked at its start vertiport, first decision at
        ``day_start`` (or after its grounding, if that covers the start)."""
        config = self.config
        if scenario is None:
            scenario = generate_scenario(config, rng)
        else:
            if not isinstance(scenario, UAMScenario):
                raise ValueError(f"scenario must be a UAMScenario, got {type(scenario).__name__}")
            scenario.check(config)
        self.scenario = scenario
        n, a = self.n_vertiports, self.n_aircraft

        self.distance = scenario.distance
        self.fare = scenario.fare
        legs = leg_matrices(config, scenario.distance)
        self.flight_time = legs["flight_time"]
        self.leg_energy = legs["energy"]
        self.charge_time = legs["charge_time"]
        self.cycle_time = legs["cycle_time"]
        self.leg_energy_cost = legs["energy_cost"]
        self.in_range = legs["in_range"]
        self._closures = bool(scenario.route_closed.any())
        self._downtime_start = scenario.downtime_start
        self._downtime_end = scenario.downtime_end

        self.time = self.day_start
        self.status = np.full(a, PARKED, dtype=np.int64)
        self.location = scenario.initial_location.astype(np.int64)
        self.destination = self.location.copy()
        self.departure_time = np.full(a, self.day_start)
        self.arrival_time = np.full(a, self.day_start)
        self.next_decision_time = np.full(a, self.day_start)
        self.flights_flown = np.zeros(a, dtype=np.int64)
        # energy and recharge time of each aircraft's last leg (battery level while charging)
        self._last_leg_energy = np.zeros(a)
        self._last_charge_time = np.zeros(a)
        for aircraft in range(a):
            self.next_decision_time[aircraft] = self._postponed(aircraft, self.day_start)
        self.parked = np.bincount(self.location, minlength=n).astype(np.int64)
        self.charging = np.zeros(n, dtype=np.int64)
        self.inbound = np.zeros(n, dtype=np.int64)
        self.corridor_flights = np.zeros((n, n), dtype=np.int64)
        self.remaining_demand = scenario.demand.copy()
        self._total_demand = scenario.total_demand
        self._potential_revenue = scenario.potential_revenue
        self._mask: np.ndarray | None = None

        self.revenue = 0.0
        self.energy_cost = 0.0
        self.energy_kwh = 0.0
        self.passengers_served = 0
        self.flights = 0
        self.empty_flights = 0
        self.stays = 0
        self.decisions = 0
        self.log: list[Decision] = []
        self._started = True
        self._advance()

    def clone(self) -> UAMSim:
        """An independent copy of the current state (the scenario and static tables are
        shared, since nothing changes them)."""
        twin = copy.copy(self)
        for name in (
            "status",
            "location",
            "destination",
            "departure_time",
            "arrival_time",
            "next_decision_time",
            "flights_flown",
            "_last_leg_energy",
            "_last_charge_time",
            "parked",
            "charging",
            "inbound",
            "corridor_flights",
            "remaining_demand",
        ):
            setattr(twin, name, getattr(self, name).copy())
        twin.log = list(self.log)
        return twin

    # ------------------------------------------------------------------ queries
    @property
    def finished(self) -> bool:
        """True when no decision is due before the end of the day."""
        return self._deciding < 0

    def deciding_aircraft(self) -> int:
        """Index of the aircraft that decides now, -1 once the day is over."""
        return self._deciding

    @property
    def demand_bin(self) -> int:
        """Demand bin of the current time."""
        return self.config.demand_bin(self.time)

    def feasible_destinations(self, aircraft: int | None = None) -> np.ndarray:
        """(N,) bool: where ``aircraft`` (default: the deciding one) may go now; its own
        vertiport (stay) is always True. All False once the day is over."""
        self._check_started()
        if aircraft is None or aircraft == self._deciding:
            # several callers ask per decision (env mask, observation, step check)
            if self._mask is None:
                self._mask = self._feasible(self._deciding)
            return self._mask.copy()
        return self._feasible(int(aircraft))

    def _feasible(self, aircraft: int) -> np.ndarray:
        mask = np.zeros(self.n_vertiports, dtype=bool)
        if aircraft < 0 or self.finished:
            return mask
        origin = int(self.location[aircraft])
        mask[:] = self.in_range[origin]
        mask &= (self.charging + self.inbound) < self.charging_capacity
        if self._closures:
            mask &= ~self.scenario.route_closed[self.config.closure_hour(self.time), origin]
        if self.corridor_capacity is not None:
            mask &= self.corridor_flights[origin] < self.corridor_capacity
        mask[origin] = True
        return mask

    def infeasibility_reason(self, destination: int, aircraft: int | None = None) -> str | None:
        """Why ``destination`` is not feasible for ``aircraft`` now (None if it is)."""
        if aircraft is None:
            aircraft = self._deciding
        origin = int(self.location[aircraft])
        if destination == origin:
            return None
        if not self.in_range[origin, destination]:
            return (
                f"out of range ({self.distance[origin, destination]:.1f} mi > "
                f"{self.config.aircraft_range} mi)"
            )
        if (
            self.charging[destination] + self.inbound[destination]
            >= self.charging_capacity[destination]
        ):
            return f"no free charger at vertiport {destination}"
        if (
            self._closures
            and self.scenario.route_closed[self.config.closure_hour(self.time), origin, destination]
        ):
            return "route closed by weather this hour"
        if (
            self.corridor_capacity is not None
            and self.corridor_flights[origin, destination] >= self.corridor_capacity
        ):
            return f"corridor full ({self.corridor_capacity} flights under way)"
        return None

    def route_open(self) -> np.ndarray:
        """(N, N) bool: the routes not closed by weather in the current hour."""
        return ~self.scenario.route_closed[self.config.closure_hour(self.time)]

    def is_down(self, time: float | None = None) -> np.ndarray:
        """(A,) bool: aircraft inside their grounding window at ``time`` (default: now)."""
        t = self.time if time is None else time
        return (self._downtime_start <= t) & (t < self._downtime_end)

    def state_of_charge(self) -> np.ndarray:
        """(A,) battery level now, as a fraction of capacity (linear in flight and charging)."""
        capacity = self.config.battery_capacity
        origin, destination = self.location, self.destination
        leg = self.leg_energy[origin, destination]
        level = np.ones(self.n_aircraft)
        flying = self.status == FLYING
        if flying.any():
            start = self.departure_time[flying]
            span = np.maximum(self.arrival_time[flying] - start, 1e-12)
            done = np.clip((self.time - start) / span, 0.0, 1.0)
            level[flying] = 1.0 - done * leg[flying] / capacity
        charging = self.status == CHARGING
        if charging.any():
            # recharging runs linearly from the landing until the battery is full
            start = self.arrival_time[charging]
            full = start + self._last_charge_time[charging]
            span = np.maximum(full - start, 1e-12)
            done = np.clip((self.time - start) / span, 0.0, 1.0)
            level[charging] = 1.0 - (1.0 - done) * self._last_leg_energy[charging] / capacity
        return level

    @property
    def profit(self) -> float:
        """Revenue minus energy cost so far."""
        return self.revenue - self.energy_cost

    def kpi(self) -> dict[str, float]:
        """The day's KPIs so far (final once ``finished``)."""
        total, potential = self._total_demand, self._potential_revenue
        return {
            "profit": float(self.profit),
            "revenue": float(self.revenue),
            "energy_cost": float(self.energy_cost),
            "energy_kwh": float(self.energy_kwh),
            "passengers_served": float(self.passengers_served),
            "unserved_demand": float(total - self.passengers_served),
            "total_demand": float(total),
            "flights": float(self.flights),
            "empty_flights": float(self.empty_flights),
            "stays": float(self.stays),
            "load_factor": (
                self.passengers_served / (self.flights * self.config.seats) if self.flights else 0.0
            ),
            "normalised_profit": float(self.profit / potential) if potential > 0 else 0.0,
        }

    # ------------------------------------------------------------------ dynamics
    def step(self, destination: int) -> Decision:
        """The deciding aircraft goes to ``destination`` (its own vertiport: stays); the clock
        then advances to the next decision. Raises ValueError for an infeasible destination."""
        self._check_started()
        if self.finished:
            raise RuntimeError("the day is over; call reset() before step()")
        n = self.n_vertiports
        if isinstance(destination, bool) or not isinstance(destination, int | np.integer):
            raise ValueError(f"destination must be a vertiport index, got {destination!r}")
        destination = int(destination)
        if not 0 <= destination < n:
            raise ValueError(f"destination must be in 0..{n - 1}, got {destination}")
        aircraft = self._deciding
        origin = int(self.location[aircraft])
        reason = self.infeasibility_reason(destination, aircraft)
        if reason is not None:
            raise ValueError(
                f"aircraft {aircraft} cannot fly {origin} -> {destination} at "
                f"t={self.time:.3f}: {reason}"
            )
        now = self.time
        if destination == origin:
            decision = self._stay(aircraft, origin, now)
        else:
            decision = self._fly(aircraft, origin, destination, now)
        self.decisions += 1
        if self.record:
            self.log.append(decision)
        self._advance()
        return decision

    def _stay(self, aircraft: int, origin: int, now: float) -> Decision:
        if (
            self.status[aircraft] == CHARGING
            and self.parked[origin] < self.parking_capacity[origin]
        ):
            # free the charger for arrivals; with no free stand it keeps the charger
            self.charging[origin] -= 1
            self.parked[origin] += 1
            self.status[aircraft] = PARKED
        ready = self._postponed(aircraft, now + self.config.stay_time)
        self.next_decision_time[aircraft] = ready
        self.stays += 1
        return Decision(
            aircraft, origin, origin, now, now, now, ready, self.config.demand_bin(now), 0,
            0.0, 0.0, 0.0,
        )  # fmt: skip

    def _fly(self, aircraft: int, origin: int, destination: int, now: float) -> Decision:
        config = self.config
        if self.status[aircraft] == PARKED:
            self.parked[origin] -= 1
        else:
            self.charging[origin] -= 1
        self.inbound[destination] += 1
        self.corridor_flights[origin, destination] += 1

        flight = int(self.flights_flown[aircraft])
        delay = float(
            self.scenario.takeoff_delay_mean[origin]
            * self.scenario.takeoff_delay_draws[aircraft, flight]
        )
        departure = now + delay
        arrival = (
            departure + config.takeoff_time + self.flight_time[origin, destination]
        ) + config.landing_time
        ready = self._postponed(aircraft, arrival + self.charge_time[origin, destination])

        demand_bin = config.demand_bin(now)
        passengers = int(min(config.seats, self.remaining_demand[demand_bin, origin, destination]))
        self.remaining_demand[demand_bin, origin, destination] -= passengers
        revenue = passengers * float(self.fare[origin, destination])
        energy = float(self.leg_energy[origin, destination])
        energy_cost = float(self.leg_energy_cost[origin, destination])

        self.status[aircraft] = FLYING
        self.destination[aircraft] = destination
        self.departure_time[aircraft] = departure
        self.arrival_time[aircraft] = arrival
        self.next_decision_time[aircraft] = ready
        self.flights_flown[aircraft] = flight + 1
        self.revenue += revenue
        self.energy_cost += energy_cost
        self.energy_kwh += energy
        self.passengers_served += passengers
        self.flights += 1
        self.empty_flights += passengers == 0
        return Decision(
            aircraft, origin, destination, now, departure, arrival, ready, demand_bin,
            passengers, revenue, energy, energy_cost,
        )  # fmt: skip

    def _postponed(self, aircraft: int, time: float) -> float:
        """``time``, or the end of the aircraft's grounding window if ``time`` falls in it."""
        if self._downtime_start[aircraft] <= time < self._downtime_end[aircraft]:
            return float(self._downtime_end[aircraft])
        return float(time)

    def _advance(self) -> None:
        """Move the clock to the next decision and land the flights that arrived by then."""
        aircraft = int(np.argmin(self.next_decision_time))
        when = float(self.next_decision_time[aircraft])
        self._mask = None
        if when >= self.day_end:
            self._deciding = -1
            self.time = max(self.time, self.day_end)
        else:
            self._deciding = aircraft
            self.time = max(self.time, when)
        self._land(self.time)

    def _land(self, time: float) -> None:
        landed = np.flatnonzero((self.status == FLYING) & (self.arrival_time <= time))
        if landed.size == 0:
            return
        origin, destination = self.location[landed], self.destination[landed]
        np.subtract.at(self.inbound, destination, 1)
        np.add.at(self.charging, destination, 1)
        np.subtract.at(self.corridor_flights, (origin, destination), 1)
        self._last_leg_energy[landed] = self.leg_energy[origin, destination]
        self._last_charge_time[landed] = self.charge_time[origin, destination]
        self.status[landed] = CHARGING
        self.location[landed] = destination

    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() before using the simulator")
