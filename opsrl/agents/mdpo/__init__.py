"""MDPO: Mirror Descent Policy Optimization (Tomar et al., ICLR 2022, arXiv 2005.09814).

- :class:`MDPO`: on-policy MDPO, an SB3 ``OnPolicyAlgorithm`` (m full-batch steps on the
  ratio-advantage loss plus (1 / t_k) KL(new || old), critic trained separately);
- :class:`OffPolicyMDPO`: off-policy MDPO, an SB3 ``SAC`` subclass (actor loss with a KL to a
  periodically refreshed copy of the actor);
- :class:`MDPOPolicy` and :class:`OffPolicyMDPOPolicy`: their policies.
"""

from opsrl.agents.mdpo.mdpo import MDPO, clipped_value_loss, mirror_descent_terms, per_state_kl
from opsrl.agents.mdpo.mdpo_off import OffPolicyMDPO
from opsrl.agents.mdpo.policies import MDPOPolicy, OffPolicyMDPOPolicy

__all__ = [
    "MDPO",
    "MDPOPolicy",
    "OffPolicyMDPO",
    "OffPolicyMDPOPolicy",
    "clipped_value_loss",
    "mirror_descent_terms",
    "per_state_kl",
]
