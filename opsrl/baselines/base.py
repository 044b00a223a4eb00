"""The two faces of every baseline: a policy for the experiment runner and a solver result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np


@dataclass
class Solution:
    """What ``solve(instance, time_limit=...)`` returns.

    ``status`` is ``optimal`` (proved), ``feasible`` (a solution, optimality not proved),
    ``bound`` (only a bound was found) or ``infeasible``/``unknown``.
    """

    objective: float | None
    status: Literal["optimal", "feasible", "bound", "infeasible", "unknown"]
    bound: float | None = None
    wall_time: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)


class BaselinePolicy:
    """A policy with SB3's ``predict`` signature, built for one evaluation env.

    The runner calls ``reset(env)`` right after every ``env.reset(seed=...)`` so that a baseline
    that plans (rolling-horizon MIP, base stock) can read the env's instance and state, then
    ``predict(obs)`` at every step. A baseline that can bound the episode's optimal return
    (for example a perfect-information MIP on the realised demand path) implements
    ``episode_bound(env)``; the runner records it and reports the gap to it.
    """

    def __init__(self, env: gym.Env, seed: int | None = None) -> None:
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.rng = np.random.default_rng(seed)

    def reset(self, env: gym.Env) -> None:
        """Called after each episode reset; the default keeps no episode state."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Return ``(action, state)`` like ``stable_baselines3`` algorithms."""
        raise NotImplementedError

    def episode_bound(self, env: gym.Env) -> float | None:
        """An upper bound on this episode's return, or None when the baseline has none."""
        return None


def check_time_limit(time_limit: Any) -> float:
    """A solver time limit: a positive, finite number of seconds (one-line ValueError if not)."""
    if (
        isinstance(time_limit, bool)
        or not isinstance(time_limit, (int, float, np.integer, np.floating))
        or not np.isfinite(time_limit)
        or time_limit <= 0
    ):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    return float(time_limit)


def check_positive_int(name: str, value: Any) -> int:
    """A positive integer argument called ``name`` (one-line ValueError if not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def require_env(
    obj: Any, attributes: tuple[str, ...], who: str, family: str, env_name: str, prefix: str = ""
) -> Any:
    """Return ``obj`` (an env or its simulator) if it has every attribute a baseline reads.

    Otherwise a one-line ValueError: ``"<who> needs <family> (<env id>); <env> has no '<attr>'"``.
    """
    for attribute in attributes:
        if not hasattr(obj, attribute):
            raise ValueError(f"{who} needs {family}; {env_name} has no '{prefix}{attribute}'")
    return obj
