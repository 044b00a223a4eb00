"""PDPPO: PPO with a post-decision critic (Felizardo et al., IJCNN 2025, arXiv 2504.05150).

- :class:`PDPPO`: the algorithm, an SB3 ``PPO`` subclass;
- :class:`DualCriticPolicy`: actor, pre-decision critic and post-decision critic, three
  optimizers;
- :class:`PostDecisionRolloutBuffer`: post-decision observations, the two reward and return
  streams and the combined advantage.

The env must offer ``post_decision(action) -> (post_obs, post_reward)`` (``opsrl/LotSizing-v0``
and its batched ``LotSizingVecEnv`` do).
"""

from opsrl.agents.pdppo.buffers import PostDecisionRolloutBuffer, PostDecisionRolloutBufferSamples
from opsrl.agents.pdppo.pdppo import PDPPO
from opsrl.agents.pdppo.policies import DualCriticPolicy, MlpPolicy

__all__ = [
    "PDPPO",
    "DualCriticPolicy",
    "MlpPolicy",
    "PostDecisionRolloutBuffer",
    "PostDecisionRolloutBufferSamples",
]
