"""Env steps per second of the ride-sharing platform env: single, SB3 VecEnvs, batched VecEnv.

``RideSharingEnv`` (``opsrl/RideSharing-v0``) at its defaults (20 vehicles, K = 4 candidates,
synthetic 20-zone city, 3 orders per minute, 30-minute episodes), uniformly random scores in
[-1, 1] drawn before the clock starts (every finite score vector is a valid action: masked
slots are ignored by the matching), automatic resets included (every measurement runs whole
episodes). Each setting is the median of ``--repeats`` runs:

(a) one ``RideSharingEnv`` stepped in a Python loop;
(b) SB3 ``DummyVecEnv`` of 64 ``RideSharingEnv``;
(c) SB3 ``SubprocVecEnv`` of 2 ``RideSharingEnv`` (one worker process each);
(d)-(f) ``RideSharingVecEnv`` with 64, 1024 and 4096 copies.

Then the scaling table: step cost by fleet size (20, 100, 1000 vehicles, demand 0.15 orders
per vehicle-minute), one env against the batched env, in milliseconds per env step (per copy
for the batched env).

Rates are given by the wall clock and by this process's CPU time: on a shared machine the
CPU figures move much less from run to run (a SubprocVecEnv works in its workers, so it has
wall-clock figures only).

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/ride_sharing_vec.py     # or: opsrl bench ride_sharing_vec
    OMP_NUM_THREADS=1 python benchmarks/ride_sharing_vec.py --quick   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from opsrl.envs.ride_sharing.batched import RideSharingVecEnv
from opsrl.envs.ride_sharing.env import RideSharingEnv
from opsrl.machine import machine_note

#: Fleets of the scaling table and the batched copies measured for each.
SCALING = ((20, 1024), (100, 256), (1000, 8))
ORDERS_PER_VEHICLE = 0.15

#: (wall-clock, CPU) env steps per second
Rates = tuple[float, float]


def random_scores(width: int, n_batches: int, n_copies: int, seed: int) -> np.ndarray:
    """(n_batches, n_copies, width) float32 scores, uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(n_batches, n_copies, width)).astype(np.float32)


