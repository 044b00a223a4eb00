"""Gymnasium face of the UAM fleet simulator: one aircraft picks its next vertiport per step."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from opsrl.envs.uam.data import UAMConfig, UAMScenario, as_config
from opsrl.envs.uam.sim import CHARGING, FLYING, PARKED, Decision, UAMSim

__all__ = [
    "AIRCRAFT_FEATURES",
    "DECISION_COLUMNS",
    "DEMAND_FEATURE_CAP",
    "EDGE_FEATURES",
    "GRAPH_KEYS",
    "INVALID_ACTION_MODES",
    "OBSERVATIONS",
    "REWARDS",
    "TRACE_COLUMNS",
    "VERTIPORT_FEATURES",
    "UAMFleetEnv",
    "unflatten_graph_observation",
    "vertiport_feature_names",
]

OBSERVATIONS = ("graph", "flat")
REWARDS = ("daily", "per_flight")
#: what to do with an infeasible destination
INVALID_ACTION_MODES = ("replace", "raise")

#: the first columns of a vertiport node; then P outflow, P inflow and N fare columns
#: (:func:`vertiport_feature_names`)
VERTIPORT_FEATURES = (
    "x",
    "y",
    "urban",
    "parked",
    "charging",
    "inbound",
    "parking_capacity",
    "charging_capacity",
    "takeoff_delay_mean",
    "deciding_here",
)
#: columns of an edge (a directed vertiport pair i != j)
EDGE_FEATURES = (
    "proximity",
    "distance",
    "fare",
    "in_range",
    "open",
    "corridor_load",
    "demand_now",
    "demand_next",
)
#: columns of an aircraft node
AIRCRAFT_FEATURES = (
    "x",
    "y",
    "destination_x",
    "destination_y",
    "parked",
    "charging",
    "flying",
    "down",
    "deciding",
    "time_to_decision",
    "state_of_charge",
    "downtime_left",
)
GRAPH_KEYS = (
    "vertiport_features",
    "vertiport_edges",
    "vertiport_edge_features",
    "aircraft_features",
    "aircraft_vertiport",
    "deciding",
    "action_mask",
    "demand",
    "fares",
    "time",
)
#: demand features are passengers / ``config.peak_bin_demand``, capped here (Gymnasium's
#: checker rejects unbounded Box spaces and Poisson counts are unbounded)
DEMAND_FEATURE_CAP = 4.0
#: columns of :meth:`UAMFleetEnv.decision_log`
DECISION_COLUMNS = ("kind", *Decision._fields)
#: columns of :meth:`UAMFleetEnv.episode_trace`
TRACE_COLUMNS = (
    "time",
    "profit",
    "revenue",
    "energy_cost",
    "passengers_served",
    "flights",
    "empty_flights",
)


def vertiport_edges(n_vertiports: int) -> tuple[np.ndarray, np.ndarray]:
    """Source and target vertiport of each directed edge of the complete vertiport graph (no
    self-loops), in the order of the graph observation's edges."""
    source, target = np.nonzero(~np.eye(n_vertiports, dtype=bool))
    return source, target


def vertiport_feature_names(config: UAMConfig) -> tuple[str, ...]:
    """All column names of a vertiport node for ``config``."""
    points = range(config.n_demand_points)
    return (
        *VERTIPORT_FEATURES,
        *(f"outflow_{k}" for k in points),
        *(f"inflow_{k}" for k in points),
        *(f"fare_to_{j}" for j in range(config.n_vertiports)),
    )


