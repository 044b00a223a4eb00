"""DR-RPO's policy: a softmax table pi_h(a | s) per step h of a finite-horizon episode."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

__all__ = ["SoftmaxPolicy", "episode_steps", "state_indices"]


def state_indices(observation: Any, n_states: int) -> np.ndarray:
    """Discrete observations (a scalar or a batch) as a flat int64 array of state indices."""
    array = np.asarray(observation)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(f"observations must be state indices 0..{n_states - 1}")
    elif array.dtype.kind not in "iub":
        raise ValueError(f"observations must be state indices 0..{n_states - 1}")
    flat = array.reshape(-1).astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= n_states):
        raise ValueError(f"observations must be state indices 0..{n_states - 1}, got {array}")
    return flat


def episode_steps(state: Any, episode_start: Any, n_observations: int, horizon: int) -> np.ndarray:
    """The step index h of each observation from a ``predict`` call's ``state`` (the steps
    returned by the previous call) and ``episode_start``; 0 where either says a new episode."""
    if state is None:
        steps = np.zeros(n_observations, dtype=np.int64)
    else:
        steps = np.asarray(state, dtype=np.int64).reshape(-1).copy()
        if steps.size != n_observations:
            raise ValueError(
                f"state holds {steps.size} step indices for {n_observations} observations"
            )
    if episode_start is not None:
        starts = np.asarray(episode_start, dtype=bool).reshape(-1)
        if starts.size == n_observations:
            steps[starts] = 0
    if np.any(steps >= horizon):
        raise ValueError(
            f"an episode ran past the horizon H={horizon}; pass episode_start=True at resets "
            "(or the state returned by the previous predict call)"
        )
    return steps


class SoftmaxPolicy(BasePolicy):
    """pi_h(a | s) for every step h < H, state s and action a, as a table of log-probabilities.

    The table is a buffer (saved with the model, moved with ``device``); DR-RPO writes it after
    each mirror-descent step. Being finite-horizon, the policy needs the step index of each
    observation: :meth:`predict` carries it in ``state`` like a recurrent policy's hidden
    state (``state=None`` or ``episode_start=True`` mean step 0; pass back the returned state
    on the next call, as SB3's ``evaluate_policy`` does).

    Args:
        observation_space: ``Discrete(S)``.
        action_space: ``Discrete(A)``.
        horizon: H, the number of steps of an episode.
    """

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, horizon: int = 1
    ) -> None:
        super().__init__(observation_space, action_space)
        if not isinstance(observation_space, spaces.Discrete):
            raise ValueError(f"SoftmaxPolicy needs Discrete observations, got {observation_space}")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"SoftmaxPolicy needs Discrete actions, got {action_space}")
        self.horizon = int(horizon)
        n_states, n_actions = int(observation_space.n), int(action_space.n)
        uniform = th.full((self.horizon, n_states, n_actions), -float(np.log(n_actions)))
        self.register_buffer("log_policy", uniform.double())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(horizon=self.horizon)
        return data

    def set_log_policy(self, log_policy: np.ndarray) -> None:
        """Replace the table with ``log_policy`` (H, S, A)."""
        with th.no_grad():
            self.log_policy.copy_(th.as_tensor(log_policy, dtype=th.float64))

    def log_policy_array(self) -> np.ndarray:
        """The table as a numpy array (H, S, A) (a copy)."""
        return self.log_policy.detach().cpu().numpy().copy()

    def _predict(self, observation: th.Tensor, deterministic: bool = False) -> th.Tensor:
        # without a step index this acts as at the episode's first step; predict() tracks it
        return self._act(th.zeros_like(observation.long()), observation.long(), deterministic)

    def _act(self, steps: th.Tensor, states: th.Tensor, deterministic: bool) -> th.Tensor:
        log_probs = self.log_policy[steps, states]
        if deterministic:
            return log_probs.argmax(dim=-1)
        return th.multinomial(log_probs.exp(), 1).squeeze(-1)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions for state indices (a scalar or a batch) at their step of the episode.

        Returns the actions and the step indices of the next call (the ``state``).
        """
        states = state_indices(observation, int(self.observation_space.n))
        steps = episode_steps(state, episode_start, len(states), self.horizon)
        with th.no_grad():
            actions = self._act(
                th.as_tensor(steps, device=self.log_policy.device),
                th.as_tensor(states, device=self.log_policy.device),
                deterministic,
            )
        actions_np = actions.cpu().numpy().astype(np.int64)
        if np.asarray(observation).ndim == 0:
            actions_np = actions_np.reshape(())
        return actions_np, steps + 1
