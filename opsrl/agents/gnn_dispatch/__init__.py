"""Learned dispatching: masked PPO with a graph neural network policy.

- :class:`GnnPPO`: the algorithm, an sb3-contrib ``MaskablePPO`` subclass with defaults for
  job shop dispatching and a reward scale;
- :class:`GraphDispatchPolicy`: edge-type-aware message passing over the dynamic disjunctive
  graph (:mod:`opsrl.nn.graph`), one logit per job's candidate operation, a critic on the
  mean-pooled embedding; its weights do not depend on the instance size.

The env must produce the graph Dict observation of ``opsrl/JobShop-v0`` and offer
``action_masks()``.
"""

from opsrl.agents.gnn_dispatch.gnn_ppo import GnnPPO, ScaledRewardVecEnv
from opsrl.agents.gnn_dispatch.policies import GraphDispatchPolicy

__all__ = ["GnnPPO", "GraphDispatchPolicy", "ScaledRewardVecEnv"]
