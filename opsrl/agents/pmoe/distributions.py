"""Gaussian mixtures for PMOE policies: the PPO action distribution and the squashed SAC maths.

A PMOE policy is a mixture of K Gaussian experts,
pi(a|s) = sum_k alpha_k(s) N(a; mu_k(s), diag(sigma_k(s)^2)). Two forms live here:

- :class:`GMMDistribution`, an SB3 ``Distribution`` for PMOE-PPO (unbounded actions, one
  state-independent log-std vector per expert);
- functions on tanh-squashed experts for PMOE-SAC (:func:`squashed_log_prob`,
  :func:`squashed_mixture_log_prob`).
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch as th
from stable_baselines3.common.distributions import Distribution
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
from torch.nn import functional as F

__all__ = [
    "GMMDistribution",
    "gaussian_log_prob",
    "routing_loss",
    "squashed_log_prob",
    "squashed_mixture_log_prob",
    "tanh_log_det",
]

SelfGMMDistribution = TypeVar("SelfGMMDistribution", bound="GMMDistribution")

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(actions: th.Tensor, mean: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    """Log-density of diagonal Gaussians, summed over the last (action) dimension.

    Broadcasts: ``actions`` (..., A) against ``mean`` and ``log_std`` (..., A); the result has
    the broadcast shape without its last dimension.
    """
    z = (actions - mean) * th.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - HALF_LOG_2PI).sum(dim=-1)


def tanh_log_det(pre_tanh: th.Tensor) -> th.Tensor:
    """log |d tanh(u) / du| = log(1 - tanh(u)^2), summed over the last dimension.

    Written as 2 (log 2 - u - softplus(-2u)), which stays finite where tanh(u) rounds to +-1.
    """
    return (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(dim=-1)


def squashed_log_prob(pre_tanh: th.Tensor, mean: th.Tensor, log_std: th.Tensor) -> th.Tensor:
    """Log-density of a = tanh(u) under tanh-squashed diagonal Gaussians, given u."""
    return gaussian_log_prob(pre_tanh, mean, log_std) - tanh_log_det(pre_tanh)


def squashed_mixture_log_prob(
    actions: th.Tensor,
    mixing_logits: th.Tensor,
    mean: th.Tensor,
    log_std: th.Tensor,
    epsilon: float = 1e-6,
) -> th.Tensor:
    """Log-density of squashed actions under the mixture of tanh-squashed Gaussian experts.

    :param actions: actions in (-1, 1), shape (B, A); clipped to +-(1 - epsilon) before atanh
    :param mixing_logits: unnormalised mixing weights, shape (B, K)
    :param mean: experts' means before squashing, shape (B, K, A)
    :param log_std: experts' log standard deviations, shape (B, K, A)
    :param epsilon: distance kept from +-1 so that atanh stays finite
    :return: log pi(a|s), shape (B,)
    """
    bound = 1.0 - epsilon
    pre_tanh = th.atanh(actions.clamp(-bound, bound))
    component = gaussian_log_prob(pre_tanh.unsqueeze(1), mean, log_std)  # (B, K)
    mixture = th.logsumexp(th.log_softmax(mixing_logits, dim=-1) + component, dim=-1)
    # The Jacobian of tanh is the same for every expert: it leaves the sum.
    return mixture - tanh_log_det(pre_tanh)


def routing_loss(mixing_probs: th.Tensor, best_experts: th.Tensor) -> th.Tensor:
    """PMOE's "frequency" loss: MSE(alpha(s), onehot(k*)) over the batch and the K weights.

    Its minimiser sets alpha_k(s) to the probability that expert k is the Q-best at s.

    :param mixing_probs: the mixing weights alpha, shape (B, K)
    :param best_experts: the index k* of the Q-best expert per row, shape (B,)
    """
    target = F.one_hot(best_experts, mixing_probs.shape[-1]).to(mixing_probs.dtype)
    return F.mse_loss(mixing_probs, target)


class GMMDistribution(Distribution):
    """Mixture of K diagonal Gaussians, for continuous (Box) actions: PMOE-PPO's policy.

    pi(a|s) = sum_k alpha_k(s) N(a; mu_k(s), diag(sigma_k^2)), with alpha = softmax(logits).

    - :meth:`log_prob`: the mixture log-likelihood, ``logsumexp_k(log alpha_k + log N_k(a))``;
    - :meth:`sample`: draw an expert k ~ Cat(alpha), then a ~ N_k;
    - :meth:`mode`: the mean of the expert with the largest weight (the deterministic action
      of PMOE; not in general the mode of the mixture density);
    - :meth:`entropy`: None (a mixture has no closed-form entropy); PPO then uses -E[log p];
    - :meth:`component_log_prob` and :meth:`expert_samples`: per-expert quantities, used by the
      routing loss.

    :param action_dim: Dimension of the action space
    :param n_experts: Number of experts K
    """

    def __init__(self, action_dim: int, n_experts: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.n_experts = n_experts
        self.log_weights: th.Tensor
        self.means: th.Tensor
        self.log_stds: th.Tensor

    def proba_distribution_net(
        self, latent_dim: int, log_std_init: float = 0.0
    ) -> tuple[nn.Module, nn.Parameter]:
        """The experts' mean layer (latent -> K x A means) and their log-stds (K, A)."""
        mean_net = nn.Linear(latent_dim, self.n_experts * self.action_dim)
        log_std = nn.Parameter(
            th.full((self.n_experts, self.action_dim), float(log_std_init)), requires_grad=True
        )
        return mean_net, log_std

    def proba_distribution(
        self: SelfGMMDistribution,
        mixing_logits: th.Tensor,
        mean_actions: th.Tensor,
        log_std: th.Tensor,
    ) -> SelfGMMDistribution:
        """Set the mixture's parameters.

        :param mixing_logits: unnormalised mixing weights, shape (B, K)
        :param mean_actions: experts' means, shape (B, K * A) or (B, K, A)
        :param log_std: log standard deviations, broadcastable to (B, K, A) (PMOE-PPO: (K, A))
        :return: self
        """
        batch = mixing_logits.shape[0]
        self.log_weights = th.log_softmax(mixing_logits, dim=-1)
        self.means = mean_actions.reshape(batch, self.n_experts, self.action_dim)
        self.log_stds = log_std.expand_as(self.means)
        return self

    @property
    def mixing_probs(self) -> th.Tensor:
        """The mixing weights alpha, shape (B, K)."""
        return th.exp(self.log_weights)

    def component_log_prob(self, actions: th.Tensor) -> th.Tensor:
        """log N_k(a) of every expert, shape (B, K), for actions of shape (B, A)."""
        actions = actions.reshape(-1, 1, self.action_dim)
        return gaussian_log_prob(actions, self.means, self.log_stds)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """The mixture log-likelihood log sum_k alpha_k N_k(a), shape (B,)."""
        return th.logsumexp(self.log_weights + self.component_log_prob(actions), dim=-1)

    def entropy(self) -> None:
        """None: a Gaussian mixture has no closed-form entropy."""
        return None

    def _gather_expert(self, tensor: th.Tensor, experts: th.Tensor) -> th.Tensor:
        """Rows of ``tensor`` (B, K, A) at expert index ``experts`` (B,) -> (B, A)."""
        index = experts.reshape(-1, 1, 1).expand(-1, 1, self.action_dim)
        return tensor.gather(1, index).squeeze(1)

    def sample_experts(self) -> th.Tensor:
        """One expert index per row, k ~ Cat(alpha), shape (B,)."""
        return th.multinomial(self.mixing_probs, 1).squeeze(1)

    def sample(self) -> th.Tensor:
        """k ~ Cat(alpha), then a ~ N(mu_k, sigma_k^2); shape (B, A)."""
        experts = self.sample_experts()
        mean = self._gather_expert(self.means, experts)
        std = th.exp(self._gather_expert(self.log_stds, experts))
        return mean + std * th.randn_like(mean)

    def expert_samples(self) -> th.Tensor:
        """One sample from every expert, shape (B, K, A)."""
        return self.means + th.exp(self.log_stds) * th.randn_like(self.means)

    def mode(self) -> th.Tensor:
        """Mean of the expert with the largest mixing weight, shape (B, A)."""
        return self._gather_expert(self.means, self.log_weights.argmax(dim=-1))

    def actions_from_params(
        self,
        mixing_logits: th.Tensor,
        mean_actions: th.Tensor,
        log_std: th.Tensor,
        deterministic: bool = False,
    ) -> th.Tensor:
        """Actions of the mixture with these parameters."""
        self.proba_distribution(mixing_logits, mean_actions, log_std)
        return self.get_actions(deterministic=deterministic)

    def log_prob_from_params(
        self, mixing_logits: th.Tensor, mean_actions: th.Tensor, log_std: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """Sampled actions and their mixture log-likelihood."""
        actions = self.actions_from_params(mixing_logits, mean_actions, log_std)
        return actions, self.log_prob(actions)

    def as_torch_distribution(self) -> MixtureSameFamily:
        """The same mixture as a ``torch.distributions.MixtureSameFamily`` (for analysis)."""
        components = Independent(Normal(self.means, th.exp(self.log_stds)), 1)
        return MixtureSameFamily(Categorical(logits=self.log_weights), components)
