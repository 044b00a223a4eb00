"""Wrappers over MO-Gymnasium's (imported here, so this module needs the ``mo`` extra)."""

from __future__ import annotations

from typing import Any

import numpy as np
from mo_gymnasium.wrappers import LinearReward

__all__ = ["LinearScalarization"]


class LinearScalarization(LinearReward):
    """MO-Gymnasium's ``LinearReward`` (reward ``w . r``, the vector in
    ``info["vector_reward"]``, the weights in ``info["reward_weights"]``) with two fixes:
    the reward is a Python float, and ``info["reward_weights"]`` is a fresh copy at every
    step (``LinearReward`` hands out its own weight array, so a caller editing one step's
    info would change the weights, and Gymnasium's checker rejects infos sharing objects).
    """

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env and scalarize its reward vector."""
        observation, reward, terminated, truncated, info = super().step(action)
        info["reward_weights"] = np.array(self.w, copy=True)
        return observation, float(reward), terminated, truncated, info
