"""Pure numpy simulator of ride-sharing order dispatch with pooling (OSPO/GRPO setting).

After Zhao & Li, "Multi-agent reinforcement learning for ride-sharing order dispatch" (OSPO,
arXiv 2507.15351; code RS2002/OSPO), with the OSRM routing server replaced by great-circle
travel times. Nothing here imports Gymnasium; the envs in :mod:`~opsrl.envs.ride_sharing.env`
wrap :class:`RideSharingSim`.

Model
-----
- **Time** advances in 1-minute steps, minute 0 .. ``episode_minutes``.
- **Travel**: between two points (lat/lon, degrees) the road distance is the great-circle
  distance times ``detour_factor`` (1.3) and the travel time is that distance at
  ``speed_kmh`` (15 km/h), in minutes. Vehicles move along straight lat/lon segments between
  waypoints at that pace, so a vehicle between waypoints sits at an interpolated position.
- **Vehicles** (M of them) start at uniformly drawn zone centroids with ``capacity`` (3) free
  seats. Matching an order reserves a seat; the vehicle is *en route* (busy) until it reaches
  the pickup, and is *free* when it is not en route and has a free seat. Only free vehicles
  can be matched, at most one order per vehicle and minute.
- **Routes**: after a match the vehicle drives to the new pickup, then drops its passengers in
  the order that minimises the sum of their trip times, found by brute force over the
  ``n!`` orders of its ``n <= capacity`` drop-offs. An order's *trip time* (total time) runs
  from its match to its drop-off and includes the pickup drive; its *detour* is the trip time
  minus the pickup drive minus the direct ride time.
- **Orders** appear at their minute, wait at most ``max_wait_minutes`` (5) unmatched and
  expire after that: an order appearing in minute a can be matched in minutes a .. a+4.
- **Feasible pairs** (vehicle, order): the vehicle is free, the pickup is at most
  ``max_pickup_minutes`` away, and some drop-off order keeps every onboard trip that is within
  ``timeout_minutes`` (40) within it (the new order itself may exceed the limit; that is a
  timeout and is penalised). :meth:`RideSharingSim.candidates` keeps the K nearest feasible
  orders of every vehicle (by pickup time, ties by order id).
- **Reward** of a match (OSPO's ``reward_func``), with t_pickup the pickup drive, t_add the
  increase of the summed trip times of all the vehicle's orders (the new order's whole trip
  included), d_direct the road distance of the new order's direct ride, n_timeout the number
  of the vehicle's orders (new and onboard) whose planned trip exceeds ``timeout_minutes``::

      r = 3 + 1 * d_direct[km] - 3 * t_pickup[h] - 1 * n_timeout - 3 * t_add[h]
            - 5 * max(0, t_add[min] - 40) / 60

  (the 40 is ``timeout_minutes``; the weights are :class:`RewardWeights`). A vehicle's
  cumulative reward is its *income*; the fairness term of OSPO is the change of the standard
  deviation of incomes across the fleet.

Readings of the spec (where it is silent or ambiguous; the OSPO code decided)
-------------------------------------------------------------------------
- Units: distances in km, times in minutes, turned into hours inside the reward.
- d_direct is the road distance (great-circle x detour factor), as OSRM's route distance in
  the OSPO code; t_add counts the new order's whole trip (pickup drive included), as the
  code's ``time_add``.
- n_timeout counts every order of the new plan over the limit, as the code does, so an order
  that is already late is charged again at the vehicle's later matches.
- Feasibility: the spec's OR-Tools baseline allows no onboard trip over 40 minutes after an
  insertion; here the new order and orders that are already late may exceed it (charged by
  n_timeout), so that long trips stay servable. A baseline wanting the strict rule filters
  ``FeasiblePairs.n_timeout == 0``.
- The pickup radius defaults to 10 minutes (the OSPO code has none; its mean pickup is about
  7 minutes); the spec's baseline uses 5.

Use
---
``sim.reset(rng, orders)``; then each minute ``sim.candidates()`` (or ``sim.feasible_pairs()``
for every feasible pair), ``sim.match(pairs)`` with (vehicle, order) pairs, and
``sim.advance()``. :meth:`RideSharingSim.dispatch` does one whole minute from per-vehicle
candidate scores (platform matching by :func:`resolve_matching`, the assignment problem solved
with ``scipy.optimize.linear_sum_assignment``). :meth:`RideSharingSim.agent_observations` gives
the per-vehicle observation vectors the envs use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from opsrl.envs.ride_sharing.data import TripOrders, haversine_km

__all__ = [
    "ASSIGNED",
    "DELIVERED",
    "EXPIRED",
    "FUTURE",
    "ONBOARD",
    "ORDER_STATUS",
    "PENDING",
    "Candidates",
    "DispatchResult",
    "FeasiblePairs",
    "RewardWeights",
    "RideSharingSim",
    "SimConfig",
    "match_reward",
    "observation_size",
    "resolve_matching",
]

#: Order status codes (:attr:`RideSharingSim.order_status`).
FUTURE, PENDING, ASSIGNED, ONBOARD, DELIVERED, EXPIRED = range(6)
ORDER_STATUS = ("future", "pending", "assigned", "onboard", "delivered", "expired")

#: Tolerance on minute comparisons, against float drift of recomputed trip times.
EPS = 1e-9

#: Per-vehicle features: lat, lon, free seats, pickup minutes left, busy, time, own income,
#: fleet mean income.
OWN_FEATURES = 8
#: Per onboard slot: drop lat, lon, minutes left, trip time, detour.
ONBOARD_FEATURES = 5
#: Per candidate slot: pickup lat, lon, drop lat, lon, age, pickup minutes, direct km, added
#: minutes.
CANDIDATE_FEATURES = 8
#: Incomes are divided by this in observations (OSPO's scaling).
INCOME_SCALE = 10.0


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the match reward (OSPO's ``reward_parameter`` defaults)."""

    match_bonus: float = 3.0
    per_direct_km: float = 1.0
    per_pickup_hour: float = 3.0
    per_timeout: float = 1.0
    per_added_hour: float = 3.0
    per_excess_added_hour: float = 5.0


def match_reward(
    direct_km: np.ndarray | float,
    pickup_minutes: np.ndarray | float,
    n_timeout: np.ndarray | int,
    added_minutes: np.ndarray | float,
    timeout_minutes: float = 40.0,
    weights: RewardWeights = RewardWeights(),
) -> np.ndarray:
    """Reward of matching an order (see the module docstring); minutes in, hours inside."""
    excess = np.maximum(0.0, np.asarray(added_minutes, dtype=np.float64) - timeout_minutes)
    return (
        weights.match_bonus
        + weights.per_direct_km * np.asarray(direct_km, dtype=np.float64)
        - weights.per_pickup_hour * np.asarray(pickup_minutes, dtype=np.float64) / 60.0
        - weights.per_timeout * np.asarray(n_timeout, dtype=np.float64)
        - weights.per_added_hour * np.asarray(added_minutes, dtype=np.float64) / 60.0
        - weights.per_excess_added_hour * excess / 60.0
    )


