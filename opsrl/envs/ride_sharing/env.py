"""PettingZoo and Gymnasium faces of the ride-sharing dispatch simulator.

- :class:`RideSharingParallelEnv`: PettingZoo ``ParallelEnv``, one agent per vehicle
  (``vehicle_0 .. vehicle_{M-1}``), all with the same spaces, for parameter-shared policies
  (OSPO, GRPO, IDDQN, ...).
- :class:`RideSharingEnv`: the single-agent *platform view* registered as
  ``opsrl/RideSharing-v0``: all vehicles' observations concatenated, all scores in one action,
  for plain SB3.
- :class:`RideSharingCore`: what both share (city, demand, simulator, spaces); the batched
  :class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv` steps several of them.

Every face exposes the simulator as ``.sim`` (a :class:`~opsrl.envs.ride_sharing.sim.
RideSharingSim`): OR baselines read ``sim.feasible_pairs()`` and ``sim.candidates()`` there,
and agents can read ``sim.candidates().order`` to know which order each score slot means.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils.seeding import np_random
from pettingzoo import ParallelEnv

from opsrl.envs.ride_sharing.data import (
    GravityDemand,
    TripOrders,
    ZoneLayout,
    load_tlc_trips,
    load_zones,
    synthetic_zones,
)
from opsrl.envs.ride_sharing.sim import (
    DispatchResult,
    RideSharingSim,
    SimConfig,
    observation_size,
)

__all__ = [
    "MAX_CAPACITY",
    "RideSharingCore",
    "RideSharingEnv",
    "RideSharingParallelEnv",
    "agent_name",
]

#: Largest supported vehicle capacity: the drop-off order is brute-forced over capacity! orders.
MAX_CAPACITY = 4


def agent_name(index: int) -> str:
    """PettingZoo name of vehicle ``index``."""
    return f"vehicle_{index}"


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, minimum: float, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def _only_with(name: str, value: Any, needed: str) -> None:
    if value is not None:
        raise ValueError(f"{name} is only used {needed}; leave it None")


class RideSharingCore:
    """City, demand and simulator shared by the env faces (arguments: see
    :class:`RideSharingParallelEnv`). Raises a ValueError naming the first bad argument."""

    def __init__(
        self,
        num_vehicles: int = 20,
        num_candidates: int = 4,
        zones: str | os.PathLike[str] | ZoneLayout | None = None,
        num_zones: int | None = None,
        city_seed: int | None = None,
        demand_rate: float | None = None,
        trips: str | os.PathLike[str] | None = None,
        day: int | str | None = None,
        hour: int | None = None,
        sample_frac: float | None = None,
        episode_minutes: int = 30,
        start_minute: int = 0,
        max_pickup_minutes: float = 10.0,
        speed_kmh: float = 15.0,
        detour_factor: float = 1.3,
        capacity: int = 3,
        max_wait_minutes: int = 5,
        timeout_minutes: float = 40.0,
    ) -> None:
        config = SimConfig(
            num_vehicles=_check_int("num_vehicles", num_vehicles, 1),
            num_candidates=_check_int("num_candidates", num_candidates, 1),
            capacity=_check_int("capacity", capacity, 1, MAX_CAPACITY),
            episode_minutes=_check_int("episode_minutes", episode_minutes, 1),
            max_pickup_minutes=_check_number("max_pickup_minutes", max_pickup_minutes, 0.0),
            max_wait_minutes=_check_int("max_wait_minutes", max_wait_minutes, 1),
            timeout_minutes=_check_number("timeout_minutes", timeout_minutes, 0.0),
            speed_kmh=_check_number("speed_kmh", speed_kmh, 0.0),
            detour_factor=_check_number("detour_factor", detour_factor, 1.0, strict=False),
        )
        self.start_minute = _check_int("start_minute", start_minute, 0)

        if zones is None:
            self.layout = synthetic_zones(
                num_zones=20 if num_zones is None else _check_int("num_zones", num_zones, 2),
                seed=0 if city_seed is None else _check_int("city_seed", city_seed, 0),
            )
        else:
            _only_with("num_zones", num_zones, "by the synthetic city (zones=None)")
            _only_with("city_seed", city_seed, "by the synthetic city (zones=None)")
            if isinstance(zones, ZoneLayout):
                self.layout = zones
            elif isinstance(zones, (str, os.PathLike)):
                self.layout = load_zones(zones)
            else:
                raise ValueError(
                    f"zones must be None, a path to a zones CSV or a ZoneLayout, got "
                    f"{type(zones).__name__}"
                )

        self.demand: GravityDemand | None = None
        self.trips: TripOrders | None = None
        self.sample_frac = 1.0
        if trips is None:
            _only_with("day", day, "with trips")
            _only_with("hour", hour, "with trips")
            _only_with("sample_frac", sample_frac, "with trips")
            rate = 3.0 if demand_rate is None else _check_number("demand_rate", demand_rate, 0.0)
            self.demand = GravityDemand(self.layout, demand_rate=rate)
        else:
            _only_with("demand_rate", demand_rate, "by the synthetic demand (trips=None)")
            if zones is None:
                raise ValueError(
                    "trips need zones: give the zones CSV whose location_id the trip records' "
                    "PULocationID/DOLocationID refer to"
                )
            if day is None or hour is None:
                raise ValueError("trips need day and hour (the episode's day and hour)")
            self.sample_frac = (
                0.95 if sample_frac is None else _check_number("sample_frac", sample_frac, 0.0)
            )
            if self.sample_frac > 1.0:
                raise ValueError(f"sample_frac must lie in (0, 1], got {sample_frac!r}")
            if self.start_minute + config.episode_minutes > 60:
                raise ValueError(
                    f"with trips an episode lies within the hour: start_minute + "
                    f"episode_minutes must be <= 60, got {self.start_minute} + "
                    f"{config.episode_minutes}"
                )
            hour_trips = load_tlc_trips(trips, day, hour, self.layout, sample_frac=1.0)
            self.trips = hour_trips.window(self.start_minute, config.episode_minutes)

        self.sim = RideSharingSim(self.layout.lat, self.layout.lon, config, self.layout.bounds)
        self.config = config
        low, high = self.sim.observation_bounds()
        self.observation_low, self.observation_high = low, high
        self.observation_dim = observation_size(config.capacity, config.num_candidates)

    def clone(self) -> RideSharingCore:
        """A core with the same city, demand and parameters and its own simulator (cheap: data
        files are not read again)."""
        twin = object.__new__(RideSharingCore)
        twin.__dict__.update(self.__dict__)
        twin.sim = RideSharingSim(self.layout.lat, self.layout.lon, self.config, self.layout.bounds)
        return twin

    @property
    def num_vehicles(self) -> int:
        """Fleet size M."""
        return self.config.num_vehicles

    @property
    def num_candidates(self) -> int:
        """Candidate slots K per vehicle."""
        return self.config.num_candidates

    def draw_orders(self, rng: np.random.Generator) -> TripOrders:
        """The orders of a new episode (minutes from the episode start)."""
        if self.trips is not None:
            return self.trips.subsample(rng, self.sample_frac)
        assert self.demand is not None
        return self.demand.sample(rng, self.start_minute, self.config.episode_minutes)

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Draw the episode's orders, then the vehicles' start zones; (M, D) observations."""
        self.sim.reset(rng, self.draw_orders(rng))
        return self.sim.agent_observations()

    def dispatch(self, scores: Any) -> tuple[np.ndarray, DispatchResult]:
        """One minute from (M, K + 1) scores; returns the next observations and the result."""
        if self.sim.done:
            raise RuntimeError(
                f"the episode ended after {self.config.episode_minutes} minutes; call reset()"
            )
        result = self.sim.dispatch(scores)
        return self.sim.agent_observations(), result


