"""Throughput of the OR envs under each vectorisation, and of PPO training on them.

The measurement library behind ``opsrl bench`` (and ``benchmarks/vec_envs.py``):

- :func:`measure_env_steps`: env steps per second of one env id + kwargs stepped as a single
  env, in SB3's ``DummyVecEnv`` or ``SubprocVecEnv``, or as the family's batched VecEnv with
  N copies. Random valid actions: uniform in a Box; for Discrete/MultiDiscrete envs with
  ``action_masks`` uniform among each copy's allowed options. The random numbers are drawn
  before the clock starts; picking the allowed option needs the current masks, so the mask
  query (``env_method("action_masks")``, as MaskablePPO does it) is timed, alike for every
  vectorisation. Automatic resets are included, and fixed-length episodes are run whole
  where that costs at most a few times the time budget.
- :func:`measure_ppo`: env steps per second of ``learn`` with SB3 PPO (sb3-contrib
  MaskablePPO for masked envs), split into rollout collection, the part of it spent in the
  env (``step``, ``reset`` and the mask query) and training -- so that whether training is
  bound by the env or by the learner can be read off.
- :func:`run_bench` runs the whole table over the OR env families of ``ENV_TABLE``
  (lot sizing, job shop, UAM, ride sharing, ESG portfolio) with small default kwargs, plus a
  scaling series per family (step cost against problem size), and :func:`render_markdown`
  prints it. Batched columns appear for every env whose ``EnvEntry`` has a
  ``batched_entry_point``.

Timings are wall-clock and depend on the machine and its load; tables record the machine
(:func:`opsrl.machine.machine_note`) and report ratios measured in the same run.
"""

from __future__ import annotations

import datetime
import functools
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecEnvWrapper,
    VecMonitor,
)

from opsrl import registry
from opsrl.envs import ENV_TABLE, EnvEntry

__all__ = [
    "DEFAULT_KWARGS",
    "OR_FAMILIES",
    "SCALING",
    "BenchEnv",
    "BenchReport",
    "CLOCKS",
    "BenchSettings",
    "PPOTiming",
    "RandomValidActions",
    "ScalingRow",
    "StepRow",
    "make_vec",
    "measure_env_steps",
    "measure_ppo",
    "or_envs",
    "parse_copies",
    "render_markdown",
    "run_bench",
]

#: The OR env families (``opsrl.envs.<family>``) the table covers, in table order.
OR_FAMILIES: tuple[str, ...] = ("lot_sizing", "job_shop", "uam", "ride_sharing", "esg_portfolio")

#: Small settings per family for the table: quick to build and step, flat observations so
#: that PPO's MlpPolicy takes them.
DEFAULT_KWARGS: dict[str, dict[str, Any]] = {
    "lot_sizing": {"instance": "15x5"},
    "job_shop": {"instance": "ft06", "observation": "flat"},
    "uam": {"n_vertiports": 4, "n_aircraft": 10, "observation": "flat"},
    "ride_sharing": {"num_vehicles": 20},
    "esg_portfolio": {"n_assets": 30, "n_days": 300},
}

#: Problem sizes for the scaling table: family -> (size parameter, [(size label, kwargs)]).
SCALING: dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    "lot_sizing": (
        "items x machines",
        [(name, {"instance": name}) for name in ("5x3", "15x5", "25x15")],
    ),
    "job_shop": (
        "jobs x machines",
        [
            ("ft06 6x6", {"instance": "ft06", "observation": "flat"}),
            ("ft10 10x10", {"instance": "ft10", "observation": "flat"}),
            ("ta21 20x20", {"instance": "ta21", "observation": "flat"}),
        ],
    ),
    "uam": (
        "aircraft (4 vertiports)",
        [
            (str(n), {"n_vertiports": 4, "n_aircraft": n, "observation": "flat"})
            for n in (10, 20, 40)
        ],
    ),
    "ride_sharing": ("vehicles", [(str(n), {"num_vehicles": n}) for n in (20, 100, 500)]),
    "esg_portfolio": (
        "assets",
        [(str(n), {"n_assets": n, "n_days": 300}) for n in (10, 30, 100)],
    ),
}


