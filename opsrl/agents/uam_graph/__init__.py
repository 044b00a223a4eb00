"""Learned fleet scheduling for urban air mobility: masked PPO with a graph attention policy.

- :class:`GraphFleetPPO`: the algorithm, an sb3-contrib ``MaskablePPO`` subclass with
  defaults for a CPU budget and a reward scale;
- :class:`GraphFleetPolicy`: route, aircraft and demand-series embeddings, TransformerConv
  message passing over the vertiport graph, and a multi-head attention decoder giving one
  logit per destination vertiport (after CapTAIN, arXiv 2401.04851); its weights do not
  depend on the number of vertiports or aircraft.

The env must produce the graph Dict observation of ``opsrl/UAMFleet-v0`` and offer
``action_masks()``.
"""

from opsrl.agents.uam_graph.graph_fleet_ppo import GraphFleetPPO
from opsrl.agents.uam_graph.policies import FleetGraphEncoder, GraphFleetPolicy, fleet_graph_batch

__all__ = ["FleetGraphEncoder", "GraphFleetPPO", "GraphFleetPolicy", "fleet_graph_batch"]
