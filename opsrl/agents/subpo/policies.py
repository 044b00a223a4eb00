"""SubPO's policy: an MLP from the observation to an action distribution, with no critic.

Which of the paper's policy classes it is depends on the observation it is given:

- **SubPO-M** (Markovian in (state, time), pi(a | s, t)): the submodular grid envs'
  ``observation="state_time"`` (normalised row, column and t / H). The paper's network is
  2 -> 64 -> 32 -> |A| with tanh on [state index, t]; here the state is (row, column), so the
  input has 3 features and the hidden layers are the same 64-32 tanh.
- **SubPO-NM** (history-conditioned, pi(a | s_{0:t})): ``observation="visited"``, the same
  features plus the 0/1 map of visited cells. The paper feeds the padded list of visited state
  indices; the visited set is what every marginal gain F(A + {s}) - F(A) depends on, so it is
  the summary of the history that matters, in a fixed-size input.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    make_proba_distribution,
)
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

__all__ = ["MlpPolicy", "MultiInputPolicy", "MultiInputSubPOPolicy", "SubPOPolicy"]

#: the hidden layers of the paper's grid policy (2 -> 64 -> 32 -> |A|)
DEFAULT_NET_ARCH = (64, 32)


class SubPOPolicy(BasePolicy):
    """Actor-only policy: features extractor, MLP, action distribution (SB3's distributions).

    Discrete actions give a softmax over the MLP's logits (the paper's grid policy); Box
    actions a diagonal Gaussian with a state-independent learned log standard deviation;
    MultiDiscrete and MultiBinary the matching SB3 distributions.

    :param observation_space: the observation space
    :param action_space: the action space
    :param lr_schedule: learning rate schedule of the optimizer (``lr_schedule(1)`` at start)
    :param net_arch: hidden layer sizes (default 64, 32: the paper's)
    :param activation_fn: activation of the hidden layers (default tanh: the paper's)
    :param ortho_init: orthogonal initialisation (gain sqrt(2) for hidden layers, 0.01 for the
        action head, so that the first policy is close to uniform), as SB3's actor-critics
    :param log_std_init: initial log standard deviation (Box actions)
    :param features_extractor_class: features extractor (``FlattenExtractor``)
    :param features_extractor_kwargs: its keyword arguments
    :param normalize_images: whether image observations are divided by 255
    :param optimizer_class: the optimizer of the plain policy-gradient steps (Adam)
    :param optimizer_kwargs: its keyword arguments
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        self.net_arch = list(DEFAULT_NET_ARCH if net_arch is None else net_arch)
        if any(int(size) < 1 for size in self.net_arch):
            raise ValueError(f"net_arch must hold positive layer sizes, got {self.net_arch}")
        self.activation_fn = activation_fn
        self.ortho_init = ortho_init
        self.log_std_init = log_std_init
        self.features_extractor = self.make_features_extractor()
        self.features_dim = self.features_extractor.features_dim
        self.action_dist = make_proba_distribution(action_space)
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.latent_net = nn.Sequential(
            *create_mlp(self.features_dim, 0, self.net_arch, self.activation_fn)
        )
        latent_dim = self.net_arch[-1] if self.net_arch else self.features_dim
        if isinstance(self.action_dist, DiagGaussianDistribution):
            self.action_net, self.log_std = self.action_dist.proba_distribution_net(
                latent_dim=latent_dim, log_std_init=self.log_std_init
            )
        elif isinstance(
            self.action_dist,
            CategoricalDistribution | MultiCategoricalDistribution | BernoulliDistribution,
        ):
            self.action_net = self.action_dist.proba_distribution_net(latent_dim=latent_dim)
        else:  # pragma: no cover - make_proba_distribution gives only the ones above here
            raise ValueError(f"unsupported action distribution {type(self.action_dist).__name__}")
        if self.ortho_init:
            for module, gain in (
                (self.features_extractor, np.sqrt(2)),
                (self.latent_net, np.sqrt(2)),
                (self.action_net, 0.01),
            ):
                module.apply(partial(self.init_weights, gain=gain))
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            ortho_init=self.ortho_init,
            log_std_init=self.log_std_init,
            lr_schedule=self._dummy_schedule,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        """The action distribution at ``obs``.

        SB3 distributions are filled in place: a second call returns the same object with new
        parameters, so copy it (``copy.copy``) to keep an old one.
        """
        latent = self.latent_net(self.extract_features(obs, self.features_extractor))
        mean_actions = self.action_net(latent)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            return self.action_dist.proba_distribution(mean_actions, self.log_std)
        return self.action_dist.proba_distribution(action_logits=mean_actions)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """Sampled (or most likely) actions and their log-probabilities."""
        distribution = self.get_distribution(obs)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), log_prob  # type: ignore[misc]

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Log-probabilities of ``actions`` and entropies at ``obs`` (with gradient)."""
        distribution = self.get_distribution(obs)
        entropy = distribution.entropy()
        if entropy is None:  # pragma: no cover - none of SubPO's distributions lacks it
            raise ValueError("the action distribution has no closed-form entropy")
        return distribution.log_prob(actions), entropy

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)


class MultiInputSubPOPolicy(SubPOPolicy):
    """:class:`SubPOPolicy` for Dict observations (SB3's ``CombinedExtractor``)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            log_std_init=log_std_init,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )


MlpPolicy = SubPOPolicy
MultiInputPolicy = MultiInputSubPOPolicy