@dataclass(frozen=True)
class SimConfig:
    """Parameters of :class:`RideSharingSim` (validated by the envs' constructors)."""

    num_vehicles: int = 20
    num_candidates: int = 4
    capacity: int = 3
    episode_minutes: int = 30
    max_pickup_minutes: float = 10.0
    max_wait_minutes: int = 5
    timeout_minutes: float = 40.0
    speed_kmh: float = 15.0
    detour_factor: float = 1.3
    reward_weights: RewardWeights = field(default_factory=RewardWeights)


def observation_size(capacity: int, num_candidates: int) -> int:
    """Length of one vehicle's observation vector."""
    return (
        OWN_FEATURES
        + ONBOARD_FEATURES * capacity
        + CANDIDATE_FEATURES * num_candidates
        + num_candidates
        + 1
    )


@dataclass(frozen=True, eq=False)
class FeasiblePairs:
    """Feasible (vehicle, order) pairs of the current minute, with their evaluation.

    Rows are sorted by vehicle, then pickup time, then pickup zone, then order id. For row p,
    the matched vehicle would drive ``pickup_minutes[p]`` to the pickup and then drop the
    orders ``stop_orders[p, :n]`` (the new one among them; -1 pads to ``capacity``) at
    ``stop_minutes[p, :n]`` minutes from now (inf pads).
    """

    vehicle: np.ndarray  # (P,) int64
    order: np.ndarray  # (P,) int64
    pickup_minutes: np.ndarray  # (P,)
    direct_km: np.ndarray  # (P,) road km of the order's direct ride
    direct_minutes: np.ndarray  # (P,)
    added_minutes: np.ndarray  # (P,) t_add
    n_timeout: np.ndarray  # (P,) int64
    reward: np.ndarray  # (P,)
    stop_orders: np.ndarray  # (P, C) int64
    stop_minutes: np.ndarray  # (P, C)

    def __len__(self) -> int:
        return int(self.vehicle.size)

    def take(self, rows: np.ndarray) -> FeasiblePairs:
        """The given rows, in that order."""
        return FeasiblePairs(**{name: getattr(self, name)[rows] for name in _PAIR_FIELDS})

    @staticmethod
    def concatenate(parts: list[FeasiblePairs]) -> FeasiblePairs:
        """Rows of all ``parts`` (unsorted)."""
        return FeasiblePairs(
            **{
                name: np.concatenate([getattr(part, name) for part in parts])
                for name in _PAIR_FIELDS
            }
        )


_PAIR_FIELDS = (
    "vehicle",
    "order",
    "pickup_minutes",
    "direct_km",
    "direct_minutes",
    "added_minutes",
    "n_timeout",
    "reward",
    "stop_orders",
    "stop_minutes",
)


@dataclass(frozen=True, eq=False)
class Candidates:
    """The K nearest feasible orders of every vehicle.

    ``pairs`` holds the evaluated candidate pairs (a subset of
    :meth:`RideSharingSim.feasible_pairs`, same sort); ``pair[v, k]`` is the row of vehicle
    v's candidate k in it (-1 for an empty slot) and ``order[v, k]`` its order id (-1).
    """

    pairs: FeasiblePairs
    pair: np.ndarray  # (M, K) int64
    order: np.ndarray  # (M, K) int64

    @property
    def valid(self) -> np.ndarray:
        """(M, K) bool, True where slot k holds a candidate."""
        return self.order >= 0

    def field(self, name: str, fill: float = 0.0) -> np.ndarray:
        """(M, K) values of a :class:`FeasiblePairs` column per slot (``fill`` if empty),
        e.g. ``field("reward")`` or ``field("pickup_minutes")``."""
        column = getattr(self.pairs, name)
        values = np.full(self.pair.shape, fill, dtype=np.result_type(column, type(fill)))
        valid = self.pair >= 0
        values[valid] = column[self.pair[valid]]
        return values


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """Outcome of one :meth:`RideSharingSim.dispatch` minute, per vehicle."""

    rewards: np.ndarray  # (M,) match reward, 0 when unmatched
    matched_slot: np.ndarray  # (M,) int64, -1 or the candidate index 0..K-1
    matched_order: np.ndarray  # (M,) int64, -1 or the order id
    acted: np.ndarray  # (M,) bool: free with at least one candidate
    fairness_penalty: float  # -(std of incomes after - before)


def resolve_matching(scores: np.ndarray, candidate_orders: np.ndarray) -> np.ndarray:
    """One-to-one matching that maximises the summed scores of the chosen options.

    Args:
        scores: (M, K + 1) scores per vehicle; column 0 scores "no order", column k + 1 the
            vehicle's candidate k.
        candidate_orders: (M, K) order id of each candidate slot, -1 where empty. Empty slots
            are excluded; an order may be a candidate of several vehicles but goes to one.

    Returns:
        (M,) the chosen candidate index (0..K-1) per vehicle, -1 for "no order".

    Every vehicle takes exactly one option, so the total is the sum over vehicles of
    ``scores[v, 0]`` plus the gains ``scores[v, k+1] - scores[v, 0]`` of matched pairs: the
    problem is a maximum-weight bipartite matching on the pairs with a positive gain, solved by
    ``linear_sum_assignment`` on each connected component (a tie keeps "no order").
    """
    scores = np.asarray(scores, dtype=np.float64)
    candidate_orders = np.asarray(candidate_orders, dtype=np.int64)
    num_vehicles = candidate_orders.shape[0]
    chosen = np.full(num_vehicles, -1, dtype=np.int64)
    rows, slots = np.nonzero(candidate_orders >= 0)
    gain = scores[rows, slots + 1] - scores[rows, 0]
    positive = gain > 0.0
    rows, slots, gain = rows[positive], slots[positive], gain[positive]
    if rows.size == 0:
        return chosen
    orders = candidate_orders[rows, slots]
    vehicle_ids, row_index = np.unique(rows, return_inverse=True)
    order_ids, column_index = np.unique(orders, return_inverse=True)
    n_rows, n_columns = vehicle_ids.size, order_ids.size
    graph = coo_matrix(
        (np.ones(rows.size), (row_index, n_rows + column_index)),
        shape=(n_rows + n_columns, n_rows + n_columns),
    )
    _, label = connected_components(graph, directed=False)
    edge_label = label[row_index]
    # Pairs sorted by component, so each component's edges are one contiguous block.
    by_component = np.argsort(edge_label, kind="stable")
    bounds = np.flatnonzero(np.diff(edge_label[by_component])) + 1
    for block in np.split(by_component, bounds):
        if block.size == 1:
            edge = block[0]
            chosen[rows[edge]] = slots[edge]
            continue
        local_rows, row_of = np.unique(row_index[block], return_inverse=True)
        local_columns, column_of = np.unique(column_index[block], return_inverse=True)
        weights = np.zeros((local_rows.size, local_columns.size))
        weights[row_of, column_of] = gain[block]
        slot_of = np.full(weights.shape, -1, dtype=np.int64)
        slot_of[row_of, column_of] = slots[block]
        matched_rows, matched_columns = linear_sum_assignment(weights, maximize=True)
        # Non-edges weigh 0: a row "matched" to one stays unmatched.
        real = weights[matched_rows, matched_columns] > 0.0
        vehicles = vehicle_ids[local_rows[matched_rows[real]]]
        chosen[vehicles] = slot_of[matched_rows[real], matched_columns[real]]
    return chosen


