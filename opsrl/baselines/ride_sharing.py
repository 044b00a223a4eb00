"""OR baselines for ride-sharing order dispatch (``opsrl/RideSharing-v0``).

Two faces, as for every opsrl baseline:

- the solver :func:`solve` -- one minute's matching of free vehicles to pending orders as an
  OR-Tools min-cost flow (most matches first, then least cost), returning a
  :class:`~opsrl.baselines.base.Solution` with the matching's cost, the pairs and the wall
  time;
- policies for the experiment runner, which read the simulator (``env.unwrapped.sim``) and act
  through ``env.step`` like an agent: :class:`RandomDispatchPolicy` (uniformly random scores),
  :class:`GreedyNearestPolicy` (first come, first served: each order to its nearest free
  vehicle) and :class:`MinCostFlowPolicy` (:func:`solve` every minute).

Acting through the platform. An action of the env scores, per vehicle, "no order" and its K
candidate orders (its K nearest feasible ones, :meth:`~opsrl.envs.ride_sharing.sim.
RideSharingSim.candidates`); the platform then picks the matching that maximises the summed
scores. The greedy and min-cost-flow policies first choose a matching themselves and then
score 1 the chosen candidate slot of each matched vehicle and 0 everything else
(:func:`matching_scores`): the pairs with a positive gain over "no order" are exactly the
chosen ones and form a matching, so the platform reproduces it exactly. The price is that
these baselines, like any agent, choose only among candidate slots: a vehicle is never given
an order outside its K nearest feasible ones, even when that order has no other taker.
:func:`solve` with ``restrict_to_candidates=False`` measures what that restriction costs on
one minute (a reference only: the env cannot execute such a matching).

Cost of a pair (vehicle v, order o), as in the spec's OR-Tools baseline, in integer units of
1/``cost_scale``::

    c_vo = round(cost_scale * (3 * t_pickup[h] + 3 * t_add[h] - 1 * d_direct[km]))

with the weights of the env's reward (:class:`~opsrl.envs.ride_sharing.sim.RewardWeights`:
``per_pickup_hour``, ``per_added_hour``, ``per_direct_km``), so that least cost is largest
reward up to the constant match bonus and the timeout terms.

Decision time per minute (``benchmarks/ride_sharing_steps.py``, demand 0.15 orders per
vehicle-minute, a busy 2-core machine): greedy about 0.2 ms at 20 vehicles and 6-10 ms at 1000,
the min-cost flow about 1.6 ms and 16-20 ms; the env's own step takes about 8 and 70 ms.

The candidate restriction binds when many vehicles stand together: vehicles at one spot see
the same K nearest orders, so they compete for K orders however many others are pending. On
the default 20-zone city with 1000 vehicles (50 a zone at the start) every policy serves about
2,400 orders in 30 minutes while the per-minute matchings over all feasible pairs are about
ten times larger; on the 69 Manhattan zones the gap is about 1.5x, at 100 vehicles on the
city 5 %.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from ortools.graph.python import min_cost_flow

from opsrl.baselines.base import BaselinePolicy, Solution, check_time_limit, require_env
from opsrl.envs.ride_sharing.sim import FeasiblePairs, RideSharingSim, resolve_matching

__all__ = [
    "COST_SCALE",
    "GreedyNearestPolicy",
    "MinCostFlowPolicy",
    "RandomDispatchPolicy",
    "greedy_nearest_matching",
    "matching_scores",
    "pair_costs",
    "solve",
]

#: Integer cost units per unit of the pair cost (the spec's ``round(100 * ...)``).
COST_SCALE = 100

#: What the baselines read on the simulator.
_SIM_ATTRIBUTES = ("candidates", "feasible_pairs", "dispatch", "config")
_FAMILY = "a ride-sharing env (opsrl/RideSharing-v0)"


# --------------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------------


def _ride_sharing_sim(instance: Any, who: str) -> RideSharingSim:
    """The simulator behind ``instance``: a RideSharingSim itself, a gymnasium env (wrapped
    or not), the PettingZoo env or a RideSharingCore (``.sim``)."""
    if all(hasattr(instance, name) for name in _SIM_ATTRIBUTES):
        return instance
    holder = getattr(instance, "unwrapped", instance)
    return require_env(
        getattr(holder, "sim", None),
        _SIM_ATTRIBUTES,
        who,
        _FAMILY,
        type(holder).__name__,
        prefix="sim.",
    )


def _check_cost_scale(cost_scale: Any) -> int:
    if isinstance(cost_scale, bool) or not isinstance(cost_scale, (int, np.integer)):
        raise ValueError(f"cost_scale must be a positive integer, got {cost_scale!r}")
    if cost_scale < 1:
        raise ValueError(f"cost_scale must be a positive integer, got {cost_scale!r}")
    return int(cost_scale)


def _check_running(sim: RideSharingSim, who: str) -> None:
    if sim.done:
        raise RuntimeError(
            f"{who}: the episode is over; call env.reset() and policy.reset(env) first"
        )


def pair_costs(
    pairs: FeasiblePairs, sim: RideSharingSim, cost_scale: int = COST_SCALE
) -> np.ndarray:
    """(P,) int64 cost of each pair (module docstring): pickup and added hours weighted as in
    the env's reward, minus the weighted direct road km, times ``cost_scale``, rounded."""
    weights = sim.config.reward_weights
    cost = (
        weights.per_pickup_hour * pairs.pickup_minutes / 60.0
        + weights.per_added_hour * pairs.added_minutes / 60.0
        - weights.per_direct_km * pairs.direct_km
    )
    return np.rint(cost_scale * cost).astype(np.int64)


