"""Env steps per second of the job shop env: single env, SB3 VecEnvs, batched VecEnv.

A random masked policy runs the registered default (ISBJSSP: blocking, swaps, shutdowns with
probability 0.05 and mean length 10, on ft06, graph observation) with automatic resets. The
policy's uniforms are drawn before the clock starts; at each step every copy takes the k-th
candidate of its mask with k = floor(u * candidates) (the mask query is timed, as a masked
learner pays it). Vec envs first run a warm-up (untimed) so that their copies' episodes are out
of step, as in training, then enough steps for a few episodes per copy (ft06 episodes take
about 23 decisions). All in one process:

1. settings on the default, median of ``--repeats`` runs: (a) one ``JobShopEnv`` in a loop,
   (b) SB3 ``DummyVecEnv`` of 64, (c) SB3 ``SubprocVecEnv`` of 2 worker processes, (d-f)
   ``JobShopVecEnv`` with 64, 1024 and 4096 copies; ratios against (b);
2. modes, one run each: DummyVecEnv(64) and JobShopVecEnv(1024) in classic and
   blocking-with-swap mode (graph observation) and ISBJSSP (graph and flat);
3. scaling, one run each: microseconds per env step of the single env and of
   JobShopVecEnv(1024) on the ISBJSSP default as the instance grows (jobs x machines: ft06,
   la01, la16, ta01, ta21). A fixed number of steps is timed (300 single-env steps, 40
   batched steps after 20 of warm-up), which covers only part of an episode on the larger
   instances (225 and 400 decisions): there resets weigh a little less than in training.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/job_shop_vec.py        # or: opsrl bench job_shop_vec
    OMP_NUM_THREADS=1 python benchmarks/job_shop_vec.py --quick   # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from opsrl.envs.job_shop.env import JobShopEnv
from opsrl.envs.job_shop.vec import JobShopVecEnv
from opsrl.machine import machine_note

DEFAULT: dict[str, Any] = {"instance": "ft06"}  # the registered defaults otherwise (ISBJSSP)
MODES: dict[str, dict[str, Any]] = {  # the flags on top of the defaults
    "classic": {"blocking": False, "shutdown_prob": 0.0},
    "bws": {"blocking": True, "swap": True, "shutdown_prob": 0.0},
    "isbjssp": {},
}
#: (label, instance) by size, for the scaling table
SIZES = (("6x6", "ft06"), ("10x5", "la01"), ("10x10", "la16"), ("15x15", "ta01"), ("20x20", "ta21"))


def pick(masks: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """The k-th candidate of each mask row, k = floor(u * number of candidates)."""
    counts = masks.cumsum(axis=1)
    k = (uniforms * counts[:, -1]).astype(np.int64)
    return (counts <= k[:, None]).sum(axis=1)


def time_single(kwargs: dict[str, Any], steps: int, seed: int = 0) -> float:
    """Env steps per second of one JobShopEnv, resetting at each episode end."""
    env = JobShopEnv(**kwargs)
    env.reset(seed=seed)
    uniforms = np.random.default_rng(seed).random((steps, 1))
    start = time.perf_counter()
    for step in range(steps):
        action = pick(env.action_masks()[None], uniforms[step])[0]
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def time_vec(make: Callable[[], Any], masks: Callable[[Any], np.ndarray], steps: int) -> float:
    """Env steps per second (copies x vec steps) of a VecEnv built by ``make``."""
    venv = make()
    venv.seed(0)
    venv.reset()
    n = venv.num_envs
    uniforms = np.random.default_rng(1).random((steps + steps // 2, n))
    for step in range(steps // 2):  # warm-up: the copies' episodes drift out of step
        venv.step(pick(masks(venv), uniforms[step]))
    start = time.perf_counter()
    for step in range(steps // 2, steps // 2 + steps):
        venv.step(pick(masks(venv), uniforms[step]))
    elapsed = time.perf_counter() - start
    venv.close()
    return steps * n / elapsed


def sb3_masks(venv: Any) -> np.ndarray:
    return np.stack(venv.env_method("action_masks"))


def batched_masks(venv: JobShopVecEnv) -> np.ndarray:
    return venv.action_masks()


def median(measure: Callable[[], float], repeats: int) -> float:
    return statistics.median(measure() for _ in range(repeats))


def dummy(kwargs: dict[str, Any], n: int) -> Callable[[], DummyVecEnv]:
    return lambda: DummyVecEnv([lambda: JobShopEnv(**kwargs) for _ in range(n)])


def batched(kwargs: dict[str, Any], n: int) -> Callable[[], JobShopVecEnv]:
    return lambda: JobShopVecEnv(n, **kwargs)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the three tables, print them as markdown, return the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few steps, 1 repeat")
    parser.add_argument("--no-subproc", action="store_true", help="skip SubprocVecEnv")
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    quick = args.quick
    repeats = 1 if quick else args.repeats
    scale = 0.1 if quick else 1.0

    def steps(n: int) -> int:
        return max(4, round(n * scale))

    rates: dict[str, float] = {}
    print(f"job shop, random masked policy, median of {repeats} run(s)")
    print(f"{datetime.date.today().isoformat()}; {machine_note()}\n")

    # 1. settings on the default (ft06 episodes take about 23 decisions)
    settings: list[tuple[str, int, Callable[[], float]]] = [
        ("(a) JobShopEnv", 1, lambda: time_single(DEFAULT, steps(2000))),
        (
            "(b) DummyVecEnv(64 x JobShopEnv)",
            64,
            lambda: time_vec(dummy(DEFAULT, 64), sb3_masks, steps(40)),
        ),
    ]
    if not args.no_subproc:
        settings.append(
            (
                "(c) SubprocVecEnv(2 x JobShopEnv)",
                2,
                lambda: time_vec(
                    lambda: SubprocVecEnv([lambda: JobShopEnv(**DEFAULT) for _ in range(2)]),
                    sb3_masks,
                    steps(600),
                ),
            )
        )
    copies = (64, 1024) if quick else (64, 1024, 4096)
    for label, n, n_steps in zip("def", copies, (150, 60, 40), strict=False):
        settings.append(
            (
                f"({label}) JobShopVecEnv({n})",
                n,
                lambda n=n, s=n_steps: time_vec(batched(DEFAULT, n), batched_masks, steps(s)),
            )
        )
    for label, _, measure in settings:
        rates[label] = median(measure, repeats)
    reference = rates["(b) DummyVecEnv(64 x JobShopEnv)"]
    print("ISBJSSP on ft06 (graph observation): env steps per second\n")
    print("| setting | copies | env steps/s | vs DummyVecEnv(64) |")
    print("|---|---:|---:|---:|")
    for label, n, _ in settings:
        print(f"| {label} | {n} | {rates[label]:,.0f} | {rates[label] / reference:.1f}x |")

    # 2. modes and observations
    print("\nModes on ft06: DummyVecEnv(64) against JobShopVecEnv(1024)\n")
    print("| mode | observation | DummyVecEnv(64) steps/s | JobShopVecEnv(1024) steps/s | ratio |")
    print("|---|---|---:|---:|---:|")
    combinations = [(mode, "graph") for mode in MODES] + [("isbjssp", "flat")]
    for mode, observation in combinations:
        kwargs = {**DEFAULT, **MODES[mode], "observation": observation}
        slow = time_vec(dummy(kwargs, 64), sb3_masks, steps(30))
        fast = time_vec(batched(kwargs, 1024), batched_masks, steps(40))
        rates[f"{mode}/{observation}/dummy64"] = slow
        rates[f"{mode}/{observation}/batched1024"] = fast
        print(f"| {mode} | {observation} | {slow:,.0f} | {fast:,.0f} | {fast / slow:.1f}x |")

    # 3. scaling with the instance size
    print("\nScaling on the ISBJSSP default (graph observation): microseconds per env step\n")
    print(
        "| instance | jobs x machines | JobShopEnv us/step | JobShopVecEnv(1024) us/step | ratio |"
    )
    print("|---|---|---:|---:|---:|")
    sizes = SIZES[:3] if quick else SIZES
    for size, instance in sizes:
        kwargs = {"instance": instance}
        single = time_single(kwargs, steps(300))
        fast = time_vec(batched(kwargs, 1024), batched_masks, steps(40))
        rates[f"scaling/{instance}/single"] = single
        rates[f"scaling/{instance}/batched1024"] = fast
        print(
            f"| {instance} | {size} | {1e6 / single:,.0f} | {1e6 / fast:,.1f} | "
            f"{fast / single:.1f}x |"
        )
    return rates


if __name__ == "__main__":
    main()
