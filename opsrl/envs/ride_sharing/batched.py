"""Batched platform view of the ride-sharing env: N cities stepped together, SB3 VecEnv API.

- :class:`RideSharingBatchSim`: N episodes of :class:`~opsrl.envs.ride_sharing.sim.
  RideSharingSim` in flat numpy arrays (plain numpy, no Gymnasium): vehicle v of copy c is row
  ``c * M + v``; the orders of all copies are concatenated, copy by copy, so that order ids
  keep each copy's order. Order generation, the candidate search, route evaluation, vehicle
  movement, observations, rewards and KPIs are vectorised over all copies; only the
  assignment problems that no shortcut settles are solved one by one (``scipy``'s
  ``linear_sum_assignment``, one call per connected component, as the single simulator does).
- :class:`RideSharingVecEnv`: N copies of :class:`~opsrl.envs.ride_sharing.env.RideSharingEnv`
  (``opsrl/RideSharing-v0``) behind the SB3 VecEnv API, copy i reproducing the single env
  reset with ``seed + i``.

The per-vehicle VecEnv of parameter-sharing agents is
:class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv`, not this one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import permutations
from typing import Any

import numpy as np
from gymnasium.utils.seeding import np_random
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from opsrl.envs.batched import BatchedVecEnv, no_arguments
from opsrl.envs.ride_sharing.data import GravityDemand
from opsrl.envs.ride_sharing.env import RideSharingCore, RideSharingEnv
from opsrl.envs.ride_sharing.sim import (
    ASSIGNED,
    CANDIDATE_FEATURES,
    DELIVERED,
    EPS,
    EXPIRED,
    FUTURE,
    INCOME_SCALE,
    ONBOARD,
    ONBOARD_FEATURES,
    OWN_FEATURES,
    PENDING,
    match_reward,
)

__all__ = [
    "BatchDispatchResult",
    "RideSharingBatchSim",
    "RideSharingVecEnv",
    "resolve_matchings",
]

#: env_method names the batched env answers, like RideSharingEnv's methods.
SUPPORTED_METHODS = ("action_masks",)

#: Relative margin by which an assignment must beat every alternative to be settled without
#: ``linear_sum_assignment``: far above float rounding, so the solver would find the same.
UNIQUE_MARGIN = 1e-9

#: KPI names, in the order of :meth:`RideSharingSim.kpi`.
KPI_NAMES = (
    "served_orders",
    "delivered_orders",
    "unmatched_orders",
    "pending_orders",
    "appeared_orders",
    "mean_pickup_minutes",
    "mean_confirmation_minutes",
    "mean_delivery_minutes",
    "mean_detour_minutes",
    "timeouts",
    "total_reward",
    "income_std",
)

_PAIR_COLUMNS = (
    "vehicle",
    "order",
    "pickup_minutes",
    "direct_km",
    "added_minutes",
    "n_timeout",
    "reward",
    "stop_orders",
    "stop_minutes",
)


def _take(pairs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: column[rows] for name, column in pairs.items()}


def _segment_sums(values: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """Sum of ``values`` per segment, each equal bit for bit to ``values[segment == s].sum()``.

    ``segment`` must be non-decreasing. numpy sums a row of a 2-D array the way it sums a 1-D
    array (pairwise), which ``np.bincount`` weights or ``np.add.reduceat`` (left to right) do
    not; so segments of equal length are summed together as the rows of one array.
    """
    sums = np.zeros(n_segments)
    if values.size == 0:
        return sums
    counts = np.bincount(segment, minlength=n_segments)
    starts = np.cumsum(counts) - counts
    for length in np.unique(counts[counts > 0]).tolist():
        segments = np.flatnonzero(counts == length)
        rows = starts[segments, None] + np.arange(length)
        sums[segments] = values[rows].sum(axis=1)
    return sums


@dataclass(frozen=True, eq=False)
class BatchDispatchResult:
    """Outcome of one :meth:`RideSharingBatchSim.dispatch` minute."""

    vehicle_rewards: np.ndarray  # (N, M) match reward, 0 when unmatched
    rewards: np.ndarray  # (N,) the fleet's reward of every copy (sum over its vehicles)
    matched_slot: np.ndarray  # (N, M) int64, -1 or the candidate index 0..K-1
    matched: np.ndarray  # (N,) int64 matches of every copy
    acting_vehicles: np.ndarray  # (N,) int64 vehicles with at least one candidate
    fairness_penalty: np.ndarray  # (N,) -(std of incomes after - before)


class RideSharingBatchSim:
    """N ride-sharing episodes in flat arrays, stepped minute by minute all together.

    Copy c follows exactly the :class:`~opsrl.envs.ride_sharing.sim.RideSharingSim` of
    ``core`` reset with the c-th generator given to :meth:`reset`: the same draws in the same
    order, the same candidates, matchings, rewards, observations and KPIs, bit for bit.

    Args:
        core: the city, demand and parameters (a :class:`~opsrl.envs.ride_sharing.env.
            RideSharingCore`; its simulator is only read for geometry).
        num_copies: N.
    """

    def __init__(self, core: RideSharingCore, num_copies: int) -> None:
        self.core = core
        self.config = config = core.config
        self.num_copies = int(num_copies)
        geometry = core.sim
        self._geometry = geometry
        self.zone_lat, self.zone_lon = geometry.zone_lat, geometry.zone_lon
        self.num_zones = int(self.zone_lat.size)
        self.bounds = geometry.bounds
        self.max_distance_km = geometry.max_distance_km
        # Computed by the same call as the single simulator's table, so equal bit for bit.
        self._zone_minutes = geometry.travel_minutes(
            self.zone_lat[:, None], self.zone_lon[:, None], self.zone_lat[None], self.zone_lon[None]
        )
        self._permutations: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in range(1, config.capacity + 1):
            perms = np.array(list(permutations(range(n))), dtype=np.int64)
            self._permutations[n] = (perms, np.argsort(perms, axis=1))
        self.observation_low, self.observation_high = geometry.observation_bounds()
        num_vehicles = config.num_vehicles
        self._vehicle_copy = np.repeat(np.arange(self.num_copies), num_vehicles)

        # The gravity demand of a minute depends on the minute only: its Poisson rates and the
        # origin-destination CDFs that Generator.choice builds from the probabilities
        # (p.cumsum() / its last entry) are tabulated once.
        self._od_cdf: np.ndarray | None = None
        # Only the gravity model's own draws are known; any other demand is drawn per copy.
        if type(core.demand) is GravityDemand:
            clock = core.start_minute + np.arange(config.episode_minutes)
            self._rates = core.demand.rate(clock)
            cdfs = []
            for minute in clock.tolist():
                cdf = core.demand.od_probabilities(minute).ravel().cumsum()
                cdf /= cdf[-1]
                cdfs.append(cdf)
            self._od_cdf = np.stack(cdfs)
        self._started = False

    # ------------------------------------------------------------------------ episode
    def reset(self, rngs: Sequence[np.random.Generator]) -> None:
        """Start a new episode in every copy, copy c drawing from ``rngs[c]`` exactly what
        ``RideSharingCore.reset(rngs[c])`` draws: its orders, then its vehicles' start zones."""
        config, core = self.config, self.core
        n_copies, num_vehicles = self.num_copies, config.num_vehicles
        minutes, num_zones = config.episode_minutes, self.num_zones
        if len(rngs) != n_copies:
            raise ValueError(f"expected {n_copies} generators, got {len(rngs)}")
        start_zone = np.empty((n_copies, num_vehicles), dtype=np.int64)
        if self._od_cdf is not None:
            # GravityDemand.sample: Poisson counts, then one Generator.choice per minute with
            # orders; choice draws one uniform per order, so one rng.random call per copy
            # draws the same numbers, and the inverse-CDF lookup runs for all copies at once.
            counts = np.empty((n_copies, minutes), dtype=np.int64)
            uniforms = []
            for c, rng in enumerate(rngs):
                counts[c] = rng.poisson(self._rates)
                uniforms.append(rng.random(int(counts[c].sum())))
                start_zone[c] = rng.integers(0, num_zones, size=num_vehicles)
            uniform = np.concatenate(uniforms)
            appear = np.repeat(np.tile(np.arange(minutes), n_copies), counts.ravel())
            by_minute = np.argsort(appear, kind="stable")
            edges = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])
            pair = np.empty(uniform.size, dtype=np.int64)
            for minute in range(minutes):
                rows = by_minute[edges[minute] : edges[minute + 1]]
                pair[rows] = self._od_cdf[minute].searchsorted(uniform[rows], side="right")
            origin, destination = pair // num_zones, pair % num_zones
        else:
            # Trip records (each copy subsamples the hour's trips) or another demand model:
            # the single env's own draw, copy by copy.
            tables = []
            for c, rng in enumerate(rngs):
                tables.append(core.draw_orders(rng).window(0, minutes))
                start_zone[c] = rng.integers(0, num_zones, size=num_vehicles)
            appear = np.concatenate([t.appear_minute for t in tables]).astype(np.int64)
            origin = np.concatenate([t.origin_zone for t in tables]).astype(np.int64)
            destination = np.concatenate([t.destination_zone for t in tables]).astype(np.int64)
            copy_of = np.repeat(np.arange(n_copies), [len(t) for t in tables])
            counts = np.bincount(copy_of * minutes + appear, minlength=n_copies * minutes).reshape(
                n_copies, minutes
            )
            by_minute = np.argsort(appear, kind="stable")
            edges = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])
        per_copy = counts.sum(axis=1)

        # Vehicles: waypoints [plan start, pickup, drop-offs...] with absolute minutes.
        n_vehicles, capacity = n_copies * num_vehicles, config.capacity
        start = start_zone.ravel()
        self._wp_lat = np.zeros((n_vehicles, capacity + 2))
        self._wp_lon = np.zeros((n_vehicles, capacity + 2))
        self._wp_time = np.full((n_vehicles, capacity + 2), np.inf)
        self._wp_lat[:, 0] = self.zone_lat[start]
        self._wp_lon[:, 0] = self.zone_lon[start]
        self._wp_time[:, 0] = 0.0
        self._slot_order = np.full((n_vehicles, capacity), -1, dtype=np.int64)
        self._en_route = np.zeros(n_vehicles, dtype=bool)
        self._pickup_time = np.zeros(n_vehicles)
        self._picking_order = np.full(n_vehicles, -1, dtype=np.int64)
        self._income = np.zeros(n_vehicles)
        # Per vehicle: zones by driving minutes from where it stood when last computed.
        self._zones_lat = np.full(n_vehicles, np.nan)
        self._zones_lon = np.full(n_vehicles, np.nan)
        self._zone_sequence = np.zeros((n_vehicles, num_zones), dtype=np.int64)
        self._zone_sorted_minutes = np.zeros((n_vehicles, num_zones))

        # Orders of all copies, copy after copy, each copy's in its own order.
        n_orders = int(per_copy.sum())
        self._order_copy = np.repeat(np.arange(n_copies), per_copy)
        self._order_start = np.cumsum(per_copy) - per_copy
        self._appear = appear
        self._origin_zone = origin
        self._destination_zone = destination
        self._origin_lat = self.zone_lat[origin]
        self._origin_lon = self.zone_lon[origin]
        self._destination_lat = self.zone_lat[destination]
        self._destination_lon = self.zone_lon[destination]
        self._direct_km = self._geometry.road_km(
            self._origin_lat, self._origin_lon, self._destination_lat, self._destination_lon
        )
        self._direct_minutes = self._direct_km * (60.0 / config.speed_kmh)
        self._status = np.full(n_orders, FUTURE, dtype=np.int8)
        self._match_minute = np.full(n_orders, -1, dtype=np.int64)
        self._pickup_minutes = np.zeros(n_orders)
        self._drop_time = np.full(n_orders, np.inf)
        self._release_sequence, self._release_edges = by_minute, edges
        self._appeared_by_minute = np.cumsum(counts, axis=1)

        self._minute = 0
        zeros_int = np.zeros(n_copies, dtype=np.int64)
        self._served, self._delivered = zeros_int.copy(), zeros_int.copy()
        self._expired, self._timeouts = zeros_int.copy(), zeros_int.copy()
        self._pickup_sum, self._confirmation_sum = np.zeros(n_copies), np.zeros(n_copies)
        self._delivery_sum, self._detour_sum = np.zeros(n_copies), np.zeros(n_copies)
        self._reward_sum = np.zeros(n_copies)
        self._started = True
        self._release_orders()
        self._invalidate()

    @property
    def minute(self) -> int:
        """Current minute, shared by all copies (they start and end together)."""
        return self._minute

    @property
    def done(self) -> bool:
        """True once ``episode_minutes`` minutes have passed."""
        return self._minute >= self.config.episode_minutes

    def dispatch(self, scores: np.ndarray) -> BatchDispatchResult:
        """One platform minute in every copy from scores (N * M, K + 1) (finite, float64):
        matching, then :meth:`advance`. As :meth:`RideSharingSim.dispatch`, copy by copy."""
        self._check_running()
        config = self.config
        n_copies, num_vehicles = self.num_copies, config.num_vehicles
        candidates = self.candidates()
        acted = candidates["valid"].any(axis=1)
        slot = resolve_matchings(scores, candidates["order"])
        matched = np.flatnonzero(slot >= 0)
        std_before = self._income.reshape(n_copies, num_vehicles).std(axis=1)
        table = _take(candidates["pairs"], candidates["pair"][matched, slot[matched]])
        vehicle_rewards = self._apply(table).reshape(n_copies, num_vehicles)
        penalty = -(self._income.reshape(n_copies, num_vehicles).std(axis=1) - std_before)
        self.advance()
        return BatchDispatchResult(
            vehicle_rewards=vehicle_rewards,
            rewards=vehicle_rewards.sum(axis=1),
            matched_slot=slot.reshape(n_copies, num_vehicles),
            matched=np.bincount(self._vehicle_copy[matched], minlength=n_copies),
            acting_vehicles=np.count_nonzero(acted.reshape(n_copies, num_vehicles), axis=1),
            fairness_penalty=penalty,
        )

    def advance(self) -> None:
        """Move one minute in every copy: pickups, drop-offs, expiries, new orders."""
        self._check_running()
        config, n_copies = self.config, self.num_copies
        self._minute += 1
        now = float(self._minute)
        picked = np.flatnonzero(self._en_route & (self._pickup_time <= now + EPS))
        self._en_route[picked] = False
        self._status[self._picking_order[picked]] = ONBOARD
        self._picking_order[picked] = -1

        slots = self._slot_order
        held = slots >= 0
        if held.any():
            safe = np.where(held, slots, 0)
            dropping = held & (self._status[safe] == ONBOARD) & (self._drop_time[safe] <= now + EPS)
            if dropping.any():
                # Boolean indexing goes vehicle by vehicle, so copy by copy, each copy's
                # drop-offs in the single simulator's order.
                dropped = slots[dropping]
                slots[dropping] = -1
                self._status[dropped] = DELIVERED
                trip = self._drop_time[dropped] - self._match_minute[dropped]
                detour = self._detour(dropped, trip)
                copy = self._order_copy[dropped]
                self._delivered += np.bincount(copy, minlength=n_copies)
                self._delivery_sum += _segment_sums(trip, copy, n_copies)
                self._detour_sum += _segment_sums(detour, copy, n_copies)
                late = copy[trip > config.timeout_minutes + EPS]
                self._timeouts += np.bincount(late, minlength=n_copies)

        waiting = np.flatnonzero(self._status == PENDING)
        expire = waiting[self._minute - self._appear[waiting] >= config.max_wait_minutes]
        self._status[expire] = EXPIRED
        self._expired += np.bincount(self._order_copy[expire], minlength=n_copies)
        self._release_orders()
        self._invalidate()

    # ------------------------------------------------------------------------ reading
    def vehicle_positions(self) -> np.ndarray:
        """(N * M, 2) current latitude and longitude of every vehicle."""
        if self._positions is None:
            now = float(self._minute)
            times = self._wp_time
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

    def free_seats(self) -> np.ndarray:
        """(N * M,) seats not reserved by an order."""
        return self.config.capacity - np.count_nonzero(self._slot_order >= 0, axis=1)

    def free_vehicles(self) -> np.ndarray:
        """(N * M,) True for vehicles that can be matched now."""
        return ~self._en_route & (self.free_seats() > 0)

    def candidates(self) -> dict[str, Any]:
        """The K nearest feasible orders of every vehicle of every copy (cached until the state
        changes): ``pairs`` (dict of columns, rows sorted by vehicle, pickup minutes, pickup
        zone, order), ``pair`` (N * M, K) row in it or -1, ``order`` (N * M, K) global order
        id or -1, ``valid`` (N * M, K)."""
        self._check_started()
        if self._candidates is None:
            self._candidates = self._nearest_feasible()
        return self._candidates

    def candidate_orders(self) -> np.ndarray:
        """(N, M, K) order id of every candidate slot within its copy (the id the single
        simulator uses), -1 for an empty slot."""
        order = self.candidates()["order"]
        local = np.where(order >= 0, order - self._order_start[self._order_copy[order]], -1)
        return local.reshape(self.num_copies, self.config.num_vehicles, -1)

    def action_masks(self) -> np.ndarray:
        """(N, M (K + 1)) bool: per vehicle, slot 0 always and slot k + 1 where candidate k
        exists; the layout of :meth:`RideSharingEnv.action_masks`."""
        valid = self.candidates()["valid"]
        mask = np.concatenate([np.ones((valid.shape[0], 1), dtype=bool), valid], axis=1)
        return mask.reshape(self.num_copies, -1)

    def kpi(self) -> dict[str, np.ndarray]:
        """Episode-to-date KPIs of every copy (as :meth:`RideSharingSim.kpi`), (N,) arrays."""
        n_copies = self.num_copies
        served, delivered = self._served, self._delivered
        pending = np.bincount(self._order_copy[self._status == PENDING], minlength=n_copies)
        last_release = min(self._minute, self.config.episode_minutes - 1)

        def mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
            return np.divide(total, count, out=np.zeros(n_copies), where=count > 0)

        income = self._income.reshape(n_copies, self.config.num_vehicles)
        return {
            "served_orders": served.copy(),
            "delivered_orders": delivered.copy(),
            "unmatched_orders": self._expired.copy(),
            "pending_orders": pending,
            "appeared_orders": self._appeared_by_minute[:, last_release].copy(),
            "mean_pickup_minutes": mean(self._pickup_sum, served),
            "mean_confirmation_minutes": mean(self._confirmation_sum, served),
            "mean_delivery_minutes": mean(self._delivery_sum, delivered),
            "mean_detour_minutes": mean(self._detour_sum, delivered),
            "timeouts": self._timeouts.copy(),
            "total_reward": self._reward_sum.copy(),
            "income_std": income.std(axis=1),
        }

    def kpi_dicts(self) -> list[dict[str, float]]:
        """:meth:`kpi` as one dict of Python numbers per copy (the single env's ``kpi``)."""
        columns = self.kpi()
        values = [columns[name].tolist() for name in KPI_NAMES]
        return [dict(zip(KPI_NAMES, row, strict=True)) for row in zip(*values, strict=True)]

    def observations(self) -> np.ndarray:
        """(N, M D) float32: every copy's fleet observation, as
        :meth:`RideSharingSim.agent_observations` flattened."""
        config = self.config
        n_copies, num_vehicles = self.num_copies, config.num_vehicles
        n_vehicles, capacity, k = n_copies * num_vehicles, config.capacity, config.num_candidates
        now = float(self._minute)
        timeout = config.timeout_minutes
        lat_min, lat_max, lon_min, lon_max = self.bounds
        lat_span, lon_span = lat_max - lat_min, lon_max - lon_min
        free_seats = self.free_seats()
        # Features are computed in float64 as in the single simulator and cast to float32 as
        # they are written (the same rounding as its final astype), with no float64 copy of
        # the whole observation.
        observation = np.empty((n_vehicles, self.observation_low.size), dtype=np.float32)
        onboard_end = OWN_FEATURES + ONBOARD_FEATURES * capacity
        candidate_end = onboard_end + CANDIDATE_FEATURES * k

        position = self.vehicle_positions()
        own = observation[:, :OWN_FEATURES]
        own[:, 0] = (position[:, 0] - lat_min) / lat_span
        own[:, 1] = (position[:, 1] - lon_min) / lon_span
        own[:, 2] = free_seats / capacity
        to_pickup = np.where(self._en_route, np.maximum(self._pickup_time - now, 0.0), 0.0)
        own[:, 3] = to_pickup / config.max_pickup_minutes
        own[:, 4] = self._en_route | (free_seats == 0)
        own[:, 5] = now / config.episode_minutes
        own[:, 6] = self._income / INCOME_SCALE
        fleet_mean = self._income.reshape(n_copies, num_vehicles).mean(axis=1) / INCOME_SCALE
        own[:, 7] = np.repeat(fleet_mean, num_vehicles)

        onboard = observation[:, OWN_FEATURES:onboard_end].reshape(
            n_vehicles, capacity, ONBOARD_FEATURES
        )
        slots = self._slot_order
        held = slots >= 0
        if self._status.size and held.any():
            safe = np.where(held, slots, 0)
            drop_time = np.where(held, self._drop_time[safe], np.inf)
            sequence = np.argsort(drop_time, axis=1, kind="stable")
            slots = np.take_along_axis(slots, sequence, axis=1)
            held = slots >= 0
            safe = np.where(held, slots, 0)
            trip = self._drop_time[safe] - self._match_minute[safe]
            onboard[:, :, 0] = np.where(held, (self._destination_lat[safe] - lat_min) / lat_span, 0)
            onboard[:, :, 1] = np.where(held, (self._destination_lon[safe] - lon_min) / lon_span, 0)
            onboard[:, :, 2] = np.where(held, (self._drop_time[safe] - now) / timeout, 0.0)
            onboard[:, :, 3] = np.where(held, trip / timeout, 0.0)
            onboard[:, :, 4] = np.where(held, self._detour(safe, trip) / timeout, 0.0)
        else:
            onboard[:] = 0.0

        candidates = self.candidates()
        valid = candidates["valid"]
        features = observation[:, onboard_end:candidate_end].reshape(
            n_vehicles, k, CANDIDATE_FEATURES
        )
        features[:] = 0.0
        if valid.any():
            pairs = candidates["pairs"]
            row = candidates["pair"][valid]
            order = pairs["order"][row]
            features[valid] = np.stack(
                [
                    (self._origin_lat[order] - lat_min) / lat_span,
                    (self._origin_lon[order] - lon_min) / lon_span,
                    (self._destination_lat[order] - lat_min) / lat_span,
                    (self._destination_lon[order] - lon_min) / lon_span,
                    (now - self._appear[order]) / config.max_wait_minutes,
                    pairs["pickup_minutes"][row] / config.max_pickup_minutes,
                    pairs["direct_km"][row] / (self.max_distance_km * config.detour_factor),
                    pairs["added_minutes"][row] / timeout,
                ],
                axis=-1,
            )
        observation[:, candidate_end] = 1.0
        observation[:, candidate_end + 1 :] = valid
        # np.clip with (D,) bounds, in place; minimum/maximum do the same a lot faster.
        np.maximum(observation, self.observation_low, out=observation)
        np.minimum(observation, self.observation_high, out=observation)
        return observation.reshape(n_copies, -1)

    # ------------------------------------------------------------------------ internals
    def _check_started(self) -> None:
        if not self._started:
            raise RuntimeError("call reset() first")

    def _check_running(self) -> None:
        self._check_started()
        if self.done:
            raise RuntimeError(
                f"the episodes ended after {self.config.episode_minutes} minutes; call reset()"
            )

    def _invalidate(self) -> None:
        self._positions: np.ndarray | None = None
        self._candidates: dict[str, Any] | None = None

    def _release_orders(self) -> None:
        minute = self._minute
        if minute >= self.config.episode_minutes:
            return
        edges = self._release_edges
        self._status[self._release_sequence[edges[minute] : edges[minute + 1]]] = PENDING

    def _detour(self, orders: np.ndarray, trip: np.ndarray) -> np.ndarray:
        return np.maximum(trip - self._pickup_minutes[orders] - self._direct_minutes[orders], 0.0)

    def _empty_pairs(self) -> dict[str, np.ndarray]:
        capacity = self.config.capacity
        integers, reals = np.zeros(0, dtype=np.int64), np.zeros(0)
        return {
            "vehicle": integers,
            "order": integers,
            "pickup_minutes": reals,
            "direct_km": reals,
            "added_minutes": reals,
            "n_timeout": integers,
            "reward": reals,
            "stop_orders": np.zeros((0, capacity), dtype=np.int64),
            "stop_minutes": np.zeros((0, capacity)),
        }

    def _nearest_feasible(self) -> dict[str, Any]:
        """:meth:`RideSharingSim.candidates` for all copies at once: a vehicle's nearest
        orders are searched among its own copy's pending orders, bucketed by (copy, zone)."""
        config = self.config
        n_vehicles = self.num_copies * config.num_vehicles
        k, num_zones = config.num_candidates, self.num_zones
        pair = np.full((n_vehicles, k), -1, dtype=np.int64)
        vehicles = np.flatnonzero(self.free_vehicles())
        pending = np.flatnonzero(self._status == PENDING)
        if vehicles.size == 0 or pending.size == 0:
            return {
                "pairs": self._empty_pairs(),
                "pair": pair,
                "order": pair.copy(),
                "valid": pair >= 0,
            }
        zone_sequence, zone_minutes = self._zones_by_distance(vehicles)
        bucket = self._order_copy[pending] * num_zones + self._origin_zone[pending]
        by_zone = pending[np.argsort(bucket, kind="stable")]
        zone_count = np.bincount(bucket, minlength=self.num_copies * num_zones)
        zone_start = np.cumsum(zone_count) - zone_count
        reachable = zone_minutes <= config.max_pickup_minutes + EPS
        vehicle_bucket = (self._vehicle_copy[vehicles] * num_zones)[:, None] + zone_sequence
        count = np.where(reachable, zone_count[vehicle_bucket], 0)
        cumulative = np.cumsum(count, axis=1)
        available = cumulative[:, -1]
        # Row r of `cumulative` shifted by r * stride makes one sorted array, so that the zone
        # holding a vehicle's rank-th nearest order is one searchsorted for all vehicles.
        stride = int(available.max()) + 1
        row_shift = np.arange(vehicles.size, dtype=np.int64) * stride
        shifted = (cumulative + row_shift[:, None]).ravel()

        parts: list[dict[str, np.ndarray]] = []
        part_rows: list[np.ndarray] = []
        found = np.zeros(vehicles.size, dtype=np.int64)
        active = np.flatnonzero(available > 0)
        first_rank, batch = 0, k
        while active.size:
            rows = np.repeat(active, batch)
            rank = np.tile(np.arange(first_rank, first_rank + batch), active.size)
            keep = rank < available[rows]
            rows, rank = rows[keep], rank[keep]
            column = np.searchsorted(shifted, row_shift[rows] + rank, side="right")
            column -= rows * num_zones
            within = rank - (cumulative[rows, column] - count[rows, column])
            order = by_zone[zone_start[vehicle_bucket[rows, column]] + within]
            table, source = self._evaluate(vehicles[rows], order, zone_minutes[rows, column])
            parts.append(table)
            part_rows.append(rows[source])
            found += np.bincount(rows[source], minlength=vehicles.size)
            first_rank += batch
            batch *= 2
            active = active[(found[active] < k) & (available[active] > first_rank)]
        if not parts:
            return {
                "pairs": self._empty_pairs(),
                "pair": pair,
                "order": pair.copy(),
                "valid": pair >= 0,
            }
        # A vehicle's ranks run through its zones nearest first (ties by zone index) and each
        # zone's orders by id: the single simulator's sort by (pickup minutes, pickup zone,
        # order). A vehicle's pairs leave each round in rank order (evaluation keeps the input
        # order within a group of vehicles holding equally many orders) and later rounds have
        # higher ranks, so a stable sort by vehicle gives that order.
        pair_rows = np.concatenate(part_rows)
        sequence = np.argsort(pair_rows, kind="stable")
        pair_rows = pair_rows[sequence]
        rank = np.arange(pair_rows.size) - np.searchsorted(pair_rows, pair_rows)
        keep = rank < k
        columns = {name: np.concatenate([p[name] for p in parts]) for name in _PAIR_COLUMNS}
        pairs = _take(columns, sequence[keep])
        pair[pairs["vehicle"], rank[keep]] = np.arange(pairs["vehicle"].size)
        valid = pair >= 0
        order = np.full((n_vehicles, k), -1, dtype=np.int64)
        order[valid] = pairs["order"][pair[valid]]
        return {"pairs": pairs, "pair": pair, "order": order, "valid": valid}

    def _zones_by_distance(self, vehicles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zones sorted by driving minutes from each vehicle (ties by zone index), and those
        minutes, (V, Z) each. Rows are cached per vehicle and recomputed only for vehicles that
        moved: most free vehicles stand still between matches."""
        position = self.vehicle_positions()[vehicles]
        moved = vehicles[
            (position[:, 0] != self._zones_lat[vehicles])
            | (position[:, 1] != self._zones_lon[vehicles])
        ]
        if moved.size:
            where = self.vehicle_positions()[moved]
            to_zone = self._geometry.travel_minutes(
                where[:, 0, None], where[:, 1, None], self.zone_lat[None], self.zone_lon[None]
            )
            sequence = np.argsort(to_zone, axis=1, kind="stable")
            self._zone_sequence[moved] = sequence
            self._zone_sorted_minutes[moved] = np.take_along_axis(to_zone, sequence, axis=1)
            self._zones_lat[moved], self._zones_lon[moved] = where[:, 0], where[:, 1]
        return self._zone_sequence[vehicles], self._zone_sorted_minutes[vehicles]

    def _evaluate(
        self, vehicle: np.ndarray, order: np.ndarray, pickup: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Feasible (vehicle, order) pairs with their best drop-off order and reward, and
        their indices in the input (:meth:`RideSharingSim._evaluate`)."""
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
        added, n_timeout, stop_orders, stop_minutes = (
            np.concatenate(column) for column in zip(*parts, strict=True)
        )
        source = np.concatenate(sources)
        vehicle, order, pickup = vehicle[source], order[source], pickup[source]
        direct_km = self._direct_km[order]
        table = {
            "vehicle": vehicle,
            "order": order,
            "pickup_minutes": pickup,
            "direct_km": direct_km,
            "added_minutes": added,
            "n_timeout": n_timeout,
            "reward": match_reward(
                direct_km,
                pickup,
                n_timeout,
                added,
                config.timeout_minutes,
                config.reward_weights,
            ),
            "stop_orders": stop_orders,
            "stop_minutes": stop_minutes,
        }
        return table, source

    def _evaluate_group(
        self,
        vehicle: np.ndarray,
        order: np.ndarray,
        pickup: np.ndarray,
        n_held: int,
        now: float,
    ) -> tuple[np.ndarray, ...]:
        """Brute-force drop-off order for pairs whose vehicle holds ``n_held`` orders."""
        capacity, timeout = self.config.capacity, self.config.timeout_minutes
        n_pairs, n_stops = vehicle.size, n_held + 1
        if n_held == 0:
            # An empty vehicle has one drop-off order: the general code below reduces to this,
            # operation for operation (adding 0.0 and one-term sums are exact).
            trip = self._zone_minutes[self._origin_zone[order], self._destination_zone[order]]
            trip = trip + pickup
            stop_orders = np.full((n_pairs, capacity), -1, dtype=np.int64)
            stop_minutes = np.full((n_pairs, capacity), np.inf)
            stop_orders[:, 0], stop_minutes[:, 0] = order, trip
            n_timeout = (trip > timeout + EPS).astype(np.int64)
            return trip, n_timeout, stop_orders, stop_minutes, np.arange(n_pairs)
        if n_held:
            slots = self._slot_order[vehicle]
            compact = np.argsort(slots < 0, axis=1, kind="stable")[:, :n_held]
            held_orders = np.take_along_axis(slots, compact, axis=1)
        else:
            held_orders = np.zeros((n_pairs, 0), dtype=np.int64)
        stops = np.concatenate([held_orders, order[:, None]], axis=1)
        stop_zone = self._destination_zone[stops]
        first_leg = self._zone_minutes[self._origin_zone[order][:, None], stop_zone]
        between = self._zone_minutes[stop_zone[:, :, None], stop_zone[:, None, :]]
        perms, inverse = self._permutations[n_stops]
        n_perms = perms.shape[0]
        arrival = np.empty((n_pairs, n_perms, n_stops))
        arrival[:, :, 0] = first_leg[:, perms[:, 0]]
        for j in range(1, n_stops):
            arrival[:, :, j] = arrival[:, :, j - 1] + between[:, perms[:, j - 1], perms[:, j]]
        arrival += pickup[:, None, None]
        by_stop = arrival[:, np.arange(n_perms)[:, None], inverse]
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

    def _apply(self, table: dict[str, np.ndarray]) -> np.ndarray:
        """Apply matched pairs (distinct vehicles and orders; rows sorted by vehicle)."""
        rewards = np.zeros(self._income.size)
        vehicle, order = table["vehicle"], table["order"]
        if vehicle.size == 0:
            return rewards
        n_copies = self.num_copies
        now = float(self._minute)
        pickup, reward = table["pickup_minutes"], table["reward"]
        stop_orders, stop_minutes = table["stop_orders"], table["stop_minutes"]
        position = self.vehicle_positions()[vehicle]

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
        self._match_minute[order] = self._minute
        self._pickup_minutes[order] = pickup
        self._income[vehicle] += reward
        rewards[vehicle] = reward

        copy = self._vehicle_copy[vehicle]
        self._served += np.bincount(copy, minlength=n_copies)
        self._pickup_sum += _segment_sums(pickup, copy, n_copies)
        # Integer sums are exact in any order.
        self._confirmation_sum += np.bincount(
            copy, weights=self._minute - self._appear[order], minlength=n_copies
        )
        self._reward_sum += _segment_sums(reward, copy, n_copies)
        positions = self._positions  # matching does not move anyone
        self._invalidate()
        self._positions = positions
        return rewards


def resolve_matchings(scores: np.ndarray, candidate_orders: np.ndarray) -> np.ndarray:
    """:func:`~opsrl.envs.ride_sharing.sim.resolve_matching` of many copies at once.

    Args:
        scores: (V, K + 1) float64 scores of the vehicles of all copies (column 0: "no
            order").
        candidate_orders: (V, K) order id of each candidate slot, -1 where empty; ids are
            global (no order is a candidate in two copies), and rows and ids of one copy keep
            that copy's order.

    Returns:
        (V,) the chosen candidate index per vehicle, -1 for "no order": for each copy, what
        ``resolve_matching`` returns on its rows, bit for bit.

    The positive-gain graph of all copies is the disjoint union of the copies' graphs, so its
    connected components are theirs. A component is settled
    without a solver when its optimum is plain and unique by a margin: every vehicle's best
    order is distinct and beats its other options (and "no order") by more than
    ``UNIQUE_MARGIN`` (the sum of row maxima, an upper bound, is then reached by one
    matching only), or the same for every order's best vehicle. Any exact solver finds that
    matching, so the result equals ``linear_sum_assignment``'s. The other components get
    ``linear_sum_assignment`` on the very matrix the single simulator builds (rows by
    vehicle id, columns by order id), so ties break the same way.
    """
    chosen = np.full(candidate_orders.shape[0], -1, dtype=np.int64)
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
    n_components, label = connected_components(graph, directed=False)
    edge_component = label[row_index]

    row_plain, row_best = _plain_side(row_index, column_index, gain, n_rows, n_columns)
    column_plain, column_best = _plain_side(column_index, row_index, gain, n_columns, n_rows)
    # A component is settled when all its rows are plain, or all its columns are.
    rows_settle = np.bincount(label[:n_rows][~row_plain], minlength=n_components) == 0
    columns_settle = (
        np.bincount(label[n_rows:][~column_plain], minlength=n_components) == 0
    ) & ~rows_settle
    by_row = row_best[rows_settle[label[:n_rows]]]
    by_column = column_best[columns_settle[label[n_rows:]]]
    for edges in (by_row, by_column):
        chosen[rows[edges]] = slots[edges]

    rest = np.flatnonzero(~(rows_settle | columns_settle)[edge_component])
    if rest.size:
        _solve_components(rest, edge_component, row_index, column_index, gain, rows, slots, chosen)
    return chosen


def _solve_components(
    edges: np.ndarray,
    edge_component: np.ndarray,
    row_index: np.ndarray,
    column_index: np.ndarray,
    gain: np.ndarray,
    rows: np.ndarray,
    slots: np.ndarray,
    chosen: np.ndarray,
) -> None:
    """``linear_sum_assignment`` per component of ``edges``: their dense gain matrices are
    laid out in one buffer (rows and columns in increasing vehicle and order id), so the
    loop does nothing else."""
    component = edge_component[edges]
    components, component_rank = np.unique(component, return_inverse=True)

    def local_index(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Rank of each edge's row (column) among its component's rows (columns).
        span = int(index.max()) + 1
        unique_keys, inverse = np.unique(component_rank * span + index[edges], return_inverse=True)
        key_component = unique_keys // span
        rank = np.arange(unique_keys.size) - np.searchsorted(key_component, key_component)
        return rank[inverse], np.bincount(key_component, minlength=components.size)

    local_row, n_local_rows = local_index(row_index)
    local_column, n_local_columns = local_index(column_index)
    size = n_local_rows * n_local_columns
    offset = np.cumsum(size) - size
    position = offset[component_rank] + local_row * n_local_columns[component_rank] + local_column
    weights = np.zeros(int(size.sum()))
    weights[position] = gain[edges]
    edge_at = np.full(weights.size, -1, dtype=np.int64)
    edge_at[position] = edges
    picked = []
    for start, n_r, n_c in zip(
        offset.tolist(), n_local_rows.tolist(), n_local_columns.tolist(), strict=True
    ):
        if n_r * n_c == 1:  # one edge: the single simulator takes it without a solver
            picked.append(np.array([start]))
            continue
        matrix = weights[start : start + n_r * n_c].reshape(n_r, n_c)
        matched_rows, matched_columns = linear_sum_assignment(matrix, maximize=True)
        picked.append(start + matched_rows * n_c + matched_columns)
    cells = np.concatenate(picked)
    # Non-edges weigh 0: a row "matched" to one stays unmatched.
    cells = cells[weights[cells] > 0.0]
    taken = edge_at[cells]
    chosen[rows[taken]] = slots[taken]


def _plain_side(
    own: np.ndarray, other: np.ndarray, gain: np.ndarray, n_own: int, n_other: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each node on one side of the bipartite graph (rows or columns): whether its best
    edge beats its second best and 0 by the margin and leads to a node that no other node of
    this side has as its best; and that best edge."""
    sequence = np.lexsort((-gain, own))
    first = np.searchsorted(own[sequence], np.arange(n_own))
    best = sequence[first]
    degree = np.bincount(own, minlength=n_own)
    second = np.where(degree > 1, gain[sequence[np.minimum(first + 1, own.size - 1)]], 0.0)
    top = gain[best]
    strict = top - np.maximum(second, 0.0) > UNIQUE_MARGIN * np.maximum(1.0, np.abs(top))
    claims = np.bincount(other[best], minlength=n_other)
    return strict & (claims[other[best]] == 1), best


class RideSharingVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.ride_sharing.env.RideSharingEnv` stepped together.

    ``RideSharingVecEnv(num_envs, seed=None, **env_kwargs)`` takes the keyword arguments of
    ``RideSharingEnv`` (``opsrl/RideSharing-v0``; ``render_mode`` excepted): synthetic city or
    zones CSV, gravity demand or NYC TLC trips, every option. Copy i reproduces exactly
    ``RideSharingEnv(**env_kwargs)`` reset with ``seed=seed + i`` -- the convention of SB3's
    ``make_vec_env`` and ``DummyVecEnv`` -- including across automatic resets: each copy keeps
    its own generator (Gymnasium's ``np_random(seed + i)``) and draws its orders and its
    vehicles' start zones from it in the single env's order. Observations, rewards, masks and
    KPIs equal the single env's bit for bit.

    The copies live in one :class:`RideSharingBatchSim`: order generation, the candidate
    search and route evaluation, vehicle movement, observations, rewards and KPIs are numpy
    calls over all copies. The platform's matching is solved per connected component of each
    copy's vehicle-order graph, as in the single env, except that components whose optimum is
    plain (every vehicle's, or every order's, best option distinct and unique by a margin) are
    settled for all copies at once; the others each take one ``linear_sum_assignment`` call.

    Spaces are the single env's: observations ``Box((M D,))`` float32, actions
    ``Box(-1, 1, (M (K + 1),))`` scores. Non-finite scores raise a ValueError naming the copy.

    All episodes last ``episode_minutes`` steps and start together, so the copies finish (and
    auto-reset) together, truncated: ``infos[i]["terminal_observation"]`` holds the last
    observation, ``infos[i]["TimeLimit.truncated"]`` is True (the city goes on, so SB3
    bootstraps) and ``infos[i]["kpi"]`` the finished episode's KPIs.

    Infos are kept cheap: each minute ``infos[i]`` is ``{"matched", "acting_vehicles",
    "fairness_penalty"}`` (the single env's info without ``kpi``), plus the three keys above
    at episode end; ``reset_infos`` are the single env's reset infos. Vectorised extras:
    :meth:`kpi` (episode-to-date KPIs, a dict of (N,) arrays), :attr:`last_vehicle_rewards`
    (N, M) and :attr:`last_matched_slot` (N, M) of the last step, :meth:`candidate_orders`
    (N, M, K) the order id behind every score slot.

    Masks: :meth:`action_masks` returns (N, M (K + 1)) bool; ``env_method("action_masks")``
    the list of per-copy masks. ``get_attr`` gives per-copy ``minute``, ``kpi`` (dict) and
    ``action_masks`` (callable), and the shared attributes otherwise; ``env_is_wrapped`` is
    always False.
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = ("minute", "kpi", "core", "batch", "num_vehicles", "num_candidates")

    def __init__(self, num_envs: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by RideSharingVecEnv; leave it None")
        env_kwargs.pop("render_mode", None)
        # The template validates the kwargs exactly like the single env and owns the spaces.
        template = RideSharingEnv(**env_kwargs)
        self.env_kwargs = dict(env_kwargs)
        self.core = template.core
        self.num_vehicles = self.core.num_vehicles
        self.num_candidates = self.core.num_candidates
        self.render_mode = None
        num_envs = int(num_envs)
        super().__init__(num_envs, template.observation_space, template.action_space)
        self.batch = RideSharingBatchSim(self.core, num_envs)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._actions: np.ndarray | None = None
        self._started = False
        self.last_vehicle_rewards = np.zeros((num_envs, self.num_vehicles))
        self.last_matched_slot = np.full((num_envs, self.num_vehicles), -1, dtype=np.int64)
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- VecEnv API
    def reset(self) -> np.ndarray:
        """Reset every copy (re-seeding those given a seed) and return observations (N, M D)."""
        for i in range(self.num_envs):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i] = np_random(self._seeds[i])[0]
        self._reset_seeds()
        self._reset_options()
        self._start_episodes()
        self._started = True
        return self.batch.observations()

    def step_wait(self) -> VecEnvStepReturn:
        """One minute for every copy; all copies auto-reset when the episodes end."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        scores = self._scores(self._actions)
        self._actions = None
        batch = self.batch
        result = batch.dispatch(scores)
        self.last_vehicle_rewards = result.vehicle_rewards
        self.last_matched_slot = result.matched_slot
        rewards = result.rewards.astype(np.float32)
        obs = batch.observations()
        infos: list[dict[str, Any]] = [
            {"matched": matched, "acting_vehicles": acting, "fairness_penalty": penalty}
            for matched, acting, penalty in zip(
                result.matched.tolist(),
                result.acting_vehicles.tolist(),
                result.fairness_penalty.tolist(),
                strict=True,
            )
        ]
        if not batch.done:
            return obs, rewards, np.zeros(self.num_envs, dtype=bool), infos
        for info, terminal, kpi in zip(infos, obs, batch.kpi_dicts(), strict=True):
            info["terminal_observation"] = terminal
            info["TimeLimit.truncated"] = True
            info["kpi"] = kpi
        self._start_episodes()
        return batch.observations(), rewards, np.ones(self.num_envs, dtype=bool), infos

    # ----------------------------------------------------------------- per-copy access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        kpis = functools.cache(lambda: self.batch.kpi_dicts())  # one batched call per get_attr
        return {"minute": lambda i: self.batch.minute, "kpi": lambda i: kpis()[i]}

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        return lambda: self.action_masks()[index]

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        no_arguments(name, args, kwargs)
        masks = self.action_masks()
        return [masks[i] for i in indices]

    # ----------------------------------------------------------------- vectorised extras
    def action_masks(self) -> np.ndarray:
        """(N, M (K + 1)) bool: True for the score slots that take part in the matching."""
        self._check_started()
        return self.batch.action_masks()

    def kpi(self) -> dict[str, np.ndarray]:
        """Episode-to-date KPIs of every copy, a dict of (N,) arrays."""
        self._check_started()
        return self.batch.kpi()

    def candidate_orders(self) -> np.ndarray:
        """(N, M, K) order id (within its copy) behind every candidate score slot, -1 if
        empty."""
        self._check_started()
        return self.batch.candidate_orders()

    @property
    def minute(self) -> int:
        """Current minute shared by all copies."""
        return self.batch.minute

    # ----------------------------------------------------------------- helpers
    def _start_episodes(self) -> None:
        self.batch.reset(self._rngs)  # type: ignore[arg-type]  # all set by reset()
        kpis = self.batch.kpi_dicts()
        self.reset_infos = [
            {"kpi": kpi, "matched": 0, "acting_vehicles": 0, "fairness_penalty": 0.0}
            for kpi in kpis
        ]

    def _scores(self, actions: Any) -> np.ndarray:
        array = np.asarray(actions, dtype=np.float64)
        width = self.num_vehicles * (self.num_candidates + 1)
        if array.shape != (self.num_envs, width):
            raise ValueError(
                f"actions must have shape (num_envs, num_vehicles x (num_candidates + 1)) = "
                f"({self.num_envs}, {width}), got {array.shape}"
            )
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            raise ValueError(
                f"scores must be finite (found NaN or inf in copy {int(np.argmin(finite))})"
            )
        return array.reshape(self.num_envs * self.num_vehicles, self.num_candidates + 1)
