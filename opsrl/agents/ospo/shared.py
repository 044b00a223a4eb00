"""Play a parameter-shared per-agent model on a platform view (all agents in one vector)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["SharedAgentPolicy"]


class SharedAgentPolicy:
    """A model trained on one agent's observation, acting for all agents of a platform view.

    A model trained with parameter sharing on a per-agent VecEnv (e.g. SB3 ``PPO`` on
    :class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv`) sees one vehicle's
    observation (D,) and returns one vehicle's action (A,). The platform env
    ``opsrl/RideSharing-v0`` concatenates the M vehicles' observations (M D,) and expects their
    actions concatenated (M A,). ``predict`` splits, calls the model on the M rows as one batch
    and concatenates, so the experiment runner evaluates such a model on the platform env like
    any other policy. Other attributes are the model's.

    :param model: anything with SB3's ``predict(observation, state, episode_start,
        deterministic)`` and an ``observation_space`` of shape (D,)
    """

    def __init__(self, model: Any) -> None:
        shape = getattr(getattr(model, "observation_space", None), "shape", None)
        if shape is None or len(shape) != 1:
            raise ValueError(
                f"SharedAgentPolicy needs a model with a flat observation space, got shape {shape}"
            )
        self.model = model
        self.agent_observation_dim = int(shape[0])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        **kwargs: Any,
    ) -> tuple[np.ndarray, Any]:
        """Actions (..., M A) for platform observations (..., M D)."""
        array = np.asarray(observation)
        d = self.agent_observation_dim
        if array.ndim == 0 or array.shape[-1] % d != 0:
            raise ValueError(
                f"platform observations must hold a multiple of {d} values (one agent's), got "
                f"shape {array.shape}"
            )
        lead = array.shape[:-1]
        agents = array.reshape(-1, d)
        actions, _ = self.model.predict(agents, deterministic=deterministic)
        actions = np.asarray(actions)
        per_agent = actions.reshape(agents.shape[0], -1)
        return per_agent.reshape(*lead, -1), state

    def __getattr__(self, name: str) -> Any:
        # attribute access (policy, device, ...) goes to the model
        return getattr(self.__dict__["model"], name)