class Clock:
    """Wall-clock and process CPU seconds since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def rates(self, steps: int) -> Rates:
        """``steps`` per wall-clock and per CPU second."""
        return (
            steps / (time.perf_counter() - self.wall),
            steps / max(time.process_time() - self.cpu, 1e-9),
        )


def time_single_env(env_kwargs: dict[str, Any], episodes: int, scores: np.ndarray) -> Rates:
    """Env steps per second of one RideSharingEnv over whole episodes, resets included."""
    env = RideSharingEnv(**env_kwargs)
    actions = [batch[0] for batch in scores]
    steps = 0
    clock = Clock()
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
            steps += 1
            done = terminated or truncated
    return clock.rates(steps)


def time_vec_env(
    make: Callable[[], VecEnv], episodes: int, minutes: int, scores: np.ndarray
) -> Rates:
    """Env steps per second (copies x vec steps) of a VecEnv over whole episodes (it resets
    itself after each)."""
    venv = make()
    venv.seed(0)
    venv.reset()
    n_steps = episodes * minutes
    clock = Clock()
    for step in range(n_steps):
        venv.step(scores[step % len(scores)])
    rates = clock.rates(n_steps * scores.shape[1])
    venv.close()
    return rates


def main(argv: list[str] | None = None) -> dict[str, Rates]:
    """Run the measurements, print two markdown tables and the ratios, return the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 repeat, short settings, no 4096"
    )
    parser.add_argument("--skip-4096", action="store_true", help="leave out 4096 copies")
    parser.add_argument(
        "--no-scaling", action="store_true", help="skip the step cost by fleet size table"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    repeats = 1 if args.quick else args.repeats
    env_kwargs: dict[str, Any] = {"episode_minutes": 6} if args.quick else {}
    template = RideSharingEnv(**env_kwargs)
    minutes = template.core.config.episode_minutes
    width = template.action_space.shape[0]

    def median_rates(measure: Callable[[], Rates]) -> Rates:
        runs = [measure() for _ in range(repeats)]
        return (
            statistics.median(run[0] for run in runs),
            statistics.median(run[1] for run in runs),
        )

    def batched(n: int, kwargs: dict[str, Any]) -> Callable[[], VecEnv]:
        return lambda: RideSharingVecEnv(n, **kwargs)

    def dummy(n: int, kwargs: dict[str, Any]) -> Callable[[], VecEnv]:
        return lambda: DummyVecEnv([lambda: RideSharingEnv(**kwargs) for _ in range(n)])

    settings: list[tuple[str, int, Callable[[], Rates]]] = []
    single_scores = random_scores(width, 64, 1, seed=0)
    settings.append(
        (
            "(a) RideSharingEnv",
            1,
            lambda: time_single_env(env_kwargs, 2 if args.quick else 10, single_scores),
        )
    )
    dummy_scores = random_scores(width, 16, 64, seed=1)
    settings.append(
        (
            "(b) DummyVecEnv(64 x RideSharingEnv)",
            64,
            lambda: time_vec_env(dummy(64, env_kwargs), 1, minutes, dummy_scores),
        )
    )
    subproc_scores = random_scores(width, 64, 2, seed=2)
    settings.append(
        (
            "(c) SubprocVecEnv(2 x RideSharingEnv)",
            2,
            lambda: time_vec_env(
                lambda: SubprocVecEnv(
                    [lambda: RideSharingEnv(**env_kwargs) for _ in range(2)], start_method="fork"
                ),
                2 if args.quick else 5,
                minutes,
                subproc_scores,
            ),
        )
    )
    copies = [(64, 3), (1024, 1)]
    if not (args.quick or args.skip_4096):
        copies.append((4096, 1))
    for label, (n_copies, episodes) in zip("def", copies, strict=False):
        batch_scores = random_scores(width, 4, n_copies, seed=n_copies)
        settings.append(
            (
                f"({label}) RideSharingVecEnv({n_copies})",
                n_copies,
                lambda n=n_copies, e=episodes, s=batch_scores: time_vec_env(
                    batched(n, env_kwargs), e, minutes, s
                ),
            )
        )

    rates: dict[str, Rates] = {}
    for label, _, measure in settings:
        rates[label] = median_rates(measure)
        print(f"measured {label}", flush=True)

    dummy_wall, dummy_cpu = rates["(b) DummyVecEnv(64 x RideSharingEnv)"]
    print(
        f"\nride-sharing platform env, {template.core.num_vehicles} vehicles, K = "
        f"{template.core.num_candidates}, {minutes}-minute episodes, random scores, median of "
        f"{repeats} runs"
    )
    print(f"{datetime.date.today().isoformat()}; {machine_note()}\n")
    print(
        "| setting | copies | env steps/s (wall) | vs DummyVecEnv(64) | env steps/s (CPU) | "
        "vs DummyVecEnv(64) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for label, n_copies, _ in settings:
        wall, cpu = rates[label]
        cpu_cells = "n/a | n/a" if "Subproc" in label else f"{cpu:,.0f} | {cpu / dummy_cpu:.1f}x"
        print(f"| {label} | {n_copies} | {wall:,.0f} | {wall / dummy_wall:.1f}x | {cpu_cells} |")
    print()
    for label, n_copies, _ in settings[3:]:
        wall, cpu = rates[label]
        target = " (target >= 20x)" if n_copies == 1024 else ""
        print(
            f"batched({n_copies}) / DummyVecEnv(64) = {wall / dummy_wall:.1f}x wall-clock, "
            f"{cpu / dummy_cpu:.1f}x CPU{target}"
        )

    if not args.no_scaling:
        scaling = SCALING[:2] if args.quick else SCALING
        print(
            f"\nstep cost by fleet size ({ORDERS_PER_VEHICLE:g} orders per vehicle-minute, "
            f"{minutes}-minute episodes, median of {repeats}; ms per env step, wall-clock / "
            "CPU)\n"
        )
        print(
            "| vehicles | orders/min | RideSharingEnv ms/step | batched copies | "
            "batched ms/step per copy | speed-up (wall / CPU) |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for fleet, n_copies in scaling:
            kwargs = dict(env_kwargs, num_vehicles=fleet, demand_rate=ORDERS_PER_VEHICLE * fleet)
            fleet_width = fleet * (template.core.num_candidates + 1)
            n_copies = min(n_copies, 64) if args.quick else n_copies
            single = median_rates(
                lambda k=kwargs, w=fleet_width, f=fleet: time_single_env(
                    k, 1 if f >= 1000 else 3, random_scores(w, 16, 1, seed=f)
                )
            )
            batch = median_rates(
                lambda k=kwargs, n=n_copies, w=fleet_width, f=fleet: time_vec_env(
                    batched(n, k), 1, minutes, random_scores(w, 4, n, seed=f)
                )
            )
            rates[f"single {fleet}"], rates[f"batched {fleet}"] = single, batch
            print(
                f"| {fleet} | {ORDERS_PER_VEHICLE * fleet:g} | "
                f"{1000 / single[0]:.2f} / {1000 / single[1]:.2f} | {n_copies} | "
                f"{1000 / batch[0]:.3f} / {1000 / batch[1]:.3f} | "
                f"{batch[0] / single[0]:.1f}x / {batch[1] / single[1]:.1f}x |",
                flush=True,
            )
    return rates


if __name__ == "__main__":
    main()
