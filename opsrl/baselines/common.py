"""Baselines that apply to any env."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from opsrl.baselines.base import BaselinePolicy


class RandomPolicy(BaselinePolicy):
    """Uniformly random actions; with ``action_masks`` only among the allowed ones.

    For ``MultiDiscrete`` the mask is the concatenation of one mask per dimension
    (sb3-contrib's convention) and each dimension is drawn independently.
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        space = self.action_space
        # a mask cannot restrict a continuous action (Box envs ignore their masked entries)
        if action_masks is None or isinstance(space, spaces.Box):
            if isinstance(space, spaces.Box):
                return self.rng.uniform(space.low, space.high).astype(space.dtype), state
            if isinstance(space, spaces.Discrete):
                return np.int64(space.start + self.rng.integers(space.n)), state
            if isinstance(space, spaces.MultiDiscrete):
                return (space.start + self.rng.integers(space.nvec)).astype(space.dtype), state
            raise ValueError(f"random baseline does not support action space {space}")
        mask = np.asarray(action_masks, dtype=bool).ravel()
        if isinstance(space, spaces.Discrete):
            return np.int64(space.start + self.rng.choice(np.flatnonzero(mask))), state
        if isinstance(space, spaces.MultiDiscrete):
            choices = []
            offset = 0
            for size in space.nvec.ravel():
                allowed = np.flatnonzero(mask[offset : offset + size])
                choices.append(self.rng.choice(allowed))
                offset += size
            action = np.asarray(choices).reshape(space.nvec.shape) + space.start
            return action.astype(space.dtype), state
        raise ValueError(f"random baseline cannot apply action masks to {space}")