class RideSharingParallelEnv(ParallelEnv):
    """Ride-sharing order dispatch with pooling; every vehicle is an agent.

    ## Description

    A platform dispatches ride requests to a fleet of M autonomous vehicles of capacity 3
    (pooling) in 1-minute steps, as in OSPO/GRPO (Zhao & Li, arXiv 2507.15351). Orders appear
    in zones of a city; an order not matched within 5 minutes is lost. Each minute every free
    vehicle sees its K nearest feasible orders and scores them; the platform turns all scores
    into a one-to-one matching, the matched vehicles drive to their pickups, and the fleet moves
    one minute. Travel times come from great-circle distances x a detour factor at a fixed
    speed. See :mod:`opsrl.envs.ride_sharing.sim` for the full model (routes, feasibility,
    timeouts).

    The city is synthetic by default (20 zones on a jittered grid, gravity origin-destination
    demand with a peak); ``zones`` gives a real layout (e.g. the 69 Manhattan taxi zones), and
    ``trips`` NYC TLC trip records of one day and hour.

    ## Action Space

    Per agent ``Box(-1, 1, (K + 1,), float32)``: scores for ``[no order, candidate 1 .. K]``.
    Each minute the platform maximises the summed scores of the chosen options over all
    vehicles with candidates, each vehicle taking exactly one option and each order going to at
    most one vehicle (the assignment problem, solved with ``scipy.optimize.
    linear_sum_assignment``; a tie keeps "no order"). Only score differences within a vehicle
    matter, so probabilities in [0, 1] work as well; values outside [-1, 1] are used as given.
    Slots without a candidate are excluded from the matching. Busy vehicles (driving to a
    pickup, or without a free seat) and free vehicles with no candidate have a mask with only
    slot 0 set: their scores are ignored and their action may be left out of the dict.
    Non-finite scores raise a ValueError.

    ## Observation Space

    Per agent ``Box(low, high, (D,), float32)`` with D = 8 + 5 capacity + 8 K + K + 1 (60 by
    default):

    1. own vehicle (8): lat, lon (normalised to the layout's bounding box), free seats /
       capacity, minutes to its pickup / max_pickup_minutes, busy flag, minute /
       episode_minutes, own income / 10, fleet mean income / 10;
    2. its orders in drop-off order, assigned ones included (5 x capacity): drop lat, lon,
       minutes left, trip minutes, detour minutes (times / timeout_minutes); zeros for free
       seats;
    3. candidate orders, nearest first (8 x K): pickup lat, lon, drop lat, lon, age /
       max_wait_minutes, pickup minutes / max_pickup_minutes, direct road km / road km of the
       box diagonal, added minutes (t_add) / timeout_minutes; zeros for empty slots;
    4. the action mask (K + 1): 1 for "no order" and for every present candidate.

    Bounds are finite (:meth:`~opsrl.envs.ride_sharing.sim.RideSharingSim.observation_bounds`).
    :meth:`action_mask` returns the mask of one agent (int8), :meth:`action_masks` all of them.

    ## Rewards

    An agent's reward is the reward of the order it was matched this minute, 0 otherwise:
    ``r = 3 + d_direct[km] - 3 t_pickup[h] - n_timeout - 3 t_add[h] - 5 max(0, t_add[min] -
    40) / 60`` (:func:`~opsrl.envs.ride_sharing.sim.match_reward`; t_add counts the new order's
    whole trip plus the delay of the orders already on board; n_timeout counts the vehicle's
    orders whose planned trip exceeds ``timeout_minutes``). OSPO's fairness term is in
    ``infos[agent]["fairness_penalty"]``: ``-(std C_t - std C_{t-1})`` of the vehicles'
    cumulative incomes C.

    ## Starting State

    ``reset(seed=...)`` draws the episode's orders (synthetic: Poisson arrivals and OD pairs;
    trips: a ``sample_frac`` subsample of the hour's records) and then every vehicle's start
    zone uniformly, from one generator: the same seed gives the same episode. Vehicles start
    empty and free; the orders of minute 0 are waiting.

    ## Episode End

    After ``episode_minutes`` steps every agent is truncated (the city goes on; onboard
    passengers are not delivered by then) and ``agents`` becomes empty. There is no
    termination.

    ## Info

    ``infos[agent]``: ``matched_slot`` (-1, or the candidate index 0..K-1 it got),
    ``matched_order`` (order id or -1), ``acted`` (it was free with at least one candidate),
    ``fairness_penalty`` (the fleet's, same for all), ``kpi``: the fleet's episode-to-date
    KPIs (one dict shared by all agents of a step; do not modify): ``served_orders``,
    ``delivered_orders``, ``unmatched_orders``, ``pending_orders``, ``appeared_orders``,
    ``mean_pickup_minutes``, ``mean_confirmation_minutes``, ``mean_delivery_minutes``,
    ``mean_detour_minutes``, ``timeouts``, ``total_reward``, ``income_std``.

    ## Arguments

    ```python
    RideSharingParallelEnv(num_vehicles=20, num_candidates=4, zones=None, num_zones=None,
        city_seed=None, demand_rate=None, trips=None, day=None, hour=None, sample_frac=None,
        episode_minutes=30, start_minute=0, max_pickup_minutes=10.0, speed_kmh=15.0,
        detour_factor=1.3, capacity=3, max_wait_minutes=5, timeout_minutes=40.0,
        render_mode=None)
    ```

    - ``num_vehicles``: fleet size M (the OSPO experiments use 1000 on Manhattan).
    - ``num_candidates``: K, candidate orders per vehicle.
    - ``zones``: None for the synthetic city, or a zones CSV path
      (``location_id,zone,centroid_lat,centroid_lon``) or a
      :class:`~opsrl.envs.ride_sharing.data.ZoneLayout`.
    - ``num_zones`` (default 20), ``city_seed`` (default 0): the synthetic layout; only with
      ``zones=None``.
    - ``demand_rate``: mean new orders per minute over the hour of the synthetic gravity
      demand (default 3.0; :class:`~opsrl.envs.ride_sharing.data.GravityDemand`); not with
      ``trips``.
    - ``trips``: NYC TLC trip records (CSV or parquet); needs ``zones``, ``day`` (day of the
      month or ISO date) and ``hour``; ``sample_frac`` (default 0.95) of the hour's trips are
      drawn at each reset.
    - ``episode_minutes`` (30), ``start_minute`` (0): the episode covers clock minutes
      ``start_minute .. start_minute + episode_minutes - 1`` of the hour (with trips it must
      end within the hour).
    - ``max_pickup_minutes``: pickup radius in driving minutes (10: 2.5 road km at 15 km/h;
      the spec's OR-Tools baseline uses 5, which starves a small fleet of candidates).
    - ``speed_kmh`` (15), ``detour_factor`` (1.3): travel model.
    - ``capacity``: seats per vehicle, 1..4 (3).
    - ``max_wait_minutes``: minutes an order waits unmatched before it is lost (5).
    - ``timeout_minutes``: trip time over which an order is a timeout (40).
    - ``render_mode``: only None.

    Bad arguments raise a ValueError naming the argument at construction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"name": "ride_sharing_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        num_vehicles: int = 20,
        num_candidates: int = 4,
        zones: str | os.PathLike[str] | ZoneLayout | None = None,
        num_zones: int | None = None,
        city_seed: int | None = None,
        demand_rate: float | None = None,
        trips: str | os.PathLike[str] | None = None,
        day: int | str | None = None,
        hour: int | None = None,
        sample_frac: float | None = None,
        episode_minutes: int = 30,
        start_minute: int = 0,
        max_pickup_minutes: float = 10.0,
        speed_kmh: float = 15.0,
        detour_factor: float = 1.3,
        capacity: int = 3,
        max_wait_minutes: int = 5,
        timeout_minutes: float = 40.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (no rendering), got {render_mode!r}")
        self.render_mode = None
        self.core = RideSharingCore(
            num_vehicles=num_vehicles,
            num_candidates=num_candidates,
            zones=zones,
            num_zones=num_zones,
            city_seed=city_seed,
            demand_rate=demand_rate,
            trips=trips,
            day=day,
            hour=hour,
            sample_frac=sample_frac,
            episode_minutes=episode_minutes,
            start_minute=start_minute,
            max_pickup_minutes=max_pickup_minutes,
            speed_kmh=speed_kmh,
            detour_factor=detour_factor,
            capacity=capacity,
            max_wait_minutes=max_wait_minutes,
            timeout_minutes=timeout_minutes,
        )
        core = self.core
        self.possible_agents = [agent_name(i) for i in range(core.num_vehicles)]
        self._agent_index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self.agents: list[str] = []
        k = core.num_candidates
        # One space object per agent (equal ones), so that seeding one agent's space does not
        # reseed another's.
        self.observation_spaces = {
            agent: spaces.Box(core.observation_low, core.observation_high, dtype=np.float32)
            for agent in self.possible_agents
        }
        self.action_spaces = {
            agent: spaces.Box(-1.0, 1.0, shape=(k + 1,), dtype=np.float32)
            for agent in self.possible_agents
        }
        self.state_space = spaces.Box(
            np.tile(core.observation_low, core.num_vehicles),
            np.tile(core.observation_high, core.num_vehicles),
            dtype=np.float32,
        )
        self._np_random: np.random.Generator | None = None
        self._observations = np.zeros((core.num_vehicles, core.observation_dim), np.float32)

    @property
    def sim(self) -> RideSharingSim:
        """The simulator (read its state; change it only through :meth:`step`)."""
        return self.core.sim

    def observation_space(self, agent: str) -> spaces.Box:
        """Observation space of ``agent`` (the same object on every call)."""
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        """Action (score) space of ``agent`` (the same object on every call)."""
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        """Start an episode; with ``seed`` the generator is re-seeded, otherwise it goes on."""
        if seed is not None or self._np_random is None:
            self._np_random, _ = np_random(seed)
        self._observations = self.core.reset(self._np_random)
        self.agents = list(self.possible_agents)
        kpi = self.sim.kpi()
        infos = {
            agent: {
                "matched_slot": -1,
                "matched_order": -1,
                "acted": False,
                "fairness_penalty": 0.0,
                "kpi": kpi,
            }
            for agent in self.agents
        }
        return self._observation_dict(), infos

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        """One minute for the whole fleet; see the class docstring."""
        if not self.agents:
            raise RuntimeError("the episode is over (or was never started); call reset()")
        scores = self._scores(actions)
        self._observations, result = self.core.dispatch(scores)
        kpi = self.sim.kpi()
        rewards = result.rewards.tolist()
        slots = result.matched_slot.tolist()
        orders = result.matched_order.tolist()
        acted = result.acted.tolist()
        penalty = result.fairness_penalty
        agents = self.agents
        infos = {
            agent: {
                "matched_slot": slots[i],
                "matched_order": orders[i],
                "acted": acted[i],
                "fairness_penalty": penalty,
                "kpi": kpi,
            }
            for i, agent in enumerate(agents)
        }
        observations = self._observation_dict()
        reward_dict = {agent: rewards[i] for i, agent in enumerate(agents)}
        truncated = self.sim.done
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return observations, reward_dict, terminations, truncations, infos

    def action_mask(self, agent: str) -> np.ndarray:
        """(K + 1,) int8 mask of ``agent``: 1 for "no order" and each present candidate."""
        return self.sim.action_mask()[self._agent_index[agent]].astype(np.int8)

    def action_masks(self) -> np.ndarray:
        """(M, K + 1) bool masks of all vehicles, in ``possible_agents`` order."""
        return self.sim.action_mask()

    def state(self) -> np.ndarray:
        """Global state: every vehicle's observation concatenated (``state_space``)."""
        return self._observations.reshape(-1).copy()

    def render(self) -> None:
        """No rendering (``render_mode`` is always None)."""
        return None

    def close(self) -> None:
        """Nothing to release."""

    # ----------------------------------------------------------------- helpers
    def _observation_dict(self) -> dict[str, np.ndarray]:
        observations = self._observations
        return {agent: observations[i] for i, agent in enumerate(self.possible_agents)}

    def _scores(self, actions: dict[str, Any]) -> np.ndarray:
        core = self.core
        unknown = [agent for agent in actions if agent not in self._agent_index]
        if unknown:
            raise ValueError(f"actions for unknown agent(s): {', '.join(map(str, unknown[:3]))}")
        scores = np.zeros((core.num_vehicles, core.num_candidates + 1))
        index = self._agent_index
        for agent, action in actions.items():
            scores[index[agent]] = _agent_scores(action, core.num_candidates, agent)
        acting = self.sim.candidates().valid.any(axis=1)
        missing = [
            agent for agent in self.possible_agents if acting[index[agent]] and agent not in actions
        ]
        if missing:
            raise ValueError(
                f"no action for agent(s) with candidates to choose from: "
                f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
            )
        return scores


