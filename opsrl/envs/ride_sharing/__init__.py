"""Ride-sharing order dispatch with pooling (OSPO/GRPO, Zhao & Li, arXiv 2507.15351).

- :mod:`~opsrl.envs.ride_sharing.data`: zone layouts (synthetic or a zones CSV), the gravity
  demand model and the NYC TLC trip loader;
- :mod:`~opsrl.envs.ride_sharing.sim`: :class:`RideSharingSim`, the numpy simulator (fleet,
  orders, feasible pairs and candidates, match rewards, platform matching, KPIs; no
  Gymnasium);
- :mod:`~opsrl.envs.ride_sharing.env`: :class:`RideSharingParallelEnv` (PettingZoo, one agent
  per vehicle) and :class:`RideSharingEnv` (Gymnasium platform view, ``opsrl/RideSharing-v0``);
- :mod:`~opsrl.envs.ride_sharing.vec`: :class:`RideSharingAgentVecEnv`, every vehicle of N
  copies as one slot of an SB3 VecEnv (parameter sharing; imported lazily, since it needs
  stable-baselines3).

For agents: a vehicle's action is a score vector over ``[no order, candidate 1..K]``; the
observation ends with the (K + 1) mask; ``infos`` carry ``matched_slot``, ``acted`` and OSPO's
``fairness_penalty``. For OR baselines: ``env.sim.feasible_pairs()`` lists every feasible
(vehicle, order) pair with its pickup time, added time, timeouts and reward;
``env.sim.match(pairs)`` applies a matching and ``env.sim.advance()`` moves one minute, or
``env.step`` with scores that rank the chosen candidate first.
"""

from __future__ import annotations

from typing import Any

from opsrl.envs.ride_sharing.data import (
    GravityDemand,
    TripOrders,
    ZoneLayout,
    haversine_km,
    load_tlc_trips,
    load_zones,
    synthetic_zones,
)
from opsrl.envs.ride_sharing.env import RideSharingCore, RideSharingEnv, RideSharingParallelEnv
from opsrl.envs.ride_sharing.sim import (
    Candidates,
    DispatchResult,
    FeasiblePairs,
    RewardWeights,
    RideSharingSim,
    SimConfig,
    match_reward,
    resolve_matching,
)

__all__ = [
    "Candidates",
    "DispatchResult",
    "FeasiblePairs",
    "GravityDemand",
    "RewardWeights",
    "RideSharingAgentVecEnv",
    "RideSharingCore",
    "RideSharingEnv",
    "RideSharingParallelEnv",
    "RideSharingSim",
    "SimConfig",
    "TripOrders",
    "ZoneLayout",
    "haversine_km",
    "load_tlc_trips",
    "load_zones",
    "match_reward",
    "resolve_matching",
    "synthetic_zones",
]


def __getattr__(name: str) -> Any:
    # Importing stable-baselines3 (and torch) only when the VecEnv is asked for keeps
    # `import opsrl` light.
    if name == "RideSharingAgentVecEnv":
        from opsrl.envs.ride_sharing.vec import RideSharingAgentVecEnv

        return RideSharingAgentVecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
