"""Rollout storage of matched dispatch decisions and OSPO's and GRPO's group advantages.

Arrays are laid out (n_steps, n_envs) with one VecEnv slot per vehicle. The *group* of a
sample is its step and its city copy: OSPO's G_t, the vehicles matched in one minute of one
city. The advantage functions are plain numpy, so they can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer

__all__ = [
    "DispatchRolloutBuffer",
    "DispatchSamples",
    "group_baseline",
    "group_normalized_rewards",
    "semi_mdp_returns",
    "standardize",
]

#: added to a group's standard deviation, as in OSPO's code
STD_EPS = 1e-8


def _group_keys(groups: np.ndarray) -> np.ndarray:
    """(T, N) -> (T, N) int keys unique per (step, group)."""
    steps = np.arange(groups.shape[0])[:, None]
    span = int(groups.max()) + 1 if groups.size else 1
    return steps * span + groups


def group_normalized_rewards(
    rewards: np.ndarray, matched: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """OSPO's one-step score ``(r - mean_G r) / (std_G r + 1e-8)`` of every matched sample.

    Args:
        rewards, matched, groups: (T, N) arrays; G is the set of matched samples sharing the
            step and the group id (city copy). The standard deviation is the population one
            (numpy's default, as OSPO's code).

    Returns:
        (T, N) float64; 0 where not matched.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    matched = np.asarray(matched, dtype=bool)
    out = np.zeros_like(rewards)
    if not matched.any():
        return out
    keys = _group_keys(np.asarray(groups, dtype=np.int64))[matched]
    values = rewards[matched]
    _, index = np.unique(keys, return_inverse=True)
    count = np.bincount(index)
    mean = np.bincount(index, weights=values) / count
    var = np.bincount(index, weights=(values - mean[index]) ** 2) / count
    out[matched] = (values - mean[index]) / (np.sqrt(var[index]) + STD_EPS)
    return out


