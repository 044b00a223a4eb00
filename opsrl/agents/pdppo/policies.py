"""Actor-critic policy with a second critic for post-decision states (PDPPO)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

__all__ = ["DualCriticPolicy", "MlpPolicy", "SplitActivationMlpExtractor"]

#: Paper sizes: actor 128-128 (ReLU), both critics 128-128 (tanh).
DEFAULT_NET_ARCH: dict[str, list[int]] = {"pi": [128, 128], "vf": [128, 128]}


def mlp(input_dim: int, layer_sizes: list[int], activation_fn: type[nn.Module]) -> nn.Sequential:
    """Hidden layers only: Linear + activation per entry of ``layer_sizes``."""
    layers: list[nn.Module] = []
    last = input_dim
    for size in layer_sizes:
        layers += [nn.Linear(last, size), activation_fn()]
        last = size
    return nn.Sequential(*layers)


def split_net_arch(
    net_arch: list[int] | dict[str, list[int]],
) -> tuple[list[int], list[int], list[int]]:
    """``(pi, vf, post_vf)`` layer sizes from a list (all three alike) or a dict.

    The dict takes the SB3 keys ``pi`` and ``vf`` and an optional ``post_vf`` (default: ``vf``).
    """
    if isinstance(net_arch, dict):
        unknown = set(net_arch) - {"pi", "vf", "post_vf"}
        if unknown:
            raise ValueError(f"net_arch keys must be among pi, vf, post_vf, got {sorted(unknown)}")
        pi = list(net_arch.get("pi", []))
        vf = list(net_arch.get("vf", []))
        return pi, vf, list(net_arch.get("post_vf", vf))
    return list(net_arch), list(net_arch), list(net_arch)


class SplitActivationMlpExtractor(nn.Module):
    """SB3 ``MlpExtractor`` with separate activations for the actor and the critic.

    PDPPO's actor uses ReLU and its critics tanh; SB3's extractor has one activation for
    both. Same interface: ``forward``, ``forward_actor``, ``forward_critic``,
    ``latent_dim_pi``, ``latent_dim_vf``.
    """

    def __init__(
        self,
        feature_dim: int,
        pi_layers: list[int],
        vf_layers: list[int],
        actor_activation_fn: type[nn.Module],
        critic_activation_fn: type[nn.Module],
    ) -> None:
        super().__init__()
        self.policy_net = mlp(feature_dim, pi_layers, actor_activation_fn)
        self.value_net = mlp(feature_dim, vf_layers, critic_activation_fn)
        self.latent_dim_pi = pi_layers[-1] if pi_layers else feature_dim
        self.latent_dim_vf = vf_layers[-1] if vf_layers else feature_dim

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Latent codes of the actor and of the critic."""
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        """Latent code of the actor."""
        return self.policy_net(features)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        """Latent code of the pre-decision critic."""
        return self.value_net(features)