def unflatten_graph_observation(observation: Mapping[str, Any]) -> dict[str, Any]:
    """Reshape a (batch of) graph observation(s) to matrix form.

    ``vertiport_features`` becomes ``(..., N, Fv)``, ``vertiport_edges`` ``(..., 2, E)``,
    ``vertiport_edge_features`` ``(..., E, Fe)``, ``aircraft_features`` ``(..., A, Fa)``,
    ``demand`` ``(..., P, N, N)`` and ``fares`` ``(..., N, N)``; the other keys are returned
    as they are. Works on numpy arrays and torch tensors with any leading batch dimensions.
    """
    out = dict(observation)
    mask = observation["action_mask"]
    lead, n = tuple(mask.shape[:-1]), int(mask.shape[-1])
    n_aircraft = int(observation["aircraft_vertiport"].shape[-1])
    n_edges = int(observation["vertiport_edges"].shape[-1]) // 2
    out["vertiport_features"] = observation["vertiport_features"].reshape(*lead, n, -1)
    out["vertiport_edges"] = observation["vertiport_edges"].reshape(*lead, 2, n_edges)
    out["vertiport_edge_features"] = observation["vertiport_edge_features"].reshape(
        *lead, n_edges, -1
    )
    out["aircraft_features"] = observation["aircraft_features"].reshape(*lead, n_aircraft, -1)
    out["demand"] = observation["demand"].reshape(*lead, -1, n, n)
    out["fares"] = observation["fares"].reshape(*lead, n, n)
    return out


