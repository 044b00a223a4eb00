"""Urban air mobility data: every parameter (:class:`UAMConfig`) and one day's draw
(:class:`UAMScenario`).

The synthetic generator follows the precursor of CapTAIN (Paul, Witter and Chowdhury,
iamstevepaul/UAM_fleet_Scheduling; ``shared/specs/uam_ride_sharing_esg_mario.md`` section A):

- **Layout**: vertiports uniform in an ``area_size`` x ``area_size`` mile square; those within
  ``urban_radius`` of ``urban_center`` are *urban*, the others *suburban*. The layout is fixed
  by ``layout_seed`` (a city does not move its vertiports every day) or drawn anew every day
  (``layout_seed=None``), or given as ``vertiport_positions``.
- **Demand** (passengers per hour per origin-destination pair): urban -> urban has a morning
  (09:00) and an afternoon (16:30) peak, urban -> suburb an afternoon peak (commuters going
  home), suburb -> urban a morning peak, suburb -> suburb is flat. Each peak is a Gaussian bump
  of standard deviation ``peak_std`` hours. The precursor put its afternoon peak at "4.30"
  (04:30, before the day starts): we use 16:30. Its additive noise U{1..9} (mean 5) is folded
  into the bases (20 + 5 and 40 + 5) and replaced by Poisson sampling of the counts; its
  Gaussian heights 30 and 100 divided by its normaliser (std x 1.41 x 3.14 with std 0.5)
  give the peak heights 13.5 and 45 used here.
- **Demand points**: one every ``demand_interval`` hours from ``day_start`` to ``day_end``
  (13 points for 06:00-18:00). Point k stands for the departures in
  ``[t_k - interval / 2, t_k + interval / 2)`` clipped to the day, so the first and last bins
  are half as long; the expected count of a bin is the rate at ``t_k`` times the bin length.
  Passengers not carried within their bin are lost (they take another mode).
- **Fares**: ``floor(fare_base + fare_per_mile * distance)`` dollars per passenger.
- **Fleet start**: every aircraft parked at a random vertiport, with no vertiport over its
  parking capacity.
- **Uncertainties** (all drawn at reset, from their own random streams, so that switching one
  off leaves the others unchanged; ``uncertainty=False`` switches all three off):
  take-off delays (each vertiport's mean delay is U[0, ``takeoff_delay_mean_max``]; each
  departure waits Exp(that mean)), weather route closures (each undirected route is closed
  for each hour of the day with probability ``route_closure_prob``) and aircraft downtime
  (each aircraft is grounded with probability ``downtime_prob`` once a day, from a uniform
  start for U[``downtime_hours``] hours).

Everything here is plain numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

__all__ = [
    "UAMConfig",
    "UAMScenario",
    "as_config",
    "distance_matrix",
    "expected_demand",
    "fare_table",
    "generate_scenario",
    "leg_matrices",
    "urban_vertiports",
    "vertiport_layout",
]


def _is_number(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float | np.integer | np.floating)
        and math.isfinite(float(value))
    )


def _check_number(name: str, value: Any, *, minimum: float = 0.0, strict: bool = False) -> float:
    if not _is_number(value) or value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum}, got {value!r}")
    return float(value)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_probability(name: str, value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def _capacity(name: str, value: Any, n_vertiports: int) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        values = tuple(value)
        if len(values) != n_vertiports:
            raise ValueError(
                f"{name} must be one integer or one per vertiport ({n_vertiports}), "
                f"got {len(values)} values"
            )
        return tuple(_check_int(f"{name}[{i}]", v, 1) for i, v in enumerate(values))
    return _check_int(name, value, 1)


@dataclass(frozen=True)
class UAMConfig:
    """Every parameter of the UAM fleet model, in hours, miles, kWh and dollars.

    Bad values raise a ValueError naming the field at construction. Derived quantities
    (capacities per vertiport, demand points, energy per mile) are properties and methods.
    """

    # --- network and fleet
    #: number of vertiports
    n_vertiports: int = 8
    #: number of aircraft (CapTAIN: 40; the precursor: 18-19)
    n_aircraft: int = 40
    #: side of the square the vertiports lie in (miles)
    area_size: float = 50.0
    #: seed of the fixed vertiport layout; None draws a new layout every day
    layout_seed: int | None = 0
    #: explicit (x, y) positions in miles (overrides ``layout_seed``)
    vertiport_positions: tuple[tuple[float, float], ...] | None = None
    #: parking stands per vertiport (one int or one per vertiport); None: ceil(2 A / N), i.e.
    #: 10 for 40 aircraft at 8 vertiports (the precursor's 6 were sized for 18 aircraft)
    parking_capacity: int | tuple[int, ...] | None = None
    #: chargers per vertiport (one int or one per vertiport); None: ceil(1.2 A / N), i.e. 6
    charging_capacity: int | tuple[int, ...] | None = None
    #: max flights at once (from departure decision to landing) per directed vertiport pair,
    #: for airspace safety; None: unlimited. A rule, not a random effect: ``uncertainty``
    #: does not switch it off.
    corridor_capacity: int | None = 3

    # --- the day
    #: first decision time (hours, 6.0 = 06:00)
    day_start: float = 6.0
    #: no decision at or after this time (hours)
    day_end: float = 18.0
    #: how long an aircraft that stays waits before its next decision (hours; 15 min)
    stay_time: float = 0.25

    # --- aircraft
    #: passenger seats per aircraft
    seats: int = 4
    #: cruise speed (mph)
    cruise_speed: float = 74.5
    #: take-off and landing times (hours, 6 min each)
    takeoff_time: float = 0.1
    landing_time: float = 0.1
    #: usable battery energy (kWh)
    battery_capacity: float = 110.0
    #: range on a full battery (miles); a leg needs distance x capacity / range kWh
    aircraft_range: float = 50.0
    #: charger power (kW); recharging a leg's energy takes energy / power hours
    charging_power: float = 150.0

    # --- economics
    #: fare per passenger: floor(fare_base + fare_per_mile x distance) dollars
    fare_per_mile: float = 1.5
    fare_base: float = 0.0
    #: electricity price ($/kWh)
    electricity_price: float = 0.2

    # --- demand (passengers per hour per origin-destination pair)
    #: spacing of the demand points (hours); the day must be a whole number of them
    demand_interval: float = 1.0
    urban_center: tuple[float, float] = (45.0, 55.0)
    urban_radius: float = 30.0
    morning_peak: float = 9.0
    #: 16:30 (the precursor's "4.30" meant the afternoon)
    afternoon_peak: float = 16.5
    #: standard deviation of each peak (hours)
    peak_std: float = 1.0
    #: flat rate of suburban pairs and the base of suburb <-> urban pairs
    demand_base: float = 25.0
    #: base rate of urban -> urban pairs
    demand_base_urban: float = 45.0
    #: height of the urban -> urban peaks
    demand_peak_urban: float = 45.0
    #: height of the commuter peaks (suburb -> urban morning, urban -> suburb afternoon)
    demand_peak_commuter: float = 13.5
    #: multiplies every rate
    demand_scale: float = 1.0

    # --- uncertainties
    #: master switch of the random effects below (delays, closures, downtime)
    uncertainty: bool = True
    #: each vertiport's mean take-off delay is U[0, this] hours (10 minutes); 0: no delays
    takeoff_delay_mean_max: float = 10.0 / 60.0
    #: probability that an undirected route is closed by weather for one hour of the day
    route_closure_prob: float = 0.05
    #: probability that an aircraft is grounded once during the day
    downtime_prob: float = 0.05
    #: the grounding lasts U[low, high] hours
    downtime_hours: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise fields in place
        n = _check_int("n_vertiports", self.n_vertiports, 2)
        a = _check_int("n_aircraft", self.n_aircraft, 1)
        _check_number("area_size", self.area_size, strict=True)
        if self.layout_seed is not None:
            _check_int("layout_seed", self.layout_seed, 0)
        if self.vertiport_positions is not None:
            try:
                positions = np.array(self.vertiport_positions, dtype=np.float64)
            except (TypeError, ValueError) as error:
                raise ValueError(f"vertiport_positions must be (x, y) pairs: {error}") from None
            if positions.shape != (n, 2):
                raise ValueError(
                    f"vertiport_positions must hold {n} (x, y) pairs (n_vertiports), "
                    f"got shape {positions.shape}"
                )
            if not np.all(np.isfinite(positions)) or np.any(positions < 0):
                raise ValueError("vertiport_positions must be finite and non-negative")
            if np.any(positions > self.area_size):
                raise ValueError(f"vertiport_positions must lie within area_size={self.area_size}")
            set_(self, "vertiport_positions", tuple(map(tuple, positions.tolist())))
        set_(self, "parking_capacity", _capacity("parking_capacity", self.parking_capacity, n))
        set_(self, "charging_capacity", _capacity("charging_capacity", self.charging_capacity, n))
        if self.corridor_capacity is not None:
            _check_int("corridor_capacity", self.corridor_capacity, 1)
        if int(self.parking_capacities.sum()) < a:
            raise ValueError(
                f"parking_capacity: {int(self.parking_capacities.sum())} stands in all cannot "
                f"park the {a} aircraft (n_aircraft) at the start of the day"
            )

        for name in ("day_start", "day_end"):
            _check_number(name, getattr(self, name))
        if self.day_end <= self.day_start:
            raise ValueError(
                f"day_end must be after day_start, got {self.day_start} -> {self.day_end}"
            )
        _check_number("stay_time", self.stay_time, strict=True)
        _check_int("seats", self.seats, 1)
        for name in ("cruise_speed", "battery_capacity", "aircraft_range", "charging_power"):
            _check_number(name, getattr(self, name), strict=True)
        _check_number("takeoff_time", self.takeoff_time)
        _check_number("landing_time", self.landing_time)
        if self.takeoff_time + self.landing_time <= 0:
            raise ValueError("takeoff_time + landing_time must be positive (a flight takes time)")
        for name in ("fare_per_mile", "fare_base", "electricity_price"):
            _check_number(name, getattr(self, name))

        interval = _check_number("demand_interval", self.demand_interval, strict=True)
        bins = self.day_length / interval
        if abs(bins - round(bins)) > 1e-9:
            raise ValueError(
                f"demand_interval={interval} must divide the day ({self.day_length} hours)"
            )
        center = tuple(self.urban_center)
        if len(center) != 2 or not all(_is_number(v) for v in center):
            raise ValueError(f"urban_center must be an (x, y) pair, got {self.urban_center!r}")
        set_(self, "urban_center", (float(center[0]), float(center[1])))
        _check_number("urban_radius", self.urban_radius)
        for name in ("morning_peak", "afternoon_peak"):
            _check_number(name, getattr(self, name))
        _check_number("peak_std", self.peak_std, strict=True)
        for name in (
            "demand_base",
            "demand_base_urban",
            "demand_peak_urban",
            "demand_peak_commuter",
            "demand_scale",
        ):
            _check_number(name, getattr(self, name))

        if not isinstance(self.uncertainty, bool | np.bool_):
            raise ValueError(f"uncertainty must be True or False, got {self.uncertainty!r}")
        _check_number("takeoff_delay_mean_max", self.takeoff_delay_mean_max)
        _check_probability("route_closure_prob", self.route_closure_prob)
        _check_probability("downtime_prob", self.downtime_prob)
        hours = tuple(self.downtime_hours)
        if len(hours) != 2 or not all(_is_number(v) for v in hours) or not 0 < hours[0] <= hours[1]:
            raise ValueError(
                f"downtime_hours must be a (low, high) pair with 0 < low <= high, "
                f"got {self.downtime_hours!r}"
            )
        if hours[1] >= self.day_length:
            # a grounding as long as the day could leave no decision at all
            raise ValueError(
                f"downtime_hours: the longest grounding ({hours[1]} h) must be shorter than "
                f"the day ({self.day_length} h)"
            )
        set_(self, "downtime_hours", (float(hours[0]), float(hours[1])))

    # ------------------------------------------------------------------ derived quantities
    @property
    def day_length(self) -> float:
        """Hours from ``day_start`` to ``day_end``."""
        return float(self.day_end - self.day_start)

    @property
    def n_demand_points(self) -> int:
        """Number of demand points (13 for 06:00-18:00 hourly)."""
        return round(self.day_length / self.demand_interval) + 1

    @property
    def demand_times(self) -> np.ndarray:
        """(P,) clock times of the demand points."""
        return self.day_start + self.demand_interval * np.arange(self.n_demand_points)

    @property
    def demand_bin_lengths(self) -> np.ndarray:
        """(P,) hours covered by each demand point's bin (half at both ends of the day)."""
        lengths = np.full(self.n_demand_points, float(self.demand_interval))
        lengths[[0, -1]] = self.demand_interval / 2.0
        return lengths

    def demand_bin(self, time: float) -> int:
        """Index of the demand point whose bin holds ``time``."""
        index = math.floor((time - self.day_start) / self.demand_interval + 0.5)
        return min(max(index, 0), self.n_demand_points - 1)

    @property
    def n_closure_hours(self) -> int:
        """Number of hourly route-closure slots (12 for 06:00-18:00)."""
        return math.ceil(self.day_length - 1e-9)

    def closure_hour(self, time: float) -> int:
        """Index of the hourly closure slot holding ``time``."""
        return min(max(int(time - self.day_start), 0), self.n_closure_hours - 1)

    @property
    def energy_per_mile(self) -> float:
        """kWh per mile flown."""
        return self.battery_capacity / self.aircraft_range

    @property
    def parking_capacities(self) -> np.ndarray:
        """(N,) parking stands per vertiport."""
        return self._per_vertiport(self.parking_capacity, 2.0, 2)

    @property
    def charging_capacities(self) -> np.ndarray:
        """(N,) chargers per vertiport."""
        return self._per_vertiport(self.charging_capacity, 1.2, 1)

    def _per_vertiport(self, value: Any, per_aircraft: float, minimum: int) -> np.ndarray:
        if value is None:
            # scale with the fleet per vertiport so that 40 aircraft fit at 8 vertiports
            value = max(minimum, math.ceil(per_aircraft * self.n_aircraft / self.n_vertiports))
        return np.broadcast_to(np.asarray(value, dtype=np.int64), (self.n_vertiports,)).copy()

    @property
    def max_fare(self) -> float:
        """Fare of the longest possible route (the square's diagonal): the fare normaliser."""
        return max(1.0, math.floor(self.fare_base + self.fare_per_mile * self.area_size * 2**0.5))

    @property
    def peak_bin_demand(self) -> float:
        """Expected passengers of the busiest pair in a full bin: the demand normaliser."""
        top = self.demand_base_urban + self.demand_peak_urban
        top = max(top, self.demand_base + self.demand_peak_commuter)
        return max(1.0, self.demand_scale * top * self.demand_interval)

    @property
    def max_flights_per_aircraft(self) -> int:
        """An upper bound on the flights one aircraft makes in a day (for pre-drawn delays)."""
        return math.ceil(self.day_length / (self.takeoff_time + self.landing_time)) + 1

    @property
    def random_effects(self) -> dict[str, bool]:
        """Which random effects are on (master switch and their own parameters)."""
        on = bool(self.uncertainty)
        return {
            "takeoff_delay": on and self.takeoff_delay_mean_max > 0,
            "route_closure": on and self.route_closure_prob > 0,
            "downtime": on and self.downtime_prob > 0,
        }


