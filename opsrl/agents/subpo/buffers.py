"""Rollout storage of SubPO: whole episodes of observations, actions and marginal gains."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
from stable_baselines3.common.type_aliases import PyTorchObs

__all__ = ["EpisodeRolloutBuffer", "EpisodeSamples"]


class EpisodeSamples(NamedTuple):
    """The rollout's samples selected for the loss, flattened and on the learner's device."""

    observations: PyTorchObs
    actions: th.Tensor


class EpisodeRolloutBuffer:
    """``n_steps`` steps of ``n_envs`` slots: observations, actions, rewards, the step index of
    every sample within its episode and where episodes ended.

    No values, log-probabilities or returns: SubPO has no critic and recomputes the
    log-probabilities with gradient in the update. Dict observations are stored per key.

    :param buffer_size: steps per slot
    :param observation_space: the VecEnv's observation space
    :param action_space: the VecEnv's action space
    :param device: where :meth:`samples` puts its tensors
    :param n_envs: slots
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "cpu",
        n_envs: int = 1,
    ) -> None:
        self.buffer_size = buffer_size
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = th.device(device)
        self.n_envs = n_envs
        self.action_dim = get_action_dim(action_space)
        self.obs_shape = get_obs_shape(observation_space)
        self.reset()

    def reset(self) -> None:
        """Empty the buffer (arrays are reallocated, never shared with a previous rollout)."""
        shape = (self.buffer_size, self.n_envs)
        if isinstance(self.obs_shape, dict):
            self.observations: np.ndarray | dict[str, np.ndarray] = {
                key: np.zeros((*shape, *obs_shape), dtype=np.float32)
                for key, obs_shape in self.obs_shape.items()
            }
        else:
            self.observations = np.zeros((*shape, *self.obs_shape), dtype=np.float32)
        self.actions = np.zeros((*shape, self.action_dim), dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float64)
        self.time_steps = np.zeros(shape, dtype=np.int64)
        self.episode_ends = np.zeros(shape, dtype=bool)
        self.pos = 0
        self.full = False

    def add(
        self,
        observations: np.ndarray | dict[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        time_steps: np.ndarray,
        episode_ends: np.ndarray,
    ) -> None:
        """Store one step of every slot."""
        if self.full:
            raise ValueError(f"the rollout buffer already holds {self.buffer_size} steps")
        if isinstance(self.observations, dict):
            assert isinstance(observations, dict)
            for key, store in self.observations.items():
                store[self.pos] = np.asarray(observations[key]).reshape(store.shape[1:])
        else:
            self.observations[self.pos] = np.asarray(observations).reshape(
                self.observations.shape[1:]
            )
        self.actions[self.pos] = np.asarray(actions).reshape(self.n_envs, self.action_dim)
        self.rewards[self.pos] = np.asarray(rewards, dtype=np.float64)
        self.time_steps[self.pos] = np.asarray(time_steps, dtype=np.int64)
        self.episode_ends[self.pos] = np.asarray(episode_ends, dtype=bool)
        self.pos += 1
        self.full = self.pos == self.buffer_size

    def filled(self) -> slice:
        """Rows holding data (all of them once the rollout is complete)."""
        return slice(0, self.pos)

    def samples(self, selected: np.ndarray) -> EpisodeSamples:
        """Observations and actions of the ``selected`` (rows, slots) samples, in row-major
        order, as tensors on the device (Discrete actions as a flat long tensor)."""
        selected = np.asarray(selected, dtype=bool)
        rows = self.filled()
        if isinstance(self.observations, dict):
            observations: PyTorchObs = {
                key: th.as_tensor(store[rows][selected], device=self.device)
                for key, store in self.observations.items()
            }
        else:
            observations = th.as_tensor(self.observations[rows][selected], device=self.device)
        actions = th.as_tensor(self.actions[rows][selected], device=self.device)
        if isinstance(self.action_space, spaces.Discrete):
            actions = actions.long().flatten()
        return EpisodeSamples(observations, actions)
