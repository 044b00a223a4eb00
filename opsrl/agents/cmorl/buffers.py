"""Rollout buffer with vector rewards, a vector critic and per-objective GAE (MOPPO)."""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize

__all__ = ["MORolloutBuffer", "MORolloutBufferSamples", "vector_gae"]

#: arrays that training reads, flattened from (n_steps, n_envs, ...) to (n_steps * n_envs, ...)
#: (with the observations, an array or a dict of arrays)
FLAT_ARRAYS = (
    "actions",
    "values",
    "log_probs",
    "advantages",
    "returns",
    "objective_advantages",
)


class MORolloutBufferSamples(NamedTuple):
    """A training batch: SB3's ``RolloutBufferSamples`` with vector values and returns.

    ``old_values`` and ``returns`` are (batch, n_objectives) in the critic's (normalised)
    scale; ``advantages`` is the actor's scalar advantage; ``objective_advantages`` are the
    per-objective GAE advantages (batch, n_objectives), in the objectives' raw scale once
    :meth:`MORolloutBuffer.set_objective_scale` has been called.
    """

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    objective_advantages: th.Tensor


def vector_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """GAE(lambda) advantages of every objective at once.

    ``rewards`` and ``values`` are (T, N, m), ``episode_starts`` (T, N), ``last_values``
    (N, m) and ``dones`` (N,). Objective j's slice is exactly SB3's scalar GAE of reward
    stream j with critic j: ``delta_t = r_t + gamma V(s_{t+1}) (1 - done) - V(s_t)``,
    ``A_t = delta_t + gamma lambda (1 - done) A_{t+1}``.
    """
    advantages = np.zeros_like(rewards)
    last_gae = np.zeros_like(last_values)
    for step in reversed(range(rewards.shape[0])):
        if step == rewards.shape[0] - 1:
            next_non_terminal = 1.0 - np.asarray(dones, dtype=np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[step + 1]
        next_non_terminal = next_non_terminal[:, None]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae = delta + gamma * gae_lambda * next_non_terminal * last_gae
        advantages[step] = last_gae
    return advantages


class MORolloutBuffer(RolloutBuffer):
    """SB3 ``RolloutBuffer`` for a vector reward of ``n_objectives`` entries (Box, Discrete or
    Dict observations: a Dict is stored as a dict of arrays, as SB3's ``DictRolloutBuffer``).

    ``rewards``, ``values`` and ``returns`` are (n_steps, n_envs, n_objectives); the GAE of
    each objective goes to ``objective_advantages`` (same shape) and the lambda-returns,
    ``objective_advantages + values``, are the vector critic's targets. ``advantages`` (the
    actor's scalar advantage, (n_steps, n_envs)) is left to the algorithm:
    :meth:`scalarise` fills it with ``w . (A_vec * scale)``, standardised, as C-MORL's stage 1
    does; a constrained update picks one objective (``w`` one-hot).

    :param buffer_size: Number of steps per env (``n_steps``)
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device
    :param gae_lambda: Lambda of GAE
    :param gamma: Discount factor
    :param n_envs: Number of parallel environments
    :param n_objectives: Number of objectives
    """

    objective_advantages: np.ndarray
    observations: np.ndarray | dict[str, np.ndarray]  # type: ignore[assignment]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1.0,
        gamma: float = 0.99,
        n_envs: int = 1,
        n_objectives: int = 2,
    ) -> None:
        if isinstance(n_objectives, bool) or not isinstance(n_objectives, int | np.integer):
            raise ValueError(f"n_objectives must be an integer >= 1, got {n_objectives!r}")
        if n_objectives < 1:
            raise ValueError(f"n_objectives must be an integer >= 1, got {n_objectives}")
        self.n_objectives = int(n_objectives)
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            gae_lambda=gae_lambda,
            gamma=gamma,
            n_envs=n_envs,
        )

    def reset(self) -> None:
        if isinstance(self.obs_shape, dict):
            assert isinstance(self.observation_space, spaces.Dict)
            self.observations = {
                key: np.zeros(
                    (self.buffer_size, self.n_envs, *shape),
                    dtype=self.observation_space[key].dtype,
                )
                for key, shape in self.obs_shape.items()
            }
        else:
            self.observations = np.zeros(
                (self.buffer_size, self.n_envs, *self.obs_shape),
                dtype=self.observation_space.dtype,
            )
        steps = (self.buffer_size, self.n_envs)
        vectors = (*steps, self.n_objectives)
        self.actions = np.zeros((*steps, self.action_dim), dtype=self.action_space.dtype)
        self.rewards = np.zeros(vectors, dtype=np.float32)
        self.values = np.zeros(vectors, dtype=np.float32)
        self.returns = np.zeros(vectors, dtype=np.float32)
        self.objective_advantages = np.zeros(vectors, dtype=np.float32)
        self.episode_starts = np.zeros(steps, dtype=np.float32)
        self.log_probs = np.zeros(steps, dtype=np.float32)
        self.advantages = np.zeros(steps, dtype=np.float32)
        self.generator_ready = False
        self._full_batch: MORolloutBufferSamples | None = None
        super(RolloutBuffer, self).reset()

    def add(
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
    ) -> None:
        """Store one step of every env.

        :param obs: Observations (n_envs, ...), or a dict of them
        :param action: Actions
        :param reward: Vector rewards (n_envs, n_objectives)
        :param episode_start: Whether ``obs`` starts an episode
        :param value: Vector values (n_envs, n_objectives) at collection time
        :param log_prob: log pi(a|s) at collection time
        """
        if len(log_prob.shape) == 0:
            log_prob = log_prob.reshape(-1, 1)
        if isinstance(self.observations, dict):
            assert isinstance(obs, dict) and isinstance(self.obs_shape, dict)
            for key, stored in self.observations.items():
                stored[self.pos] = np.array(obs[key]).reshape((self.n_envs, *self.obs_shape[key]))
        else:
            if isinstance(self.observation_space, spaces.Discrete):
                obs = np.asarray(obs).reshape((self.n_envs, *self.obs_shape))
            self.observations[self.pos] = np.array(obs)
        action = action.reshape((self.n_envs, self.action_dim))
        self.actions[self.pos] = np.array(action)
        self.rewards[self.pos] = np.asarray(reward, dtype=np.float32).reshape(
            self.n_envs, self.n_objectives
        )
        self.episode_starts[self.pos] = np.array(episode_start)
        self.values[self.pos] = value.clone().cpu().numpy().reshape(self.n_envs, self.n_objectives)
        self.log_probs[self.pos] = log_prob.clone().cpu().numpy()
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Per-objective GAE (:func:`vector_gae`) and lambda-returns.

        :param last_values: Vector values (n_envs, n_objectives) of the observation after the
            last step
        :param dones: Whether the last step ended the episode (one per env)
        """
        last = last_values.clone().cpu().numpy().reshape(self.n_envs, self.n_objectives)
        self.objective_advantages = vector_gae(
            self.rewards,
            self.values,
            self.episode_starts,
            last.astype(np.float32),
            np.asarray(dones),
            self.gamma,
            self.gae_lambda,
        )
        self.returns = self.objective_advantages + self.values

    def set_objective_scale(self, scale: np.ndarray) -> None:
        """Bring ``objective_advantages`` to the objectives' raw scale (multiply objective j by
        ``scale[j]``, the reward normalisation's divisor); call once, before :meth:`get`."""
        assert not self.generator_ready, "set the scale before reading batches"
        scale = np.asarray(scale, dtype=np.float32).reshape(self.n_objectives)
        self.objective_advantages = self.objective_advantages * scale

    def scalarise(self, weights: np.ndarray, standardise: bool = True) -> None:
        """Fill the actor's ``advantages`` with ``weights . objective_advantages``, standardised
        over the whole rollout (as C-MORL's reference code) when ``standardise``."""
        assert not self.generator_ready, "scalarise before reading batches"
        weights = np.asarray(weights, dtype=np.float32).reshape(self.n_objectives)
        advantages = self.objective_advantages @ weights
        if standardise and advantages.size > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        self.advantages = advantages.astype(np.float32)

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[MORolloutBufferSamples, None, None]:
        """Minibatches in random order; the whole buffer at once when ``batch_size`` is None."""
        assert self.full, "the rollout buffer is not full yet"
        if not self.generator_ready:
            if isinstance(self.observations, dict):
                self.observations = {
                    key: self.swap_and_flatten(obs) for key, obs in self.observations.items()
                }
            else:
                self.observations = self.swap_and_flatten(self.observations)
            for name in FLAT_ARRAYS:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        total = self.buffer_size * self.n_envs
        if batch_size is None or batch_size >= total:
            if self._full_batch is None:
                self._full_batch = self._get_samples(np.arange(total))
            yield self._full_batch
            return
        indices = np.random.permutation(total)
        for start in range(0, total, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> MORolloutBufferSamples:
        if isinstance(self.observations, dict):
            observations: th.Tensor | dict[str, th.Tensor] = {
                key: self.to_torch(obs[batch_inds]) for key, obs in self.observations.items()
            }
        else:
            observations = self.to_torch(self.observations[batch_inds])
        data = (
            # float32 as in SB3 (Discrete actions are cast back in train())
            self.actions[batch_inds].astype(np.float32, copy=False),
            self.values[batch_inds],
            self.log_probs[batch_inds].flatten(),
            self.advantages[batch_inds].flatten(),
            self.returns[batch_inds],
            self.objective_advantages[batch_inds],
        )
        return MORolloutBufferSamples(observations, *tuple(map(self.to_torch, data)))
