"""Rollout buffer with post-decision states, two reward streams and two return streams."""

from __future__ import annotations

from collections.abc import Generator
from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize

__all__ = [
    "ADVANTAGES",
    "RETURNS",
    "PostDecisionRolloutBuffer",
    "PostDecisionRolloutBufferSamples",
    "discounted_returns",
    "gae_advantages",
]

#: how each stream's return is estimated
RETURNS = ("mc", "gae")
#: how the two streams are combined into the actor's advantage
ADVANTAGES = ("max", "min")
#: arrays that training reads, flattened from (n_steps, n_envs, ...) to (n_steps * n_envs, ...)
FLAT_ARRAYS = (
    "observations",
    "actions",
    "values",
    "log_probs",
    "advantages",
    "returns",
    "post_observations",
    "post_values",
    "post_returns",
)


class PostDecisionRolloutBufferSamples(NamedTuple):
    """A training batch: SB3's ``RolloutBufferSamples`` plus the post-decision fields."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    post_observations: th.Tensor
    old_post_values: th.Tensor
    post_returns: th.Tensor


def discounted_returns(
    rewards: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
) -> np.ndarray:
    """Discounted Monte-Carlo returns (T, N), bootstrapped with ``last_values`` at the cut.

    ``R_t = r_t + gamma * R_{t+1}`` inside an episode; an episode that ended at step t
    (``episode_starts[t + 1]``, or ``dones`` for the last step) contributes nothing after it.
    Where the episode goes on past the last step, ``R_T = last_values``.
    """
    returns = np.zeros_like(rewards)
    next_non_terminal = 1.0 - dones.astype(np.float32)
    next_return = last_values
    for step in reversed(range(rewards.shape[0])):
        returns[step] = rewards[step] + gamma * next_non_terminal * next_return
        next_non_terminal = 1.0 - episode_starts[step]
        next_return = returns[step]
    return returns


def gae_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """GAE(lambda) advantages (T, N) of one reward stream and its critic (as SB3 computes them)."""
    advantages = np.zeros_like(rewards)
    next_non_terminal = 1.0 - dones.astype(np.float32)
    next_values = last_values
    last_gae = np.zeros_like(last_values)
    for step in reversed(range(rewards.shape[0])):
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae = delta + gamma * gae_lambda * next_non_terminal * last_gae
        advantages[step] = last_gae
        next_non_terminal = 1.0 - episode_starts[step]
        next_values = values[step]
    return advantages


class PostDecisionRolloutBuffer(RolloutBuffer):
    """SB3 ``RolloutBuffer`` for PDPPO: two reward streams, two critics, one advantage.

    Per step it stores what ``RolloutBuffer`` stores, with ``rewards`` holding the
    *pre-decision* rewards ``r - r^x`` (the random part: for lot sizing, minus holding and
    lost-sales costs), plus ``post_observations`` (s^x), ``post_rewards`` (r^x, the
    deterministic part: minus setup costs), ``post_values`` (V^x(s^x) at collection time) and
    the bootstrap values of truncated episodes (``terminal_values``, ``terminal_post_values``;
    zero elsewhere).

    :meth:`compute_returns_and_advantage` fills ``returns`` / ``post_returns`` (the targets of
    the two critics), ``pre_advantages`` / ``post_advantages`` (each stream's own advantage)
    and ``advantages`` (the actor's). With ``advantage="max"`` (PDPPO's final version):

    - ``returns = R``, ``post_returns = R^x``: each stream's discounted return;
    - ``advantages = max(R - V(s), R^x - V^x(s^x))``.

    With ``advantage="min"`` (the earlier version, here called *min-critic advantage*): both
    critics estimate the *total* return G, their combined estimate is ``min(V(s), V^x(s^x))``:

    - ``returns = post_returns = G`` (total rewards, bootstrapped with the min of the critics);
    - ``advantages = G - min(V(s), V^x(s^x))``.

    ``returns="mc"`` (paper) makes each return a discounted Monte-Carlo sum (lambda = 1) inside
    the rollout; where an episode continues past the rollout's last step it is bootstrapped
    with that stream's critic (``last_values`` for the pre-decision stream, ``last_post_values``
    -- the post-decision critic at a post-decision state of the next step -- for the other).
    ``returns="gae"`` uses GAE(``gae_lambda``) per stream instead (returns = advantages +
    values, as in SB3). With ``gae_lambda = 1`` both coincide.

    :param buffer_size: Number of steps per env (``n_steps``)
    :param observation_space: Observation space (also of post-decision observations)
    :param action_space: Action space
    :param device: PyTorch device
    :param gae_lambda: Lambda of GAE, used with ``returns="gae"`` only
    :param gamma: Discount factor
    :param n_envs: Number of parallel environments
    :param returns: ``"mc"`` or ``"gae"`` (see above)
    :param advantage: ``"max"`` or ``"min"`` (see above)
    """

    post_observations: np.ndarray
    post_rewards: np.ndarray
    post_values: np.ndarray
    post_returns: np.ndarray
    pre_advantages: np.ndarray
    post_advantages: np.ndarray
    terminal_values: np.ndarray
    terminal_post_values: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1.0,
        gamma: float = 0.99,
        n_envs: int = 1,
        returns: str = "mc",
        advantage: str = "max",
    ) -> None:
        if returns not in RETURNS:
            raise ValueError(f"returns must be one of {', '.join(RETURNS)}, got {returns!r}")
        if advantage not in ADVANTAGES:
            raise ValueError(f"advantage must be one of {', '.join(ADVANTAGES)}, got {advantage!r}")
        self.returns_mode = returns
        self.advantage_mode = advantage
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
        shape = (self.buffer_size, self.n_envs)
        self.post_observations = np.zeros(
            (*shape, *self.obs_shape), dtype=self.observation_space.dtype
        )
        self.post_rewards = np.zeros(shape, dtype=np.float32)
        self.post_values = np.zeros(shape, dtype=np.float32)
        self.post_returns = np.zeros(shape, dtype=np.float32)
        self.pre_advantages = np.zeros(shape, dtype=np.float32)
        self.post_advantages = np.zeros(shape, dtype=np.float32)
        self.terminal_values = np.zeros(shape, dtype=np.float32)
        self.terminal_post_values = np.zeros(shape, dtype=np.float32)
        self._full_batch: PostDecisionRolloutBufferSamples | None = None
        super().reset()

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        *,
        post_obs: np.ndarray,
        post_reward: np.ndarray,
        post_value: th.Tensor | None,
        terminal_value: np.ndarray | None = None,
        terminal_post_value: np.ndarray | None = None,
    ) -> None:
        """Store one step of every env.

        :param obs: Observations s (n_envs, ...)
        :param action: Actions
        :param reward: The env's (total) rewards r; the buffer stores ``r - post_reward``
        :param episode_start: Whether ``obs`` starts an episode
        :param value: V(s) at collection time
        :param log_prob: log pi(a|s) at collection time
        :param post_obs: Post-decision observations s^x
        :param post_reward: Deterministic rewards r^x of the decision
        :param post_value: V^x(s^x) at collection time, or None to fill ``post_values`` later
            (PDPPO evaluates the whole rollout in one pass)
        :param terminal_value: V(s_T) where the episode was truncated at this step, else 0
        :param terminal_post_value: the post-decision critic's bootstrap there, else 0
        """
        pos = self.pos
        if isinstance(self.observation_space, spaces.Discrete):
            post_obs = np.asarray(post_obs).reshape((self.n_envs, *self.obs_shape))
        self.post_observations[pos] = np.array(post_obs)
        self.post_rewards[pos] = np.asarray(post_reward, dtype=np.float32)
        if post_value is not None:
            self.post_values[pos] = post_value.clone().cpu().numpy().flatten()
        self.terminal_values[pos] = 0.0 if terminal_value is None else terminal_value
        self.terminal_post_values[pos] = 0.0 if terminal_post_value is None else terminal_post_value
        pre_reward = np.asarray(reward, dtype=np.float32) - self.post_rewards[pos]
        super().add(obs, action, pre_reward, episode_start, value, log_prob)

    def compute_returns_and_advantage(  # type: ignore[override]
        self,
        last_values: th.Tensor,
        dones: np.ndarray,
        last_post_values: th.Tensor | None = None,
    ) -> None:
        """Fill both streams' returns and advantages and the actor's advantage.

        :param last_values: V(s_T) of the observation after the last step (one per env)
        :param dones: Whether the last step ended the episode (one per env)
        :param last_post_values: V^x(s^x_T) of a post-decision state of that observation (one
            per env); needed whenever an episode continues past the last step
        """
        last_v = last_values.clone().cpu().numpy().flatten().astype(np.float32)
        if last_post_values is None:
            if not np.all(dones):
                raise ValueError(
                    "last_post_values is needed to bootstrap episodes cut by the rollout's end"
                )
            last_post_v = np.zeros_like(last_v)
        else:
            last_post_v = last_post_values.clone().cpu().numpy().flatten().astype(np.float32)
        dones = np.asarray(dones)
        starts, gamma, lam = self.episode_starts, self.gamma, self.gae_lambda

        if self.advantage_mode == "max":
            streams = (
                (self.rewards + gamma * self.terminal_values, self.values, last_v),
                (
                    self.post_rewards + gamma * self.terminal_post_values,
                    self.post_values,
                    last_post_v,
                ),
            )
            results = []
            for rewards, values, last in streams:
                if self.returns_mode == "mc":
                    returns = discounted_returns(rewards, starts, last, dones, gamma)
                    advantages = returns - values
                else:
                    advantages = gae_advantages(rewards, values, starts, last, dones, gamma, lam)
                    returns = advantages + values
                results.append((returns, advantages))
            (self.returns, self.pre_advantages), (self.post_returns, self.post_advantages) = results
            self.advantages = np.maximum(self.pre_advantages, self.post_advantages)
            return

        # "min": one total stream, valued by the smaller of the two critics.
        total_rewards = (
            self.rewards
            + self.post_rewards
            + gamma * np.minimum(self.terminal_values, self.terminal_post_values)
        )
        values = np.minimum(self.values, self.post_values)
        last = np.minimum(last_v, last_post_v)
        if self.returns_mode == "mc":
            returns = discounted_returns(total_rewards, starts, last, dones, gamma)
            advantages = returns - values
        else:
            advantages = gae_advantages(total_rewards, values, starts, last, dones, gamma, lam)
            returns = advantages + values
        self.returns, self.post_returns = returns, returns.copy()
        self.advantages = advantages
        self.pre_advantages, self.post_advantages = advantages.copy(), advantages.copy()

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Generator[PostDecisionRolloutBufferSamples, None, None]:
        """Minibatches in random order; the whole buffer at once when ``batch_size`` is None.

        The whole-buffer batch (PDPPO's default) is built once per rollout and yielded again by
        every epoch: its order does not matter, so it needs neither a shuffle nor new copies.
        """
        assert self.full, "the rollout buffer is not full yet"
        if not self.generator_ready:
            for name in FLAT_ARRAYS:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        total = self.buffer_size * self.n_envs
        if batch_size is None or batch_size >= total:
            if self._full_batch is None:
                self._full_batch = self._get_samples(slice(None))
            yield self._full_batch
            return
        indices = np.random.permutation(total)
        for start in range(0, total, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray | slice, env: VecNormalize | None = None
    ) -> PostDecisionRolloutBufferSamples:
        data = (
            self.observations[batch_inds],
            # float32 as in SB3 (MultiDiscrete and Discrete actions are cast back in train()).
            self.actions[batch_inds].astype(np.float32, copy=False),
            self.values[batch_inds].flatten(),
            self.log_probs[batch_inds].flatten(),
            self.advantages[batch_inds].flatten(),
            self.returns[batch_inds].flatten(),
            self.post_observations[batch_inds],
            self.post_values[batch_inds].flatten(),
            self.post_returns[batch_inds].flatten(),
        )
        return PostDecisionRolloutBufferSamples(*tuple(map(self.to_torch, data)))
