"""Urban air mobility: scheduling an electric air-taxi (eVTOL) fleet between vertiports.

- :mod:`~opsrl.envs.uam.data`: :class:`UAMConfig` (every parameter), :class:`UAMScenario`
  (one day's random draw) and the synthetic generator (the CapTAIN precursor's demand model);
- :mod:`~opsrl.envs.uam.sim`: :class:`UAMSim`, the event-driven numpy simulator (clonable,
  for look-ahead baselines);
- :mod:`~opsrl.envs.uam.env`: :class:`UAMFleetEnv`, the Gymnasium env (``opsrl/UAMFleet-v0``).
"""

from __future__ import annotations

from opsrl.envs.uam.data import (
    UAMConfig,
    UAMScenario,
    as_config,
    distance_matrix,
    expected_demand,
    fare_table,
    generate_scenario,
    leg_matrices,
    urban_vertiports,
    vertiport_layout,
)
from opsrl.envs.uam.env import UAMFleetEnv, unflatten_graph_observation, vertiport_feature_names
from opsrl.envs.uam.sim import CHARGING, FLYING, PARKED, STATUS_NAMES, Decision, UAMSim

__all__ = [
    "CHARGING",
    "FLYING",
    "PARKED",
    "STATUS_NAMES",
    "Decision",
    "UAMConfig",
    "UAMFleetEnv",
    "UAMScenario",
    "UAMSim",
    "as_config",
    "distance_matrix",
    "expected_demand",
    "fare_table",
    "generate_scenario",
    "leg_matrices",
    "unflatten_graph_observation",
    "urban_vertiports",
    "vertiport_feature_names",
    "vertiport_layout",
]