# --------------------------------------------------------------------------------------------
# Envs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchEnv:
    """One env of the table: a registered id, its kwargs and where it comes from."""

    env_id: str
    kwargs: dict[str, Any]
    family: str
    #: ``module:Class`` of the family's batched VecEnv, None when it has none
    batched_entry_point: str | None = None

    @property
    def label(self) -> str:
        """The id without its namespace, e.g. ``LotSizing-v0``."""
        return self.env_id.split("/")[-1]

    @property
    def settings(self) -> str:
        """The kwargs as ``key=value`` pairs (``defaults`` when there are none)."""
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items()) or "defaults"


def _family(entry: EnvEntry) -> str | None:
    """``lot_sizing`` for ``opsrl.envs.lot_sizing.env:LotSizingEnv``; None outside the OR
    families (multi-objective variants, Mario)."""
    parts = entry.entry_point.split(":")[0].split(".")
    if len(parts) >= 3 and parts[:2] == ["opsrl", "envs"] and parts[2] in OR_FAMILIES:
        return parts[2]
    return None


def or_envs(selection: Sequence[str] | None = None) -> list[BenchEnv]:
    """The OR envs of ``ENV_TABLE`` with their default bench kwargs, in family order.

    ``selection`` narrows them down by env id (``opsrl/JobShop-v0``), label (``JobShop-v0``)
    or family name (``job_shop``); an unknown name raises a ValueError listing the known ones.
    """
    envs = []
    for entry in ENV_TABLE:
        family = _family(entry)
        if family is not None:
            envs.append(
                BenchEnv(
                    entry.id,
                    dict(DEFAULT_KWARGS.get(family, {})),
                    family,
                    entry.batched_entry_point,
                )
            )
    envs.sort(key=lambda env: OR_FAMILIES.index(env.family))
    if not selection:
        return envs
    chosen = []
    for name in selection:
        matches = [env for env in envs if name in (env.env_id, env.label, env.family)]
        if not matches:
            known = ", ".join(f"{env.env_id} ({env.family})" for env in envs)
            raise ValueError(f"unknown env '{name}' for opsrl bench; known: {known}")
        chosen.extend(env for env in matches if env not in chosen)
    return chosen


