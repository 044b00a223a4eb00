"""PMOE: probabilistic mixture-of-experts policies (Ren et al., arXiv 2104.09122).

- :class:`PMOESAC` (agent ``pmoe_sac``): SAC with a mixture of K tanh-Gaussian experts, the
  Q-best-expert actor gradient and the routing ("frequency") loss;
- :class:`PMOEPPO` (agent ``pmoe_ppo``): PPO with a Gaussian-mixture policy (mixture
  likelihood in the ratio), an auxiliary Q head and the routing loss;
- :class:`GMMDistribution`: the mixture as an SB3 ``Distribution``;
- policies: :class:`PMOESACPolicy` (:class:`GMMActor`), :class:`GMMActorCriticPolicy`.
"""

from opsrl.agents.pmoe.distributions import GMMDistribution, routing_loss
from opsrl.agents.pmoe.pmoe_ppo import PMOEPPO
from opsrl.agents.pmoe.pmoe_sac import PMOESAC
from opsrl.agents.pmoe.policies import (
    GMMActor,
    GMMActorCriticPolicy,
    MultiInputActorCriticPolicy,
    MultiInputPolicy,
    PMOESACPolicy,
)

__all__ = [
    "PMOEPPO",
    "PMOESAC",
    "GMMActor",
    "GMMActorCriticPolicy",
    "GMMDistribution",
    "MultiInputActorCriticPolicy",
    "MultiInputPolicy",
    "PMOESACPolicy",
    "routing_loss",
]
