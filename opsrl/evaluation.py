"""Evaluate any policy (SB3 model or baseline) on a fixed list of episode seeds.

Every agent and baseline of an experiment is evaluated on exactly the same episodes: episode k
resets the env with ``seed = eval.seed + k``. The result per episode is its return, its length,
the env's final ``info["kpi"]`` and, where the policy can bound the episode (a
perfect-information model), that bound. On request, the first episode also keeps the env's
``episode_trace()`` (a DataFrame describing the episode, for the report's per-family plots).
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from opsrl.baselines.base import BaselinePolicy


@dataclass
class EpisodeResult:
    """One evaluation episode."""

    seed: int
    episode_return: float
    length: int
    kpi: dict[str, float] = field(default_factory=dict)
    #: an upper bound on this episode's return from the policy (None when it has none)
    bound: float | None = None
    #: the env's ``episode_trace()`` of this episode, when it was asked for and the env has one
    trace: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``eval.json`` (the trace is written separately, as CSV)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "trace"}


class ObservationNormalizedPolicy:
    """A trained model that acts on observations normalized with ``VecNormalize`` statistics.

    Wraps a model trained inside SB3's ``VecNormalize`` so that it can be evaluated on the plain
    env: ``predict`` normalizes the observation with ``vec_normalize``'s running statistics
    (read at call time, never updated) and passes everything else through, action masks
    included. Rewards are not touched: evaluation returns stay the env's own.
    """

    def __init__(self, model: Any, vec_normalize: Any) -> None:
        self.model, self.vec_normalize = model, vec_normalize

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        **kwargs: Any,
    ) -> tuple[np.ndarray, Any]:
        """``model.predict`` on the normalized observation."""
        return self.model.predict(
            self.vec_normalize.normalize_obs(observation),
            state=state,
            episode_start=episode_start,
            deterministic=deterministic,
            **kwargs,
        )

    def __getattr__(self, name: str) -> Any:
        # attribute access (policy, device, ...) goes to the model; ``__dict__`` lookups for
        # model and vec_normalize never reach here
        return getattr(self.__dict__["model"], name)


class PerAgentPolicy:
    """A shared per-agent policy acting on a multi-agent env's single-agent view.

    A model trained on a per-agent VecEnv (one slot per agent, parameter sharing) sees one
    agent's observation and returns one agent's action. The registered single-agent view
    concatenates the agents' observations (and action masks) and expects their actions
    concatenated, agent 0 first; this adapter splits, predicts for all agents in one batch
    and joins.
    """

    def __init__(
        self, model: Any, agent_observation_space: gym.Space, agent_action_space: gym.Space
    ) -> None:
        self.model = model
        self.agent_obs_size = int(np.prod(agent_observation_space.shape))
        self.agent_action_space = agent_action_space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, Any]:
        """Predict every agent's action from the view's concatenated observation."""
        flat = np.asarray(observation)
        if flat.size % self.agent_obs_size:
            raise ValueError(
                f"observation of size {flat.size} is not a whole number of agent observations "
                f"of size {self.agent_obs_size}"
            )
        observations = flat.reshape(-1, self.agent_obs_size)
        kwargs: dict[str, Any] = {}
        if action_masks is not None and "action_masks" in _predict_parameters(self.model):
            kwargs["action_masks"] = np.asarray(action_masks).reshape(len(observations), -1)
        actions, state = self.model.predict(
            observations, state=state, deterministic=deterministic, **kwargs
        )
        return np.asarray(actions).reshape(-1), state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["model"], name)


def _predict_parameters(policy: Any) -> set[str]:
    try:
        return set(inspect.signature(policy.predict).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return set()


def _wants_masks(policy: Any, env: gym.Env) -> bool:
    if not hasattr(env.unwrapped, "action_masks"):
        return False
    while isinstance(policy, ObservationNormalizedPolicy | PerAgentPolicy):
        policy = policy.model
    return "action_masks" in _predict_parameters(policy)


def _scalar_kpis(kpi: Any) -> dict[str, float]:
    if not isinstance(kpi, dict):
        return {}
    out = {}
    for key, value in kpi.items():
        if isinstance(value, bool | int | float | np.integer | np.floating) and math.isfinite(
            float(value)
        ):
            out[str(key)] = float(value)
    return out


def episode_trace(env: gym.Env) -> pd.DataFrame | None:
    """The env's ``episode_trace()`` of the episode just played, or None when it has none.

    A failing trace only costs the trace (with a warning), never the evaluation it belongs to.
    """
    method = getattr(env.unwrapped, "episode_trace", None)
    if method is None:
        return None
    try:
        trace = method()
    except Exception as error:  # noqa: BLE001 - a plot input must not sink a finished run
        name = getattr(env.spec, "id", None) or type(env.unwrapped).__name__
        warnings.warn(f"episode_trace() of {name} failed: {error}", stacklevel=2)
        return None
    return trace if isinstance(trace, pd.DataFrame) else None


def evaluate_policy_on_seeds(
    policy: Any,
    env: gym.Env,
    seeds: list[int],
    deterministic: bool = True,
    capture_trace: bool = False,
) -> list[EpisodeResult]:
    """Run one episode per seed with ``policy.predict`` and return their results.

    ``policy`` is an SB3 algorithm or an ``opsrl.baselines.BaselinePolicy``. Action masks are
    passed when the env has ``action_masks()`` and ``predict`` accepts them; a baseline's
    ``reset(env)`` is called after each env reset. With ``capture_trace`` the first episode's
    result carries the env's :func:`episode_trace` (None when the env has none).
    """
    use_masks = _wants_masks(policy, env)
    results = []
    for index, seed in enumerate(seeds):
        obs, info = env.reset(seed=int(seed))
        is_baseline = isinstance(policy, BaselinePolicy)
        if is_baseline:
            policy.reset(env)
        bound = policy.episode_bound(env) if is_baseline else None
        state = None
        episode_start = np.ones((1,), dtype=bool)
        total, length, done = 0.0, 0, False
        while not done:
            kwargs = {}
            if use_masks:
                kwargs["action_masks"] = env.unwrapped.action_masks()
            action, state = policy.predict(
                obs, state=state, episode_start=episode_start, deterministic=deterministic, **kwargs
            )
            obs, reward, terminated, truncated, info = env.step(action)
            episode_start = np.zeros((1,), dtype=bool)
            total += float(reward)
            length += 1
            done = terminated or truncated
        results.append(
            EpisodeResult(
                seed=int(seed),
                episode_return=total,
                length=length,
                kpi=_scalar_kpis(info.get("kpi")),
                bound=None if bound is None else float(bound),
                trace=episode_trace(env) if capture_trace and index == 0 else None,
            )
        )
    return results


def summarize_episodes(episodes: list[EpisodeResult]) -> dict[str, float]:
    """Mean return, its std, mean length, mean of every KPI and of the bound (if any)."""
    returns = np.array([e.episode_return for e in episodes], dtype=float)
    summary = {
        "return": float(returns.mean()),
        "return_std": float(returns.std()),
        "length": float(np.mean([e.length for e in episodes])),
    }
    kpi_names = sorted({k for e in episodes for k in e.kpi})
    for name in kpi_names:
        values = [e.kpi[name] for e in episodes if name in e.kpi]
        summary[f"kpi/{name}"] = float(np.mean(values))
    bounds = [e.bound for e in episodes if e.bound is not None]
    if len(bounds) == len(episodes):
        summary["bound"] = float(np.mean(bounds))
    return summary