class UAMFleetEnv(gym.Env[dict[str, np.ndarray] | np.ndarray, np.int64]):
    """Urban air mobility: schedule a fleet of electric air taxis between vertiports for a day.

    ## Description

    A fleet of eVTOL aircraft (default 40) serves passengers between vertiports (default 8)
    from 06:00 to 18:00, after CapTAIN (Paul, Witter and Chowdhury, "Graph learning-based
    fleet scheduling for urban air mobility under operational constraints, varying demand &
    uncertainties", arXiv 2401.04851) and its precursor (iamstevepaul/UAM_fleet_Scheduling).
    Decisions are event driven: the aircraft with the earliest next decision time chooses a
    destination vertiport, and the clock jumps to the next decision. Choosing its own
    vertiport means staying 15 minutes. A flight takes off (after a random delay), cruises at
    74.5 mph, lands, carries up to 4 passengers of the pair's remaining demand in the current
    hour at a fare of floor(1.5 x miles) dollars each, then recharges its energy
    (110 kWh per 50 miles at 150 kW, paid 0.2 $/kWh) before its next decision. Vertiports
    have limited parking stands and chargers, aircraft a 50-mile range, and routes a corridor
    capacity. Demand varies over the day with a morning (09:00) and an afternoon (16:30)
    peak; the uncertainties are take-off delays, weather route closures and aircraft
    downtime. The objective is the day's profit (fares minus electricity). The full model
    is in :mod:`opsrl.envs.uam.sim` and :mod:`opsrl.envs.uam.data`; every parameter is a
    field of :class:`~opsrl.envs.uam.data.UAMConfig`.

    ## Action Space

    ``Discrete(N)``: the destination vertiport of the deciding aircraft (its own vertiport:
    stay). :meth:`action_masks` (the sb3-contrib MaskablePPO contract) marks the feasible
    ones: within range, a free charger at the destination (counting aircraft on their way),
    the route open this hour, and the corridor not full. Staying is always feasible. An
    infeasible destination is replaced by staying and flagged in ``info["invalid_action"]``
    with ``invalid_action="replace"`` (the default, so that unmasked agents and the env
    checkers run), or raises a ValueError naming the violated constraint with ``"raise"``.
    Actions outside 0..N-1 always raise.

    ## Observation Space

    ``observation="graph"`` (default): a ``Dict`` of float32 ``Box`` es. Matrices are
    flattened row-major, since Stable-Baselines3 accepts only 1-D Box observations without
    warnings; :func:`unflatten_graph_observation` restores them (numpy or torch, batched or
    not). Ids are floats; cast them back to integers. With N vertiports, A aircraft,
    P demand points (13) and E = N (N - 1) directed vertiport pairs:

    - ``vertiport_features`` (N x Fv): :data:`VERTIPORT_FEATURES` -- position / area size,
      urban flag, parked / stands, charging / chargers, inbound / chargers, stands and
      chargers / the largest capacity, mean take-off delay / its maximum, 1 at the deciding
      aircraft's vertiport -- then the P-point remaining outflow and inflow demand profiles
      (passengers / (peak pair demand x (N - 1)), capped at 4) and the fare row to each
      vertiport (/ the fare of the area's diagonal). Names: :func:`vertiport_feature_names`.
    - ``vertiport_edges`` (2 x E): the fixed complete directed graph (source row, target row).
    - ``vertiport_edge_features`` (E x 8): :data:`EDGE_FEATURES` -- proximity
      1 / (1 + distance / range) (the edge weight), distance / diagonal, fare / diagonal
      fare, in range, open this hour, flights in the corridor / its capacity, remaining demand
      of the pair in this and the next demand bin (/ peak pair demand, capped at 4).
    - ``aircraft_features`` (A x 12): :data:`AIRCRAFT_FEATURES` -- position of its vertiport
      (origin while flying) and of its destination / area size, status one-hot (parked,
      charging, flying), grounded now, deciding now, time to its next decision / day length
      (capped at 1), battery level, remaining grounding / day length.
    - ``aircraft_vertiport`` (A,): the vertiport each aircraft is at or flying to.
    - ``deciding`` (2,): the deciding aircraft and its vertiport (-1 once the day is over).
    - ``action_mask`` (N,): the feasible destinations (as :meth:`action_masks`).
    - ``demand`` (P x N x N): remaining demand per bin and pair (normalised as above).
    - ``fares`` (N x N): the fare table / diagonal fare.
    - ``time`` (1,): the fraction of the day elapsed.

    ``observation="flat"``: one float32 vector for MLP policies: time, the deciding
    aircraft one-hot (A), its vertiport one-hot (N), the action mask (N), then the vertiport,
    edge and aircraft feature matrices above, flattened.

    ## Rewards

    Profit is fares minus electricity, divided by ``reward_scale``; by default (None) the
    day's potential revenue, the sum of demand x fare (the precursor's normaliser, so the
    return is the fraction of it earned net of electricity). ``reward="daily"`` (default, as
    the precursor): 0 at every step and the day's profit at the last step.
    ``reward="per_flight"``: each flight's profit at its decision (stays earn 0). Both sum
    to the same return.

    ## Starting State

    06:00; each aircraft parked with a full battery at a random vertiport (no vertiport over
    its stands). The day's demand, the layout (when ``layout_seed`` is None) and the
    uncertainties are drawn from the reset seed (see :mod:`opsrl.envs.uam.data`); with
    ``uncertainty=False`` and a fixed layout the demand and the fleet's start are the only
    random inputs and the dynamics are deterministic given them.

    ## Episode End

    ``terminated`` when no aircraft has a decision due before 18:00 (the number of decisions
    per day varies with the policy: about 500 to 2,000 with the defaults). Flights decided
    before 18:00 complete and count. There is no truncation: the day always ends.

    ## Info

    ``info["kpi"]`` (day to date; final at the end): ``profit``, ``revenue``,
    ``energy_cost``, ``energy_kwh``, ``passengers_served``, ``unserved_demand`` (the day's
    total demand minus the passengers served), ``total_demand``, ``flights``,
    ``empty_flights``, ``stays``, ``load_factor``, ``normalised_profit`` (profit / potential
    revenue). Also ``time`` (hours), ``aircraft`` (the one deciding next, -1 at the end),
    ``invalid_action`` and ``decision`` (the :class:`~opsrl.envs.uam.sim.Decision` of the
    step). :meth:`decision_log` returns the day's decisions and :meth:`episode_trace` the
    cumulative KPIs after each decision, as DataFrames.

    ## Arguments

    ```python
    gym.make("opsrl/UAMFleet-v0", config=None, n_vertiports=None, n_aircraft=None,
             uncertainty=None, observation="graph", reward="daily", reward_scale=None,
             invalid_action="replace", render_mode=None)
    ```

    - ``config``: a :class:`~opsrl.envs.uam.data.UAMConfig` or a mapping of its fields
      (e.g. ``{"corridor_capacity": 2, "route_closure_prob": 0.1, "layout_seed": None}``);
      defaults: 8 vertiports, 40 aircraft, 10 stands and 6 chargers per vertiport, corridor
      capacity 3, take-off delay means U[0, 10 min], route closure 0.05 per route and hour,
      downtime 0.05 per aircraft and day for U[1, 3] h.
    - ``n_vertiports``, ``n_aircraft``, ``uncertainty``: shortcuts overriding those fields of
      ``config`` (None keeps them). ``uncertainty=False`` switches off delays, closures and
      downtime together (the corridor capacity is a rule and stays).
    - ``observation``: ``"graph"`` or ``"flat"``.
    - ``reward``: ``"daily"`` or ``"per_flight"``; ``reward_scale``: None (potential
      revenue) or a positive number of dollars.
    - ``invalid_action``: ``"replace"`` or ``"raise"`` (see Action Space).
    - ``render_mode``: None or ``"ansi"`` (a text status of the vertiports).

    ``reset(options={"scenario": scenario})`` replays a given
    :class:`~opsrl.envs.uam.data.UAMScenario` (e.g. ``env.unwrapped.scenario`` of another
    episode) instead of drawing one. Bad arguments raise a ValueError naming the argument.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        config: UAMConfig | Mapping[str, Any] | None = None,
        n_vertiports: int | None = None,
        n_aircraft: int | None = None,
        uncertainty: bool | None = None,
        observation: str = "graph",
        reward: str = "daily",
        reward_scale: float | None = None,
        invalid_action: str = "replace",
        render_mode: str | None = None,
    ) -> None:
        self.config = as_config(
            config, n_vertiports=n_vertiports, n_aircraft=n_aircraft, uncertainty=uncertainty
        )
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation must be one of {', '.join(OBSERVATIONS)}, got {observation!r}"
            )
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if reward_scale is not None and (
            isinstance(reward_scale, bool)
            or not isinstance(reward_scale, int | float | np.integer | np.floating)
            or not math.isfinite(float(reward_scale))
            or reward_scale <= 0
        ):
            raise ValueError(
                f"reward_scale must be None or a positive number, got {reward_scale!r}"
            )
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(
                f"invalid_action must be one of {', '.join(INVALID_ACTION_MODES)}, "
                f"got {invalid_action!r}"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.observation = observation
        self.reward_mode = reward
        self.reward_scale = None if reward_scale is None else float(reward_scale)
        self.invalid_action = invalid_action
        self.render_mode = render_mode

        config = self.config
        n, a = config.n_vertiports, config.n_aircraft
        self.n_vertiports, self.n_aircraft = n, a
        self.n_demand_points = config.n_demand_points
        self._n_vertiport_features = len(vertiport_feature_names(config))
        source, target = vertiport_edges(n)
        self._edge_source, self._edge_target = source, target
        self._edges = np.concatenate([source, target]).astype(np.float32)
        self.action_space = spaces.Discrete(n)
        self.observation_space = self._make_observation_space()

        self.sim = UAMSim(config)
        self._scale = 1.0
        self._started = False

    # ----------------------------------------------------------------- properties
    @property
    def scenario(self) -> UAMScenario | None:
        """The day being played (None before the first reset)."""
        return self.sim.scenario

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, dict[str, Any]]:
        """Draw (or replay) a day and run to its first decision."""
        super().reset(seed=seed)
        options = dict(options or {})
        scenario = options.pop("scenario", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: scenario")
        if scenario is None:
            self.sim.reset(int(self.np_random.integers(2**63 - 1)))
        else:
            self.sim.reset(scenario=scenario)
        potential = self.sim.scenario.potential_revenue
        self._scale = self.reward_scale or (potential if potential > 0 else 1.0)
        self._static_features()
        self._started = True
        return self._observation(), self._info(invalid=False, decision=None)

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray] | np.ndarray, float, bool, bool, dict[str, Any]]:
        """Send the deciding aircraft to the chosen vertiport and advance to the next decision."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        sim = self.sim
        if sim.finished:
            raise RuntimeError("the day is over; call reset() before step()")
        destination = self._action_to_destination(action)
        aircraft = sim.deciding_aircraft()
        invalid = not sim.feasible_destinations()[destination]
        if invalid:
            if self.invalid_action == "raise":
                reason = sim.infeasibility_reason(destination)
                raise ValueError(
                    f"destination {destination} is infeasible for aircraft {aircraft} "
                    f"({reason}); mask actions with action_masks() or use "
                    "invalid_action='replace'"
                )
            destination = int(sim.location[aircraft])
        decision = sim.step(destination)
        terminated = sim.finished
        if self.reward_mode == "per_flight":
            reward = decision.profit / self._scale
        else:
            reward = sim.profit / self._scale if terminated else 0.0
        observation = self._observation()
        return observation, float(reward), terminated, False, self._info(invalid, decision)

    def action_masks(self) -> np.ndarray:
        """Bool (N,): the feasible destinations of the deciding aircraft (all False once the
        day is over)."""
        return self.sim.feasible_destinations()

    def decision_log(self) -> pd.DataFrame:
        """The day's decisions so far, one row each: ``kind`` ("flight" or "stay") and the
        fields of :class:`~opsrl.envs.uam.sim.Decision`."""
        rows = [("flight" if d.is_flight else "stay", *d) for d in self.sim.log]
        return pd.DataFrame(rows, columns=list(DECISION_COLUMNS))

    def episode_trace(self) -> pd.DataFrame:
        """KPIs over the day (the generic report hook): one row per decision with its
        ``time`` (hours) and the day's cumulative ``profit``, ``revenue``, ``energy_cost``,
        ``passengers_served``, ``flights`` and ``empty_flights`` after it."""
        log = self.decision_log()
        flight = (log["kind"] == "flight").astype(np.int64)
        trace = pd.DataFrame({"time": log["decision_time"].astype(np.float64)})
        trace["profit"] = (log["revenue"] - log["energy_cost"]).cumsum()
        trace["revenue"] = log["revenue"].cumsum()
        trace["energy_cost"] = log["energy_cost"].cumsum()
        trace["passengers_served"] = log["passengers"].cumsum()
        trace["flights"] = flight.cumsum()
        trace["empty_flights"] = (flight * (log["passengers"] == 0)).cumsum()
        return trace

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the clock, the KPIs and each vertiport's occupancy."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render() without a render_mode; use render_mode='ansi'."
            )
            return None
        sim = self.sim
        hours, minutes = divmod(round(sim.time * 60), 60)
        kpi = sim.kpi()
        lines = [
            f"{hours:02d}:{minutes:02d} aircraft {sim.deciding_aircraft()} decides | profit "
            f"${kpi['profit']:,.0f} | {int(kpi['passengers_served'])} passengers | "
            f"{int(kpi['flights'])} flights"
        ]
        for i in range(self.n_vertiports):
            kind = "urban" if sim.scenario.urban[i] else "suburb"
            lines.append(
                f"V{i} {kind:6s} parked {sim.parked[i]}/{sim.parking_capacity[i]} "
                f"charging {sim.charging[i]}+{sim.inbound[i]} inbound/"
                f"{sim.charging_capacity[i]}"
            )
        return "\n".join(lines)

    # ----------------------------------------------------------------- helpers
    def _action_to_destination(self, action: Any) -> int:
        array = np.asarray(action)
        if array.size != 1 or array.dtype.kind not in "iuf":
            raise ValueError(f"action must be one vertiport index, got {action!r}")
        value = array.reshape(()).item()
        if value != int(value) or not 0 <= int(value) < self.n_vertiports:
            raise ValueError(
                f"action must be a vertiport index in 0..{self.n_vertiports - 1}, got {action!r}"
            )
        return int(value)

    def _info(self, invalid: bool, decision: Decision | None) -> dict[str, Any]:
        return {
            "kpi": self.sim.kpi(),
            "time": float(self.sim.time),
            "aircraft": self.sim.deciding_aircraft(),
            "invalid_action": bool(invalid),
            "decision": decision,
        }

    def _make_observation_space(self) -> spaces.Space:
        n, a, p = self.n_vertiports, self.n_aircraft, self.n_demand_points
        n_edges = n * (n - 1)
        vertiport_high = np.ones((n, self._n_vertiport_features), dtype=np.float32)
        profiles = slice(len(VERTIPORT_FEATURES), len(VERTIPORT_FEATURES) + 2 * p)
        vertiport_high[:, profiles] = DEMAND_FEATURE_CAP
        edge_high = np.ones((n_edges, len(EDGE_FEATURES)), dtype=np.float32)
        edge_high[:, [EDGE_FEATURES.index("demand_now"), EDGE_FEATURES.index("demand_next")]] = (
            DEMAND_FEATURE_CAP
        )
        aircraft_high = np.ones((a, len(AIRCRAFT_FEATURES)), dtype=np.float32)
        if self.observation == "flat":
            high = np.concatenate(
                [
                    np.ones(1 + a + 2 * n, dtype=np.float32),
                    vertiport_high.ravel(),
                    edge_high.ravel(),
                    aircraft_high.ravel(),
                ]
            )
            return spaces.Box(0.0, high, dtype=np.float32)
        return spaces.Dict(
            {
                "vertiport_features": spaces.Box(0.0, vertiport_high.ravel(), dtype=np.float32),
                "vertiport_edges": spaces.Box(0.0, n - 1, shape=(2 * n_edges,), dtype=np.float32),
                "vertiport_edge_features": spaces.Box(0.0, edge_high.ravel(), dtype=np.float32),
                "aircraft_features": spaces.Box(0.0, aircraft_high.ravel(), dtype=np.float32),
                "aircraft_vertiport": spaces.Box(0.0, n - 1, shape=(a,), dtype=np.float32),
                "deciding": spaces.Box(
                    -1.0, np.array([a - 1, n - 1], dtype=np.float32), dtype=np.float32
                ),
                "action_mask": spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
                "demand": spaces.Box(0.0, DEMAND_FEATURE_CAP, shape=(p * n * n,), dtype=np.float32),
                "fares": spaces.Box(0.0, 1.0, shape=(n * n,), dtype=np.float32),
                "time": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
            }
        )

    def _static_features(self) -> None:
        """Per-day parts of the observation (the layout may change between days)."""
        sim, config = self.sim, self.config
        n = self.n_vertiports
        scenario = sim.scenario
        self._position = (scenario.positions / config.area_size).astype(np.float32)
        capacity_norm = float(max(sim.parking_capacity.max(), sim.charging_capacity.max()))
        delay_norm = config.takeoff_delay_mean_max or 1.0
        self._fare_feature = np.minimum(scenario.fare / config.max_fare, 1.0).astype(np.float32)

        template = np.zeros((n, self._n_vertiport_features), dtype=np.float32)
        template[:, 0:2] = self._position
        template[:, 2] = scenario.urban
        template[:, 6] = sim.parking_capacity / capacity_norm
        template[:, 7] = sim.charging_capacity / capacity_norm
        template[:, 8] = np.minimum(scenario.takeoff_delay_mean / delay_norm, 1.0)
        template[:, len(VERTIPORT_FEATURES) + 2 * self.n_demand_points :] = self._fare_feature
        self._vertiport_template = template

        source, target = self._edge_source, self._edge_target
        distance = scenario.distance[source, target]
        edges = np.zeros((source.size, len(EDGE_FEATURES)), dtype=np.float32)
        edges[:, 0] = 1.0 / (1.0 + distance / config.aircraft_range)
        edges[:, 1] = np.minimum(distance / (config.area_size * 2**0.5), 1.0)
        edges[:, 2] = self._fare_feature[source, target]
        edges[:, 3] = sim.in_range[source, target]
        self._edge_template = edges
        self._corridor_norm = float(config.corridor_capacity or config.n_aircraft)
        self._demand_norm = config.peak_bin_demand

    def _observation(self) -> dict[str, np.ndarray] | np.ndarray:
        sim = self.sim
        n, p = self.n_vertiports, self.n_demand_points
        aircraft = sim.deciding_aircraft()
        mask = sim.feasible_destinations()
        demand = np.minimum(sim.remaining_demand / self._demand_norm, DEMAND_FEATURE_CAP)
        demand_bin = sim.demand_bin

        vertiports = self._vertiport_template.copy()
        vertiports[:, 3] = sim.parked / sim.parking_capacity
        vertiports[:, 4] = sim.charging / sim.charging_capacity
        vertiports[:, 5] = sim.inbound / sim.charging_capacity
        if aircraft >= 0:
            vertiports[sim.location[aircraft], 9] = 1.0
        start = len(VERTIPORT_FEATURES)
        profile_norm = self._demand_norm * (n - 1)
        remaining = sim.remaining_demand
        vertiports[:, start : start + p] = np.minimum(
            remaining.sum(axis=2).T / profile_norm, DEMAND_FEATURE_CAP
        )
        vertiports[:, start + p : start + 2 * p] = np.minimum(
            remaining.sum(axis=1).T / profile_norm, DEMAND_FEATURE_CAP
        )

        source, target = self._edge_source, self._edge_target
        edges = self._edge_template.copy()
        edges[:, 4] = sim.route_open()[source, target]
        edges[:, 5] = np.minimum(sim.corridor_flights[source, target] / self._corridor_norm, 1.0)
        edges[:, 6] = demand[demand_bin, source, target]
        if demand_bin + 1 < p:
            edges[:, 7] = demand[demand_bin + 1, source, target]

        fleet = self._aircraft_features(aircraft)
        if self.observation == "flat":
            deciding_aircraft = np.zeros(self.n_aircraft, dtype=np.float32)
            deciding_vertiport = np.zeros(n, dtype=np.float32)
            if aircraft >= 0:
                deciding_aircraft[aircraft] = 1.0
                deciding_vertiport[sim.location[aircraft]] = 1.0
            return np.concatenate(
                [
                    np.array([self._time_feature()], dtype=np.float32),
                    deciding_aircraft,
                    deciding_vertiport,
                    mask.astype(np.float32),
                    vertiports.ravel(),
                    edges.ravel(),
                    fleet.ravel(),
                ]
            )
        deciding = np.array(
            [aircraft, sim.location[aircraft] if aircraft >= 0 else -1], dtype=np.float32
        )
        return {
            "vertiport_features": vertiports.ravel(),
            "vertiport_edges": self._edges.copy(),
            "vertiport_edge_features": edges.ravel(),
            "aircraft_features": fleet.ravel(),
            "aircraft_vertiport": sim.destination.astype(np.float32),
            "deciding": deciding,
            "action_mask": mask.astype(np.float32),
            "demand": demand.astype(np.float32).ravel(),
            "fares": self._fare_feature.ravel().copy(),
            "time": np.array([self._time_feature()], dtype=np.float32),
        }

    def _time_feature(self) -> float:
        config = self.config
        return min(max((self.sim.time - config.day_start) / config.day_length, 0.0), 1.0)

    def _aircraft_features(self, deciding: int) -> np.ndarray:
        sim, config = self.sim, self.config
        now, length = sim.time, config.day_length
        status = sim.status
        down = sim.is_down()
        fleet = np.empty((self.n_aircraft, len(AIRCRAFT_FEATURES)), dtype=np.float32)
        fleet[:, 0:2] = self._position[sim.location]
        fleet[:, 2:4] = self._position[sim.destination]
        fleet[:, 4] = status == PARKED
        fleet[:, 5] = status == CHARGING
        fleet[:, 6] = status == FLYING
        fleet[:, 7] = down
        fleet[:, 8] = 0.0
        if deciding >= 0:
            fleet[deciding, 8] = 1.0
        fleet[:, 9] = np.clip((sim.next_decision_time - now) / length, 0.0, 1.0)
        fleet[:, 10] = np.clip(sim.state_of_charge(), 0.0, 1.0)
        fleet[:, 11] = np.where(
            down, np.clip((sim.scenario.downtime_end - now) / length, 0.0, 1.0), 0.0
        )
        return fleet
