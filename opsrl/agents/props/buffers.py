"""The PROPS replay buffer: a ring of the last ``n_batches`` rollouts, kept across updates."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples

__all__ = ["PROPSRolloutBuffer"]


class PROPSRolloutBuffer(RolloutBuffer):
    """A ring buffer of the last ``n_batches * buffer_size`` steps of ``n_envs`` envs.

    Unlike SB3's ``RolloutBuffer``, it is not emptied between updates: each step overwrites
    the oldest one once the ring is full. It stores what does not depend on the policy -- the
    observations and rewards as the env returned them, before any ``VecNormalize`` (raw), the
    actions, the episode starts, and for episodes cut by a time limit the raw terminal
    observation -- and the algorithm recomputes the rest (log-probabilities, values,
    advantages, returns) for its current policy and normalisation statistics before each use.

    Rows are ring positions; :meth:`time_order` lists them from the oldest step to the newest,
    and every computation over the ring follows that order.

    :param buffer_size: Steps per env in one batch (PROPS's n, the algorithm's ``n_steps``)
    :param observation_space: Observation space
    :param action_space: Action space
    :param device: PyTorch device of the training tensors
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage
        Estimator
    :param gamma: Discount factor
    :param n_envs: Number of parallel environments
    :param n_batches: Batches kept (PROPS's b): the ring holds ``n_batches * buffer_size``
        steps per env
    """

    truncated: np.ndarray
    terminal_observations: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        n_batches: int = 2,
    ) -> None:
        if isinstance(observation_space, spaces.Dict):
            raise ValueError("PROPSRolloutBuffer does not support Dict observation spaces")
        if not isinstance(n_batches, int | np.integer) or n_batches < 1:
            raise ValueError(f"n_batches must be a positive integer, got {n_batches!r}")
        self.batch_steps = buffer_size
        self.n_batches = int(n_batches)
        self.n_stored = 0
        self._training_data: RolloutBufferSamples | None = None
        super().__init__(
            buffer_size * self.n_batches,
            observation_space,
            action_space,
            device=device,
            gae_lambda=gae_lambda,
            gamma=gamma,
            n_envs=n_envs,
        )

    def reset(self) -> None:
        """Empty the ring."""
        super().reset()
        self.truncated = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        self.terminal_observations = np.zeros(
            (self.buffer_size, self.n_envs, *self.obs_shape), dtype=self.observation_space.dtype
        )
        self.n_stored = 0
        self._training_data = None

    def size(self) -> int:
        """Steps per env held (at most ``n_batches * batch_steps``)."""
        return self.n_stored

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor | None = None,
        log_prob: th.Tensor | None = None,
        *,
        truncated: np.ndarray | None = None,
        terminal_observation: np.ndarray | None = None,
    ) -> None:
        """Store one step of every env at the next ring position, over the oldest when full.

        :param obs: Raw observations, shape (n_envs, *obs_shape)
        :param action: Actions as sampled (before clipping to the bounds)
        :param reward: Raw rewards
        :param episode_start: Whether ``obs`` starts an episode
        :param value: Ignored, kept for the ``RolloutBuffer`` signature (values are recomputed)
        :param log_prob: Ignored likewise
        :param truncated: Per env, whether the episode was cut by a time limit at this step
        :param terminal_observation: Raw terminal observations, rows read where ``truncated``
        """
        pos = self.pos
        if isinstance(self.observation_space, spaces.Discrete):
            obs = np.asarray(obs).reshape((self.n_envs, *self.obs_shape))
        self.observations[pos] = np.asarray(obs)
        self.actions[pos] = np.asarray(action).reshape((self.n_envs, self.action_dim))
        self.rewards[pos] = np.asarray(reward)
        self.episode_starts[pos] = np.asarray(episode_start)
        if truncated is None:
            self.truncated[pos] = False
        else:
            self.truncated[pos] = truncated
            if np.any(truncated):
                assert terminal_observation is not None
                terminal = np.asarray(terminal_observation).reshape((self.n_envs, *self.obs_shape))
                self.terminal_observations[pos][truncated] = terminal[truncated]
        self.pos = (pos + 1) % self.buffer_size
        self.n_stored = min(self.n_stored + 1, self.buffer_size)
        self.full = self.n_stored == self.buffer_size
        self._training_data = None

    def time_order(self, newest: int | None = None) -> np.ndarray:
        """Ring rows from the oldest stored step to the newest (only the newest ``newest``)."""
        count = self.n_stored if newest is None else min(newest, self.n_stored)
        return (self.pos - count + np.arange(count)) % self.buffer_size

    def compute_returns_and_advantage(
        self, last_values: th.Tensor, dones: np.ndarray, rewards: np.ndarray | None = None
    ) -> None:
        """GAE(lambda) advantages and lambda-returns over the whole ring, in time order.

        Uses the stored ``values`` (recomputed by the algorithm before the call). As in SB3,
        an episode start cuts the recursion and ``last_values`` bootstraps after the newest
        step unless ``dones``.

        :param last_values: V of the observation after the newest step, one per env
        :param dones: Whether the newest step ended each env's episode
        :param rewards: Rewards in time order, shape (n_stored, n_envs), already normalised and
            with the time-limit bootstraps added; the stored raw rewards when None
        """
        order = self.time_order()
        values = self.values[order]
        rewards = self.rewards[order] if rewards is None else rewards
        next_non_terminal = np.empty_like(values)
        next_non_terminal[:-1] = 1.0 - self.episode_starts[order[1:]]
        next_non_terminal[-1] = 1.0 - np.asarray(dones, dtype=np.float32)
        next_values = np.empty_like(values)
        next_values[:-1] = values[1:]
        next_values[-1] = last_values.clone().cpu().numpy().flatten()
        deltas = rewards + self.gamma * next_values * next_non_terminal - values
        decay = self.gamma * self.gae_lambda * next_non_terminal
        advantages = np.empty_like(values)
        last_gae_lam = np.zeros(self.n_envs, dtype=np.float32)
        for step in reversed(range(len(order))):
            last_gae_lam = deltas[step] + decay[step] * last_gae_lam
            advantages[step] = last_gae_lam
        self.advantages[order] = advantages
        self.returns[order] = advantages + values
        self._training_data = None

    def set_training_data(
        self, observations: th.Tensor, actions: th.Tensor, order: np.ndarray
    ) -> None:
        """Hold the rows ``order`` as flat tensors on the device for :meth:`get`.

        :param observations: The rows' observations as the policy sees them (normalised),
            flattened to (len(order) * n_envs, *obs_shape), already on the device
        :param actions: Their actions, flattened likewise, on the device
        :param order: Ring rows, in the order the two tensors were flattened from
        """

        def flat(array: np.ndarray) -> th.Tensor:
            return self.to_torch(array[order].reshape(-1))

        self._training_data = RolloutBufferSamples(
            observations,
            actions,
            flat(self.values),
            flat(self.log_probs),
            flat(self.advantages),
            flat(self.returns),
        )

    @property
    def training_data(self) -> RolloutBufferSamples:
        """The flat tensors given to :meth:`set_training_data` (all rows, on the device)."""
        if self._training_data is None:
            raise RuntimeError("the buffer has no training data: call set_training_data() first")
        return self._training_data

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[RolloutBufferSamples, None, None]:
        """Minibatches of the rows given to :meth:`set_training_data`, in a random order."""
        data = self.training_data
        total = len(data.advantages)
        batch_size = total if batch_size is None else batch_size
        # The permutation is drawn where the tensors live: no index transfer per minibatch.
        indices = th.randperm(total, device=data.advantages.device)
        for start in range(0, total, batch_size):
            batch = indices[start : start + batch_size]
            yield RolloutBufferSamples(*(tensor[batch] for tensor in data))
