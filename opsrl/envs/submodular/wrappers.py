"""Turn any Gymnasium env into a submodular-reward env."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opsrl.envs.submodular.functions import SetFunction

__all__ = ["HISTORIES", "MarginalGainReward", "default_key"]

HISTORIES = (None, "time", "visited")


def default_key(observation: Any, info: dict[str, Any]) -> Hashable:
    """The element visited: ``info["cell"]`` if present, else the observation as a hashable.

    An integer observation (a Discrete space) is returned as an int, an array as the tuple
    of its entries.
    """
    if "cell" in info:
        return int(info["cell"])
    array = np.asarray(observation)
    if array.ndim == 0 and array.dtype.kind in "iub":
        return int(array)
    return tuple(array.ravel().tolist())


class _CallableState:
    """The set so far and its value, for a set function given as a plain callable."""

    __slots__ = ("elements", "value")

    def __init__(self, elements: frozenset, value: float) -> None:
        self.elements, self.value = elements, value


class MarginalGainReward(gym.Wrapper):
    """Replace an env's reward by the marginal gain of a set function of the visited elements.

    After every ``reset`` and ``step``, ``key(obs, info)`` names the element visited (by
    default :func:`default_key`: ``info["cell"]`` or the observation itself). The element
    reached by ``reset`` counts as visited; each step's reward becomes
    ``F(visited + element) - F(visited)``, so an episode's return is
    ``F(visited set) - F({first element})``. The env's own reward moves to
    ``info["original_reward"]`` and the value of the visited set is ``info["set_value"]``.

    Parameters
    ----------
    env:
        any Gymnasium env.
    set_function:
        a :class:`~opsrl.envs.submodular.functions.SetFunction` (elements are its integer
        indices; gains are incremental), or any callable ``F(frozenset) -> float`` of
        hashable elements (each step then costs two calls: ``F(V + e) - F(V)`` is computed
        as is, so F must be monotone submodular for the SubPO guarantees to hold).
    key:
        ``key(obs, info) -> element``; :func:`default_key` if None.
    history:
        what to append to the observation so that a Markovian policy sees the history the
        reward depends on: None (nothing), ``"time"`` (``t / horizon``) or ``"visited"``
        (``t / horizon`` and the 0/1 map of visited elements; needs a SetFunction). With a
        history the observation becomes a flat float32 Box: a Box observation is flattened,
        a Discrete one is one-hot encoded.
    horizon:
        the episode length used for ``t / horizon`` (clipped at 1); by default the env's
        ``spec.max_episode_steps``. Required with a history when the env has none.
    """

    def __init__(
        self,
        env: gym.Env,
        set_function: SetFunction | Callable[[frozenset], float],
        key: Callable[[Any, dict[str, Any]], Hashable] | None = None,
        history: str | None = None,
        horizon: int | None = None,
    ) -> None:
        super().__init__(env)
        incremental = isinstance(set_function, SetFunction)
        if not incremental and not callable(set_function):
            raise ValueError(
                f"set_function must be a SetFunction or a callable on sets, got {set_function!r}"
            )
        if key is not None and not callable(key):
            raise ValueError(f"key must be a callable (obs, info) -> element, got {key!r}")
        if history not in HISTORIES:
            raise ValueError(f"history must be one of None, 'time', 'visited', got {history!r}")
        if history == "visited" and not incremental:
            raise ValueError("history='visited' needs a SetFunction (a fixed set of elements)")
        self.set_function = set_function
        self.key = key if key is not None else default_key
        self.history = history
        self._incremental = incremental
        self._accumulator: Any = None
        self._t = 0

        if history is None:
            self.horizon = horizon
            return
        if horizon is None and env.spec is not None:
            horizon = env.spec.max_episode_steps
        if (
            horizon is None
            or isinstance(horizon, bool)
            or not isinstance(horizon, (int, np.integer))
            or horizon < 1
        ):
            raise ValueError(
                f"horizon must be a positive integer when history={history!r} and the env has "
                f"no max_episode_steps, got {horizon!r}"
            )
        self.horizon = int(horizon)
        base = env.observation_space
        if isinstance(base, spaces.Discrete):
            self._encode = self._one_hot
            low, high = np.zeros(int(base.n)), np.ones(int(base.n))
        elif isinstance(base, spaces.Box):
            self._encode = self._flatten
            low, high = base.low.ravel(), base.high.ravel()
        else:
            raise ValueError(
                f"history needs a Box or Discrete observation space, got {type(base).__name__}"
            )
        extra = 1 + (set_function.n_elements if history == "visited" else 0)
        self.observation_space = spaces.Box(
            np.concatenate([low, np.zeros(extra)]).astype(np.float32),
            np.concatenate([high, np.ones(extra)]).astype(np.float32),
            dtype=np.float32,
        )
        self._base_size = low.size
        self._visited = np.zeros(extra - 1, dtype=np.float32)

    # ----------------------------------------------------------------- set function
    def _fresh_state(self) -> Any:
        if self._incremental:
            return self.set_function.state()
        return _CallableState(frozenset(), float(self.set_function(frozenset())))

    def _add(self, element: Hashable) -> float:
        if self._incremental:
            if isinstance(element, bool) or not isinstance(element, (int, np.integer)):
                raise ValueError(
                    f"key must give integer element indices for a SetFunction, got {element!r}"
                )
            return self.set_function.add(self._accumulator, element)
        acc = self._accumulator
        if element in acc.elements:
            return 0.0
        elements = acc.elements | {element}
        value = float(self.set_function(elements))
        gain = value - acc.value
        acc.elements, acc.value = elements, value
        return gain

    @property
    def set_value(self) -> float:
        """F of the elements visited in the current episode."""
        return float(self._accumulator.value) if self._accumulator is not None else 0.0

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env; its first element counts as visited."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._accumulator = self._fresh_state()
        self._t = 0
        if self.history == "visited":
            self._visited[:] = 0.0
        self._visit(self.key(obs, info))
        info["set_value"] = self.set_value
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env; the reward is the marginal gain of the element reached."""
        if self._accumulator is None:
            raise RuntimeError("call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        gain = self._visit(self.key(obs, info))
        info["original_reward"] = reward
        info["set_value"] = self.set_value
        return self._observation(obs), gain, terminated, truncated, info

    # ----------------------------------------------------------------- helpers
    def _visit(self, element: Hashable) -> float:
        gain = self._add(element)
        if self.history == "visited":
            self._visited[element] = 1.0
        return gain

    def _one_hot(self, obs: Any) -> np.ndarray:
        encoded = np.zeros(self._base_size, dtype=np.float32)
        encoded[int(obs)] = 1.0
        return encoded

    @staticmethod
    def _flatten(obs: Any) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32).ravel()

    def _observation(self, obs: Any) -> Any:
        if self.history is None:
            return obs
        time = np.array([min(self._t / self.horizon, 1.0)], dtype=np.float32)
        parts = [self._encode(obs), time]
        if self.history == "visited":
            parts.append(self._visited)
        return np.concatenate(parts)
