"""Policies of the two MDPO agents.

- :class:`MDPOPolicy`: SB3's ``ActorCriticPolicy`` with separate actor and critic networks and
  one optimizer each (on-policy MDPO trains the actor on the mirror-descent loss and the critic
  on its value loss, at different times and on different batches);
- :class:`OffPolicyMDPOPolicy`: SB3's ``SACPolicy`` plus ``actor_old``, a frozen copy of the
  actor that off-policy MDPO refreshes every ``m`` gradient steps.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import Actor, SACPolicy
from torch import nn

__all__ = [
    "CnnPolicy",
    "MDPOPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "OffPolicyMDPOCnnPolicy",
    "OffPolicyMDPOMultiInputPolicy",
    "OffPolicyMDPOPolicy",
]


class MDPOPolicy(ActorCriticPolicy):
    """Actor-critic policy with separate actor and critic networks and two optimizers.

    The networks are SB3's ``ActorCriticPolicy`` (``mlp_extractor`` with separate ``pi`` and
    ``vf`` MLPs, ``action_net``, ``value_net``), with, by default, a features extractor for
    each (``share_features_extractor=False``) so that the actor and the critic share no
    parameter. ``optimizer`` holds the actor's parameters (features extractor of the actor,
    policy MLP, action head, ``log_std``) at ``lr_schedule``'s rate; ``critic_optimizer``
    holds the critic's (its features extractor, value MLP, value head) at
    ``critic_lr_schedule``'s rate. With ``share_features_extractor=True`` the shared
    extractor belongs to the actor: the critic learns on top of it without changing it.

    Same arguments as SB3's ``ActorCriticPolicy``, plus:

    :param critic_lr_schedule: Learning rate schedule of the critic (default: ``lr_schedule``)
    :param share_features_extractor: Whether the actor and the critic share the features
        extractor (default False: separate networks)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        critic_lr_schedule: Schedule | None = None,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = False,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        # ActorCriticPolicy.__init__ calls _build(), which needs it.
        self._pending_critic_lr_schedule = critic_lr_schedule
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

    def _build(self, lr_schedule: Schedule) -> None:
        critic_lr_schedule = self.__dict__.pop("_pending_critic_lr_schedule") or lr_schedule
        super()._build(lr_schedule)  # networks, and one optimizer replaced below
        critic_params = self.critic_parameters()
        critic_ids = {id(param) for param in critic_params}
        actor_params = [param for param in self.parameters() if id(param) not in critic_ids]
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            actor_params, lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_optimizer = self.optimizer_class(  # type: ignore[call-arg]
            critic_params, lr=critic_lr_schedule(1), **self.optimizer_kwargs
        )

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critic's parameters: value MLP, value head and, if not shared, its extractor."""
        params = [*self.mlp_extractor.value_net.parameters(), *self.value_net.parameters()]
        if not self.share_features_extractor:
            params += list(self.vf_features_extractor.parameters())
        return params

    def actor_parameters(self) -> list[nn.Parameter]:
        """The actor's parameters: every parameter that is not the critic's."""
        critic_ids = {id(param) for param in self.critic_parameters()}
        return [param for param in self.parameters() if id(param) not in critic_ids]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            critic_lr_schedule=self._dummy_schedule,  # not needed to load the policy alone
            share_features_extractor=self.share_features_extractor,
        )
        return data


class CnnMDPOPolicy(MDPOPolicy):
    """:class:`MDPOPolicy` with SB3's ``NatureCNN`` features extractor (image observations).

    :param features_extractor_class: Features extractor class (default ``NatureCNN``)
    :param kwargs: The other arguments of :class:`MDPOPolicy`
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


class MultiInputMDPOPolicy(MDPOPolicy):
    """:class:`MDPOPolicy` with SB3's ``CombinedExtractor`` (Dict observations).

    :param features_extractor_class: Features extractor class (default ``CombinedExtractor``)
    :param kwargs: The other arguments of :class:`MDPOPolicy`
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


class OffPolicyMDPOPolicy(SACPolicy):
    """SB3's ``SACPolicy`` plus ``actor_old``, the old policy of off-policy MDPO.

    ``actor_old`` is a second actor with its own features extractor, built like ``actor``,
    in no optimizer and with ``requires_grad`` off: gradients of the actor loss flow through
    its log-probability into the sampled action only. :meth:`sync_old_actor` copies the
    actor into it. Being a submodule, it is saved, loaded and moved to the device with the
    policy. Same arguments as SB3's ``SACPolicy``.
    """

    actor_old: Actor

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.actor_old = self.make_actor(features_extractor=None)
        self.actor_old.requires_grad_(False)
        self.sync_old_actor()

    def sync_old_actor(self) -> None:
        """Copy the actor's parameters (and buffers) into ``actor_old``."""
        self.actor_old.load_state_dict(self.actor.state_dict())

    def set_training_mode(self, mode: bool) -> None:
        """Put the actor and the critic in training or evaluation mode (the old actor stays
        in evaluation mode: it is never trained)."""
        super().set_training_mode(mode)
        self.actor_old.set_training_mode(False)


class OffPolicyMDPOCnnPolicy(OffPolicyMDPOPolicy):
    """:class:`OffPolicyMDPOPolicy` with SB3's ``NatureCNN`` (image observations).

    :param features_extractor_class: Features extractor class (default ``NatureCNN``)
    :param kwargs: The other arguments of SB3's ``SACPolicy``
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        *,
        features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


class OffPolicyMDPOMultiInputPolicy(OffPolicyMDPOPolicy):
    """:class:`OffPolicyMDPOPolicy` with SB3's ``CombinedExtractor`` (Dict observations).

    :param features_extractor_class: Features extractor class (default ``CombinedExtractor``)
    :param kwargs: The other arguments of SB3's ``SACPolicy``
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        *,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            features_extractor_class=features_extractor_class,
            **kwargs,
        )


#: the ``"MlpPolicy"`` / ``"CnnPolicy"`` / ``"MultiInputPolicy"`` of on-policy MDPO
MlpPolicy = MDPOPolicy
CnnPolicy = CnnMDPOPolicy
MultiInputPolicy = MultiInputMDPOPolicy
