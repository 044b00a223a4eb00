"""PMOE policies: Gaussian-mixture actors for SAC and for PPO.

- :class:`GMMActor` and :class:`PMOESACPolicy` (PMOE-SAC): K tanh-squashed Gaussian experts
  with state-dependent log-stds, mixing weights from a one-layer head on the state, SB3's
  twin critics unchanged.
- :class:`GMMActorCriticPolicy` (PMOE-PPO): K Gaussian experts with state-independent
  log-stds (:class:`~opsrl.agents.pmoe.distributions.GMMDistribution`), the same mixing head,
  SB3's value head, and an auxiliary Q(s, a) head used to pick the Q-best expert.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    create_mlp,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from torch import nn

from opsrl.agents.pmoe.distributions import (
    GMMDistribution,
    squashed_log_prob,
    squashed_mixture_log_prob,
)

__all__ = [
    "GMMActor",
    "GMMActorCriticPolicy",
    "MultiInputActorCriticPolicy",
    "MultiInputPolicy",
    "PMOESACPolicy",
]

#: auxiliary Q head of PMOE-PPO: three ReLU layers of 64, as the reference code
DEFAULT_Q_NET_ARCH: list[int] = [64, 64, 64]


def check_n_experts(n_experts: Any) -> int:
    """``n_experts`` as an int, or a ValueError saying why it is not one."""
    if isinstance(n_experts, bool) or not isinstance(n_experts, (int, np.integer)):
        raise ValueError(f"n_experts must be a positive integer, got {n_experts!r}")
    if n_experts < 1:
        raise ValueError(f"n_experts must be a positive integer, got {n_experts}")
    return int(n_experts)


def _check_no_sde(use_sde: bool) -> None:
    if use_sde:
        raise ValueError("use_sde must be False: PMOE policies are Gaussian mixtures, not gSDE")


def gather_experts(tensor: th.Tensor, experts: th.Tensor) -> th.Tensor:
    """Entries of ``tensor`` (B, K, ...) at expert ``experts`` (B,) of each row -> (B, ...)."""
    index = experts.reshape(-1, *([1] * (tensor.dim() - 1))).expand(-1, 1, *tensor.shape[2:])
    return tensor.gather(1, index).squeeze(1)


# --------------------------------------------------------------------------------------------
# PMOE-SAC
# --------------------------------------------------------------------------------------------


class GMMActor(BasePolicy):
    """Mixture-of-experts actor for PMOE-SAC.

    pi(a|s) = sum_k alpha_k(s) TanhNormal(a; mu_k(s), sigma_k(s)): a shared MLP gives every
    expert's mean and log-std (K x |A| outputs each, log-std clamped to [-20, 2] as in SAC),
    and alpha = softmax(Linear(s)) is a separate one-layer head on the state features.

    Acting draws an expert k ~ Cat(alpha) and then a = tanh(mu_k + sigma_k eps); the
    deterministic action is tanh(mu_k) of the expert with the largest alpha.

    :param observation_space: Observation space
    :param action_space: Action space (Box)
    :param net_arch: Hidden layer sizes of the shared expert MLP
    :param features_extractor: Network to extract features (a ``nn.Flatten()`` for vectors)
    :param features_dim: Number of features
    :param activation_fn: Activation function of the hidden layers
    :param n_experts: Number of experts K
    :param normalize_images: Whether to divide image observations by 255
    """

    action_space: spaces.Box

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: nn.Module,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_experts: int = 2,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
            squash_output=True,
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.n_experts = check_n_experts(n_experts)
        self.action_dim = get_action_dim(self.action_space)

        self.latent_pi = nn.Sequential(*create_mlp(features_dim, -1, net_arch, activation_fn))
        last_layer_dim = net_arch[-1] if len(net_arch) > 0 else features_dim
        self.mu = nn.Linear(last_layer_dim, self.n_experts * self.action_dim)
        self.log_std = nn.Linear(last_layer_dim, self.n_experts * self.action_dim)
        self.mixing_net = nn.Linear(features_dim, self.n_experts)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            features_dim=self.features_dim,
            activation_fn=self.activation_fn,
            n_experts=self.n_experts,
            features_extractor=self.features_extractor,
        )
        return data

    def mixture_params(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``(mixing_logits (B, K), mean (B, K, A), log_std (B, K, A))``, before squashing."""
        features = self.extract_features(obs, self.features_extractor)
        latent_pi = self.latent_pi(features)
        shape = (-1, self.n_experts, self.action_dim)
        mean = self.mu(latent_pi).reshape(shape)
        log_std = th.clamp(self.log_std(latent_pi).reshape(shape), LOG_STD_MIN, LOG_STD_MAX)
        return self.mixing_net(features), mean, log_std

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        """Squashed actions (B, A): from a sampled expert, or the largest-alpha expert's mean."""
        mixing_logits, mean, log_std = self.mixture_params(obs)
        if deterministic:
            return th.tanh(gather_experts(mean, mixing_logits.argmax(dim=-1)))
        experts = th.multinomial(th.softmax(mixing_logits, dim=-1), 1).squeeze(1)
        mean, log_std = gather_experts(mean, experts), gather_experts(log_std, experts)
        return th.tanh(mean + th.exp(log_std) * th.randn_like(mean))

    def action_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """An expert k ~ Cat(alpha) per row, a reparameterised action from it, and log pi_k(a).

        The log-density is the sampled **component's** (what PMOE's critic target uses), not
        the mixture's; see :meth:`log_prob` for the mixture.
        """
        mixing_logits, mean, log_std = self.mixture_params(obs)
        experts = th.multinomial(th.softmax(mixing_logits, dim=-1), 1).squeeze(1)
        mean, log_std = gather_experts(mean, experts), gather_experts(log_std, experts)
        pre_tanh = mean + th.exp(log_std) * th.randn_like(mean)
        return th.tanh(pre_tanh), squashed_log_prob(pre_tanh, mean, log_std)

    def expert_actions_log_prob(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """A reparameterised action from every expert and its component log-density.

        :return: ``(mixing_logits (B, K), actions (B, K, A), log_probs (B, K))``
        """
        mixing_logits, mean, log_std = self.mixture_params(obs)
        pre_tanh = mean + th.exp(log_std) * th.randn_like(mean)
        return mixing_logits, th.tanh(pre_tanh), squashed_log_prob(pre_tanh, mean, log_std)

    def log_prob(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Mixture log-density log sum_k alpha_k pi_k(a|s) of squashed actions (B, A) -> (B,)."""
        mixing_logits, mean, log_std = self.mixture_params(obs)
        return squashed_mixture_log_prob(actions, mixing_logits, mean, log_std)

    def mixing_probs(self, obs: PyTorchObs) -> th.Tensor:
        """The mixing weights alpha(s), shape (B, K)."""
        features = self.extract_features(obs, self.features_extractor)
        return th.softmax(self.mixing_net(features), dim=-1)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, deterministic)


class PMOESACPolicy(SACPolicy):
    """SAC policy whose actor is a Gaussian mixture of K experts (:class:`GMMActor`).

    Critics, target critics, optimizers and features extractors are SAC's. gSDE is not
    available (a mixture of experts is the exploration model).

    :param observation_space: Observation space
    :param action_space: Action space (Box)
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: Hidden layers of the actor and the critics: a list (both alike) or a dict
        with ``pi`` and ``qf``; default [256, 256] (SAC's; the reference code used 4 x 512 for
        the actor and 3 x 512 for the critics)
    :param activation_fn: Activation function
    :param n_experts: Number of experts K (default 2, as the reference code)
    :param use_sde: Must be False (kept because SAC passes it)
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor
    :param normalize_images: Whether to divide image observations by 255
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass
        to the optimizer
    :param n_critics: Number of critic networks to create
    :param share_features_extractor: Whether to share the features extractor between the actor
        and the critic
    """

    actor: GMMActor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_experts: int = 2,
        use_sde: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ) -> None:
        _check_no_sde(use_sde)
        # make_actor(), called from SACPolicy.__init__, reads it.
        self.n_experts = check_n_experts(n_experts)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            use_sde=False,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("log_std_init", "use_expln", "clip_mean"):  # gSDE settings, not used here
            data.pop(key, None)
        data.update(
            n_experts=self.n_experts, share_features_extractor=self.share_features_extractor
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> GMMActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        for key in ("use_sde", "log_std_init", "use_expln", "clip_mean"):
            actor_kwargs.pop(key, None)
        return GMMActor(n_experts=self.n_experts, **actor_kwargs).to(self.device)


class MultiInputPolicy(PMOESACPolicy):
    """:class:`PMOESACPolicy` for Dict observations (SB3's ``CombinedExtractor``)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        n_experts: int = 2,
        use_sde: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            n_experts=n_experts,
            use_sde=use_sde,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=share_features_extractor,
        )


# --------------------------------------------------------------------------------------------
# PMOE-PPO
# --------------------------------------------------------------------------------------------


class GMMActorCriticPolicy(ActorCriticPolicy):
    """Actor-critic policy with a Gaussian-mixture actor and an auxiliary Q head (PMOE-PPO).

    - Actor: the policy MLP (``mlp_extractor``) and ``action_net`` give the K experts' means
      (K x |A| outputs); ``log_std`` is a state-independent (K, |A|) parameter, one vector per
      expert; ``mixing_net`` = Linear(features -> K) gives alpha = softmax(logits), a separate
      one-layer head on the state features. The action distribution is a
      :class:`~opsrl.agents.pmoe.distributions.GMMDistribution`.
    - Critic: SB3's value head V(s).
    - Auxiliary Q head: Q(s, a) on its own features extractor, ``q_net_arch`` hidden layers;
      PMOE-PPO regresses it onto the returns and uses it to find the Q-best expert.

    One optimizer trains everything (one loss, as PPO). Orthogonal initialisation as in SB3,
    with gain 0.01 on the mixing head (so the experts start with near-equal weights).

    :param observation_space: Observation space
    :param action_space: Action space (Box)
    :param lr_schedule: Learning rate schedule (``lr_schedule(1)`` is the initial rate)
    :param net_arch: Actor and critic hidden layers, as SB3's (default 64-64 for both)
    :param activation_fn: Activation of the actor's and critic's hidden layers (tanh)
    :param n_experts: Number of experts K (default 5, as the reference code)
    :param q_net_arch: Hidden layers of the auxiliary Q head (default 64-64-64)
    :param q_activation_fn: Activation of the Q head's hidden layers (ReLU)
    :param ortho_init: Whether to use orthogonal initialisation
    :param use_sde: Must be False (kept because PPO passes it)
    :param log_std_init: Initial log standard deviation of every expert
    :param features_extractor_class: Features extractor class (the Q head gets its own instance)
    :param features_extractor_kwargs: Keyword arguments of the features extractor
    :param share_features_extractor: Whether the actor and the critic share the features
        extractor
    :param normalize_images: Whether to divide image observations by 255
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass
        to the optimizer (default ``eps=1e-5`` for Adam, as in SB3)
    """

    action_dist: GMMDistribution  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        n_experts: int = 5,
        q_net_arch: list[int] | None = None,
        q_activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(action_space, spaces.Box):
            raise ValueError(
                "action_space must be a Box (the policy is a Gaussian mixture), got "
                f"{type(action_space).__name__}"
            )
        _check_no_sde(use_sde)
        # _build(), called from ActorCriticPolicy.__init__, reads these.
        self.n_experts = check_n_experts(n_experts)
        self.q_net_arch = list(DEFAULT_Q_NET_ARCH if q_net_arch is None else q_net_arch)
        self.q_activation_fn = q_activation_fn
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            activation_fn=activation_fn,
            ortho_init=ortho_init,
            use_sde=False,
            log_std_init=log_std_init,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in ("squash_output", "full_std", "use_expln"):  # gSDE settings, not used here
            data.pop(key, None)
        data.update(
            n_experts=self.n_experts,
            q_net_arch=self.q_net_arch,
            q_activation_fn=self.q_activation_fn,
            share_features_extractor=self.share_features_extractor,
            normalize_images=self.normalize_images,
        )
        return data

    def _build(self, lr_schedule: Schedule) -> None:
        self._build_mlp_extractor()
        action_dim = get_action_dim(self.action_space)
        self.action_dist = GMMDistribution(action_dim, self.n_experts)
        self.action_net, self.log_std = self.action_dist.proba_distribution_net(
            latent_dim=self.mlp_extractor.latent_dim_pi, log_std_init=self.log_std_init
        )
        self.mixing_net = nn.Linear(self.features_dim, self.n_experts)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, 1)
        self.q_features_extractor = self.make_features_extractor()
        self.q_net = nn.Sequential(
            *create_mlp(self.features_dim + action_dim, 1, self.q_net_arch, self.q_activation_fn)
        )

        if self.ortho_init:
            module_gains: dict[nn.Module, float] = {
                self.mlp_extractor: np.sqrt(2),
                self.action_net: 0.01,
                self.mixing_net: 0.01,
                self.value_net: 1.0,
                self.q_features_extractor: np.sqrt(2),
                self.q_net: np.sqrt(2),
            }
            if self.share_features_extractor:
                module_gains[self.features_extractor] = np.sqrt(2)
            else:
                module_gains[self.pi_features_extractor] = np.sqrt(2)
                module_gains[self.vf_features_extractor] = np.sqrt(2)
            for module, gain in module_gains.items():
                module.apply(partial(self.init_weights, gain=gain))
            self.q_net[-1].apply(partial(self.init_weights, gain=1.0))

        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    # ------------------------------------------------------------------------- the mixture
    def _latents(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """``(pi_features, latent_pi, latent_vf)`` of one pass through the extractors."""
        features = self.extract_features(obs)
        if self.share_features_extractor:
            latent_pi, latent_vf = self.mlp_extractor(features)
            return features, latent_pi, latent_vf  # type: ignore[return-value]
        pi_features, vf_features = features
        latent_pi = self.mlp_extractor.forward_actor(pi_features)
        return pi_features, latent_pi, self.mlp_extractor.forward_critic(vf_features)

    def _get_action_dist_from_latent(  # type: ignore[override]
        self, latent_pi: th.Tensor, pi_features: th.Tensor
    ) -> GMMDistribution:
        """The mixture at these latent codes (experts) and features (mixing weights)."""
        return self.action_dist.proba_distribution(
            self.mixing_net(pi_features), self.action_net(latent_pi), self.log_std
        )

    def forward(
        self, obs: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Actions, values and the actions' mixture log-likelihood."""
        pi_features, latent_pi, latent_vf = self._latents(obs)
        values = self.value_net(latent_vf)
        distribution = self._get_action_dist_from_latent(latent_pi, pi_features)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, values, log_prob

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        """The mixture pi(.|s) at these observations."""
        features = BaseModel.extract_features(self, obs, self.pi_features_extractor)
        latent_pi = self.mlp_extractor.forward_actor(features)
        return self._get_action_dist_from_latent(latent_pi, features)

    def evaluate_actions(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """Values, mixture log-likelihood of ``actions`` and entropy (None for a mixture)."""
        pi_features, latent_pi, latent_vf = self._latents(obs)
        distribution = self._get_action_dist_from_latent(latent_pi, pi_features)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()

    # ------------------------------------------------------------------------- the Q head
    def predict_q_values(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """Auxiliary Q(s, a), shape (B, 1)."""
        features = BaseModel.extract_features(self, obs, self.q_features_extractor)
        return self.q_net(th.cat([features, actions.reshape(len(features), -1)], dim=-1))

    def evaluate_actions_and_experts(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """Everything a PMOE-PPO minibatch needs, from one pass through the extractors.

        :return: ``(values (B, 1), log_prob (B,), mixing_probs (B, K), q_taken (B,),
            q_experts (B, K))``: the mixture log-likelihood of ``actions``, the mixing weights
            (with gradient), Q(s, a) of the taken actions (with gradient) and Q(s, a_k) of one
            fresh sample a_k from every expert (no gradient: it only picks the best expert).
        """
        pi_features, latent_pi, latent_vf = self._latents(obs)
        distribution = self._get_action_dist_from_latent(latent_pi, pi_features)
        log_prob = distribution.log_prob(actions)
        q_features = BaseModel.extract_features(self, obs, self.q_features_extractor)
        q_taken = self.q_net(th.cat([q_features, actions], dim=-1)).flatten()
        with th.no_grad():
            expert_actions = distribution.expert_samples()  # (B, K, A)
            repeated = q_features.unsqueeze(1).expand(-1, self.n_experts, -1)
            q_experts = self.q_net(th.cat([repeated, expert_actions], dim=-1)).squeeze(-1)
        return self.value_net(latent_vf), log_prob, distribution.mixing_probs, q_taken, q_experts


class MultiInputActorCriticPolicy(GMMActorCriticPolicy):
    """:class:`GMMActorCriticPolicy` for Dict observations (SB3's ``CombinedExtractor``)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        n_experts: int = 5,
        q_net_arch: list[int] | None = None,
        q_activation_fn: type[nn.Module] = nn.ReLU,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
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
            n_experts=n_experts,
            q_net_arch=q_net_arch,
            q_activation_fn=q_activation_fn,
            ortho_init=ortho_init,
            use_sde=use_sde,
            log_std_init=log_std_init,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            share_features_extractor=share_features_extractor,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
