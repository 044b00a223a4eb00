"""SubPO: submodular policy optimisation, a policy gradient on marginal gains.

- :class:`SubPO`: the algorithm (reward-to-go or one-step gains, per-step baseline, Adam or
  natural-gradient steps), on batches of whole episodes;
- :class:`SubPOPolicy`: its actor-only MLP policy (``"MlpPolicy"``; SubPO-M on a (state,
  time) observation, SubPO-NM on one with the visited set);
- :func:`submodular_signal`: the per-sample weights of the gradient, plain numpy.

Paper: Prajapat, Mutny, Zeilinger, Krause, "Submodular Reinforcement Learning", ICLR 2024,
https://arxiv.org/abs/2307.13372.
"""

from opsrl.agents.subpo.buffers import EpisodeRolloutBuffer
from opsrl.agents.subpo.policies import MultiInputSubPOPolicy, SubPOPolicy
from opsrl.agents.subpo.signals import (
    complete_episodes,
    reward_to_go,
    submodular_signal,
    time_step_baseline,
)
from opsrl.agents.subpo.subpo import (
    NaturalGradientStep,
    SubPO,
    mean_kl,
    natural_gradient_direction,
    policy_gradient_loss,
)

__all__ = [
    "EpisodeRolloutBuffer",
    "MultiInputSubPOPolicy",
    "NaturalGradientStep",
    "SubPO",
    "SubPOPolicy",
    "complete_episodes",
    "mean_kl",
    "natural_gradient_direction",
    "policy_gradient_loss",
    "reward_to_go",
    "submodular_signal",
    "time_step_baseline",
]