def as_config(config: UAMConfig | Mapping[str, Any] | None = None, **overrides: Any) -> UAMConfig:
    """A :class:`UAMConfig` from a config, a mapping of its fields (YAML) or None, with
    ``overrides`` (fields whose value is None are left as they are) applied on top."""
    if config is None:
        base = UAMConfig()
    elif isinstance(config, UAMConfig):
        base = config
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(UAMConfig)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}; known: {sorted(known)}")
        base = UAMConfig(**dict(config))
    else:
        raise ValueError(
            f"config must be a UAMConfig, a mapping of its fields or None, got "
            f"{type(config).__name__}"
        )
    changes = {key: value for key, value in overrides.items() if value is not None}
    return replace(base, **changes) if changes else base


# ---------------------------------------------------------------------- layout and tables
def vertiport_layout(config: UAMConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """(N, 2) vertiport positions: the given ones, the ``layout_seed`` ones, or drawn from
    ``rng`` (needed when ``layout_seed`` is None)."""
    if config.vertiport_positions is not None:
        return np.array(config.vertiport_positions, dtype=np.float64)
    if config.layout_seed is not None:
        rng = np.random.default_rng(config.layout_seed)
    elif rng is None:
        raise ValueError("vertiport_layout: layout_seed is None, so an rng is needed")
    return rng.uniform(0.0, config.area_size, size=(config.n_vertiports, 2))


def distance_matrix(positions: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances (miles)."""
    difference = positions[:, None, :] - positions[None, :, :]
    return np.sqrt((difference**2).sum(axis=-1))


def urban_vertiports(config: UAMConfig, positions: np.ndarray) -> np.ndarray:
    """(N,) bool: the vertiports within ``urban_radius`` of ``urban_center``."""
    center = np.asarray(config.urban_center)
    return np.linalg.norm(positions - center, axis=1) < config.urban_radius


def fare_table(config: UAMConfig, distance: np.ndarray) -> np.ndarray:
    """(N, N) fares per passenger in whole dollars; 0 on the diagonal."""
    fares = np.floor(config.fare_base + config.fare_per_mile * distance)
    np.fill_diagonal(fares, 0.0)
    return fares


def _bump(times: np.ndarray, peak: float, std: float) -> np.ndarray:
    return np.exp(-0.5 * ((times - peak) / std) ** 2)


def expected_demand(config: UAMConfig, urban: np.ndarray) -> np.ndarray:
    """(P, N, N) expected passengers per demand bin and origin-destination pair.

    The rate at each demand point (see the module docstring) times its bin's length; the
    diagonal is 0. This is what a planner (the MILP baseline) may know in advance.
    """
    times = config.demand_times
    morning = _bump(times, config.morning_peak, config.peak_std)
    afternoon = _bump(times, config.afternoon_peak, config.peak_std)
    urban_urban = config.demand_base_urban + config.demand_peak_urban * (morning + afternoon)
    to_suburb = config.demand_base + config.demand_peak_commuter * afternoon
    to_urban = config.demand_base + config.demand_peak_commuter * morning
    flat = np.full_like(times, config.demand_base)
    origin_urban = urban[:, None]
    destination_urban = urban[None, :]
    # (P, N, N) by pair type
    rate = np.where(
        origin_urban & destination_urban,
        urban_urban[:, None, None],
        np.where(
            origin_urban,
            to_suburb[:, None, None],
            np.where(destination_urban, to_urban[:, None, None], flat[:, None, None]),
        ),
    )
    rate = rate * config.demand_scale * config.demand_bin_lengths[:, None, None]
    n = urban.size
    rate[:, np.arange(n), np.arange(n)] = 0.0
    return rate


def leg_matrices(config: UAMConfig, distance: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair leg quantities, (N, N) each: ``flight_time`` (cruise, hours), ``energy``
    (kWh), ``charge_time`` (hours to recharge it), ``cycle_time`` (take-off + cruise +
    landing + recharge, without delay), ``energy_cost`` ($) and ``in_range`` (bool, off the
    diagonal)."""
    flight_time = distance / config.cruise_speed
    energy = distance * config.energy_per_mile
    charge_time = energy / config.charging_power
    in_range = distance <= config.aircraft_range * (1.0 + 1e-12)
    np.fill_diagonal(in_range, False)
    return {
        "flight_time": flight_time,
        "energy": energy,
        "charge_time": charge_time,
        "cycle_time": config.takeoff_time + flight_time + config.landing_time + charge_time,
        "energy_cost": energy * config.electricity_price,
        "in_range": in_range,
    }


# ---------------------------------------------------------------------- one day
def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class UAMScenario:
    """Everything random about one day, drawn at reset; the dynamics are deterministic given
    it and the decisions (so a plan can be replayed, and policies compared on the same day).

    Arrays (read-only), N vertiports, A aircraft, P demand points, H closure hours,
    F = ``config.max_flights_per_aircraft``:

    - ``positions`` (N, 2) miles, ``distance`` (N, N) miles, ``fare`` (N, N) $ per passenger,
      ``urban`` (N,) bool;
    - ``expected_demand`` (P, N, N) float and ``demand`` (P, N, N) int: the realised
      passengers per bin (Poisson around the expectation);
    - ``initial_location`` (A,) int: where each aircraft is parked at ``day_start``;
    - ``takeoff_delay_mean`` (N,) hours; ``takeoff_delay_draws`` (A, F): standard exponential
      draws, the n-th flight of aircraft k waits ``takeoff_delay_mean[origin] *
      takeoff_delay_draws[k, n]`` (common random numbers: the same for every policy);
    - ``route_closed`` (H, N, N) bool, symmetric: closed routes per hour of the day;
    - ``downtime_start``, ``downtime_end`` (A,) hours: the grounding window of each aircraft
      (``inf`` for none).
    """

    positions: np.ndarray
    distance: np.ndarray
    fare: np.ndarray
    urban: np.ndarray
    expected_demand: np.ndarray
    demand: np.ndarray
    initial_location: np.ndarray
    takeoff_delay_mean: np.ndarray
    takeoff_delay_draws: np.ndarray
    route_closed: np.ndarray
    downtime_start: np.ndarray
    downtime_end: np.ndarray

    @property
    def total_demand(self) -> int:
        """Passengers wanting to fly over the whole day."""
        return int(self.demand.sum())

    @property
    def potential_revenue(self) -> float:
        """Sum of demand x fare over the day: the precursor's profit normaliser."""
        return float((self.demand * self.fare[None]).sum())

    def check(self, config: UAMConfig) -> None:
        """Raise a ValueError naming the field if this scenario does not fit ``config``."""
        n, a = config.n_vertiports, config.n_aircraft
        p, h, f = config.n_demand_points, config.n_closure_hours, config.max_flights_per_aircraft
        shapes = {
            "positions": (n, 2),
            "distance": (n, n),
            "fare": (n, n),
            "urban": (n,),
            "expected_demand": (p, n, n),
            "demand": (p, n, n),
            "initial_location": (a,),
            "takeoff_delay_mean": (n,),
            "takeoff_delay_draws": (a, f),
            "route_closed": (h, n, n),
            "downtime_start": (a,),
            "downtime_end": (a,),
        }
        for name, shape in shapes.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.shape != shape:
                got = getattr(value, "shape", type(value).__name__)
                raise ValueError(f"scenario.{name} must be an array of shape {shape}, got {got}")
        if np.any(self.demand < 0) or self.demand.dtype.kind not in "iu":
            raise ValueError("scenario.demand must hold non-negative integers")
        location = self.initial_location
        if location.dtype.kind not in "iu" or np.any((location < 0) | (location >= n)):
            raise ValueError(f"scenario.initial_location must hold vertiport ids in 0..{n - 1}")
        parked = np.bincount(location, minlength=n)
        if np.any(parked > config.parking_capacities):
            raise ValueError("scenario.initial_location parks more aircraft than a vertiport fits")
        if np.any(self.takeoff_delay_mean < 0) or np.any(self.takeoff_delay_draws < 0):
            raise ValueError("scenario take-off delays must be non-negative")
        if np.any(self.downtime_end < self.downtime_start):
            raise ValueError("scenario.downtime_end must not precede downtime_start")


def _seed_sequence(rng: np.random.Generator | int | None) -> np.random.SeedSequence:
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(int(rng.integers(2**63 - 1)))
    if rng is None or (isinstance(rng, int | np.integer) and not isinstance(rng, bool)):
        return np.random.SeedSequence(None if rng is None else int(rng))
    raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {rng!r}")


def generate_scenario(
    config: UAMConfig, rng: np.random.Generator | int | None = None
) -> UAMScenario:
    """Draw one day (layout if not fixed, fleet start, demand, uncertainties).

    Each part has its own random stream spawned from ``rng`` (a Generator, which advances by
    one draw, or an int seed), so that switching an uncertainty off or changing the demand
    model leaves the other parts of the day as they were.
    """
    layout_ss, fleet_ss, demand_ss, delay_ss, closure_ss, downtime_ss = _seed_sequence(rng).spawn(6)
    n, a = config.n_vertiports, config.n_aircraft

    positions = vertiport_layout(config, np.random.default_rng(layout_ss))
    distance = distance_matrix(positions)
    urban = urban_vertiports(config, positions)
    fare = fare_table(config, distance)
    mean_demand = expected_demand(config, urban)
    demand = np.random.default_rng(demand_ss).poisson(mean_demand).astype(np.int64)

    stands = np.repeat(np.arange(n), config.parking_capacities)
    initial_location = np.random.default_rng(fleet_ss).choice(stands, size=a, replace=False)

    effects = config.random_effects
    delay_rng = np.random.default_rng(delay_ss)
    delay_mean = delay_rng.uniform(0.0, config.takeoff_delay_mean_max, size=n)
    delay_draws = delay_rng.standard_exponential((a, config.max_flights_per_aircraft))
    if not effects["takeoff_delay"]:
        delay_mean = np.zeros(n)

    hours = config.n_closure_hours
    closed_upper = np.random.default_rng(closure_ss).random((hours, n, n)) < (
        config.route_closure_prob
    )
    closed = np.triu(closed_upper, k=1)
    closed = closed | closed.transpose(0, 2, 1)  # weather closes a route both ways
    if not effects["route_closure"]:
        closed = np.zeros_like(closed)

    downtime_rng = np.random.default_rng(downtime_ss)
    grounded = downtime_rng.random(a) < config.downtime_prob
    start = downtime_rng.uniform(config.day_start, config.day_end, size=a)
    length = downtime_rng.uniform(*config.downtime_hours, size=a)
    if not effects["downtime"]:
        grounded = np.zeros(a, dtype=bool)
    downtime_start = np.where(grounded, start, np.inf)
    downtime_end = np.where(grounded, start + length, np.inf)

    return UAMScenario(
        positions=_read_only(positions),
        distance=_read_only(distance),
        fare=_read_only(fare),
        urban=_read_only(urban),
        expected_demand=_read_only(mean_demand),
        demand=_read_only(demand),
        initial_location=_read_only(initial_location.astype(np.int64)),
        takeoff_delay_mean=_read_only(delay_mean),
        takeoff_delay_draws=_read_only(delay_draws),
        route_closed=_read_only(closed),
        downtime_start=_read_only(downtime_start),
        downtime_end=_read_only(downtime_end),
    )