class DualCriticPolicy(ActorCriticPolicy):
    """Actor-critic policy with a pre-decision critic V(s) and a post-decision critic V^x(s^x).

    The actor and the pre-decision critic are SB3's ``ActorCriticPolicy`` (features extractor,
    ``mlp_extractor``, ``action_net``, ``value_net``); the post-decision critic is a separate
    network: its own features extractor, ``post_value_mlp`` and ``post_value_net``, reading a
    post-decision observation from the same observation space. :meth:`predict_post_values`
    evaluates it.

    Three optimizers, one per network (PDPPO trains each on its own loss):
    ``optimizer`` (the actor: everything that is not a critic, so the features extractor when
    shared, the policy MLP, the action head and ``log_std``), ``critic_optimizer`` (pre-decision
    critic) and ``post_critic_optimizer`` (post-decision critic). The actor's learning rate
    comes from ``lr_schedule``, both critics' from ``critic_lr_schedule``. A shared features
    extractor with parameters (not the default ``FlattenExtractor``) belongs to the actor and
    also receives the pre-decision critic's gradient, as in PPO.

    Defaults follow the PDPPO paper: actor 128-128 ReLU, critics 128-128 tanh.

    :param observation_space: Observation space (post-decision observations live in it too)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule of the actor (``lr_schedule(1)`` is the initial
        rate)
    :param net_arch: Hidden layer sizes: a list (actor and both critics alike) or a dict with
        ``pi``, ``vf`` and optionally ``post_vf`` (default: same as ``vf``); default
        ``dict(pi=[128, 128], vf=[128, 128])``
    :param activation_fn: Activation of the actor's hidden layers (default ReLU)
    :param critic_activation_fn: Activation of both critics' hidden layers (default tanh)
    :param critic_lr_schedule: Learning rate schedule of both critics (default: ``lr_schedule``)
    :param ortho_init: Orthogonal initialisation as in SB3 (gains sqrt(2) for hidden layers,
        0.01 for the action head, 1 for the value heads)
    :param use_sde: Whether to use generalized State Dependent Exploration (Box actions)
    :param log_std_init: Initial value of the log standard deviation (Box actions)
    :param full_std: Whether to use (n_features x n_actions) parameters for the std with gSDE
    :param use_expln: Use ``expln()`` instead of ``exp()`` for a positive std with gSDE
    :param squash_output: Whether to squash the output with tanh (gSDE only)
    :param features_extractor_class: Features extractor class (the post-decision critic gets
        its own instance)
    :param features_extractor_kwargs: Keyword arguments of the features extractor
    :param share_features_extractor: Whether the actor and the pre-decision critic share the
        features extractor
    :param normalize_images: Whether to divide image observations by 255
    :param optimizer_class: Optimizer class of all three optimizers (``th.optim.Adam``)
    :param optimizer_kwargs: Keyword arguments of the optimizers, except the learning rate
        (default ``eps=1e-5`` for Adam, as in SB3)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        critic_activation_fn: type[nn.Module] = nn.Tanh,
        critic_lr_schedule: Schedule | None = None,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if net_arch is None:
            net_arch = {key: list(sizes) for key, sizes in DEFAULT_NET_ARCH.items()}
        split_net_arch(net_arch)  # validate before anything is built
        # ActorCriticPolicy.__init__ calls _build(), which needs these two.
        self._pending_build = (critic_activation_fn, critic_lr_schedule)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            full_std=full_std,
            use_expln=use_expln,
            squash_output=squash_output,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    # ------------------------------------------------------------------------- building
    def _build_mlp_extractor(self) -> None:
        pi_layers, vf_layers, _ = split_net_arch(self.net_arch)
        self.mlp_extractor = SplitActivationMlpExtractor(  # type: ignore[assignment]
            self.features_dim,
            pi_layers,
            vf_layers,
            actor_activation_fn=self.activation_fn,
            critic_activation_fn=self.critic_activation_fn,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        critic_activation_fn, critic_lr_schedule = self.__dict__.pop("_pending_build")
        self.critic_activation_fn = critic_activation_fn
        # The actor, the pre-decision critic and SB3's single optimizer (replaced below).
        super()._build(lr_schedule)

        _, _, post_vf_layers = split_net_arch(self.net_arch)
        self.post_features_extractor = self.make_features_extractor()
        self.post_value_mlp = mlp(self.features_dim, post_vf_layers, critic_activation_fn)
        latent_dim_post = post_vf_layers[-1] if post_vf_layers else self.features_dim
        self.post_value_net = nn.Linear(latent_dim_post, 1)
        if self.ortho_init:
            for module, gain in (
                (self.post_features_extractor, np.sqrt(2)),
                (self.post_value_mlp, np.sqrt(2)),
                (self.post_value_net, 1.0),
            ):
                module.apply(partial(self.init_weights, gain=gain))

        critic_params = [*self.mlp_extractor.value_net.parameters(), *self.value_net.parameters()]
        if not self.share_features_extractor:
            critic_params += list(self.vf_features_extractor.parameters())
        post_critic_params = [
            *self.post_features_extractor.parameters(),
            *self.post_value_mlp.parameters(),
            *self.post_value_net.parameters(),
        ]
        critic_ids = {id(param) for param in critic_params + post_critic_params}
        actor_params = [param for param in self.parameters() if id(param) not in critic_ids]
        critic_lr = (critic_lr_schedule or lr_schedule)(1)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            actor_params, lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_optimizer = self.optimizer_class(  # type: ignore[call-arg]
            critic_params, lr=critic_lr, **self.optimizer_kwargs
        )
        self.post_critic_optimizer = self.optimizer_class(  # type: ignore[call-arg]
            post_critic_params, lr=critic_lr, **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            critic_activation_fn=self.critic_activation_fn,
            critic_lr_schedule=self._dummy_schedule,  # not needed to load the policy alone
            share_features_extractor=self.share_features_extractor,
            normalize_images=self.normalize_images,
        )
        return data

    @property
    def optimizers(self) -> tuple[th.optim.Optimizer, th.optim.Optimizer, th.optim.Optimizer]:
        """``(actor, pre-decision critic, post-decision critic)`` optimizers."""
        return self.optimizer, self.critic_optimizer, self.post_critic_optimizer

    # ------------------------------------------------------------------------- evaluation
    def predict_post_values(self, post_obs: PyTorchObs) -> th.Tensor:
        """Post-decision values V^x(s^x), shape (batch, 1)."""
        features = BaseModel.extract_features(self, post_obs, self.post_features_extractor)
        return self.post_value_net(self.post_value_mlp(features))

    def evaluate_actions_and_post_values(
        self, obs: PyTorchObs, actions: th.Tensor, post_obs: PyTorchObs
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor | None]:
        """``(V(s), V^x(s^x), log pi(a|s), entropy)`` for a training batch."""
        values, log_prob, entropy = self.evaluate_actions(obs, actions)
        return values, self.predict_post_values(post_obs), log_prob, entropy


#: the ``"MlpPolicy"`` of PDPPO
MlpPolicy = DualCriticPolicy
