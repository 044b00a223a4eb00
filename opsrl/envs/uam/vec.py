"""Batched UAM fleet env: N event-driven days stepped together in numpy, behind the SB3 VecEnv API.

Each copy runs its own day on its own clock (copies decide at different times of their days,
and their days end after different numbers of decisions); a batched step is one decision in
every copy: the deciding aircraft of copy b flies (or stays) per ``actions[b]``, then every
copy's clock jumps to its next decision. The state of all copies lives in (N, ...) arrays and
every part of a step -- feasibility masks, flights and stays, landings, rewards, observations
-- is one vectorised numpy pass over the copies. What stays per copy is drawing a new day
(:func:`~opsrl.envs.uam.data.generate_scenario`, from the copy's own generator) at a reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvObs,
    VecEnvStepReturn,
)

from opsrl.envs.batched import BatchedVecEnv, no_arguments
from opsrl.envs.uam.data import UAMScenario, generate_scenario, leg_matrices
from opsrl.envs.uam.env import (
    DEMAND_FEATURE_CAP,
    VERTIPORT_FEATURES,
    UAMFleetEnv,
    vertiport_edges,
    vertiport_feature_names,
)
from opsrl.envs.uam.sim import CHARGING, FLYING, PARKED, Decision

__all__ = ["UAMFleetVecEnv"]

#: env_method names the batched env answers, like UAMFleetEnv's methods.
SUPPORTED_METHODS = ("action_masks",)
#: get_attr names answered per copy (the rest are attributes shared by all copies)
PER_COPY_ATTRIBUTES = ("action_masks", "scenario", "time", "deciding_aircraft", "kpi")
#: the KPI names of ``info["kpi"]``, in the single env's order
KPI_NAMES = (
    "profit",
    "revenue",
    "energy_cost",
    "energy_kwh",
    "passengers_served",
    "unserved_demand",
    "total_demand",
    "flights",
    "empty_flights",
    "stays",
    "load_factor",
    "normalised_profit",
)


class UAMFleetVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.uam.env.UAMFleetEnv` stepped together.

    ``UAMFleetVecEnv(num_envs, seed=None, **env_kwargs)`` takes the same keyword arguments as
    ``UAMFleetEnv`` (``render_mode`` excepted): both observation kinds (``"graph"`` Dict,
    ``"flat"``), both rewards (``"daily"``, ``"per_flight"``), ``reward_scale``,
    ``invalid_action`` (``"replace"`` or ``"raise"``) and any
    :class:`~opsrl.envs.uam.data.UAMConfig` (uncertainties on or off, any size). Copy i
    reproduces exactly ``UAMFleetEnv(**env_kwargs)`` reset with ``seed=seed + i`` -- the
    convention of SB3's ``make_vec_env`` and ``DummyVecEnv`` -- observation for observation,
    reward for reward (float32), including across automatic resets: each copy keeps its own
    generator, built like Gymnasium's ``np_random(seed + i)``, and draws each new day from it
    as the single env does (one integer, then :func:`~opsrl.envs.uam.data.generate_scenario`).

    The model is event driven, so a batched step is one decision per copy and the copies are
    at different clock times. A copy whose day ends returns ``done`` and is reset at once
    (the others go on): ``infos[i]["terminal_observation"]`` then holds the day's last
    observation and ``infos[i]["kpi"]`` its final KPIs (the single env's ``info["kpi"]``).

    Infos are kept cheap (a dict per copy and step is Python work that no vectorising
    shares): each step ``infos[i]`` is ``{"invalid_action": bool, "time": float,
    "aircraft": int}`` (the clock and the aircraft deciding next, -1 at the end of the day),
    plus the two keys above at the end of a day. The rest of the single env's info is
    vectorised: :meth:`kpi` gives the day-to-date KPIs (a dict of (N,) arrays) and
    :attr:`last_decision` the last step's :class:`~opsrl.envs.uam.sim.Decision` fields (a
    dict of (N,) arrays). The batched env keeps no decision log (``decision_log``,
    ``episode_trace`` and ``render`` are single-env tools).

    Masks: :meth:`action_masks` returns (N, V) bool for the copies' deciding aircraft;
    ``env_method("action_masks")`` the per-copy list (what sb3-contrib's ``get_action_masks``
    stacks). ``set_options({"scenario": scenario})`` (or one dict per copy) replays a
    :class:`~opsrl.envs.uam.data.UAMScenario` at the next :meth:`reset`, like
    ``UAMFleetEnv.reset(options=...)``. ``get_attr`` gives per copy ``scenario``, ``time``,
    ``deciding_aircraft``, ``kpi`` (a dict) and ``action_masks`` (a callable), and the shared
    attributes otherwise; ``env_is_wrapped`` is always False.
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = (*PER_COPY_ATTRIBUTES, "config", "observation", "reward_mode")

    def __init__(self, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, int | np.integer)
            or (num_envs < 1)
        ):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by UAMFleetVecEnv; leave it None")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        # The template validates the kwargs exactly like the single env and owns the spaces.
        template = UAMFleetEnv(**env_kwargs)
        self.env_kwargs = dict(env_kwargs)
        self.config = config = template.config
        self.observation = template.observation
        self.reward_mode = template.reward_mode
        self.reward_scale = template.reward_scale
        self.invalid_action = template.invalid_action
        self.render_mode = None
        num_envs = int(num_envs)
        super().__init__(num_envs, template.observation_space, template.action_space)

        b, n, a = num_envs, config.n_vertiports, config.n_aircraft
        p, h, f = config.n_demand_points, config.n_closure_hours, config.max_flights_per_aircraft
        self.n_vertiports, self.n_aircraft, self.n_demand_points = n, a, p
        self._copies = np.arange(b)
        self._parking_capacity = config.parking_capacities
        self._charging_capacity = config.charging_capacities
        self._corridor_capacity = config.corridor_capacity
        self._day_start, self._day_end = float(config.day_start), float(config.day_end)
        self._day_length = config.day_length
        self._n_vertiport_features = len(vertiport_feature_names(config))
        source, target = vertiport_edges(n)
        self._edge_source, self._edge_target = source, target
        self._edge_pair = source * n + target  # (E,) index into a flattened (N, N) matrix
        self._edges = np.concatenate([source, target]).astype(np.float32)
        self._demand_norm = config.peak_bin_demand
        self._profile_norm = self._demand_norm * (n - 1)
        self._corridor_norm = float(config.corridor_capacity or config.n_aircraft)
        self._capacity_norm = float(
            max(self._parking_capacity.max(), self._charging_capacity.max())
        )
        self._delay_norm = config.takeoff_delay_mean_max or 1.0
        self._flat_size = int(self.observation_space.shape[0]) if self.observation == "flat" else 0

        self._rngs: list[np.random.Generator | None] = [None] * b
        self._scenarios: list[UAMScenario | None] = [None] * b
        self._started = False
        self._actions: np.ndarray | None = None

        # per-day data of each copy (the layout may change between days)
        self._fare = np.zeros((b, n, n))
        self._flight_time = np.zeros((b, n, n))
        self._leg_energy = np.zeros((b, n, n))
        self._charge_time = np.zeros((b, n, n))
        self._leg_energy_cost = np.zeros((b, n, n))
        self._in_range = np.zeros((b, n, n), dtype=bool)
        self._route_closed = np.zeros((b, h, n, n), dtype=bool)
        self._delay_mean = np.zeros((b, n))
        self._delay_draws = np.zeros((b, a, f))
        self._downtime_start = np.full((b, a), np.inf)
        self._downtime_end = np.full((b, a), np.inf)
        self._scale = np.ones(b)
        self._total_demand = np.zeros(b, dtype=np.int64)
        self._potential_revenue = np.zeros(b)
        # per-day parts of the observation
        fv = self._n_vertiport_features
        # vertiport x and y / area size, flat (copy * N + vertiport): numpy's fancy indexing
        # with trailing dimensions is several times slower than a 1-D take
        self._position_x = np.zeros(b * n, dtype=np.float32)
        self._position_y = np.zeros(b * n, dtype=np.float32)
        self._fare_feature = np.zeros((b, n * n), dtype=np.float32)
        self._vertiport_template = np.zeros((b, n, fv), dtype=np.float32)
        self._edge_template = np.zeros((b, source.size, 8), dtype=np.float32)

        # the state of each copy (UAMSim's, with a copy axis in front)
        self._time = np.full(b, self._day_start)
        self._status = np.zeros((b, a), dtype=np.int64)
        self._location = np.zeros((b, a), dtype=np.int64)
        self._destination = np.zeros((b, a), dtype=np.int64)
        self._departure_time = np.zeros((b, a))
        self._arrival_time = np.zeros((b, a))
        self._next_decision_time = np.zeros((b, a))
        self._flights_flown = np.zeros((b, a), dtype=np.int64)
        self._last_leg_energy = np.zeros((b, a))
        self._last_charge_time = np.zeros((b, a))
        self._parked = np.zeros((b, n), dtype=np.int64)
        self._charging = np.zeros((b, n), dtype=np.int64)
        self._inbound = np.zeros((b, n), dtype=np.int64)
        self._corridor_flights = np.zeros((b, n, n), dtype=np.int64)
        self._remaining_demand = np.zeros((b, p, n, n), dtype=np.int64)
        # kept up to date at each flight, so that observations need no pass over all demand:
        # remaining outflow and inflow per bin and vertiport, and the demand feature itself
        self._outflow = np.zeros((b, p, n), dtype=np.int64)
        self._inflow = np.zeros((b, p, n), dtype=np.int64)
        self._demand_feature = np.zeros((b, p, n, n), dtype=np.float32)
        self._deciding = np.full(b, -1, dtype=np.int64)
        self._masks = np.zeros((b, n), dtype=bool)
        self._revenue = np.zeros(b)
        self._energy_cost = np.zeros(b)
        self._energy_kwh = np.zeros(b)
        self._passengers_served = np.zeros(b, dtype=np.int64)
        self._flights = np.zeros(b, dtype=np.int64)
        self._empty_flights = np.zeros(b, dtype=np.int64)
        self._stays = np.zeros(b, dtype=np.int64)
        self._decisions = np.zeros(b, dtype=np.int64)
        self.last_decision: dict[str, np.ndarray] = {}
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> VecEnvObs:
        """Reset every copy (re-seeding those given a seed, replaying a scenario given in
        ``set_options``) and return the observations of the first decisions."""
        scenarios: list[UAMScenario | None] = []
        for options in self._options:  # all checked before any copy changes
            options = dict(options or {})
            scenario = options.pop("scenario", None)
            if options:
                raise ValueError(f"unknown reset options {sorted(options)}; known: scenario")
            if scenario is not None and not isinstance(scenario, UAMScenario):
                raise ValueError(f"scenario must be a UAMScenario, got {type(scenario).__name__}")
            scenarios.append(scenario)
        for i, seed in enumerate(self._seeds):
            if seed is not None or self._rngs[i] is None:
                self._rngs[i] = np_random(seed)[0]
        self._reset_seeds()
        self._reset_options()
        self._start_days(self._copies, scenarios)
        self._started = True
        self.last_decision = {}
        self._compute_masks()
        self.reset_infos = self._reset_info_list(self._copies)
        return self._observe(slice(None))

    def step_wait(self) -> VecEnvStepReturn:
        """One decision in every copy; copies whose day ends are reset at once."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        actions, self._actions = self._actions, None
        destination = self._validate(actions)
        if np.any(self._deciding < 0):
            raise RuntimeError(
                f"the day of copy {int(np.flatnonzero(self._deciding < 0)[0])} is over; "
                "call reset() before step()"
            )
        copies = self._copies
        aircraft = self._deciding
        origin = self._location[copies, aircraft]
        invalid = ~self._masks[copies, destination]
        if invalid.any():
            if self.invalid_action == "raise":
                i = int(np.flatnonzero(invalid)[0])
                raise ValueError(
                    f"copy {i}: destination {int(destination[i])} is infeasible for aircraft "
                    f"{int(aircraft[i])} ({self._infeasibility_reason(i, int(destination[i]))}); "
                    "mask actions with action_masks() or use invalid_action='replace'"
                )
            destination = np.where(invalid, origin, destination)
        profit = self._decide(aircraft, origin, destination)
        self._next_decision(slice(None))
        self._land()
        self._compute_masks()

        done = self._deciding < 0
        if self.reward_mode == "per_flight":
            rewards = profit / self._scale
        else:
            rewards = np.where(done, (self._revenue - self._energy_cost) / self._scale, 0.0)
        rewards = rewards.astype(np.float32)
        obs = self._observe(slice(None))
        infos: list[dict[str, Any]] = [
            {"invalid_action": flag, "time": clock, "aircraft": who}
            for flag, clock, who in zip(
                invalid.tolist(), self._time.tolist(), self._deciding.tolist(), strict=True
            )
        ]
        if not done.any():
            return obs, rewards, done, infos

        finished = np.flatnonzero(done)
        kpis = self._kpi_dicts(finished)
        for i, kpi in zip(finished.tolist(), kpis, strict=True):
            infos[i]["terminal_observation"] = self._row(obs, i)
            infos[i]["kpi"] = kpi
        self._start_days(finished, [None] * finished.size)
        self._compute_masks()
        fresh = self._observe(finished)
        if isinstance(obs, dict):
            for key, value in fresh.items():
                obs[key][finished] = value
        else:
            obs[finished] = fresh
        for i, info in zip(finished.tolist(), self._reset_info_list(finished), strict=True):
            self.reset_infos[i] = info
        return obs, rewards, done, infos

    # ----------------------------------------------------------------- per-copy access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        return {
            "scenario": lambda i: self._scenarios[i],
            "time": lambda i: float(self._time[i]),
            "deciding_aircraft": lambda i: int(self._deciding[i]),
            "kpi": lambda i: self._kpi_dicts(np.array([i]))[0],
        }

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        return lambda: self._masks[index].copy()  # action_masks, the only method

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        no_arguments(name, args, kwargs)
        return [self._masks[i].copy() for i in indices]

    # ----------------------------------------------------------------- vectorised extras
    def action_masks(self) -> np.ndarray:
        """(N, V) bool: the feasible destinations of each copy's deciding aircraft."""
        return self._masks.copy()

    def kpi(self) -> dict[str, np.ndarray]:
        """Day-to-date KPIs of every copy (the single env's ``info["kpi"]``), (N,) arrays."""
        profit = self._revenue - self._energy_cost
        flights, served = self._flights, self._passengers_served
        potential = self._potential_revenue
        seats = flights * self.config.seats
        with np.errstate(divide="ignore", invalid="ignore"):
            load_factor = np.where(flights > 0, served / np.maximum(seats, 1), 0.0)
            normalised = np.where(
                potential > 0, profit / np.where(potential > 0, potential, 1.0), 0.0
            )
        return {
            "profit": profit,
            "revenue": self._revenue.copy(),
            "energy_cost": self._energy_cost.copy(),
            "energy_kwh": self._energy_kwh.copy(),
            "passengers_served": served.astype(np.float64),
            "unserved_demand": (self._total_demand - served).astype(np.float64),
            "total_demand": self._total_demand.astype(np.float64),
            "flights": flights.astype(np.float64),
            "empty_flights": self._empty_flights.astype(np.float64),
            "stays": self._stays.astype(np.float64),
            "load_factor": load_factor,
            "normalised_profit": normalised,
        }

    @property
    def time(self) -> np.ndarray:
        """(N,) clock of each copy (hours)."""
        return self._time.copy()

    @property
    def deciding_aircraft(self) -> np.ndarray:
        """(N,) the aircraft deciding next in each copy."""
        return self._deciding.copy()

    # ----------------------------------------------------------------- days
    def _start_days(self, rows: np.ndarray, scenarios: list[UAMScenario | None]) -> None:
        """Start a new day in copies ``rows``: draw it from the copy's generator as
        ``UAMFleetEnv.reset`` does (or replay the given scenario), then set the state of all
        these copies at once and run them to their first decision."""
        config = self.config
        days: list[UAMScenario] = []
        for i, scenario in zip(rows.tolist(), scenarios, strict=True):
            if scenario is None:
                scenario = generate_scenario(config, int(self._rngs[i].integers(2**63 - 1)))
            else:
                scenario.check(config)
            self._scenarios[i] = scenario
            days.append(scenario)

        def stack(name: str) -> np.ndarray:
            return np.stack([getattr(day, name) for day in days])

        legs = [leg_matrices(config, day.distance) for day in days]
        for name, target in (
            ("flight_time", self._flight_time),
            ("energy", self._leg_energy),
            ("charge_time", self._charge_time),
            ("energy_cost", self._leg_energy_cost),
            ("in_range", self._in_range),
        ):
            target[rows] = np.stack([leg[name] for leg in legs])
        fare = stack("fare")
        distance = stack("distance")
        demand = stack("demand")
        self._fare[rows] = fare
        self._route_closed[rows] = stack("route_closed")
        delay_mean = stack("takeoff_delay_mean")
        self._delay_mean[rows] = delay_mean
        self._delay_draws[rows] = stack("takeoff_delay_draws")
        downtime_start = stack("downtime_start")
        downtime_end = stack("downtime_end")
        self._downtime_start[rows] = downtime_start
        self._downtime_end[rows] = downtime_end
        total_demand = np.array([day.total_demand for day in days], dtype=np.int64)
        potential = np.array([day.potential_revenue for day in days])
        self._total_demand[rows] = total_demand
        self._potential_revenue[rows] = potential
        self._scale[rows] = self.reward_scale or np.where(potential > 0, potential, 1.0)

        # the per-day parts of the observation (UAMFleetEnv._static_features)
        n, p = self.n_vertiports, self.n_demand_points
        position = (stack("positions") / config.area_size).astype(np.float32)
        fare_feature = np.minimum(fare / config.max_fare, 1.0).astype(np.float32)
        flat_rows = (rows[:, None] * n + np.arange(n)).ravel()
        self._position_x[flat_rows] = position[:, :, 0].ravel()
        self._position_y[flat_rows] = position[:, :, 1].ravel()
        self._fare_feature[rows] = fare_feature.reshape(rows.size, -1)
        template = np.zeros((rows.size, n, self._n_vertiport_features), dtype=np.float32)
        template[:, :, 0:2] = position
        template[:, :, 2] = stack("urban")
        template[:, :, 6] = self._parking_capacity / self._capacity_norm
        template[:, :, 7] = self._charging_capacity / self._capacity_norm
        template[:, :, 8] = np.minimum(delay_mean / self._delay_norm, 1.0)
        template[:, :, len(VERTIPORT_FEATURES) + 2 * p :] = fare_feature
        self._vertiport_template[rows] = template
        source, target = self._edge_source, self._edge_target
        pair_distance = distance[:, source, target]
        edges = np.zeros((rows.size, source.size, 8), dtype=np.float32)
        edges[:, :, 0] = 1.0 / (1.0 + pair_distance / config.aircraft_range)
        edges[:, :, 1] = np.minimum(pair_distance / (config.area_size * 2**0.5), 1.0)
        edges[:, :, 2] = fare_feature[:, source, target]
        edges[:, :, 3] = self._in_range[rows][:, source, target]
        self._edge_template[rows] = edges

        # the state at day_start (UAMSim.reset)
        start = self._day_start
        location = stack("initial_location").astype(np.int64)
        self._time[rows] = start
        self._status[rows] = PARKED
        self._location[rows] = location
        self._destination[rows] = location
        self._departure_time[rows] = start
        self._arrival_time[rows] = start
        grounded = (downtime_start <= start) & (start < downtime_end)
        self._next_decision_time[rows] = np.where(grounded, downtime_end, start)
        self._flights_flown[rows] = 0
        self._last_leg_energy[rows] = 0.0
        self._last_charge_time[rows] = 0.0
        self._parked[rows] = (location[:, :, None] == np.arange(n)).sum(axis=1)
        self._charging[rows] = 0
        self._inbound[rows] = 0
        self._corridor_flights[rows] = 0
        self._remaining_demand[rows] = demand
        self._outflow[rows] = demand.sum(axis=3)
        self._inflow[rows] = demand.sum(axis=2)
        self._demand_feature[rows] = np.minimum(demand / self._demand_norm, DEMAND_FEATURE_CAP)
        for total in (
            self._revenue,
            self._energy_cost,
            self._energy_kwh,
            self._passengers_served,
            self._flights,
            self._empty_flights,
            self._stays,
            self._decisions,
        ):
            total[rows] = 0
        # the first decision (UAMSim._advance; nothing is flying yet, so nothing lands)
        self._next_decision(rows)

    # ----------------------------------------------------------------- dynamics
    def _validate(self, actions: Any) -> np.ndarray:
        """(N,) int destinations; ValueError for anything but one vertiport index per copy."""
        array = np.asarray(actions)
        if array.dtype.kind not in "iuf" or array.size != self.num_envs:
            raise ValueError(
                f"actions must be one vertiport index per copy ({self.num_envs}), got {actions!r}"
            )
        array = array.reshape(self.num_envs)
        as_int = array.astype(np.int64)
        bad = (as_int != array) | (as_int < 0) | (as_int >= self.n_vertiports)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"copy {i}: action must be a vertiport index in 0..{self.n_vertiports - 1}, "
                f"got {array[i]!r}"
            )
        return as_int

    def _decide(
        self, aircraft: np.ndarray, origin: np.ndarray, destination: np.ndarray
    ) -> np.ndarray:
        """Apply every copy's decision (UAMSim._stay / UAMSim._fly); return each decision's
        profit (0 for a stay)."""
        config = self.config
        now = self._time
        stay = destination == origin
        demand_bin = self._demand_bin(now)
        departure = now.copy()
        arrival = now.copy()
        ready = np.empty(self.num_envs)
        passengers = np.zeros(self.num_envs, dtype=np.int64)
        revenue = np.zeros(self.num_envs)
        energy = np.zeros(self.num_envs)
        energy_cost = np.zeros(self.num_envs)

        rows = np.flatnonzero(stay)
        if rows.size:
            who, where = aircraft[rows], origin[rows]
            # a charged aircraft that stays frees its charger for arrivals if a stand is free
            move = (self._status[rows, who] == CHARGING) & (
                self._parked[rows, where] < self._parking_capacity[where]
            )
            moving, at = rows[move], where[move]
            self._charging[moving, at] -= 1
            self._parked[moving, at] += 1
            self._status[moving, who[move]] = PARKED
            ready[rows] = self._postponed(rows, who, now[rows] + config.stay_time)
            self._next_decision_time[rows, who] = ready[rows]
            self._stays[rows] += 1

        rows = np.flatnonzero(~stay)
        if rows.size:
            who, start, end = aircraft[rows], origin[rows], destination[rows]
            parked = self._status[rows, who] == PARKED
            self._parked[rows[parked], start[parked]] -= 1
            self._charging[rows[~parked], start[~parked]] -= 1
            self._inbound[rows, end] += 1
            self._corridor_flights[rows, start, end] += 1
            flight = self._flights_flown[rows, who]
            delay = self._delay_mean[rows, start] * self._delay_draws[rows, who, flight]
            leaves = now[rows] + delay
            lands = (
                leaves + config.takeoff_time + self._flight_time[rows, start, end]
            ) + config.landing_time
            charged = self._postponed(rows, who, lands + self._charge_time[rows, start, end])
            bins = demand_bin[rows]
            remaining = self._remaining_demand[rows, bins, start, end]
            carried = np.minimum(config.seats, remaining)
            left = remaining - carried
            self._remaining_demand[rows, bins, start, end] = left
            self._outflow[rows, bins, start] -= carried
            self._inflow[rows, bins, end] -= carried
            self._demand_feature[rows, bins, start, end] = np.minimum(
                left / self._demand_norm, DEMAND_FEATURE_CAP
            )
            fares = carried * self._fare[rows, start, end]
            kwh = self._leg_energy[rows, start, end]
            cost = self._leg_energy_cost[rows, start, end]

            self._status[rows, who] = FLYING
            self._destination[rows, who] = end
            self._departure_time[rows, who] = leaves
            self._arrival_time[rows, who] = lands
            self._next_decision_time[rows, who] = charged
            self._flights_flown[rows, who] = flight + 1
            self._revenue[rows] += fares
            self._energy_cost[rows] += cost
            self._energy_kwh[rows] += kwh
            self._passengers_served[rows] += carried
            self._flights[rows] += 1
            self._empty_flights[rows] += carried == 0
            departure[rows], arrival[rows], ready[rows] = leaves, lands, charged
            passengers[rows], revenue[rows] = carried, fares
            energy[rows], energy_cost[rows] = kwh, cost
        self._decisions += 1
        self.last_decision = dict(
            zip(
                Decision._fields,
                (
                    aircraft.copy(),
                    origin,
                    destination,
                    now.copy(),
                    departure,
                    arrival,
                    ready,
                    demand_bin,
                    passengers,
                    revenue,
                    energy,
                    energy_cost,
                ),
                strict=True,
            )
        )
        return revenue - energy_cost

    def _postponed(self, rows: np.ndarray, aircraft: np.ndarray, time: np.ndarray) -> np.ndarray:
        """``time``, or the end of the aircraft's grounding window if ``time`` falls in it."""
        start = self._downtime_start[rows, aircraft]
        end = self._downtime_end[rows, aircraft]
        return np.where((start <= time) & (time < end), end, time)

    def _next_decision(self, rows: np.ndarray | slice) -> None:
        """Each copy's next decision: the aircraft with the earliest decision time (ties: the
        lowest index), the clock moved there, or the end of the day if none is due."""
        next_time = self._next_decision_time[rows]
        aircraft = np.argmin(next_time, axis=1)
        when = next_time[np.arange(aircraft.size), aircraft]
        over = when >= self._day_end
        self._deciding[rows] = np.where(over, -1, aircraft)
        self._time[rows] = np.maximum(self._time[rows], np.where(over, self._day_end, when))

    def _land(self) -> None:
        """Land every flight that arrived by its copy's clock (UAMSim._land)."""
        landed = (self._status == FLYING) & (self._arrival_time <= self._time[:, None])
        rows, aircraft = np.nonzero(landed)
        if rows.size == 0:
            return
        origin = self._location[rows, aircraft]
        destination = self._destination[rows, aircraft]
        n = self.n_vertiports
        np.subtract.at(self._inbound.reshape(-1), rows * n + destination, 1)
        np.add.at(self._charging.reshape(-1), rows * n + destination, 1)
        np.subtract.at(self._corridor_flights.reshape(-1), (rows * n + origin) * n + destination, 1)
        self._last_leg_energy[rows, aircraft] = self._leg_energy[rows, origin, destination]
        self._last_charge_time[rows, aircraft] = self._charge_time[rows, origin, destination]
        self._status[rows, aircraft] = CHARGING
        self._location[rows, aircraft] = destination

    def _compute_masks(self) -> None:
        """Feasible destinations of every copy's deciding aircraft (UAMSim._feasible)."""
        copies = self._copies
        deciding = self._deciding
        active = deciding >= 0
        origin = self._location[copies, np.where(active, deciding, 0)]
        n = self.n_vertiports
        # rows of the (N, N) matrices at each copy's origin, as flat indices (1-D takes)
        row = ((copies * n + origin) * n)[:, None] + np.arange(n)
        mask = self._in_range.reshape(-1).take(row)
        mask &= (self._charging + self._inbound) < self._charging_capacity
        hour = self._closure_hour(self._time)
        closed_row = ((copies * self.config.n_closure_hours + hour) * n + origin) * n
        mask &= ~self._route_closed.reshape(-1).take(closed_row[:, None] + np.arange(n))
        if self._corridor_capacity is not None:
            mask &= self._corridor_flights.reshape(-1).take(row) < self._corridor_capacity
        mask[copies, origin] = True
        mask[~active] = False
        self._masks = mask

    def _infeasibility_reason(self, copy: int, destination: int) -> str:
        """Why ``destination`` is infeasible for copy ``copy``'s deciding aircraft."""
        scenario = self._scenarios[copy]
        origin = int(self._location[copy, self._deciding[copy]])
        if not self._in_range[copy, origin, destination]:
            return (
                f"out of range ({scenario.distance[origin, destination]:.1f} mi > "
                f"{self.config.aircraft_range} mi)"
            )
        if (
            self._charging[copy, destination] + self._inbound[copy, destination]
            >= self._charging_capacity[destination]
        ):
            return f"no free charger at vertiport {destination}"
        hour = self.config.closure_hour(float(self._time[copy]))
        if self._route_closed[copy, hour, origin, destination]:
            return "route closed by weather this hour"
        return f"corridor full ({self._corridor_capacity} flights under way)"

    def _demand_bin(self, time: np.ndarray) -> np.ndarray:
        """UAMConfig.demand_bin for an array of times."""
        config = self.config
        index = np.floor((time - config.day_start) / config.demand_interval + 0.5)
        return np.clip(index.astype(np.int64), 0, self.n_demand_points - 1)

    def _closure_hour(self, time: np.ndarray) -> np.ndarray:
        """UAMConfig.closure_hour for an array of times (int() truncates like astype)."""
        hour = (time - self.config.day_start).astype(np.int64)
        return np.clip(hour, 0, self.config.n_closure_hours - 1)

    # ----------------------------------------------------------------- observations
    def _observe(self, rows: np.ndarray | slice) -> VecEnvObs:
        """The observations of copies ``rows`` (UAMFleetEnv._observation, vectorised)."""
        n, p, a = self.n_vertiports, self.n_demand_points, self.n_aircraft
        copies = self._copies[rows]
        count = copies.size
        local = np.arange(count)
        deciding = self._deciding[rows]
        active = deciding >= 0
        chosen = np.where(active, deciding, 0)
        location = self._location[rows]
        here = location[local, chosen]
        time = self._time[rows]
        time_feature = np.clip((time - self._day_start) / self._day_length, 0.0, 1.0)
        mask = self._masks[rows]
        n_edges = self._edge_pair.size
        fv = self._n_vertiport_features

        if self.observation == "flat":
            out = np.empty((count, self._flat_size), dtype=np.float32)
            out[:, 0] = time_feature
            one_hot = out[:, 1 : 1 + a + n]
            one_hot[:] = 0.0
            one_hot[local[active], chosen[active]] = 1.0
            one_hot[local[active], a + here[active]] = 1.0
            offset = 1 + a + n
            out[:, offset : offset + n] = mask
            offset += n
            vertiports = out[:, offset : offset + n * fv].reshape(count, n, fv)
            offset += n * fv
            edges = out[:, offset : offset + n_edges * 8].reshape(count, n_edges, 8)
            offset += n_edges * 8
            fleet = out[:, offset:].reshape(count, a, -1)
        else:
            vertiports = np.empty((count, n, fv), dtype=np.float32)
            edges = np.empty((count, n_edges, 8), dtype=np.float32)
            fleet = np.empty((count, a, 12), dtype=np.float32)

        # vertiports: the day's template, occupancy, the decider's vertiport, demand profiles
        vertiports[:] = self._vertiport_template[rows]
        vertiports[:, :, 3] = self._parked[rows] / self._parking_capacity
        vertiports[:, :, 4] = self._charging[rows] / self._charging_capacity
        vertiports[:, :, 5] = self._inbound[rows] / self._charging_capacity
        vertiports[local[active], here[active], 9] = 1.0
        start = len(VERTIPORT_FEATURES)
        vertiports[:, :, start : start + p] = np.minimum(
            self._outflow[rows].transpose(0, 2, 1) / self._profile_norm, DEMAND_FEATURE_CAP
        )
        vertiports[:, :, start + p : start + 2 * p] = np.minimum(
            self._inflow[rows].transpose(0, 2, 1) / self._profile_norm, DEMAND_FEATURE_CAP
        )

        # edges: the day's template, open routes, corridor load, demand now and next bin
        pair = self._edge_pair
        edges[:] = self._edge_template[rows]
        square = n * n
        hour = self._closure_hour(time)
        closed_at = ((copies * self.config.n_closure_hours + hour) * square)[:, None] + pair
        edges[:, :, 4] = ~self._route_closed.reshape(-1).take(closed_at)
        corridor = self._corridor_flights.reshape(-1).take((copies * square)[:, None] + pair)
        edges[:, :, 5] = np.minimum(corridor / self._corridor_norm, 1.0)
        demand_bin = self._demand_bin(time)
        demand_at = ((copies * p + demand_bin) * square)[:, None] + pair
        demand = self._demand_feature.reshape(-1)
        edges[:, :, 6] = demand.take(demand_at)
        later = demand_bin + 1 < p
        edges[later, :, 7] = demand.take(demand_at[later] + square)

        self._fleet_features(rows, copies, time, deciding, fleet)

        if self.observation == "flat":
            return out
        return {
            "vertiport_features": vertiports.reshape(count, -1),
            "vertiport_edges": np.tile(self._edges, (count, 1)),
            "vertiport_edge_features": edges.reshape(count, -1),
            "aircraft_features": fleet.reshape(count, -1),
            "aircraft_vertiport": self._destination[rows].astype(np.float32),
            "deciding": np.stack([deciding, np.where(active, here, -1)], axis=1).astype(np.float32),
            "action_mask": mask.astype(np.float32),
            "demand": self._demand_feature[rows].reshape(count, -1).copy(),
            "fares": self._fare_feature[rows].copy(),
            "time": time_feature.astype(np.float32)[:, None],
        }

    def _fleet_features(
        self,
        rows: np.ndarray | slice,
        copies: np.ndarray,
        time: np.ndarray,
        deciding: np.ndarray,
        fleet: np.ndarray,
    ) -> None:
        """Fill ``fleet`` (count, A, 12) with UAMFleetEnv._aircraft_features of ``rows``."""
        config = self.config
        now = time[:, None]
        length = self._day_length
        location, destination = self._location[rows], self._destination[rows]
        status = self._status[rows]
        downtime_end = self._downtime_end[rows]
        down = (self._downtime_start[rows] <= now) & (now < downtime_end)
        n = self.n_vertiports
        at = copies[:, None] * n + location
        to = copies[:, None] * n + destination
        fleet[:, :, 0] = self._position_x.take(at)
        fleet[:, :, 1] = self._position_y.take(at)
        fleet[:, :, 2] = self._position_x.take(to)
        fleet[:, :, 3] = self._position_y.take(to)
        flying = status == FLYING
        charging = status == CHARGING
        fleet[:, :, 4] = status == PARKED
        fleet[:, :, 5] = charging
        fleet[:, :, 6] = flying
        fleet[:, :, 7] = down
        fleet[:, :, 8] = 0.0
        active = deciding >= 0
        fleet[np.flatnonzero(active), deciding[active], 8] = 1.0
        fleet[:, :, 9] = np.clip((self._next_decision_time[rows] - now) / length, 0.0, 1.0)

        # battery level (UAMSim.state_of_charge): linear in flight and in recharging
        capacity = config.battery_capacity
        leg = self._leg_energy.reshape(-1).take(at * n + destination)
        departure, arrival = self._departure_time[rows], self._arrival_time[rows]
        span = np.maximum(arrival - departure, 1e-12)
        done = np.clip((now - departure) / span, 0.0, 1.0)
        in_flight = 1.0 - done * leg / capacity
        full = arrival + self._last_charge_time[rows]
        span = np.maximum(full - arrival, 1e-12)
        done = np.clip((now - arrival) / span, 0.0, 1.0)
        recharging = 1.0 - (1.0 - done) * self._last_leg_energy[rows] / capacity
        level = np.where(flying, in_flight, np.where(charging, recharging, 1.0))
        fleet[:, :, 10] = np.clip(level, 0.0, 1.0)
        fleet[:, :, 11] = np.where(down, np.clip((downtime_end - now) / length, 0.0, 1.0), 0.0)

    # ----------------------------------------------------------------- infos
    def _kpi_dicts(self, rows: np.ndarray) -> list[dict[str, float]]:
        """The single env's ``info["kpi"]`` of copies ``rows``, as plain floats."""
        columns = self.kpi()
        values = [columns[name][rows].tolist() for name in KPI_NAMES]
        return [dict(zip(KPI_NAMES, row, strict=True)) for row in zip(*values, strict=True)]

    def _reset_info_list(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """Infos of freshly reset copies, like ``UAMFleetEnv.reset``'s (without the decision)."""
        return [
            {"kpi": kpi, "time": clock, "aircraft": who, "invalid_action": False}
            for kpi, clock, who in zip(
                self._kpi_dicts(rows),
                self._time[rows].tolist(),
                self._deciding[rows].tolist(),
                strict=True,
            )
        ]

    @staticmethod
    def _row(obs: VecEnvObs, i: int) -> VecEnvObs:
        if isinstance(obs, dict):
            return {key: value[i].copy() for key, value in obs.items()}
        return obs[i].copy()