def _agent_scores(action: Any, num_candidates: int, agent: str) -> np.ndarray:
    array = np.asarray(action, dtype=np.float64)
    if array.shape != (num_candidates + 1,):
        raise ValueError(
            f"action of {agent} must have shape ({num_candidates + 1},) (scores for no order "
            f"and {num_candidates} candidates), got {array.shape}"
        )
    return array


class RideSharingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Ride-sharing order dispatch, single-agent platform view (``opsrl/RideSharing-v0``).

    ## Description

    The fleet problem of :class:`RideSharingParallelEnv` seen by one central dispatcher that
    scores every vehicle's candidate orders at once, for plain SB3 algorithms (PPO, SAC, ...).
    The model, the matching, the rewards per match and the KPIs are those of the parallel env;
    see its docstring and :mod:`opsrl.envs.ride_sharing.sim`.

    ## Action Space

    ``Box(-1, 1, (M (K + 1),), float32)``: vehicle v's scores for ``[no order, candidate 1 ..
    K]`` are ``action[v (K + 1) : (v + 1) (K + 1)]``. The platform maximises their sum over a
    one-to-one matching (Hungarian algorithm); scores of empty slots and of busy vehicles are
    ignored (:meth:`action_masks` tells which count). Non-finite scores raise a ValueError.

    ## Observation Space

    ``Box(low, high, (M D,), float32)``: the M vehicles' observations of the parallel env
    concatenated (D = 60 by default), vehicle 0 first.

    ## Rewards

    The sum of this minute's match rewards over the fleet.

    ## Starting State

    As in the parallel env: ``reset(seed=...)`` draws the orders, then the vehicles' start
    zones, from the env's ``np_random``.

    ## Episode End

    Truncated after ``episode_minutes`` steps (no termination).

    ## Info

    ``{"kpi": {...}, "matched": int, "acting_vehicles": int, "fairness_penalty": float}``:
    the fleet KPIs of the parallel env, the number of matches and of vehicles that had
    candidates this minute, and OSPO's fairness term.

    ## Arguments

    ```python
    gym.make("opsrl/RideSharing-v0", num_vehicles=20, num_candidates=4, zones=None,
             num_zones=None, city_seed=None, demand_rate=None, trips=None, day=None,
             hour=None, sample_frac=None, episode_minutes=30, start_minute=0,
             max_pickup_minutes=10.0, speed_kmh=15.0, detour_factor=1.3, capacity=3,
             max_wait_minutes=5, timeout_minutes=40.0, render_mode=None)
    ```

    As for :class:`RideSharingParallelEnv`; the defaults (20 vehicles, K = 4, 20 zones, 30
    minutes) keep PPO and SAC trainable on a CPU.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        num_vehicles: int = 20,
        num_candidates: int = 4,
        zones: str | os.PathLike[str] | ZoneLayout | None = None,
        num_zones: int | None = None,
        city_seed: int | None = None,
        demand_rate: float | None = None,
        trips: str | os.PathLike[str] | None = None,
        day: int | str | None = None,
        hour: int | None = None,
        sample_frac: float | None = None,
        episode_minutes: int = 30,
        start_minute: int = 0,
        max_pickup_minutes: float = 10.0,
        speed_kmh: float = 15.0,
        detour_factor: float = 1.3,
        capacity: int = 3,
        max_wait_minutes: int = 5,
        timeout_minutes: float = 40.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (no rendering), got {render_mode!r}")
        self.render_mode = None
        self.core = RideSharingCore(
            num_vehicles=num_vehicles,
            num_candidates=num_candidates,
            zones=zones,
            num_zones=num_zones,
            city_seed=city_seed,
            demand_rate=demand_rate,
            trips=trips,
            day=day,
            hour=hour,
            sample_frac=sample_frac,
            episode_minutes=episode_minutes,
            start_minute=start_minute,
            max_pickup_minutes=max_pickup_minutes,
            speed_kmh=speed_kmh,
            detour_factor=detour_factor,
            capacity=capacity,
            max_wait_minutes=max_wait_minutes,
            timeout_minutes=timeout_minutes,
        )
        core = self.core
        self.observation_space = spaces.Box(
            np.tile(core.observation_low, core.num_vehicles),
            np.tile(core.observation_high, core.num_vehicles),
            dtype=np.float32,
        )
        self.action_space = spaces.Box(
            -1.0, 1.0, shape=(core.num_vehicles * (core.num_candidates + 1),), dtype=np.float32
        )
        self._started = False

    @property
    def sim(self) -> RideSharingSim:
        """The simulator (read its state; change it only through :meth:`step`)."""
        return self.core.sim

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw the episode's orders and the vehicles' start zones from ``np_random``."""
        super().reset(seed=seed)
        observations = self.core.reset(self.np_random)
        self._started = True
        info = {"kpi": self.sim.kpi(), "matched": 0, "acting_vehicles": 0, "fairness_penalty": 0.0}
        return observations.reshape(-1), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One minute for the whole fleet; see the class docstring."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        core = self.core
        array = np.asarray(action, dtype=np.float64)
        expected = core.num_vehicles * (core.num_candidates + 1)
        if array.shape != (expected,):
            raise ValueError(
                f"action must have shape ({expected},) = num_vehicles x (num_candidates + 1), "
                f"got {array.shape}"
            )
        observations, result = core.dispatch(array.reshape(core.num_vehicles, -1))
        info = {
            "kpi": self.sim.kpi(),
            "matched": int(np.count_nonzero(result.matched_slot >= 0)),
            "acting_vehicles": int(np.count_nonzero(result.acted)),
            "fairness_penalty": result.fairness_penalty,
        }
        reward = float(result.rewards.sum())
        return observations.reshape(-1), reward, False, self.sim.done, info

    def action_masks(self) -> np.ndarray:
        """Flat (M (K + 1),) bool: True for the score slots that take part in the matching."""
        return self.sim.action_mask().reshape(-1)