def matching_scores(slots: np.ndarray, num_candidates: int) -> np.ndarray:
    """(M, K + 1) float32 scores that make the platform choose exactly ``slots``.

    ``slots`` (M,) holds each vehicle's candidate index (0..K-1) or -1 for no order, and must
    be a matching (no order twice). The chosen slot scores 1, everything else 0: only chosen
    pairs gain over "no order", so the platform's maximum-score matching is the given one.
    """
    slots = np.asarray(slots, dtype=np.int64)
    scores = np.zeros((slots.size, num_candidates + 1), dtype=np.float32)
    matched = np.flatnonzero(slots >= 0)
    scores[matched, slots[matched] + 1] = 1.0
    return scores


def _candidate_slots(sim: RideSharingSim) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every filled candidate slot: vehicle, slot index and row in ``candidates().pairs``."""
    candidates = sim.candidates()
    vehicle, slot = np.nonzero(candidates.valid)
    return vehicle, slot, candidates.pair[vehicle, slot]


# --------------------------------------------------------------------------------------------
# Greedy nearest vehicle
# --------------------------------------------------------------------------------------------


def greedy_nearest_matching(sim: RideSharingSim) -> np.ndarray:
    """First come, first served: (M,) candidate slot per vehicle, -1 for no order.

    Pending orders are taken in the order they appeared (then by id); each goes to the
    nearest (least pickup time, then lowest index) vehicle that is still unmatched and has it
    among its candidate slots. An order no such vehicle offers stays pending.
    """
    slots = np.full(sim.config.num_vehicles, -1, dtype=np.int64)
    vehicle, slot, row = _candidate_slots(sim)
    if vehicle.size == 0:
        return slots
    pairs = sim.candidates().pairs
    order = pairs.order[row]
    pickup = pairs.pickup_minutes[row]
    appear = sim.order_appear_minute[order]
    # lexsort's last key is the primary one: appearance, order id, pickup, vehicle.
    sequence = np.lexsort((vehicle, pickup, order, appear))
    taken_order = -1
    vehicle_busy = np.zeros(sim.config.num_vehicles, dtype=bool)
    for index in sequence.tolist():
        current_order = int(order[index])
        # Rows of one order are contiguous; once it is given away, skip the rest of them.
        if current_order == taken_order:
            continue
        candidate_vehicle = int(vehicle[index])
        if vehicle_busy[candidate_vehicle]:
            continue
        vehicle_busy[candidate_vehicle] = True
        slots[candidate_vehicle] = slot[index]
        taken_order = current_order
    return slots


# --------------------------------------------------------------------------------------------
# Min-cost flow (OR-Tools)
# --------------------------------------------------------------------------------------------


def _max_matching_of_least_cost(
    vehicle: np.ndarray, order: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, int]:
    """Arcs (vehicle, order, cost) -> (rows in a maximum matching of least total cost, arcs).

    Network: source -> vehicle (capacity 1), vehicle -> order (capacity 1, cost), order ->
    sink (capacity 1); ``SimpleMinCostFlow.solve_max_flow_with_min_cost`` sends the most flow,
    then at least cost. Every maximum flow uses the same number of vehicle -> order arcs, so
    shifting all their costs by one constant (to make them non-negative) changes every
    candidate's total by the same amount and leaves the optimum where it was.
    """
    if vehicle.size == 0:
        return np.zeros(0, dtype=np.int64), 0
    vehicle_ids, vehicle_node = np.unique(vehicle, return_inverse=True)
    order_ids, order_node = np.unique(order, return_inverse=True)
    n_vehicles, n_orders = vehicle_ids.size, order_ids.size
    source, sink = 0, n_vehicles + n_orders + 1
    vehicle_node = 1 + vehicle_node
    order_node = 1 + n_vehicles + order_node
    shift = max(0, -int(cost.min()))
    tails = np.concatenate(
        [np.zeros(n_vehicles, np.int64), vehicle_node, 1 + n_vehicles + np.arange(n_orders)]
    )
    heads = np.concatenate([1 + np.arange(n_vehicles), order_node, np.full(n_orders, sink)])
    costs = np.concatenate(
        [np.zeros(n_vehicles, np.int64), cost + shift, np.zeros(n_orders, np.int64)]
    )
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = flow.add_arcs_with_capacity_and_unit_cost(
        tails, heads, np.ones(tails.size, dtype=np.int64), costs
    )
    flow.set_nodes_supplies(
        np.array([source, sink], dtype=np.int64), np.array([n_vehicles, -n_orders], np.int64)
    )
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"SimpleMinCostFlow ended with status {status} on a bipartite network")
    pair_arcs = arcs[n_vehicles : n_vehicles + vehicle.size]
    return np.flatnonzero(flow.flows(pair_arcs) > 0), int(tails.size)


def solve(
    instance: Any,
    time_limit: float | None = None,
    cost_scale: int = COST_SCALE,
    restrict_to_candidates: bool = True,
) -> Solution:
    """This minute's dispatch: the maximum matching of free vehicles to pending orders of
    least total cost (OR-Tools ``SimpleMinCostFlow``, module docstring).

    Args:
        instance: the env (``opsrl/RideSharing-v0``, wrapped or not, or the PettingZoo env)
            or its :class:`~opsrl.envs.ride_sharing.sim.RideSharingSim`, at the minute to
            dispatch; nothing is changed.
        time_limit: seconds (> 0) or None. The flow is solved exactly in polynomial time and
            ``SimpleMinCostFlow`` cannot be interrupted, so the limit does not stop it:
            ``metadata["over_time_limit"]`` tells whether the wall time exceeded it.
        cost_scale: integer cost units per unit of the pair cost (100: the spec's rounding).
        restrict_to_candidates: match only along vehicles' candidate slots (what the env can
            execute; default) or along every feasible pair (``sim.feasible_pairs()``: how much
            the K-candidate restriction costs; the env cannot execute that matching).

    Returns:
        A :class:`~opsrl.baselines.base.Solution`: ``objective`` the matching's total cost in
        cost units (unshifted; lower is better among matchings of the same size), ``status``
        ``optimal`` (``bound`` = ``objective``), the wall time and ``metadata``: ``matched``
        (number of pairs), ``pairs`` ((n, 2) vehicle, order), ``slots`` ((M,) candidate index
        per vehicle or -1; None without the restriction), ``reward`` (the env's match reward
        summed over the pairs), ``minute``, ``arcs`` (in the network), ``cost_scale``,
        ``restrict_to_candidates``, ``time_limit`` and ``over_time_limit``.
    """
    started = time.perf_counter()
    sim = _ride_sharing_sim(instance, "solve")
    if time_limit is not None:
        time_limit = check_time_limit(time_limit)
    cost_scale = _check_cost_scale(cost_scale)
    if not isinstance(restrict_to_candidates, bool | np.bool_):
        raise ValueError(
            f"restrict_to_candidates must be True or False, got {restrict_to_candidates!r}"
        )
    _check_running(sim, "solve")
    num_vehicles = sim.config.num_vehicles
    if restrict_to_candidates:
        vehicle, slot, row = _candidate_slots(sim)
        pairs = sim.candidates().pairs.take(row)
    else:
        pairs = sim.feasible_pairs()
        vehicle, slot = pairs.vehicle, None
    cost = pair_costs(pairs, sim, cost_scale)
    chosen, n_arcs = _max_matching_of_least_cost(vehicle, pairs.order, cost)
    slots = None
    if slot is not None:
        slots = np.full(num_vehicles, -1, dtype=np.int64)
        slots[vehicle[chosen]] = slot[chosen]
    objective = float(cost[chosen].sum())
    wall_time = time.perf_counter() - started
    return Solution(
        objective=objective,
        status="optimal",
        bound=objective,
        wall_time=wall_time,
        metadata={
            "matched": int(chosen.size),
            "pairs": np.stack([pairs.vehicle[chosen], pairs.order[chosen]], axis=1),
            "slots": slots,
            "reward": float(pairs.reward[chosen].sum()),
            "minute": int(sim.minute),
            "arcs": n_arcs,
            "cost_scale": cost_scale,
            "restrict_to_candidates": bool(restrict_to_candidates),
            "time_limit": time_limit,
            "over_time_limit": time_limit is not None and wall_time > time_limit,
        },
    )


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


class _RideSharingPolicy(BaselinePolicy):
    """Shared plumbing: follow the env's simulator; turn a matching into the env's action.

    After each :meth:`predict`, :attr:`last_slots` (M,) holds the candidate slot the policy
    gave each vehicle (-1 for none) and :attr:`last_pairs` (n, 2) the intended (vehicle,
    order) pairs: the ones the platform matches at the next ``env.step``.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self._attach(env)
        config = self.sim.config
        self._slots: np.ndarray | None = np.full(config.num_vehicles, -1, dtype=np.int64)
        self._orders = np.full((config.num_vehicles, config.num_candidates), -1, dtype=np.int64)

    @property
    def last_slots(self) -> np.ndarray:
        """(M,) candidate slot given to each vehicle at the last :meth:`predict` (-1: none)."""
        assert self._slots is not None
        return self._slots

    @property
    def last_pairs(self) -> np.ndarray:
        """(n, 2) (vehicle, order) pairs intended at the last :meth:`predict`."""
        slots = self.last_slots
        matched = np.flatnonzero(slots >= 0)
        return np.stack([matched, self._orders[matched, slots[matched]]], axis=1)

    def _attach(self, env: gym.Env) -> None:
        self.sim = _ride_sharing_sim(env, type(self).__name__)

    def reset(self, env: gym.Env) -> None:
        """Follow ``env`` (the runner's evaluation env) from its new episode."""
        self._attach(env)

    def matching(self) -> np.ndarray:
        """(M,) candidate slot per vehicle (-1: no order) for the current minute."""
        raise NotImplementedError

    def scores(self) -> np.ndarray:
        """(M, K + 1) float32 scores for the current minute (the platform's action per
        vehicle; also what ``sim.dispatch`` and the PettingZoo env take)."""
        slots = self.matching()
        return matching_scores(slots, self.sim.config.num_candidates)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The platform view's flat action (M (K + 1),) for the current minute.

        The observation and the masks are not needed: the policy reads the simulator, whose
        candidate slots are the ones the masks allow.
        """
        _check_running(self.sim, type(self).__name__)
        return self.scores().reshape(-1), state

    def _remember(self, slots: np.ndarray) -> np.ndarray:
        self._slots = slots
        # The simulator replaces (never edits) its candidates when the state changes.
        self._orders = self.sim.candidates().order
        return slots


class RandomDispatchPolicy(_RideSharingPolicy):
    """Uniformly random scores in [-1, 1] for every slot (an untrained agent's action).

    The platform then maximises the summed random gains over "no order", not the matches: a
    vehicle whose "no order" draws its highest score (one time in K + 1) takes nothing, and the
    matching is usually smaller than the maximum. Stochastic: the draws come from the policy's
    ``seed``.

    Args:
        env: the ride-sharing env (``opsrl/RideSharing-v0``).
        seed: seed of the score draws.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        super().__init__(env, seed=seed)
        self._scores: np.ndarray | None = None

    @property
    def last_slots(self) -> np.ndarray:
        """The platform's resolution of the last draw (computed on demand: the draw itself is
        the decision, and the env resolves it anyway)."""
        if self._slots is None:
            assert self._scores is not None
            # The env resolves float64 copies of the same float32 scores: the same matching.
            self._slots = resolve_matching(self._scores.astype(np.float64), self._orders)
        return self._slots

    def scores(self) -> np.ndarray:
        """Random (M, K + 1) float32 scores, uniform in [-1, 1]."""
        config = self.sim.config
        shape = (config.num_vehicles, config.num_candidates + 1)
        self._scores = self.rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
        self._slots = None
        self._orders = self.sim.candidates().order
        return self._scores

    def matching(self) -> np.ndarray:
        """The platform's resolution of a fresh random score draw."""
        self.scores()
        return self.last_slots


class GreedyNearestPolicy(_RideSharingPolicy):
    """First come, first served: every pending order, in order of appearance, goes to the
    nearest free vehicle that has it among its candidates (:func:`greedy_nearest_matching`).

    Deterministic (the ``seed`` is unused).

    Args:
        env: the ride-sharing env (``opsrl/RideSharing-v0``).
        seed: unused; kept for the runner.
    """

    def matching(self) -> np.ndarray:
        """The greedy matching of the current minute."""
        return self._remember(greedy_nearest_matching(self.sim))


class MinCostFlowPolicy(_RideSharingPolicy):
    """OR-Tools min-cost flow every minute: the most matches, then the least pickup and added
    time net of the distance served (:func:`solve` over the candidate slots).

    Deterministic (the ``seed`` is unused). ``last_solution`` keeps the latest
    :class:`~opsrl.baselines.base.Solution`.

    Args:
        env: the ride-sharing env (``opsrl/RideSharing-v0``).
        seed: unused; kept for the runner.
        cost_scale: integer cost units per unit of the pair cost (default 100).
    """

    def __init__(self, env: gym.Env, seed: int | None = None, cost_scale: int = COST_SCALE) -> None:
        super().__init__(env, seed=seed)
        self.cost_scale = _check_cost_scale(cost_scale)
        self.last_solution: Solution | None = None

    def matching(self) -> np.ndarray:
        """The min-cost maximum matching of the current minute over the candidate slots."""
        self.last_solution = solve(self.sim, cost_scale=self.cost_scale)
        return self._remember(self.last_solution.metadata["slots"])
