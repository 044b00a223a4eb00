"""Env steps per second of Super Mario Bros. (NES emulator) and of the ROM-free side-scroller.

A random policy (actions from a seeded generator) plays for ``--seconds`` per setting, the
median of ``--repeats`` measurements is reported:

- the raw game, one emulated 60 Hz frame per step: gym-super-mario-bros 9.1.0's stage env
  (nes-py) on 1-1 with ``SIMPLE_MOVEMENT`` controller bytes, and the side-scroller's
  ``SideScrollerScreenEnv``;
- the preprocessed env (``opsrl/Mario-1-1-v0``, ``opsrl/SideScroller-v0``: frame skip 4 with
  max pooling, grayscale 84 x 84, stack of 4), one agent step = 4 frames, single env;
- the same in an SB3 ``SubprocVecEnv`` with 2 workers (steps of both copies counted).

"frames/s" puts every setting on the emulator's clock; "vs raw" divides it by the raw game's
frames/s. Mario rows need the optional install (``pip install --no-deps
--ignore-requires-python gym-super-mario-bros==9.1.0 nes-py==9.0.1``) and are left out
without it. Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/mario_steps.py      # or: opsrl bench mario_steps
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable

import numpy as np

FRAME_SKIP = 4


def time_single(make_env: Callable, n_actions: int, seconds: float, seed: int) -> float:
    """Steps per second of one env with uniformly random actions."""
    env = make_env()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(n_actions)))
        steps += 1
        if terminated or truncated:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def time_subproc(env_id: str, n_envs: int, seconds: float, seed: int) -> float:
    """Env steps per second (all copies) of a SubprocVecEnv with random actions."""
    from opsrl.experiment import make_vec_env
    from opsrl.spec import EnvSpec

    venv = make_vec_env(EnvSpec(env_id), n_envs=n_envs, seed=seed, vec_env="subproc")
    rng = np.random.default_rng(seed)
    venv.reset()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        venv.step(rng.integers(venv.action_space.n, size=n_envs))
        steps += n_envs
    rate = steps / (time.perf_counter() - start)
    venv.close()
    return rate


class RawMario:
    """gym-super-mario-bros' 1-1 stage env taking ``SIMPLE_MOVEMENT`` indices (the raw game,
    one frame per step, its screen view not copied)."""

    def __init__(self) -> None:
        from opsrl.envs.mario._nes import MarioStageGame
        from opsrl.envs.mario.env import JoypadActions

        self.env = JoypadActions(MarioStageGame(1, 1))

    def reset(self, seed: int | None = None) -> tuple:
        return self.env.reset(seed=seed)

    def step(self, action: int) -> tuple:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


class RawSideScroller:
    """The side-scroller's screen env taking ``SIMPLE_MOVEMENT`` indices."""

    def __init__(self) -> None:
        from opsrl.envs.mario.env import JoypadActions
        from opsrl.envs.mario.side_scroller import SideScrollerScreenEnv

        self.env = JoypadActions(SideScrollerScreenEnv())

    def reset(self, seed: int | None = None) -> tuple:
        return self.env.reset(seed=seed)

    def step(self, action: int) -> tuple:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


def measure(args: argparse.Namespace) -> dict[tuple[str, str], tuple[float, float]]:
    """(game, setting) -> (env steps/s, emulated frames/s)."""
    import gymnasium as gym

    import opsrl  # noqa: F401 - registers the ids
    from opsrl.envs.mario import mario_installed

    games = [("side-scroller", "opsrl/SideScroller-v0", RawSideScroller)]
    if mario_installed() and not args.no_mario:
        games.insert(0, ("Mario 1-1", "opsrl/Mario-1-1-v0", RawMario))
    rates: dict[tuple[str, str], tuple[float, float]] = {}

    def median(fn: Callable[[int], float]) -> float:
        return statistics.median(fn(seed) for seed in range(args.repeats))

    for game, env_id, raw in games:
        rate = median(lambda s, raw=raw: time_single(raw, 7, args.seconds, s))
        rates[(game, "raw game, 1 frame/step")] = (rate, rate)
        rate = median(
            lambda s, env_id=env_id: time_single(lambda: gym.make(env_id), 7, args.seconds, s)
        )
        rates[(game, "preprocessed, single env")] = (rate, rate * FRAME_SKIP)
        rate = median(lambda s, env_id=env_id: time_subproc(env_id, 2, args.seconds, s))
        rates[(game, "preprocessed, SubprocVecEnv x2")] = (rate, rate * FRAME_SKIP)
    return rates


def main(argv: list[str] | None = None) -> dict[tuple[str, str], tuple[float, float]]:
    """Measure every setting, print a markdown table, return the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (median)")
    parser.add_argument("--no-mario", action="store_true", help="skip the NES emulator rows")
    args = parser.parse_args(argv)

    from opsrl.envs.mario import mario_installed
    from opsrl.machine import machine_note

    rates = measure(args)
    versions = {}
    if mario_installed():
        from importlib.metadata import version

        versions = {
            "nes-py": version("nes-py"),
            "gym-super-mario-bros": version("gym-super-mario-bros"),
        }
    print(f"# mario_steps, {datetime.date.today()}; {machine_note(**versions)}")
    print("| game | setting | env steps/s | frames/s | vs raw |")
    print("|---|---|---:|---:|---:|")
    for (game, setting), (steps, frames) in rates.items():
        raw = rates[(game, "raw game, 1 frame/step")][1]
        print(f"| {game} | {setting} | {steps:,.0f} | {frames:,.0f} | {frames / raw:.2f}x |")
    if not mario_installed():
        print("(Mario rows left out: gym-super-mario-bros is not installed)")
    return rates


if __name__ == "__main__":
    main()