def group_baseline(values: np.ndarray, matched: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values - mean_G values`` for matched samples (GRPO's group baseline); 0 elsewhere."""
    values = np.asarray(values, dtype=np.float64)
    matched = np.asarray(matched, dtype=bool)
    out = np.zeros_like(values)
    if not matched.any():
        return out
    keys = _group_keys(np.asarray(groups, dtype=np.int64))[matched]
    chosen = values[matched]
    _, index = np.unique(keys, return_inverse=True)
    mean = np.bincount(index, weights=chosen) / np.bincount(index)
    out[matched] = chosen - mean[index]
    return out


def standardize(
    rewards: np.ndarray, matched: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Rewards of matched samples standardised over the whole buffer (``groups=None``) or per
    (step, group) (``groups`` given); 0 where not matched."""
    rewards = np.asarray(rewards, dtype=np.float64)
    matched = np.asarray(matched, dtype=bool)
    if groups is not None:
        return group_normalized_rewards(rewards, matched, groups)
    out = np.zeros_like(rewards)
    if matched.any():
        values = rewards[matched]
        out[matched] = (values - values.mean()) / (values.std() + STD_EPS)
    return out


def semi_mdp_returns(
    rewards: np.ndarray, matched: np.ndarray, dones: np.ndarray, gamma: float
) -> np.ndarray:
    """GRPO's per-vehicle reward-to-go with semi-MDP discounting.

    For slot i matched at step t, ``G_{i,t} = r_{i,t} + gamma^(t' - t) G_{i,t'}``, t' the
    slot's next matched step in the same episode (0 if none): the sum over the vehicle's
    later matches k of ``gamma^(Delta t_k) r_{i,k}``, Delta t_k the steps (minutes) from t
    to match k.

    Args:
        rewards, matched: (T, N) per-slot rewards and whether the slot was matched.
        dones: (T, N) True where the slot's episode ended after step t (the vehicle's
            returns do not cross it); a rollout that stops mid-episode truncates them too.
        gamma: discount per step.

    Returns:
        (T, N) float64; 0 where not matched.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    matched = np.asarray(matched, dtype=bool)
    dones = np.asarray(dones, dtype=bool)
    n_steps, n_envs = rewards.shape
    returns = np.zeros_like(rewards)
    next_return = np.zeros(n_envs)
    next_step = np.zeros(n_envs, dtype=np.int64)
    for t in range(n_steps - 1, -1, -1):
        next_return[dones[t]] = 0.0
        here = matched[t]
        delay = (next_step[here] - t).astype(np.float64)
        returns[t, here] = rewards[t, here] + gamma**delay * next_return[here]
        next_return[here] = returns[t, here]
        next_step[here] = t
    return returns


class DispatchSamples(NamedTuple):
    """A minibatch of matched decisions (torch tensors on the algorithm's device)."""

    observations: th.Tensor  # (B, D)
    actions: th.Tensor  # (B,) int64 option index (0 = no order, k + 1 = candidate k)
    old_log_prob: th.Tensor  # (B,) behaviour log-probability of the action
    advantages: th.Tensor  # (B,)


class DispatchRolloutBuffer(BaseBuffer):
    """One rollout of per-vehicle dispatch decisions, (n_steps, n_envs) per field.

    Stored per slot and step: the observation, the option the platform matched (``actions``:
    0 for "no order" or no match, k + 1 for candidate k), the policy's log-probability of it at
    collection, the reward, whether the vehicle was matched and whether it acted (had a
    candidate), its group (city copy), the group's fairness term p_t and whether its episode
    ended. :meth:`compute_advantages` is given the algorithm's advantage function;
    :meth:`get` yields minibatches of matched samples drawn with replacement (as OSPO's code
    samples its buffer).
    """

    observations: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    rewards: np.ndarray
    matched: np.ndarray
    acted: np.ndarray
    groups: np.ndarray
    fairness: np.ndarray
    dones: np.ndarray
    advantages: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
    ) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.reset()

    def reset(self) -> None:
        """Empty the buffer."""
        shape = (self.buffer_size, self.n_envs)
        self.observations = np.zeros((*shape, *self.obs_shape), dtype=np.float32)
        self.actions = np.zeros(shape, dtype=np.int64)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.matched = np.zeros(shape, dtype=bool)
        self.acted = np.zeros(shape, dtype=bool)
        self.groups = np.zeros(shape, dtype=np.int64)
        self.fairness = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=bool)
        self.advantages = np.zeros(shape, dtype=np.float32)
        super().reset()

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        log_probs: np.ndarray,
        rewards: np.ndarray,
        matched: np.ndarray,
        acted: np.ndarray,
        groups: np.ndarray,
        fairness: np.ndarray,
        dones: np.ndarray,
    ) -> None:
        """Store one step of every slot ((n_envs, ...) arrays)."""
        if self.full:
            raise RuntimeError("the rollout buffer is full; call reset()")
        p = self.pos
        self.observations[p] = np.asarray(obs, dtype=np.float32).reshape(
            self.n_envs, *self.obs_shape
        )
        self.actions[p] = actions
        self.log_probs[p] = log_probs
        self.rewards[p] = rewards
        self.matched[p] = matched
        self.acted[p] = acted
        self.groups[p] = groups
        self.fairness[p] = fairness
        self.dones[p] = dones
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True

    def filled(self) -> slice:
        """The steps stored so far."""
        return slice(0, self.buffer_size if self.full else self.pos)

    def matched_indices(self) -> np.ndarray:
        """Flat indices (step * n_envs + slot) of the matched samples stored so far."""
        return np.flatnonzero(self.matched[self.filled()])

    def get(  # type: ignore[override]
        self,
        batch_size: int,
        n_batches: int,
        rng: np.random.Generator,
    ) -> Generator[DispatchSamples, None, None]:
        """``n_batches`` minibatches of ``batch_size`` matched samples drawn uniformly with
        replacement (nothing if no sample was matched)."""
        pool = self.matched_indices()
        if pool.size == 0:
            return
        rows = self.filled()
        observations = self.observations[rows].reshape(-1, *self.obs_shape)
        actions = self.actions[rows].reshape(-1)
        log_probs = self.log_probs[rows].reshape(-1)
        advantages = self.advantages[rows].reshape(-1)
        for _ in range(n_batches):
            index = pool[rng.integers(0, pool.size, size=batch_size)]
            yield DispatchSamples(
                observations=self.to_torch(observations[index]),
                actions=th.as_tensor(actions[index], device=self.device),
                old_log_prob=self.to_torch(log_probs[index]),
                advantages=self.to_torch(advantages[index]),
            )

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: object = None
    ) -> DispatchSamples:
        rows = self.filled()
        return DispatchSamples(
            observations=self.to_torch(
                self.observations[rows].reshape(-1, *self.obs_shape)[batch_inds]
            ),
            actions=th.as_tensor(self.actions[rows].reshape(-1)[batch_inds], device=self.device),
            old_log_prob=self.to_torch(self.log_probs[rows].reshape(-1)[batch_inds]),
            advantages=self.to_torch(self.advantages[rows].reshape(-1)[batch_inds]),
        )
