"""The MaskableActorCriticPolicy interface for policies whose number of actions is the
observation's (one logit per job, per vertiport, ...), on top of ``_logits_and_values``."""

from __future__ import annotations

import numpy as np
import torch as th
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from stable_baselines3.common.type_aliases import PyTorchObs

__all__ = ["VariableActionsMaskedInterface"]


class VariableActionsMaskedInterface:
    """Mixin (before ``MaskableActorCriticPolicy`` in the bases): ``forward`` and
    ``evaluate_actions`` from the subclass's ``_logits_and_values(obs) -> (logits, values)``,
    with a masked categorical distribution sized by the logits, not by the training env."""

    def _logits_and_values(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        raise NotImplementedError

    @staticmethod
    def _distribution(
        logits: th.Tensor, action_masks: np.ndarray | th.Tensor | None
    ) -> MaskableCategoricalDistribution:
        distribution = MaskableCategoricalDistribution(int(logits.shape[-1]))
        distribution.proba_distribution(action_logits=logits)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return distribution

    def forward(
        self,
        obs: PyTorchObs,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Actions, values and log-probabilities of the actions for a batch of observations."""
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, values, distribution.log_prob(actions)

    def evaluate_actions(
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        action_masks: th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """Values, log-likelihoods of ``actions`` and entropies under the current policy."""
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()
