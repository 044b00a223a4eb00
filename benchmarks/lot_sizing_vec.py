"""Env steps per second of the lot-sizing env: single env, SB3 DummyVecEnv, batched VecEnv.

Instance 25x15 (25 items, 15 machines, T = 100), random feasible actions generated before the
clock starts (so action sampling is not timed), automatic resets included (each run covers
whole episodes). Measured in one run, each setting the median of ``--repeats`` runs:

(a) one ``LotSizingEnv`` stepped in a Python loop;
(b) SB3 ``DummyVecEnv`` of 64 ``LotSizingEnv``;
(c) ``LotSizingVecEnv`` with 64 copies;
(d) ``LotSizingVecEnv`` with 1024 copies.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/lot_sizing_vec.py      # or: opsrl bench lot_sizing_vec
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from opsrl.envs.lot_sizing.env import LotSizingEnv
from opsrl.envs.lot_sizing.vec import LotSizingVecEnv
from opsrl.machine import machine_note

INSTANCE = "25x15"


def random_feasible_actions(
    env: LotSizingEnv, n_batches: int, n_copies: int, seed: int
) -> np.ndarray:
    """(n_batches, n_copies, M) actions drawn uniformly among each machine's allowed ones."""
    rng = np.random.default_rng(seed)
    plant = env.plant
    n_choices = plant.can_make.sum(axis=1)  # allowed actions per machine, idle included
    allowed = np.zeros((plant.n_machines, plant.n_items + 1), dtype=np.int64)
    for machine in range(plant.n_machines):
        choices = np.flatnonzero(plant.can_make[machine])
        allowed[machine, : choices.size] = choices
    picks = np.floor(rng.random((n_batches, n_copies, plant.n_machines)) * n_choices)
    return allowed[plant.machine_index, picks.astype(np.int64)]


def time_single_env(n_steps: int, actions: np.ndarray) -> float:
    """Env steps per second of one LotSizingEnv, resetting at each episode end."""
    env = LotSizingEnv(INSTANCE)
    env.reset(seed=0)
    batches = [row[0] for row in actions]
    start = time.perf_counter()
    for step in range(n_steps):
        _, _, terminated, _, _ = env.step(batches[step % len(batches)])
        if terminated:
            env.reset()
    return n_steps / (time.perf_counter() - start)


def time_vec_env(make: Callable[[], object], n_steps: int, actions: np.ndarray) -> float:
    """Env steps per second (copies x vec steps) of a VecEnv built by ``make``."""
    venv = make()
    venv.reset()
    n_copies = actions.shape[1]
    start = time.perf_counter()
    for step in range(n_steps):
        venv.step(actions[step % len(actions)])
    elapsed = time.perf_counter() - start
    venv.close()
    return n_steps * n_copies / elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the four measurements, print a markdown table and the ratios, return the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the number of steps (0.1 = smoke run)"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    horizon = LotSizingEnv(INSTANCE).instance.horizon

    def episodes(n: float) -> int:  # whole episodes, so resets weigh the same in every setting
        return max(1, round(n * args.scale)) * horizon

    template = LotSizingEnv(INSTANCE)
    settings: list[tuple[str, int, Callable[[np.ndarray], float], np.ndarray]] = []
    single_actions = random_feasible_actions(template, 256, 1, seed=0)
    settings.append(
        ("(a) LotSizingEnv", 1, lambda a: time_single_env(episodes(200), a), single_actions)
    )
    dummy_actions = random_feasible_actions(template, 64, 64, seed=1)
    settings.append(
        (
            "(b) DummyVecEnv(64 x LotSizingEnv)",
            64,
            lambda a: time_vec_env(
                lambda: DummyVecEnv([lambda: LotSizingEnv(INSTANCE) for _ in range(64)]),
                episodes(3),
                a,
            ),
            dummy_actions,
        )
    )
    for n_copies, n_episodes in ((64, 30), (1024, 10)):
        actions = random_feasible_actions(template, 64, n_copies, seed=n_copies)
        settings.append(
            (
                f"({'c' if n_copies == 64 else 'd'}) LotSizingVecEnv({n_copies})",
                n_copies,
                lambda a, n=n_copies, e=n_episodes: time_vec_env(
                    lambda: LotSizingVecEnv(n, seed=0, instance=INSTANCE), episodes(e), a
                ),
                actions,
            )
        )

    rates: dict[str, float] = {}
    for label, _, measure, actions in settings:
        rates[label] = statistics.median(measure(actions) for _ in range(args.repeats))

    dummy = rates["(b) DummyVecEnv(64 x LotSizingEnv)"]
    print(f"lot-sizing {INSTANCE}, random feasible actions, median of {args.repeats} runs")
    print(f"{datetime.date.today().isoformat()}; {machine_note()}\n")
    print("| setting | copies | env steps/s | vs DummyVecEnv(64) |")
    print("|---|---:|---:|---:|")
    for label, n_copies, _, _ in settings:
        print(f"| {label} | {n_copies} | {rates[label]:,.0f} | {rates[label] / dummy:.1f}x |")
    batched_64 = rates["(c) LotSizingVecEnv(64)"] / dummy
    batched_1024 = rates["(d) LotSizingVecEnv(1024)"] / dummy
    print(f"\nbatched(1024) / DummyVecEnv(64) = {batched_1024:.1f}x (target >= 20x)")
    print(f"batched(64) / DummyVecEnv(64) = {batched_64:.1f}x")
    return rates


if __name__ == "__main__":
    main()
