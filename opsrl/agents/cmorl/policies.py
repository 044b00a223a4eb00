"""Actor-critic policy with a vector critic and built-in running normalisation (MOPPO, C-MORL)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

__all__ = [
    "MOActorCriticPolicy",
    "MOMultiInputActorCriticPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "RunningMeanStd",
]


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of arrays, kept as module buffers.

    Living in a policy's ``state_dict``, the statistics travel with it: a copy of the policy
    (C-MORL's stage-2 extensions), ``save``/``load`` and ``predict`` all see the same ones.
    Batches are merged with the parallel formula of Chan et al. (as SB3's ``RunningMeanStd``).

    :param shape: Shape of one sample
    :param epsilon: Initial pseudo-count (keeps the first division finite)
    """

    mean: th.Tensor
    var: th.Tensor
    count: th.Tensor

    def __init__(self, shape: tuple[int, ...], epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", th.zeros(shape, dtype=th.float64))
        self.register_buffer("var", th.ones(shape, dtype=th.float64))
        self.register_buffer("count", th.tensor(epsilon, dtype=th.float64))

    @th.no_grad()
    def update(self, batch: np.ndarray) -> None:
        """Merge a batch of samples (first axis: samples) into the statistics."""
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, *self.mean.shape)
        if batch.shape[0] == 0:
            return
        batch_mean = th.as_tensor(batch.mean(axis=0), device=self.mean.device)
        batch_var = th.as_tensor(batch.var(axis=0), device=self.mean.device)
        batch_count = float(batch.shape[0])
        delta = batch_mean - self.mean
        total = self.count + batch_count
        moment = self.var * self.count + batch_var * batch_count
        moment = moment + delta.square() * self.count * batch_count / total
        self.mean.copy_(self.mean + delta * batch_count / total)
        self.var.copy_(moment / total)
        self.count.copy_(total)

    def std(self, epsilon: float = 1e-8) -> th.Tensor:
        """``sqrt(var + epsilon)``."""
        return th.sqrt(self.var + epsilon)


class MOActorCriticPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose critic predicts one value per objective.

    - ``value_net`` maps the critic's latent code to ``n_objectives`` values, so ``forward``,
      ``evaluate_actions`` and ``predict_values`` return values of shape (batch, n_objectives);
      the values are in the *normalised* objective scale (see ``objective_rms``).
    - ``observation_rms``: running mean/variance of the observations (Box spaces). Every
      forward pass (acting, training, ``predict``) maps an observation o to
      ``clip((o - mean) / sqrt(var + 1e-8), -clip_observations, clip_observations)``; the
      algorithm updates the statistics, so a saved or copied policy acts on raw observations.
    - ``objective_rms``: running variance of each objective's discounted return; the algorithm
      divides rewards by ``objective_scale()`` when it normalises objectives. Kept here, with the
      critic whose scale it defines.

    :param observation_space: Observation space
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule
    :param n_objectives: Number of objectives (size of the value head)
    :param normalize_observations: Normalise observations with running statistics; None
        (default) means yes for Box observation spaces and no otherwise
    :param clip_observations: Bound of the normalised observations
    :param normalize_objectives: Whether ``objective_scale()`` uses the running return
        variance (True) or is 1 (False)
    :param kwargs: Everything else ``ActorCriticPolicy`` takes (``net_arch``,
        ``activation_fn``, ``ortho_init``, ...)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        n_objectives: int = 2,
        normalize_observations: bool | None = None,
        clip_observations: float = 10.0,
        normalize_objectives: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(n_objectives, bool) or not isinstance(n_objectives, int | np.integer):
            raise ValueError(f"n_objectives must be an integer >= 1, got {n_objectives!r}")
        if n_objectives < 1:
            raise ValueError(f"n_objectives must be an integer >= 1, got {n_objectives}")
        is_box = isinstance(observation_space, spaces.Box)
        if normalize_observations is None:
            normalize_observations = is_box
        if normalize_observations and not is_box:
            raise ValueError(
                "normalize_observations needs a Box observation space, got "
                f"{type(observation_space).__name__}"
            )
        if not clip_observations > 0:
            raise ValueError(f"clip_observations must be > 0, got {clip_observations}")
        # read by _build, which ActorCriticPolicy.__init__ calls
        self.n_objectives = int(n_objectives)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)
        self.normalize_observations = bool(normalize_observations)
        self.clip_observations = float(clip_observations)
        self.normalize_objectives = bool(normalize_objectives)
        obs_shape = observation_space.shape if is_box else ()
        self.observation_rms = RunningMeanStd(tuple(obs_shape))
        self.objective_rms = RunningMeanStd((self.n_objectives,))

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.value_net = nn.Linear(self.mlp_extractor.latent_dim_vf, self.n_objectives)
        if self.ortho_init:
            self.init_weights(self.value_net, gain=1.0)
        # the optimizer of super()._build holds the scalar head's parameters: rebuild it
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            n_objectives=self.n_objectives,
            normalize_observations=self.normalize_observations,
            clip_observations=self.clip_observations,
            normalize_objectives=self.normalize_objectives,
        )
        return data

    def normalize_observation(self, obs: th.Tensor) -> th.Tensor:
        """The observation as the networks see it (unchanged when not normalising)."""
        if not self.normalize_observations:
            return obs
        mean = self.observation_rms.mean.to(obs.device)
        std = self.observation_rms.std().to(obs.device)
        normalized = (obs.to(th.float64) - mean) / std
        return normalized.clamp(-self.clip_observations, self.clip_observations).float()

    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: BaseFeaturesExtractor | None = None
    ) -> th.Tensor | tuple[th.Tensor, th.Tensor]:
        if self.normalize_observations:
            obs = self.normalize_observation(obs)  # type: ignore[arg-type]
        return super().extract_features(obs, features_extractor)

    def objective_scale(self) -> th.Tensor:
        """Per-objective scale of the critic: ``sqrt(var + 1e-8)`` of the running discounted
        return when normalising objectives, ones otherwise (float32, on the policy's device)."""
        if not self.normalize_objectives:
            return th.ones(self.n_objectives, device=self.device)
        return self.objective_rms.std().float().to(self.device)


class MOMultiInputActorCriticPolicy(MOActorCriticPolicy):
    """:class:`MOActorCriticPolicy` for Dict observations (SB3's ``CombinedExtractor``;
    observations are not normalised).

    :param observation_space: Observation space (a Dict)
    :param action_space: Action space
    :param lr_schedule: Learning rate schedule
    :param features_extractor_class: Features extractor (default ``CombinedExtractor``)
    :param kwargs: Everything else :class:`MOActorCriticPolicy` takes
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
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


MlpPolicy = MOActorCriticPolicy
MultiInputPolicy = MOMultiInputActorCriticPolicy
