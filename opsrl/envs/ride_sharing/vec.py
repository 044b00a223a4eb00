"""Every vehicle of N ride-sharing cities as one slot of an SB3 VecEnv (parameter sharing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils.seeding import np_random
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from opsrl.envs.batched import BatchedVecEnv, no_arguments
from opsrl.envs.ride_sharing.env import RideSharingCore

__all__ = ["RideSharingAgentVecEnv"]

#: env_method names answered per slot.
SUPPORTED_METHODS = ("action_mask", "action_masks")


class RideSharingAgentVecEnv(BatchedVecEnv):
    """N copies of :class:`~opsrl.envs.ride_sharing.env.RideSharingParallelEnv` with every
    vehicle as one VecEnv slot, so that one SB3 policy is shared by all vehicles.

    ``RideSharingAgentVecEnv(n_copies, seed=None, **env_kwargs)`` takes the keyword arguments
    of the parallel env (``render_mode`` excepted). With M vehicles per copy there are
    ``num_envs = n_copies * M`` slots, slot ``copy * M + vehicle`` (the layout of SuperSuit's
    ``pettingzoo_env_to_vec_env_v1`` + ``concat_vec_envs_v1``). Observation and action spaces
    are one agent's: ``Box(low, high, (D,))`` and ``Box(-1, 1, (K + 1,))`` scores.

    Copy c reproduces ``RideSharingParallelEnv(**env_kwargs)`` reset with ``seed + c`` (SB3's
    ``make_vec_env`` convention), step for step, including across automatic resets: each copy
    keeps its own generator. Each step the copies' vehicles are matched copy by copy (one
    Hungarian matching per copy); scores of slots whose mask is only "no order" are ignored.

    Rewards are per vehicle (its match reward). All copies end after ``episode_minutes``
    steps; then every slot is done, ``infos[i]["terminal_observation"]`` holds its last
    observation, ``infos[i]["TimeLimit.truncated"]`` is True (the city goes on, so SB3
    bootstraps) and the copy resets. Per-slot infos: ``matched_slot`` (-1 or 0..K-1),
    ``acted``, ``fairness_penalty`` (its copy's), ``copy``, ``minute`` (the minute the decision
    was taken, 0-based) and ``kpi`` (its copy's episode-to-date KPIs; one dict shared by the
    copy's slots).

    :meth:`action_masks` returns (num_envs, K + 1) bool. ``env_method("action_masks")`` and
    ``env_method("action_mask")`` give per-slot masks, ``get_attr("sim")``/``"core"`` the
    slot's copy's simulator/core; other attributes are shared; ``env_is_wrapped`` is always
    False.
    """

    supported_methods = SUPPORTED_METHODS
    read_only_attributes = ("sim", "core", "cores", "num_agents", "n_copies", "num_candidates")
    copy_noun = "slots"

    def __init__(self, n_copies: int, seed: int | None = None, **env_kwargs: Any) -> None:
        if (
            isinstance(n_copies, bool)
            or not isinstance(n_copies, (int, np.integer))
            or n_copies < 1
        ):
            raise ValueError(f"n_copies must be a positive integer, got {n_copies!r}")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
        if env_kwargs.get("render_mode") is not None:
            raise ValueError(
                "render_mode is not supported by RideSharingAgentVecEnv; leave it None"
            )
        env_kwargs.pop("render_mode", None)
        template = RideSharingCore(**env_kwargs)
        self.env_kwargs = dict(env_kwargs)
        self.n_copies = int(n_copies)
        self.num_agents = template.num_vehicles
        self.num_candidates = template.num_candidates
        self.cores = [template] + [template.clone() for _ in range(self.n_copies - 1)]
        self.render_mode = None
        observation_space = spaces.Box(
            template.observation_low, template.observation_high, dtype=np.float32
        )
        action_space = spaces.Box(-1.0, 1.0, shape=(self.num_candidates + 1,), dtype=np.float32)
        super().__init__(self.n_copies * self.num_agents, observation_space, action_space)
        self._rngs: list[np.random.Generator | None] = [None] * self.n_copies
        self._copy_seeds: list[int | None] = [None] * self.n_copies
        self._actions: np.ndarray | None = None
        self._started = False
        if seed is not None:
            self.seed(int(seed))

    # ----------------------------------------------------------------- VecEnv API
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed ``seed + c`` for copy c, applied at the next :meth:`reset`; returns each
        slot's copy seed."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._copy_seeds = [int(seed) + c for c in range(self.n_copies)]
        return [self._copy_seeds[c] for c in range(self.n_copies) for _ in range(self.num_agents)]

    def reset(self) -> np.ndarray:
        """Reset every copy (re-seeding those given a seed); observations (num_envs, D)."""
        observations = []
        for c, core in enumerate(self.cores):
            if self._copy_seeds[c] is not None or self._rngs[c] is None:
                self._rngs[c] = np_random(self._copy_seeds[c])[0]
            observations.append(core.reset(self._rngs[c]))
        self._copy_seeds = [None] * self.n_copies
        self._reset_seeds()
        self._reset_options()
        self._started = True
        self.reset_infos = [{"kpi": kpi} for kpi in self._kpis() for _ in range(self.num_agents)]
        return np.concatenate(observations)

    def step_wait(self) -> VecEnvStepReturn:
        """One minute for every copy; a finished copy resets at once."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        scores = np.asarray(self._actions, dtype=np.float64)
        self._actions = None
        width = self.num_candidates + 1
        if scores.shape != (self.num_envs, width):
            raise ValueError(
                f"actions must have shape (num_envs, num_candidates + 1) = ({self.num_envs}, "
                f"{width}), got {scores.shape}"
            )
        scores = scores.reshape(self.n_copies, self.num_agents, width)
        observations, rewards, dones, infos = [], [], [], []
        for c, core in enumerate(self.cores):
            minute = core.sim.minute
            copy_observations, result = core.dispatch(scores[c])
            kpi = core.sim.kpi()
            done = core.sim.done
            penalty = result.fairness_penalty
            copy_infos = [
                {
                    "matched_slot": slot,
                    "acted": acted,
                    "fairness_penalty": penalty,
                    "copy": c,
                    "minute": minute,
                    "kpi": kpi,
                }
                for slot, acted in zip(
                    result.matched_slot.tolist(), result.acted.tolist(), strict=True
                )
            ]
            if done:
                for i, info in enumerate(copy_infos):
                    info["terminal_observation"] = copy_observations[i]
                    info["TimeLimit.truncated"] = True
                copy_observations = core.reset(self._rngs[c])
                reset_kpi = core.sim.kpi()
                for a in range(self.num_agents):
                    self.reset_infos[c * self.num_agents + a] = {"kpi": reset_kpi}
            observations.append(copy_observations)
            rewards.append(result.rewards)
            dones.append(np.full(self.num_agents, done))
            infos.extend(copy_infos)
        return (
            np.concatenate(observations),
            np.concatenate(rewards).astype(np.float32),
            np.concatenate(dones),
            infos,
        )

    # ----------------------------------------------------------------- per-slot access
    def _per_copy_attributes(self) -> dict[str, Callable[[int], Any]]:
        """Per slot: its copy's ``sim`` or ``core``."""
        return {
            name: (lambda i, name=name: getattr(self.cores[i // self.num_agents], name))
            for name in ("sim", "core")
        }

    def _bound_method(self, name: str, index: int) -> Callable[..., Any]:
        return lambda: self.action_masks()[index].copy()

    def _call_method(
        self, name: str, indices: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        no_arguments(name, args, kwargs)
        masks = self.action_masks()
        return [masks[i].copy() for i in indices]

    # ----------------------------------------------------------------- extras
    def action_masks(self) -> np.ndarray:
        """(num_envs, K + 1) bool: slot 0 always, slot k + 1 where candidate k exists."""
        if not self._started:
            raise RuntimeError("call reset() first")
        return np.concatenate([core.sim.action_mask() for core in self.cores])

    def kpi(self) -> list[dict[str, float]]:
        """Episode-to-date KPIs of every copy."""
        return self._kpis()

    def _kpis(self) -> list[dict[str, float]]:
        return [core.sim.kpi() for core in self.cores]