def _make_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` for VecEnv workers (a module-level function, so it pickles; importing this
    module imports opsrl, which registers the ids)."""
    registry.ensure_env_registered(env_id)
    return gym.make(env_id, **kwargs)


def _subproc_start_method() -> str | None:
    # fork starts workers at once (start-up is not timed, but spawning a fresh interpreter
    # per worker would dominate a quick run); elsewhere SB3's default
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return None


def make_vec(env: BenchEnv, kind: str, n_envs: int, seed: int = 0) -> VecEnv:
    """``n_envs`` copies of ``env`` as a ``dummy``, ``subproc`` or ``batched`` VecEnv, copy i
    seeded with ``seed + i`` (at the first ``reset``)."""
    if kind == "batched":
        if env.batched_entry_point is None:
            raise ValueError(f"{env.env_id} has no batched VecEnv (no batched_entry_point)")
        batched_cls = registry.load_object(env.batched_entry_point)
        venv = batched_cls(n_envs, seed=seed, **env.kwargs)
    else:
        factories = [functools.partial(_make_env, env.env_id, env.kwargs)] * n_envs
        if kind == "dummy":
            venv = DummyVecEnv(factories)
        elif kind == "subproc":
            venv = SubprocVecEnv(factories, start_method=_subproc_start_method())
        else:
            raise ValueError(f"vectorisation must be dummy, subproc or batched, got {kind!r}")
        venv.seed(seed)
    return venv


# --------------------------------------------------------------------------------------------
# Random valid actions
# --------------------------------------------------------------------------------------------


def _is_masked(action_space: spaces.Space, env: gym.Env) -> bool:
    """Whether the env's discrete options come with masks (MaskablePPO's contract)."""
    return isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)) and hasattr(
        env.unwrapped, "action_masks"
    )


class RandomValidActions:
    """Random valid actions for ``n_copies`` copies from random numbers drawn up front.

    A Box gets actions uniform in the box (a standard normal where unbounded), Discrete and
    MultiDiscrete options uniform among those allowed: the k-th allowed option with
    ``k = floor(u * allowed)`` for a pre-drawn uniform u, so the pick is cheap and
    vectorised; without masks every option is allowed. ``batches`` draws are cycled.
    """

    def __init__(
        self, action_space: spaces.Space, n_copies: int, seed: int = 0, batches: int = 64
    ) -> None:
        rng = np.random.default_rng(seed)
        self.action_space = action_space
        if isinstance(action_space, spaces.Box):
            size = (batches, n_copies, *action_space.shape)
            low = np.broadcast_to(action_space.low, size)
            high = np.broadcast_to(action_space.high, size)
            bounded = np.isfinite(low) & np.isfinite(high)
            draws = np.where(
                bounded,
                low + rng.random(size) * np.where(bounded, high - low, 0.0),
                rng.standard_normal(size),
            )
            self._draws = draws.astype(action_space.dtype)
            self._sizes = None
        elif isinstance(action_space, spaces.Discrete):
            self._sizes = np.array([action_space.n])
            self._start = int(action_space.start)
            self._draws = rng.random((batches, n_copies, 1))
        elif isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
            self._sizes = np.asarray(action_space.nvec, dtype=np.int64)
            self._start = 0
            self._draws = rng.random((batches, n_copies, self._sizes.size))
        else:
            raise ValueError(
                f"opsrl bench draws actions for Box, Discrete and 1-D MultiDiscrete spaces, "
                f"not {action_space}"
            )

    def __call__(self, step: int, masks: np.ndarray | None = None) -> np.ndarray:
        """Actions of all copies for ``step``, (n_copies, ...), given their masks
        ((n_copies, sum of the option counts), or None)."""
        draws = self._draws[step % len(self._draws)]
        if self._sizes is None:
            return draws
        if masks is None:
            picks = np.floor(draws * self._sizes).astype(np.int64)
        else:
            masks = np.asarray(masks, dtype=bool).reshape(draws.shape[0], -1)
            picks = np.empty(draws.shape, dtype=np.int64)
            offset = 0
            for dim, size in enumerate(self._sizes.tolist()):
                allowed = masks[:, offset : offset + size]
                offset += size
                counts = allowed.sum(axis=1)
                k = np.floor(draws[:, dim] * counts)
                # the (k+1)-th allowed option; option 0 where nothing is allowed
                picks[:, dim] = np.argmax(np.cumsum(allowed, axis=1) > k[:, None], axis=1)
        if isinstance(self.action_space, spaces.Discrete):
            return picks[:, 0] + self._start
        return picks


# --------------------------------------------------------------------------------------------
# Env steps per second
# --------------------------------------------------------------------------------------------

#: untimed steps before each measurement
WARMUP_STEPS = 2

#: what the env-step measurements time: wall-clock seconds, or this process's CPU seconds
#: (steadier on a shared machine; SubprocVecEnv, whose work runs in other processes, is
#: then still timed by the wall clock)
CLOCKS = ("wall", "cpu")


def _clock(clock: str) -> Callable[[], float]:
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    return time.process_time if clock == "cpu" else time.perf_counter


def _vec_masks(venv: VecEnv) -> np.ndarray:
    # what sb3-contrib's get_action_masks does for MaskablePPO
    return np.stack(venv.env_method("action_masks"))


def _time_single(
    env: BenchEnv, seconds: float, repeats: int, seed: int, clock: str = "wall"
) -> tuple[float, int | None]:
    """Median steps/s of one ``gym.make`` env, and the episode length if it is fixed."""
    single = _make_env(env.env_id, env.kwargs)
    masked = _is_masked(single.action_space, single)
    sampler = RandomValidActions(single.action_space, 1, seed=seed)
    now = _clock(clock)
    single.reset(seed=seed)
    lengths: list[int] = []
    length = 0
    # untimed first steps: Gymnasium's passive checker and lazy set-up run on the first step
    for step in range(WARMUP_STEPS):
        masks = single.unwrapped.action_masks()[None] if masked else None
        _, _, terminated, truncated, _ = single.step(sampler(step, masks)[0])
        length += 1
        if terminated or truncated:
            single.reset()
            length = 0

    def run() -> float:
        nonlocal length
        steps = 0
        start = now()
        while True:
            masks = single.unwrapped.action_masks()[None] if masked else None
            _, _, terminated, truncated, _ = single.step(sampler(steps, masks)[0])
            steps += 1
            length += 1
            if terminated or truncated:
                lengths.append(length)
                length = 0
                single.reset()
            elapsed = now() - start
            if elapsed >= seconds:
                return steps / elapsed

    rate = statistics.median(run() for _ in range(repeats))
    single.close()
    fixed = lengths[0] if lengths and len(set(lengths)) == 1 else None
    return rate, fixed


def _time_vec(
    venv: VecEnv,
    masked: bool,
    seconds: float,
    repeats: int,
    seed: int,
    episode_length: int | None,
    clock: str = "wall",
) -> float:
    """Median env steps/s (copies x vec steps) of a VecEnv with random valid actions."""
    now = _clock(clock)
    sampler = RandomValidActions(venv.action_space, venv.num_envs, seed=seed)
    venv.reset()
    total = 0
    for _ in range(WARMUP_STEPS):  # untimed, as for the single env
        venv.step(sampler(total, _vec_masks(venv) if masked else None))
        total += 1

    def run() -> float:
        nonlocal total
        steps = 0
        start = now()
        while True:
            masks = _vec_masks(venv) if masked else None
            venv.step(sampler(total, masks))
            steps += 1
            total += 1
            elapsed = now() - start
            if elapsed < seconds:
                continue
            # whole episodes when they are cheap enough: resets weigh as in training
            whole = episode_length is None or total % episode_length == 0
            if whole or elapsed >= 3 * seconds:
                return steps * venv.num_envs / elapsed

    return statistics.median(run() for _ in range(repeats))


def measure_env_steps(
    env: BenchEnv,
    kind: str,
    n_envs: int = 1,
    seconds: float = 1.0,
    repeats: int = 3,
    seed: int = 0,
    episode_length: int | None = None,
    clock: str = "wall",
) -> float:
    """Median env steps per second of ``env`` stepped as ``kind`` with ``n_envs`` copies.

    ``kind`` is ``single`` (one ``gym.make`` env in a Python loop), ``dummy``, ``subproc`` or
    ``batched``. Each of ``repeats`` runs steps for at least ``seconds`` and, when
    ``episode_length`` (a fixed episode length) is given, on to a whole number of episodes
    unless that takes more than 3x ``seconds``. Construction is not timed. ``clock="cpu"``
    times this process's CPU seconds instead of the wall clock (not for ``subproc``, whose
    steps run in worker processes: it keeps the wall clock).
    """
    _clock(clock)
    if kind == "single":
        return _time_single(env, seconds, repeats, seed, clock)[0]
    if kind == "subproc":
        clock = "wall"
    venv = make_vec(env, kind, n_envs, seed)
    try:
        probe = _make_env(env.env_id, env.kwargs)
        masked = _is_masked(probe.action_space, probe)
        probe.close()
        return _time_vec(venv, masked, seconds, repeats, seed, episode_length, clock)
    finally:
        venv.close()


# --------------------------------------------------------------------------------------------
# PPO training throughput
# --------------------------------------------------------------------------------------------


class _EnvClock(VecEnvWrapper):
    """Seconds spent inside the wrapped VecEnv: step, reset and env_method (the mask query)."""

    def __init__(self, venv: VecEnv) -> None:
        super().__init__(venv)
        self.seconds = 0.0

    def reset(self) -> Any:
        start = time.perf_counter()
        obs = self.venv.reset()
        self.seconds += time.perf_counter() - start
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        start = time.perf_counter()
        self.venv.step_async(actions)
        self.seconds += time.perf_counter() - start

    def step_wait(self) -> Any:
        start = time.perf_counter()
        result = self.venv.step_wait()
        self.seconds += time.perf_counter() - start
        return result

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any):
        start = time.perf_counter()
        result = self.venv.env_method(method_name, *args, indices=indices, **kwargs)
        self.seconds += time.perf_counter() - start
        return result


@dataclass
class PPOTiming:
    """One timed ``learn``: env steps, and seconds in all, collecting, in the env, training."""

    algorithm: str
    kind: str
    n_envs: int
    steps: int
    total_s: float
    collection_s: float
    env_s: float

    @property
    def steps_per_s(self) -> float:
        """Env steps per second of ``learn``."""
        return self.steps / self.total_s

    @property
    def training_s(self) -> float:
        """Seconds of ``learn`` outside rollout collection (gradient steps)."""
        return self.total_s - self.collection_s

    @property
    def bound_by(self) -> str:
        """``env`` when the env took most of ``learn``'s time, else ``learner``."""
        return "env" if self.env_s > self.total_s - self.env_s else "learner"


def measure_ppo(
    env: BenchEnv,
    kind: str,
    n_envs: int,
    total_steps: int,
    rollout: int = 2048,
    n_epochs: int = 10,
    batch_size: int = 64,
    device: str = "cpu",
    seed: int = 0,
) -> PPOTiming:
    """Time ``learn(total_steps)`` of PPO (MaskablePPO for masked envs) on ``n_envs`` copies.

    ``rollout`` env steps per update (``n_steps = rollout // n_envs`` per copy), SB3's other
    defaults (``n_epochs`` 10, ``batch_size`` 64, MlpPolicy, or MultiInputPolicy for dict
    observations). The VecEnv is wrapped in ``VecMonitor`` as the experiment runner does;
    construction and the model's set-up are not timed.
    """
    from stable_baselines3 import PPO

    from opsrl.machine import PhaseTimer

    probe = _make_env(env.env_id, env.kwargs)
    masked = _is_masked(probe.action_space, probe)
    policy = "MultiInputPolicy" if isinstance(probe.observation_space, spaces.Dict) else "MlpPolicy"
    probe.close()
    if masked:
        from sb3_contrib import MaskablePPO as algorithm
    else:
        algorithm = PPO
    clock = _EnvClock(VecMonitor(make_vec(env, kind, n_envs, seed)))
    n_steps = max(1, rollout // n_envs)
    model = algorithm(
        policy,
        clock,
        n_steps=n_steps,
        batch_size=min(batch_size, n_steps * n_envs),
        n_epochs=n_epochs,
        seed=seed,
        device=device,
        verbose=0,
    )
    timer = PhaseTimer()
    clock.seconds = 0.0
    start = time.perf_counter()
    model.learn(total_steps, callback=timer)
    total_s = time.perf_counter() - start
    clock.close()
    return PPOTiming(
        algorithm=algorithm.__name__,
        kind=kind,
        n_envs=n_envs,
        steps=int(model.num_timesteps),
        total_s=total_s,
        collection_s=timer.collection_s,
        env_s=clock.seconds,
    )


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def parse_copies(text: str) -> tuple[int, ...]:
    """``"64,1024,4096"`` -> ``(64, 1024, 4096)``; a ValueError names a bad entry."""
    copies = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise ValueError(
                f"--copies takes positive integers separated by commas (e.g. 64,1024,4096), "
                f"got {text!r}"
            )
        copies.append(int(part))
    return tuple(copies)


@dataclass
class BenchSettings:
    """How much to measure. :meth:`quick` gives a smoke run of a few seconds per env."""

    #: copies of the batched env, one column each
    copies: tuple[int, ...] = (64, 1024, 4096)
    #: copies in SB3's DummyVecEnv (the reference of the ratios)
    dummy_envs: int = 64
    #: worker processes of SB3's SubprocVecEnv
    subproc_envs: int = 2
    #: minimum seconds per measurement (median of ``repeats``), by ``clock`` (see CLOCKS)
    seconds: float = 1.0
    repeats: int = 3
    clock: str = "wall"
    #: env steps of each PPO ``learn`` (0: no PPO table)
    ppo_steps: int = 8192
    #: copies per PPO run (the same for every vectorisation; SubprocVecEnv: ``subproc_envs``)
    ppo_envs: int = 16
    #: env steps per PPO update, and PPO's epochs
    ppo_rollout: int = 2048
    ppo_epochs: int = 10
    #: torch device of the PPO runs
    device: str = "cpu"
    #: run the scaling series, and how many of each family's sizes (None: all)
    scaling: bool = True
    scaling_sizes: int | None = None
    seed: int = 0

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """Tiny settings for a smoke run: every column, few steps."""
        settings = cls(
            copies=(16, 64),
            dummy_envs=8,
            subproc_envs=2,
            seconds=0.05,
            repeats=1,
            ppo_steps=256,
            ppo_envs=4,
            ppo_rollout=128,
            ppo_epochs=1,
            scaling_sizes=2,
        )
        for name, value in overrides.items():
            setattr(settings, name, value)
        return settings


@dataclass
class StepRow:
    """Env steps/s of one env under each vectorisation (label -> steps/s)."""

    env: BenchEnv
    rates: dict[str, float]
    episode_length: int | None

    def ratio(self, label: str, reference: str) -> float:
        """``rates[label] / rates[reference]``."""
        return self.rates[label] / self.rates[reference]


@dataclass
class ScalingRow:
    """Step cost of one problem size: microseconds per env step, single and batched."""

    env: BenchEnv
    parameter: str
    size: str
    single_us: float
    batched_us: float | None
    batched_copies: int | None


@dataclass
class BenchReport:
    """Everything one ``opsrl bench`` run measured."""

    settings: BenchSettings
    steps: list[StepRow] = field(default_factory=list)
    ppo: list[tuple[BenchEnv, PPOTiming]] = field(default_factory=list)
    scaling: list[ScalingRow] = field(default_factory=list)
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())
    machine: str = ""
    seconds: float = 0.0


def _labels(settings: BenchSettings) -> tuple[str, str, str, list[str]]:
    return (
        "single",
        f"DummyVecEnv({settings.dummy_envs})",
        f"SubprocVecEnv({settings.subproc_envs})",
        [f"batched({n})" for n in settings.copies],
    )


def _progress_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_bench(
    settings: BenchSettings,
    envs: Sequence[BenchEnv] | None = None,
    progress: Callable[[str], None] | None = _progress_to_stderr,
) -> BenchReport:
    """Measure the step table, the PPO table and the scaling table for ``envs`` (default: all
    the OR envs of ``ENV_TABLE``)."""
    from opsrl.machine import machine_note

    envs = list(or_envs() if envs is None else envs)
    say = progress or (lambda message: None)
    report = BenchReport(settings, machine=machine_note())
    started = time.perf_counter()
    single, dummy, subproc, batched = _labels(settings)
    timing = dict(
        seconds=settings.seconds,
        repeats=settings.repeats,
        seed=settings.seed,
        clock=settings.clock,
    )
    for env in envs:
        say(f"{env.label}: env steps ({env.settings})")
        rate, length = _time_single(env, **timing)
        rates = {single: rate}
        rates[dummy] = measure_env_steps(
            env, "dummy", settings.dummy_envs, episode_length=length, **timing
        )
        rates[subproc] = measure_env_steps(
            env, "subproc", settings.subproc_envs, episode_length=length, **timing
        )
        if env.batched_entry_point is not None:
            for label, n in zip(batched, settings.copies, strict=True):
                rates[label] = measure_env_steps(env, "batched", n, episode_length=length, **timing)
        report.steps.append(StepRow(env, rates, length))

    if settings.ppo_steps > 0:
        for env in envs:
            kinds = [("dummy", settings.ppo_envs), ("subproc", settings.subproc_envs)]
            if env.batched_entry_point is not None:
                kinds.append(("batched", settings.ppo_envs))
            for kind, n_envs in kinds:
                say(f"{env.label}: PPO on {kind}({n_envs})")
                ppo = measure_ppo(
                    env,
                    kind,
                    n_envs,
                    settings.ppo_steps,
                    rollout=settings.ppo_rollout,
                    n_epochs=settings.ppo_epochs,
                    device=settings.device,
                    seed=settings.seed,
                )
                report.ppo.append((env, ppo))

    if settings.scaling:
        # batched at the largest copy count up to 1024 (the target's), else the smallest
        within = [n for n in settings.copies if n <= 1024]
        copies = max(within) if within else min(settings.copies)
        for env in envs:
            parameter, sizes = SCALING.get(env.family, ("", []))
            for size, kwargs in sizes[: settings.scaling_sizes]:
                sized = BenchEnv(env.env_id, kwargs, env.family, env.batched_entry_point)
                say(f"{env.label}: scaling, {parameter} = {size}")
                rate, length = _time_single(sized, **timing)
                batched_us = None
                if env.batched_entry_point is not None:
                    batched_rate = measure_env_steps(
                        sized, "batched", copies, episode_length=length, **timing
                    )
                    batched_us = 1e6 / batched_rate
                report.scaling.append(
                    ScalingRow(
                        sized,
                        parameter,
                        size,
                        1e6 / rate,
                        batched_us,
                        copies if batched_us is not None else None,
                    )
                )
    report.seconds = time.perf_counter() - started
    return report


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def render_markdown(report: BenchReport) -> str:
    """The report as markdown: the step table, the PPO table and the scaling table."""
    settings = report.settings
    single, dummy, subproc, batched = _labels(settings)
    lines = [
        "### Env steps per second",
        "",
        f"Random valid actions, automatic resets included, median of {settings.repeats} "
        f"run(s) of at least {settings.seconds:g} s each"
        + (
            " of this process's CPU time (SubprocVecEnv: wall clock)"
            if settings.clock == "cpu"
            else ""
        )
        + f"; in brackets: batched / {dummy}.",
        "",
        "| env | settings | " + " | ".join([single, dummy, subproc, *batched]) + " |",
        "|---|---|" + "---:|" * (3 + len(batched)),
    ]
    for row in report.steps:
        cells = [_rate(row.rates[single]), _rate(row.rates[dummy]), _rate(row.rates[subproc])]
        for label in batched:
            if label in row.rates:
                cells.append(f"{_rate(row.rates[label])} ({row.ratio(label, dummy):.1f}x)")
            else:
                cells.append("-")
        lines.append(f"| {row.env.label} | {row.env.settings} | " + " | ".join(cells) + " |")

    if report.ppo:
        lines += [
            "",
            "### PPO training throughput",
            "",
            f"`learn({settings.ppo_steps})`, {settings.ppo_rollout} env steps per update, "
            f"{settings.ppo_epochs} epochs, batch 64, device {settings.device}; seconds split "
            "into rollout collection (of which inside the env: step, reset, mask query) and "
            "training.",
            "",
            "| env | algorithm | vectorisation | env steps/s | collection s | of which env s "
            "| training s | bound by |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for env, ppo in report.ppo:
            kind = {"dummy": "DummyVecEnv", "subproc": "SubprocVecEnv", "batched": "batched"}
            lines.append(
                f"| {env.label} | {ppo.algorithm} | {kind[ppo.kind]}({ppo.n_envs}) | "
                f"{_rate(ppo.steps_per_s)} | {ppo.collection_s:.2f} | {ppo.env_s:.2f} | "
                f"{ppo.training_s:.2f} | {ppo.bound_by} |"
            )

    if report.scaling:
        lines += [
            "",
            "### Step cost against problem size",
            "",
            "Microseconds per env step: one env, and per copy in the batched env.",
            "",
            "| env | size parameter | size | single us/step | batched us/step (copies) |",
            "|---|---|---|---:|---:|",
        ]
        for row in report.scaling:
            batched_cell = (
                "-" if row.batched_us is None else f"{row.batched_us:,.2f} ({row.batched_copies})"
            )
            lines.append(
                f"| {row.env.label} | {row.parameter} | {row.size} | {row.single_us:,.1f} | "
                f"{batched_cell} |"
            )
    lines += ["", f"{report.date}; {report.machine}; {report.seconds:.0f} s in all."]
    return "\n".join(lines) + "\n"
