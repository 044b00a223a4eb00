"""SubPO's learning signals on a rollout of marginal gains (plain numpy, checkable by hand).

Arrays are laid out (n_steps, n_envs), one column per VecEnv slot, time running down the
rows. On an env whose per-step reward is the marginal gain ``r_t = F(tau_{0:t+1}) -
F(tau_{0:t})``, the rewards of an episode sum to F(tau) and

- the *reward-to-go* ``sum_{j >= i} r_j = F(tau) - F(tau_{0:i})`` is the weight SubPO's
  policy gradient gives to step i (Prajapat et al. 2024, the gradient of E[F(tau)]);
- the *one-step* gain ``r_i`` is what the released code's weight ``F(tau_{0:i+1})`` amounts to
  in expectation, ``F(tau_{0:i})`` acting as a baseline that the action at step i cannot change.

The baseline is the batch mean of the signal over the samples at the same step index of their
episode (all episodes of the grid envs have H steps, so that is the per-step batch mean).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "BASELINES",
    "SIGNALS",
    "complete_episodes",
    "reward_to_go",
    "submodular_signal",
    "time_step_baseline",
]

#: the learning signals :func:`submodular_signal` knows
SIGNALS = ("reward_to_go", "one_step")
#: the baselines :func:`submodular_signal` knows
BASELINES = ("time_step", "none")
#: added to the signal's standard deviation when it is normalised
STD_EPS = 1e-8


def reward_to_go(rewards: np.ndarray, episode_ends: np.ndarray) -> np.ndarray:
    """``sum_{j >= i} r_j`` up to the end of step i's episode, per slot (no discount).

    Args:
        rewards: (T, N) per-step rewards.
        episode_ends: (T, N) True where the step ended its episode (terminated or truncated:
            either way the trajectory, and F, stop there; nothing is bootstrapped).

    Returns:
        (T, N) float64. For an episode still running at the last row, the sum of the gains
        observed so far (see :func:`complete_episodes`).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    ends = np.asarray(episode_ends, dtype=bool)
    out = np.zeros_like(rewards)
    following = np.zeros(rewards.shape[1:], dtype=np.float64)
    for row in range(rewards.shape[0] - 1, -1, -1):
        following = rewards[row] + np.where(ends[row], 0.0, following)
        out[row] = following
    return out


def complete_episodes(episode_ends: np.ndarray) -> np.ndarray:
    """(T, N) True where the sample's episode ends within the rollout (its future is known)."""
    ends = np.asarray(episode_ends, dtype=bool)
    out = np.zeros_like(ends)
    ended_later = np.zeros(ends.shape[1:], dtype=bool)
    for row in range(ends.shape[0] - 1, -1, -1):
        ended_later = ends[row] | ended_later
        out[row] = ended_later
    return out


def time_step_baseline(signal: np.ndarray, time_steps: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """b(t) = mean of ``signal`` over the valid samples at step index t of their episode.

    Args:
        signal, time_steps, valid: (T, N) arrays; ``time_steps`` holds each sample's step index
            within its episode (0 for the first action).

    Returns:
        (T, N) float64, the baseline of each sample's step index (0 for invalid samples).
    """
    signal = np.asarray(signal, dtype=np.float64)
    steps = np.asarray(time_steps, dtype=np.int64)
    valid = np.asarray(valid, dtype=bool)
    out = np.zeros_like(signal)
    if not valid.any():
        return out
    counts = np.bincount(steps[valid])
    sums = np.bincount(steps[valid], weights=signal[valid], minlength=counts.size)
    means = sums / np.maximum(counts, 1)
    out[valid] = means[steps[valid]]
    return out


def submodular_signal(
    rewards: np.ndarray,
    episode_ends: np.ndarray,
    time_steps: np.ndarray,
    signal: Literal["reward_to_go", "one_step"] = "reward_to_go",
    baseline: Literal["time_step", "none"] = "time_step",
    normalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The weight of every sample's log-probability in SubPO's policy gradient.

    Args:
        rewards, episode_ends, time_steps: (T, N) rollout arrays (marginal gains, episode ends,
            step index within the episode).
        signal: ``"reward_to_go"`` (F(tau) - F(tau_{0:i}) on the marginal env) or
            ``"one_step"`` (r_i).
        baseline: ``"time_step"`` (subtract the batch mean at the same step index) or
            ``"none"``.
        normalize: divide by the batch standard deviation of the valid samples (a scale only:
            centring is the baseline's job).

    Returns:
        ``(weights, valid)``, both (T, N). ``valid`` is False for the reward-to-go of an
        episode that has not ended by the rollout's last row (its future gains are unknown and
        there is no critic to stand in for them); those samples carry weight 0 and stay out
        of the loss. With episodes of a fixed length H and rollouts of a multiple of H steps
        there are none.
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    rewards = np.asarray(rewards, dtype=np.float64)
    if signal == "reward_to_go":
        weights = reward_to_go(rewards, episode_ends)
        valid = complete_episodes(episode_ends)
    else:
        weights = rewards.copy()
        valid = np.ones(rewards.shape, dtype=bool)
    if baseline == "time_step":
        weights = weights - time_step_baseline(weights, time_steps, valid)
    if normalize and valid.sum() > 1:
        weights = weights / (weights[valid].std() + STD_EPS)
    return np.where(valid, weights, 0.0), valid