class RideSharingSim:
    """Fleet, orders and platform of one ride-sharing episode (see the module docstring).

    Args:
        zone_lat, zone_lon: (Z,) zone centroids in degrees; vehicles start on them and
            orders' origins and destinations are zone indices into them.
        config: the simulator's parameters.
        bounds: ``(lat_min, lat_max, lon_min, lon_max)`` used to normalise coordinates in
            observations (the zone layout's bounding box by default).
    """

    def __init__(
        self,
        zone_lat: np.ndarray,
        zone_lon: np.ndarray,
        config: SimConfig = SimConfig(),
        bounds: tuple[float, float, float, float] | None = None,
    ) -> None:
        self.config = config
        self.zone_lat = np.asarray(zone_lat, dtype=np.float64)
        self.zone_lon = np.asarray(zone_lon, dtype=np.float64)
        if bounds is None:
            bounds = (
                float(self.zone_lat.min()),
                float(self.zone_lat.max()),
                float(self.zone_lon.min()),
                float(self.zone_lon.max()),
            )
        self.bounds = bounds
        self.minutes_per_km = 60.0 * config.detour_factor / config.speed_kmh
        lat_min, lat_max, lon_min, lon_max = bounds
        corners = np.array(
            [[lat_min, lon_min], [lat_min, lon_max], [lat_max, lon_min], [lat_max, lon_max]]
        )
        corner_km = haversine_km(
            corners[:, None, 0], corners[:, None, 1], corners[None, :, 0], corners[None, :, 1]
        )
        #: Upper bound of the great-circle distance between two points of the box (1% margin).
        self.max_distance_km = 1.01 * float(corner_km.max())
        # Orders start and end on zone centroids: their legs are lookups in this (Z, Z) table.
        self._zone_minutes = self.travel_minutes(
            self.zone_lat[:, None], self.zone_lon[:, None], self.zone_lat[None], self.zone_lon[None]
        )
        capacity = config.capacity
        self._permutations: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in range(1, capacity + 1):
            perms = np.array(list(permutations(range(n))), dtype=np.int64)
            self._permutations[n] = (perms, np.argsort(perms, axis=1))
        self._started = False

    # ------------------------------------------------------------------------ geometry
    def travel_minutes(
        self,
        lat1: np.ndarray | float,
        lon1: np.ndarray | float,
        lat2: np.ndarray | float,
        lon2: np.ndarray | float,
    ) -> np.ndarray:
        """Driving minutes between points: great-circle km x detour factor / speed."""
        return haversine_km(lat1, lon1, lat2, lon2) * self.minutes_per_km

    def road_km(
        self,
        lat1: np.ndarray | float,
        lon1: np.ndarray | float,
        lat2: np.ndarray | float,
        lon2: np.ndarray | float,
    ) -> np.ndarray:
        """Road distance in km: great-circle km x detour factor."""
        return haversine_km(lat1, lon1, lat2, lon2) * self.config.detour_factor

    # ------------------------------------------------------------------------ episode
    def reset(
        self,
        rng: np.random.Generator,
        orders: TripOrders,
        start_zones: np.ndarray | None = None,
    ) -> None:
        """Start an episode: empty vehicles on zone centroids, drawn uniformly from ``rng``
        unless ``start_zones`` (M,) gives them; ``orders`` (appear minutes counted from the
        episode start; those outside the episode are dropped) appear at their minute."""
        config = self.config
        num_vehicles, capacity = config.num_vehicles, config.capacity
        num_zones = self.zone_lat.size
        if len(orders) and (
            orders.origin_zone.min() < 0
            or orders.destination_zone.min() < 0
            or orders.origin_zone.max() >= num_zones
            or orders.destination_zone.max() >= num_zones
        ):
            raise ValueError("orders refer to zones outside the layout")
        if start_zones is None:
            start_zone = rng.integers(0, num_zones, size=num_vehicles)
        else:
            start_zone = np.asarray(start_zones, dtype=np.int64)
            if start_zone.shape != (num_vehicles,) or not (
                (start_zone >= 0).all() and (start_zone < num_zones).all()
            ):
                raise ValueError(
                    f"start_zones must hold {num_vehicles} zone indices in 0..{num_zones - 1}"
                )
        orders = orders.window(0, config.episode_minutes)

        # Vehicles: waypoints [plan start, pickup, drop-offs...] with absolute minutes; unused
        # waypoints have time inf.
        waypoints = capacity + 2
        self._wp_lat = np.zeros((num_vehicles, waypoints))
        self._wp_lon = np.zeros((num_vehicles, waypoints))
        self._wp_time = np.full((num_vehicles, waypoints), np.inf)
        self._wp_lat[:, 0] = self.zone_lat[start_zone]
        self._wp_lon[:, 0] = self.zone_lon[start_zone]
        self._wp_time[:, 0] = 0.0
        self._slot_order = np.full((num_vehicles, capacity), -1, dtype=np.int64)
        self._en_route = np.zeros(num_vehicles, dtype=bool)
        self._pickup_time = np.zeros(num_vehicles)  # absolute minute of the pending pickup
        self._picking_order = np.full(num_vehicles, -1, dtype=np.int64)
        self._income = np.zeros(num_vehicles)

        # Orders.
        self._appear = orders.appear_minute.astype(np.int64)
        self._origin_zone = orders.origin_zone.astype(np.int64)
        self._destination_zone = orders.destination_zone.astype(np.int64)
        self._origin_lat = self.zone_lat[self._origin_zone]
        self._origin_lon = self.zone_lon[self._origin_zone]
        self._destination_lat = self.zone_lat[self._destination_zone]
        self._destination_lon = self.zone_lon[self._destination_zone]
        n_orders = len(orders)
        self._direct_km = self.road_km(
            self._origin_lat, self._origin_lon, self._destination_lat, self._destination_lon
        )
        self._direct_minutes = self._direct_km * (60.0 / config.speed_kmh)
        self._status = np.full(n_orders, FUTURE, dtype=np.int8)
        self._vehicle = np.full(n_orders, -1, dtype=np.int64)
        self._match_minute = np.full(n_orders, -1, dtype=np.int64)
        self._pickup_minutes = np.zeros(n_orders)
        self._drop_time = np.full(n_orders, np.inf)  # absolute minute of the planned drop-off
        self._delivered_minute = np.full(n_orders, -1, dtype=np.int64)

        self._minute = 0
        self._next_order = 0  # orders are sorted by appear minute
        self._served = 0
        self._delivered = 0
        self._expired = 0
        self._timeouts = 0
        self._pickup_sum = 0.0
        self._confirmation_sum = 0.0
        self._delivery_sum = 0.0
        self._detour_sum = 0.0
        self._reward_sum = 0.0
        self._started = True
        self._release_orders()
        self._invalidate()

    @property
    def minute(self) -> int:
        """Current minute of the episode, 0 .. episode_minutes."""
        return self._minute

    @property
    def done(self) -> bool:
        """True once ``episode_minutes`` minutes have passed."""
        return self._minute >= self.config.episode_minutes

    def advance(self) -> None:
        """Move one minute: vehicles drive, reach pickups and drop passengers, unmatched orders
        that have waited ``max_wait_minutes`` expire, and the next minute's orders appear."""
        self._check_running("advance")
        self._minute += 1
        now = float(self._minute)
        picked = np.flatnonzero(self._en_route & (self._pickup_time <= now + EPS))
        self._en_route[picked] = False
        self._status[self._picking_order[picked]] = ONBOARD
        self._picking_order[picked] = -1

        slots = self._slot_order
        held = slots >= 0
        safe = np.where(held, slots, 0)
        if held.any():
            dropping = held & (self._status[safe] == ONBOARD) & (self._drop_time[safe] <= now + EPS)
        else:
            dropping = held
        if dropping.any():
            dropped = slots[dropping]
            slots[dropping] = -1
            self._status[dropped] = DELIVERED
            self._delivered_minute[dropped] = self._minute
            trip = self._drop_time[dropped] - self._match_minute[dropped]
            detour = self._detour(dropped, trip)
            self._delivered += dropped.size
            self._delivery_sum += float(trip.sum())
            self._detour_sum += float(detour.sum())
            self._timeouts += int(np.count_nonzero(trip > self.config.timeout_minutes + EPS))

        waiting = np.flatnonzero(self._status == PENDING)
        expire = waiting[self._minute - self._appear[waiting] >= self.config.max_wait_minutes]
        self._status[expire] = EXPIRED
        self._expired += expire.size
        self._release_orders()
        self._invalidate()

    # ------------------------------------------------------------------------ vehicles
    def vehicle_positions(self) -> np.ndarray:
        """(M, 2) current latitude and longitude of every vehicle."""
        if self._positions is None:
            now = float(self._minute)
            times = self._wp_time
            # Waypoint times increase along a route, so the passed ones are a prefix.
            last = np.count_nonzero(times <= now + EPS, axis=1) - 1
            rows = np.arange(times.shape[0])
            following = np.minimum(last + 1, times.shape[1] - 1)
            moving = (last + 1 < times.shape[1]) & np.isfinite(times[rows, following])
            start, end = times[rows, last], times[rows, following]
            fraction = np.where(moving, (now - start) / np.where(moving, end - start, 1.0), 0.0)
            lat = self._wp_lat[rows, last]
            lon = self._wp_lon[rows, last]
            lat = lat + fraction * (self._wp_lat[rows, following] - lat)
            lon = lon + fraction * (self._wp_lon[rows, following] - lon)
            self._positions = np.stack([lat, lon], axis=1)
        return self._positions

    @property
    def vehicle_orders(self) -> np.ndarray:
        """(M, capacity) order ids held by each vehicle (assigned or onboard), -1 = free seat."""
        return self._read_only(self._slot_order)

    @property
    def en_route(self) -> np.ndarray:
        """(M,) True while a vehicle drives to a pickup."""
        return self._read_only(self._en_route)

    @property
    def free_seats(self) -> np.ndarray:
        """(M,) seats not reserved by an order."""
        return self.config.capacity - np.count_nonzero(self._slot_order >= 0, axis=1)

    def free_vehicles(self) -> np.ndarray:
        """(M,) True for vehicles that can be matched now: not en route, with a free seat."""
        return ~self._en_route & (self.free_seats > 0)

    @property
    def income(self) -> np.ndarray:
        """(M,) cumulative match reward of every vehicle this episode."""
        return self._read_only(self._income)

    # ------------------------------------------------------------------------ orders
    @property
    def num_orders(self) -> int:
        """Orders of the episode, appeared or not."""
        return int(self._status.size)

    @property
    def order_status(self) -> np.ndarray:
        """(N,) status code of every order of the episode (:data:`ORDER_STATUS`)."""
        return self._read_only(self._status)

    @property
    def order_vehicle(self) -> np.ndarray:
        """(N,) vehicle an order was matched to, -1 if none."""
        return self._read_only(self._vehicle)

    @property
    def order_appear_minute(self) -> np.ndarray:
        """(N,) minute each order appears."""
        return self._read_only(self._appear)

    @property
    def order_origin_zone(self) -> np.ndarray:
        """(N,) pickup zone index of each order."""
        return self._read_only(self._origin_zone)

    @property
    def order_destination_zone(self) -> np.ndarray:
        """(N,) drop-off zone index of each order."""
        return self._read_only(self._destination_zone)

    @property
    def order_trip_minutes(self) -> np.ndarray:
        """(N,) planned (or, once delivered, actual) trip time from match to drop-off; nan if
        unmatched."""
        matched = self._match_minute >= 0
        return np.where(matched, self._drop_time - self._match_minute, np.nan)

    def pending_orders(self) -> np.ndarray:
        """Ids of the orders waiting to be matched."""
        return np.flatnonzero(self._status == PENDING)

    # ------------------------------------------------------------------------ decisions
    def feasible_pairs(self) -> FeasiblePairs:
        """Every feasible (vehicle, order) pair of this minute with its evaluation (cached).

        This evaluates every free vehicle against every pending order within the pickup
        radius; :meth:`candidates` evaluates only the nearest ones and is cheaper.
        """
        self._check_started("feasible_pairs")
        if self._pairs is None:
            vehicle, order, pickup = self._near_pairs()
            self._pairs = self._sorted(self._evaluate(vehicle, order, pickup)[0])
        return self._pairs

    def candidates(self) -> Candidates:
        """The K nearest feasible pending orders of every vehicle (cached until the state
        changes): nearest by pickup time, ties by pickup zone index, then order id.

        Only the nearest pairs are evaluated: ranks 0..K-1 first, then the next 2K for the
        vehicles that an infeasible insertion left short, then 4K, and so on.
        """
        self._check_started("candidates")
        if self._candidates is None:
            self._candidates = self._nearest_feasible()
        return self._candidates

    def action_mask(self) -> np.ndarray:
        """(M, K + 1) bool: slot 0 ("no order") always, slot k + 1 where candidate k exists."""
        valid = self.candidates().valid
        return np.concatenate([np.ones((valid.shape[0], 1), dtype=bool), valid], axis=1)

    def match(self, pairs: Any) -> np.ndarray:
        """Apply (vehicle, order) pairs and return the (M,) match rewards (0 if unmatched).

        Each pair must be feasible now (any row of :meth:`feasible_pairs`, not only
        candidates); a vehicle or an order may appear in one pair only. Raises a ValueError
        naming the first bad pair, before changing anything.
        """
        self._check_running("match")
        array = np.asarray(pairs, dtype=np.int64)
        if array.size == 0:
            return np.zeros(self.config.num_vehicles)
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"pairs must be (vehicle, order) pairs, got shape {array.shape}")
        vehicle, order = array[:, 0], array[:, 1]
        for name, ids in (("vehicle", vehicle), ("order", order)):
            unique, counts = np.unique(ids, return_counts=True)
            if (counts > 1).any():
                raise ValueError(f"{name} {unique[counts > 1][0]} appears in more than one pair")
        exists = (
            (vehicle >= 0)
            & (vehicle < self.config.num_vehicles)
            & (order >= 0)
            & (order < self.num_orders)
        )
        ok = exists.copy()
        ok[exists] = self.free_vehicles()[vehicle[exists]] & (
            self._status[order[exists]] == PENDING
        )
        pickup = np.zeros(vehicle.size)
        if ok.any():
            position = self.vehicle_positions()[vehicle[ok]]
            pickup[ok] = self.travel_minutes(
                position[:, 0],
                position[:, 1],
                self._origin_lat[order[ok]],
                self._origin_lon[order[ok]],
            )
            ok &= pickup <= self.config.max_pickup_minutes + EPS
        table, source = (
            self._evaluate(vehicle[ok], order[ok], pickup[ok]) if ok.any() else (None, None)
        )
        if table is None or len(table) < vehicle.size:
            feasible = np.zeros(vehicle.size, dtype=bool)
            if table is not None:
                feasible[np.flatnonzero(ok)[source]] = True
            bad = int(np.flatnonzero(~feasible)[0])
            raise ValueError(self._why_infeasible(int(vehicle[bad]), int(order[bad])))
        return self._apply(table)

    def dispatch(self, scores: np.ndarray) -> DispatchResult:
        """One platform minute: resolve the vehicles' candidate scores (M, K + 1) into a
        one-to-one matching (:func:`resolve_matching`), apply it and :meth:`advance`.

        Scores of vehicles without candidates (busy, or nothing feasible nearby) are ignored:
        they have nothing to choose.
        """
        self._check_running("dispatch")
        scores = np.asarray(scores, dtype=np.float64)
        num_vehicles, k = self.config.num_vehicles, self.config.num_candidates
        if scores.shape != (num_vehicles, k + 1):
            raise ValueError(
                f"scores must have shape (num_vehicles, num_candidates + 1) = "
                f"({num_vehicles}, {k + 1}), got {scores.shape}"
            )
        if not np.all(np.isfinite(scores)):
            raise ValueError("scores must be finite (found NaN or inf)")
        candidates = self.candidates()
        acted = candidates.valid.any(axis=1)
        slot = resolve_matching(scores, candidates.order)
        matched = np.flatnonzero(slot >= 0)
        std_before = float(self._income.std())
        rewards = self._apply(candidates.pairs.take(candidates.pair[matched, slot[matched]]))
        penalty = -(float(self._income.std()) - std_before)
        matched_order = np.full(num_vehicles, -1, dtype=np.int64)
        matched_order[matched] = candidates.order[matched, slot[matched]]
        self.advance()
        return DispatchResult(
            rewards=rewards,
            matched_slot=slot,
            matched_order=matched_order,
            acted=acted,
            fairness_penalty=penalty,
        )

    # ------------------------------------------------------------------------ reporting
    def kpi(self) -> dict[str, float]:
        """Episode-to-date KPIs (means are 0.0 while nothing was counted).

        ``served_orders`` (matched), ``delivered_orders``, ``unmatched_orders`` (expired
        unmatched), ``pending_orders``, ``appeared_orders``, ``mean_pickup_minutes`` and
        ``mean_confirmation_minutes`` (appearance to match) over matched orders,
        ``mean_delivery_minutes`` (trip time, match to drop-off) and ``mean_detour_minutes``
        over delivered orders, ``timeouts`` (delivered orders whose trip exceeded
        ``timeout_minutes``), ``total_reward`` and ``income_std`` (std of vehicle incomes).
        """
        served, delivered = self._served, self._delivered
        return {
            "served_orders": served,
            "delivered_orders": delivered,
            "unmatched_orders": self._expired,
            "pending_orders": int(np.count_nonzero(self._status == PENDING)),
            "appeared_orders": self._next_order,
            "mean_pickup_minutes": self._pickup_sum / served if served else 0.0,
            "mean_confirmation_minutes": self._confirmation_sum / served if served else 0.0,
            "mean_delivery_minutes": self._delivery_sum / delivered if delivered else 0.0,
            "mean_detour_minutes": self._detour_sum / delivered if delivered else 0.0,
            "timeouts": self._timeouts,
            "total_reward": self._reward_sum,
            "income_std": float(self._income.std()),
        }

    def agent_observations(self) -> np.ndarray:
        """(M, D) float32 observation of every vehicle (layout in :meth:`observation_bounds`)."""
        config = self.config
        num_vehicles, capacity, k = config.num_vehicles, config.capacity, config.num_candidates
        now = float(self._minute)
        timeout = config.timeout_minutes
        lat_min, lat_max, lon_min, lon_max = self.bounds
        lat_span, lon_span = lat_max - lat_min, lon_max - lon_min
        free_seats = self.free_seats

        position = self.vehicle_positions()
        own = np.empty((num_vehicles, OWN_FEATURES))
        own[:, 0] = (position[:, 0] - lat_min) / lat_span
        own[:, 1] = (position[:, 1] - lon_min) / lon_span
        own[:, 2] = free_seats / capacity
        to_pickup = np.where(self._en_route, np.maximum(self._pickup_time - now, 0.0), 0.0)
        own[:, 3] = to_pickup / config.max_pickup_minutes
        own[:, 4] = (self._en_route | (free_seats == 0)).astype(np.float64)
        own[:, 5] = now / config.episode_minutes
        own[:, 6] = self._income / INCOME_SCALE
        own[:, 7] = self._income.mean() / INCOME_SCALE

        # Onboard slots in drop-off order, empty ones last.
        slots = self._slot_order
        held = slots >= 0
        safe = np.where(held, slots, 0)
        # with no order yet in the episode the order arrays are empty: nothing is onboard
        drop_time = (
            np.where(held, self._drop_time[safe], np.inf)
            if self.num_orders
            else np.full(held.shape, np.inf)
        )
        sequence = np.argsort(drop_time, axis=1, kind="stable")
        slots = np.take_along_axis(slots, sequence, axis=1)
        held = slots >= 0
        safe = np.where(held, slots, 0)
        trip = (
            self._drop_time[safe] - self._match_minute[safe]
            if self.num_orders
            else np.zeros(held.shape)
        )
        onboard = (
            np.stack(
                [
                    (self._destination_lat[safe] - lat_min) / lat_span,
                    (self._destination_lon[safe] - lon_min) / lon_span,
                    (self._drop_time[safe] - now) / timeout,
                    trip / timeout,
                    self._detour(safe, trip) / timeout,
                ],
                axis=-1,
            )
            if self.num_orders
            else np.zeros((num_vehicles, capacity, ONBOARD_FEATURES))
        )
        onboard = np.where(held[..., None], onboard, 0.0)

        candidates = self.candidates()
        valid = candidates.valid
        features = np.zeros((num_vehicles, k, CANDIDATE_FEATURES))
        if valid.any():
            pairs = candidates.pairs
            row = candidates.pair[valid]
            order = pairs.order[row]
            features[valid] = np.stack(
                [
                    (self._origin_lat[order] - lat_min) / lat_span,
                    (self._origin_lon[order] - lon_min) / lon_span,
                    (self._destination_lat[order] - lat_min) / lat_span,
                    (self._destination_lon[order] - lon_min) / lon_span,
                    (now - self._appear[order]) / config.max_wait_minutes,
                    pairs.pickup_minutes[row] / config.max_pickup_minutes,
                    pairs.direct_km[row] / (self.max_distance_km * config.detour_factor),
                    pairs.added_minutes[row] / timeout,
                ],
                axis=-1,
            )
        mask = np.concatenate([np.ones((num_vehicles, 1)), valid], axis=1)
        observation = np.concatenate(
            [own, onboard.reshape(num_vehicles, -1), features.reshape(num_vehicles, -1), mask],
            axis=1,
        ).astype(np.float32)
        low, high = self.observation_bounds()
        # Only float rounding can reach past the bounds (see observation_bounds).
        return np.clip(observation, low, high, out=observation)

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (D,) float32 of a vehicle's observation.

        Layout: 8 own features ``[lat, lon, free seats / capacity, minutes to pickup /
        max_pickup_minutes, busy, minute / episode_minutes, income / 10, fleet mean income /
        10]``; ``capacity`` onboard slots ``[drop lat, drop lon, minutes left / timeout, trip
        minutes / timeout, detour minutes / timeout]`` in drop-off order; K candidate slots
        ``[pickup lat, pickup lon, drop lat, drop lon, age / max_wait_minutes, pickup minutes /
        max_pickup_minutes, direct road km / box diagonal road km, added minutes / timeout]``;
        the (K + 1) mask. Coordinates are normalised to the layout's bounding box. A trip is
        at most the episode plus the pickup drive plus ``capacity`` legs across the box, which
        bounds the time features; a vehicle earns at most one reward a minute, which bounds
        incomes (:meth:`max_abs_reward`).
        """
        config = self.config
        capacity, k = config.capacity, config.num_candidates
        trip_high = self.max_trip_minutes() / config.timeout_minutes
        income_high = config.episode_minutes * self.max_abs_reward() / INCOME_SCALE
        own_low = [0, 0, 0, 0, 0, 0, -income_high, -income_high]
        own_high = [1, 1, 1, 1, 1, 1, income_high, income_high]
        onboard_low = [0, 0, 0, 0, 0] * capacity
        onboard_high = [1, 1, trip_high, trip_high, trip_high] * capacity
        added_high = capacity * trip_high
        candidate_low = [0, 0, 0, 0, 0, 0, 0, -added_high] * k
        candidate_high = [1, 1, 1, 1, 1, 1, 1, added_high] * k
        low = np.array(own_low + onboard_low + candidate_low + [0] * (k + 1), dtype=np.float32)
        high = np.array(own_high + onboard_high + candidate_high + [1] * (k + 1), dtype=np.float32)
        return low, high

    def max_trip_minutes(self) -> float:
        """Upper bound of any trip time: the episode, the pickup drive and ``capacity`` legs
        across the bounding box."""
        config = self.config
        longest_leg = self.max_distance_km * self.minutes_per_km
        return config.episode_minutes + config.max_pickup_minutes + config.capacity * longest_leg

    def max_abs_reward(self) -> float:
        """Upper bound of the absolute value of one match reward."""
        config, weights = self.config, self.config.reward_weights
        added_hours = config.capacity * self.max_trip_minutes() / 60.0
        return (
            abs(weights.match_bonus)
            + abs(weights.per_direct_km) * self.max_distance_km * config.detour_factor
            + abs(weights.per_pickup_hour) * config.max_pickup_minutes / 60.0
            + abs(weights.per_timeout) * config.capacity
            + (abs(weights.per_added_hour) + abs(weights.per_excess_added_hour)) * added_hours
        )

    # ------------------------------------------------------------------------ internals
    def _check_started(self, method: str) -> None:
        if not self._started:
            raise RuntimeError(f"call reset() before {method}()")

    def _check_running(self, method: str) -> None:
        self._check_started(method)
        if self.done:
            raise RuntimeError(
                f"the episode ended after {self.config.episode_minutes} minutes; call reset() "
                f"before {method}()"
            )

    def _invalidate(self) -> None:
        self._positions: np.ndarray | None = None
        self._pairs: FeasiblePairs | None = None
        self._candidates: Candidates | None = None

    def _release_orders(self) -> None:
        """Orders appearing this minute become pending."""
        if self._minute >= self.config.episode_minutes:
            return
        end = int(np.searchsorted(self._appear, self._minute, side="right"))
        self._status[self._next_order : end] = PENDING
        self._next_order = end

    def _detour(self, orders: np.ndarray, trip: np.ndarray) -> np.ndarray:
        # In-vehicle time never beats the direct ride (triangle inequality); clipping only
        # removes float noise.
        return np.maximum(trip - self._pickup_minutes[orders] - self._direct_minutes[orders], 0.0)

    def _why_infeasible(self, vehicle: int, order: int) -> str:
        if not 0 <= vehicle < self.config.num_vehicles:
            return f"vehicle {vehicle} does not exist"
        if not 0 <= order < self.num_orders:
            return f"order {order} does not exist"
        if self._status[order] != PENDING:
            return f"order {order} is not pending (it is {ORDER_STATUS[self._status[order]]})"
        if self._en_route[vehicle]:
            return f"vehicle {vehicle} is busy driving to a pickup"
        if self.free_seats[vehicle] == 0:
            return f"vehicle {vehicle} has no free seat"
        position = self.vehicle_positions()[vehicle]
        pickup = float(
            self.travel_minutes(
                position[0], position[1], self._origin_lat[order], self._origin_lon[order]
            )
        )
        if pickup > self.config.max_pickup_minutes + EPS:
            return (
                f"order {order} is {pickup:.1f} minutes from vehicle {vehicle}, more than "
                f"max_pickup_minutes={self.config.max_pickup_minutes:g}"
            )
        return (
            f"vehicle {vehicle} cannot take order {order}: every drop-off order would push an "
            f"onboard trip past timeout_minutes={self.config.timeout_minutes:g}"
        )

    def _empty_pairs(self) -> FeasiblePairs:
        capacity = self.config.capacity
        integers, reals = np.zeros(0, dtype=np.int64), np.zeros(0)
        return FeasiblePairs(
            vehicle=integers,
            order=integers,
            pickup_minutes=reals,
            direct_km=reals,
            direct_minutes=reals,
            added_minutes=reals,
            n_timeout=integers,
            reward=reals,
            stop_orders=np.zeros((0, capacity), dtype=np.int64),
            stop_minutes=np.zeros((0, capacity)),
        )

    def _sorted(self, pairs: FeasiblePairs) -> FeasiblePairs:
        """Rows by vehicle, pickup minutes, pickup zone, order id."""
        sequence = np.lexsort(
            (pairs.order, self._origin_zone[pairs.order], pairs.pickup_minutes, pairs.vehicle)
        )
        return pairs.take(sequence)

    def _pickup_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Free vehicles, their driving minutes to every zone (V, Z), and pending orders."""
        vehicles = np.flatnonzero(self.free_vehicles())
        position = self.vehicle_positions()[vehicles]
        to_zone = self.travel_minutes(
            position[:, 0, None], position[:, 1, None], self.zone_lat[None], self.zone_lon[None]
        )
        return vehicles, to_zone, self.pending_orders()

    def _near_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (free vehicle, pending order) pair within the pickup radius, with minutes."""
        vehicles, to_zone, pending = self._pickup_table()
        pickup = to_zone[:, self._origin_zone[pending]]
        near_vehicle, near_order = np.nonzero(pickup <= self.config.max_pickup_minutes + EPS)
        return vehicles[near_vehicle], pending[near_order], pickup[near_vehicle, near_order]

    def _nearest_feasible(self) -> Candidates:
        """Evaluate pairs nearest-first until every vehicle has K feasible ones or none left.

        Orders starting in one zone share their pickup time, so a vehicle's nearest orders are
        found zone by zone: zones sorted by driving time, each zone's pending orders by id.
        """
        config = self.config
        num_vehicles, k = config.num_vehicles, config.num_candidates
        pair = np.full((num_vehicles, k), -1, dtype=np.int64)
        vehicles, to_zone, pending = self._pickup_table()
        if vehicles.size == 0 or pending.size == 0:
            return Candidates(pairs=self._empty_pairs(), pair=pair, order=pair.copy())
        num_zones = self.zone_lat.size
        by_zone = pending[np.argsort(self._origin_zone[pending], kind="stable")]
        zone_count = np.bincount(self._origin_zone[by_zone], minlength=num_zones)
        zone_start = np.cumsum(zone_count) - zone_count
        zone_sequence = np.argsort(to_zone, axis=1, kind="stable")  # (V, Z) nearest first
        zone_minutes = np.take_along_axis(to_zone, zone_sequence, axis=1)
        reachable = zone_minutes <= config.max_pickup_minutes + EPS
        count = np.where(reachable, zone_count[zone_sequence], 0)
        cumulative = np.cumsum(count, axis=1)
        available = cumulative[:, -1]

        parts: list[FeasiblePairs] = []
        found = np.zeros(vehicles.size, dtype=np.int64)
        active = np.flatnonzero(available > 0)
        first_rank, batch = 0, k
        while active.size:
            ranks = np.arange(first_rank, first_rank + batch)
            rows = np.repeat(active, batch)
            rank = np.tile(ranks, active.size)
            keep = rank < available[rows]
            rows, rank = rows[keep], rank[keep]
            # Position of the zone holding the rank-th nearest order of each vehicle.
            position = np.count_nonzero(cumulative[rows] <= rank[:, None], axis=1)
            zone = zone_sequence[rows, position]
            within = rank - (cumulative[rows, position] - count[rows, position])
            order = by_zone[zone_start[zone] + within]
            table, source = self._evaluate(vehicles[rows], order, zone_minutes[rows, position])
            parts.append(table)
            np.add.at(found, rows[source], 1)
            first_rank += batch
            # Doubling keeps the rounds few for vehicles that can take hardly anything.
            batch *= 2
            active = active[(found[active] < k) & (available[active] > first_rank)]
        pairs = self._sorted(FeasiblePairs.concatenate(parts)) if parts else self._empty_pairs()
        if len(pairs):
            rank = np.arange(len(pairs)) - np.searchsorted(pairs.vehicle, pairs.vehicle)
            keep = rank < k
            pairs = pairs.take(np.flatnonzero(keep))
            rank = rank[keep]
            pair[pairs.vehicle, rank] = np.arange(len(pairs))
        order = np.full((num_vehicles, k), -1, dtype=np.int64)
        order[pair >= 0] = pairs.order[pair[pair >= 0]]
        return Candidates(pairs=pairs, pair=pair, order=order)

    def _evaluate(
        self, vehicle: np.ndarray, order: np.ndarray, pickup: np.ndarray
    ) -> tuple[FeasiblePairs, np.ndarray]:
        """Evaluate (vehicle, order) pairs (vehicles free, orders pending, within reach).

        Returns the feasible ones (in no particular order) and, for each, its index in the
        input.
        """
        if vehicle.size == 0:
            return self._empty_pairs(), np.zeros(0, dtype=np.int64)
        config = self.config
        now = float(self._minute)
        held = np.count_nonzero(self._slot_order >= 0, axis=1)[vehicle]
        parts, sources = [], []
        for n_held in np.unique(held).tolist():
            group = np.flatnonzero(held == n_held)
            columns = self._evaluate_group(vehicle[group], order[group], pickup[group], n_held, now)
            parts.append(columns[:-1])
            sources.append(group[columns[-1]])
        (added, n_timeout, stop_orders, stop_minutes) = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        source = np.concatenate(sources)
        vehicle, order, pickup = vehicle[source], order[source], pickup[source]
        direct_km = self._direct_km[order]
        table = FeasiblePairs(
            vehicle=vehicle,
            order=order,
            pickup_minutes=pickup,
            direct_km=direct_km,
            direct_minutes=self._direct_minutes[order],
            added_minutes=added,
            n_timeout=n_timeout,
            reward=match_reward(
                direct_km,
                pickup,
                n_timeout,
                added,
                config.timeout_minutes,
                config.reward_weights,
            ),
            stop_orders=stop_orders,
            stop_minutes=stop_minutes,
        )
        return table, source

    def _evaluate_group(
        self,
        vehicle: np.ndarray,
        order: np.ndarray,
        pickup: np.ndarray,
        n_held: int,
        now: float,
    ) -> tuple[np.ndarray, ...]:
        """Best drop-off order for pairs whose vehicle holds ``n_held`` orders (brute force).

        Returns, for the feasible pairs, ``(added, n_timeout, stop_orders (P, C), stop_minutes
        (P, C), their indices in the input)``.
        """
        capacity, timeout = self.config.capacity, self.config.timeout_minutes
        n_pairs, n_stops = vehicle.size, n_held + 1
        if n_held:
            slots = self._slot_order[vehicle]
            compact = np.argsort(slots < 0, axis=1, kind="stable")[:, :n_held]
            held_orders = np.take_along_axis(slots, compact, axis=1)
        else:
            held_orders = np.zeros((n_pairs, 0), dtype=np.int64)
        stops = np.concatenate([held_orders, order[:, None]], axis=1)  # new order last
        stop_zone = self._destination_zone[stops]
        first_leg = self._zone_minutes[self._origin_zone[order][:, None], stop_zone]
        between = self._zone_minutes[stop_zone[:, :, None], stop_zone[:, None, :]]
        perms, inverse = self._permutations[n_stops]
        n_perms = perms.shape[0]
        arrival = np.empty((n_pairs, n_perms, n_stops))  # minutes from now, in visiting order
        arrival[:, :, 0] = first_leg[:, perms[:, 0]]
        for j in range(1, n_stops):
            arrival[:, :, j] = arrival[:, :, j - 1] + between[:, perms[:, j - 1], perms[:, j]]
        arrival += pickup[:, None, None]
        by_stop = arrival[:, np.arange(n_perms)[:, None], inverse]  # (P, F, n) by stop index
        elapsed = np.zeros((n_pairs, n_stops))
        elapsed[:, :n_held] = now - self._match_minute[held_orders]
        trip = elapsed[:, None, :] + by_stop
        old_trip = self._drop_time[held_orders] - self._match_minute[held_orders]
        already_late = old_trip > timeout + EPS
        keeps_limit = (trip[:, :, :n_held] <= timeout + EPS) | already_late[:, None, :]
        cost = np.where(keeps_limit.all(axis=2), trip.sum(axis=2), np.inf)
        best = np.argmin(cost, axis=1)
        rows = np.arange(n_pairs)
        feasible = np.isfinite(cost[rows, best])
        rows, best = rows[feasible], best[feasible]
        best_trip = trip[rows, best]
        added = best_trip.sum(axis=1) - old_trip[rows].sum(axis=1)
        n_timeout = np.count_nonzero(best_trip > timeout + EPS, axis=1).astype(np.int64)
        stop_orders = np.full((rows.size, capacity), -1, dtype=np.int64)
        stop_minutes = np.full((rows.size, capacity), np.inf)
        stop_orders[:, :n_stops] = np.take_along_axis(stops[rows], perms[best], axis=1)
        stop_minutes[:, :n_stops] = arrival[rows, best]
        return added, n_timeout, stop_orders, stop_minutes, rows

    def _apply(self, table: FeasiblePairs) -> np.ndarray:
        """Apply evaluated pairs of this minute (distinct vehicles and orders)."""
        rewards = np.zeros(self.config.num_vehicles)
        if len(table) == 0:
            return rewards
        now = float(self._minute)
        vehicle, order = table.vehicle, table.order
        pickup, reward = table.pickup_minutes, table.reward
        stop_orders, stop_minutes = table.stop_orders, table.stop_minutes
        position = self.vehicle_positions()[vehicle]

        # New route: current position, pickup, drop-offs in the chosen order.
        self._wp_time[vehicle] = np.inf
        self._wp_lat[vehicle, 0], self._wp_lon[vehicle, 0] = position[:, 0], position[:, 1]
        self._wp_time[vehicle, 0] = now
        self._wp_lat[vehicle, 1] = self._origin_lat[order]
        self._wp_lon[vehicle, 1] = self._origin_lon[order]
        self._wp_time[vehicle, 1] = now + pickup
        stops = stop_orders >= 0
        safe = np.where(stops, stop_orders, 0)
        self._wp_lat[vehicle, 2:] = np.where(stops, self._destination_lat[safe], 0.0)
        self._wp_lon[vehicle, 2:] = np.where(stops, self._destination_lon[safe], 0.0)
        self._wp_time[vehicle, 2:] = np.where(stops, now + stop_minutes, np.inf)
        self._drop_time[stop_orders[stops]] = now + stop_minutes[stops]

        free_slot = np.argmax(self._slot_order[vehicle] < 0, axis=1)
        self._slot_order[vehicle, free_slot] = order
        self._en_route[vehicle] = True
        self._pickup_time[vehicle] = now + pickup
        self._picking_order[vehicle] = order
        self._status[order] = ASSIGNED
        self._vehicle[order] = vehicle
        self._match_minute[order] = self._minute
        self._pickup_minutes[order] = pickup
        self._income[vehicle] += reward
        rewards[vehicle] = reward

        self._served += len(table)
        self._pickup_sum += float(pickup.sum())
        self._confirmation_sum += float((self._minute - self._appear[order]).sum())
        self._reward_sum += float(reward.sum())
        positions = self._positions  # matching does not move anyone
        self._invalidate()
        self._positions = positions
        return rewards

    @staticmethod
    def _read_only(array: np.ndarray) -> np.ndarray:
        view = array.view()
        view.setflags(write=False)
        return view
