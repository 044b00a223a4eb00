"""Env steps per second of the UAM fleet env: single env, SB3 DummyVecEnv / SubprocVecEnv, and the
batched ``UAMFleetVecEnv``; then how the step cost grows with the fleet and the network.

An env step is one aircraft's decision. Every setting plays a uniformly random feasible policy:
the uniforms are drawn before the clock starts and turned into the k-th feasible destination of
each copy's mask (read as MaskablePPO reads it: ``env_method("action_masks")`` for a VecEnv,
``action_masks()`` for the single env), so that mask reading and stepping are what is timed.
Each run covers ``--days`` x the mean decisions per day of vec steps from a reset, so that the
day ends and automatic resets weigh as in training. Each figure is the median of ``--repeats``
runs (of ``--table-repeats``, default 1, for the 4096-copy row and the two tables after the
first, to keep the script at about 3 minutes). Main table (8 vertiports, 40 aircraft, graph
observation, uncertainties on, the default env):

(a) one ``UAMFleetEnv`` in a Python loop;
(b) SB3 ``DummyVecEnv`` of 64 ``UAMFleetEnv``;
(c) SB3 ``SubprocVecEnv`` of 2 ``UAMFleetEnv`` (``--no-subproc`` skips it);
(d)-(f) ``UAMFleetVecEnv`` with 64, 1024 and 4096 copies.

Then, with ``--table-copies`` (256) batched copies against the single env: the observation
kinds and uncertainty switches at 8 x 40, and a scaling table -- microseconds per env step for
10 to 80 aircraft at 8 vertiports and 4 to 16 vertiports at 40 aircraft.

Besides steps per second of wall time, the tables give steps per CPU second of this process
(``time.process_time``): on a shared machine it shows the work a step costs whatever the load
(not for SubprocVecEnv, whose work is in its workers).

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/uam_vec.py           # or: opsrl bench uam_vec
    OMP_NUM_THREADS=1 python benchmarks/uam_vec.py --quick   # smoke run, a few seconds
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

from opsrl.envs.uam import UAMFleetEnv
from opsrl.envs.uam.vec import UAMFleetVecEnv
from opsrl.machine import machine_note

BASE = {"n_vertiports": 8, "n_aircraft": 40}
AIRCRAFT_SERIES = (10, 20, 40, 80)
VERTIPORT_SERIES = (4, 8, 16)


def kth_feasible(masks: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """(copies,) the floor(u x count)-th feasible destination of each mask row (copies, V)."""
    cumulative = masks.cumsum(axis=1)
    k = (uniforms * cumulative[:, -1]).astype(np.int64)
    return (cumulative <= k[:, None]).sum(axis=1)


def make_single(kwargs: dict[str, Any]) -> Callable[[], UAMFleetEnv]:
    """A picklable-enough factory for DummyVecEnv and SubprocVecEnv."""
    return lambda: UAMFleetEnv(**kwargs)


def time_single(kwargs: dict[str, Any], uniforms: np.ndarray) -> tuple[float, float, float]:
    """Wall and CPU steps/s of one UAMFleetEnv over ``len(uniforms)`` steps, resetting at each
    day's end; and the mean decisions of the days it finished."""
    env = UAMFleetEnv(**kwargs)
    env.reset(seed=0)
    day, days = 0, []
    wall, cpu = time.perf_counter(), time.process_time()
    for u in uniforms:
        action = kth_feasible(env.action_masks()[None], u)[0]
        _, _, terminated, _, _ = env.step(action)
        day += 1
        if terminated:
            days.append(day)
            day = 0
            env.reset()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = len(uniforms)
    return n / wall, n / cpu, float(np.mean(days)) if days else float("nan")


def time_vec(make: Callable[[], VecEnv], uniforms: np.ndarray) -> tuple[float, float]:
    """Wall and CPU env steps/s (copies x vec steps) of a VecEnv built by ``make``."""
    venv = make()
    venv.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    for u in uniforms:
        masks = np.stack(venv.env_method("action_masks"))
        venv.step(kth_feasible(masks, u))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    venv.close()
    steps = uniforms.shape[0] * uniforms.shape[1]
    return steps / wall, steps / cpu


def median_runs(measure: Callable[[], tuple[float, ...]], repeats: int) -> tuple[float, ...]:
    """Element-wise median of ``repeats`` measurements."""
    runs = [measure() for _ in range(repeats)]
    return tuple(statistics.median(values) for values in zip(*runs, strict=True))


def single_rates(
    kwargs: dict[str, Any], n_steps: int, repeats: int, rng: np.random.Generator
) -> tuple[float, ...]:
    """Median (wall, CPU) steps/s and decisions per day of the single env."""
    return median_runs(lambda: time_single(kwargs, rng.random((n_steps, 1))), repeats)


def batched_rates(
    kwargs: dict[str, Any], copies: int, n_steps: int, repeats: int, rng: np.random.Generator
) -> tuple[float, ...]:
    """Median (wall, CPU) env steps/s of UAMFleetVecEnv(copies)."""
    return median_runs(
        lambda: time_vec(
            lambda: UAMFleetVecEnv(copies, seed=0, **kwargs), rng.random((n_steps, copies))
        ),
        repeats,
    )


def decisions_per_day(kwargs: dict[str, Any], days: int = 2) -> float:
    """Mean decisions per day of the random feasible policy (sets the length of the runs)."""
    env = UAMFleetEnv(**kwargs)
    rng = np.random.default_rng(0)
    counts = []
    for seed in range(days):
        env.reset(seed=seed)
        terminated, count = False, 0
        while not terminated:
            action = kth_feasible(env.action_masks()[None], rng.random(1))[0]
            _, _, terminated, _, _ = env.step(action)
            count += 1
        counts.append(count)
    return float(np.mean(counts))


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the measurements, print the markdown tables, return the figures by name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument(
        "--table-repeats",
        type=int,
        default=1,
        help="runs per setting of the 4096-copy row and of the options and scaling tables",
    )
    parser.add_argument(
        "--days", type=float, default=1.0, help="vec steps per run, in mean days of decisions"
    )
    parser.add_argument(
        "--table-copies",
        type=int,
        default=256,
        help="batched copies in the options and scaling tables",
    )
    parser.add_argument("--no-subproc", action="store_true", help="skip SubprocVecEnv(2)")
    parser.add_argument("--no-4096", action="store_true", help="skip the 4096-copy setting")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: short runs, 1 repeat, small settings"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    if args.quick:
        args.repeats, args.table_repeats, args.days, args.table_copies = 1, 1, 0.1, 64
    copies_list = (64, 256) if args.quick else (64, 1024, *(() if args.no_4096 else (4096,)))
    rng = np.random.default_rng(0)
    figures: dict[str, float] = {}

    print(f"# uam_vec, {datetime.date.today().isoformat()}; {machine_note()}")
    print(
        f"median of {args.repeats} runs ({args.table_repeats} for 4096 copies and the options "
        f"and scaling tables) of {args.days:g} day(s) of decisions each\n"
    )

    # ---- main table
    kwargs = {"config": BASE}
    day = decisions_per_day(kwargs)
    n_steps = max(10, round(args.days * day))
    rows: list[tuple[str, int, float, float | None]] = []
    single = single_rates(kwargs, n_steps, args.repeats, rng)
    rows.append(("(a) UAMFleetEnv", 1, single[0], single[1]))
    dummy = median_runs(
        lambda: time_vec(
            lambda: DummyVecEnv([make_single(kwargs)] * 64), rng.random((n_steps, 64))
        ),
        args.repeats,
    )
    rows.append(("(b) DummyVecEnv(64 x UAMFleetEnv)", 64, *dummy))
    if not args.no_subproc:
        subproc = median_runs(
            lambda: time_vec(
                lambda: SubprocVecEnv([make_single(kwargs)] * 2, start_method="fork"),
                rng.random((n_steps, 2)),
            ),
            args.repeats,
        )
        rows.append(("(c) SubprocVecEnv(2 x UAMFleetEnv)", 2, subproc[0], None))
    for label, copies in zip("def", copies_list, strict=False):
        repeats = args.table_repeats if copies > 1024 else args.repeats
        batched = batched_rates(kwargs, copies, n_steps, repeats, rng)
        rows.append((f"({label}) UAMFleetVecEnv({copies})", copies, *batched))

    print(
        f"## 8 vertiports x 40 aircraft, graph observation, uncertainties on "
        f"({day:.0f} decisions per day, {n_steps} vec steps per run)\n"
    )
    print("| setting | copies | env steps/s | vs DummyVecEnv(64) | env steps / CPU s |")
    print("|---|---:|---:|---:|---:|")
    for name, copies, wall, cpu in rows:
        figures[name] = wall
        cpu_text = f"{cpu:,.0f}" if cpu is not None else "(workers)"
        print(f"| {name} | {copies} | {wall:,.0f} | {wall / dummy[0]:.1f}x | {cpu_text} |")
    for name, copies, wall, cpu in rows:
        if name.startswith(("(d)", "(e)", "(f)")):
            ratio_cpu = f", {cpu / dummy[1]:.1f}x in CPU time"
            print(f"\nbatched({copies}) / DummyVecEnv(64) = {wall / dummy[0]:.1f}x{ratio_cpu}")

    # ---- observation kinds and uncertainty
    big = args.table_copies
    print(f"\n## Options at {big} copies, 8 x 40 (microseconds per env step, CPU time)\n")
    print("| observation | uncertainty | UAMFleetEnv | UAMFleetVecEnv | speed-up |")
    print("|---|---|---:|---:|---:|")
    for observation in ("graph", "flat"):
        for uncertainty in (True, False):
            options = {"config": BASE, "observation": observation, "uncertainty": uncertainty}
            steps = max(10, round(args.days * decisions_per_day(options, days=1)))
            one = single_rates(options, steps, args.table_repeats, rng)
            many = batched_rates(options, big, steps, args.table_repeats, rng)
            figures[f"options {observation} uncertainty={uncertainty}"] = many[1] / one[1]
            print(
                f"| {observation} | {uncertainty} | {1e6 / one[1]:.1f} | {1e6 / many[1]:.2f} | "
                f"{many[1] / one[1]:.0f}x |"
            )

    # ---- scaling with the problem size
    copies = args.table_copies
    print(f"\n## Step cost vs size (graph, uncertainties on; batched: {copies} copies; CPU time)\n")
    print(
        "| vertiports | aircraft | decisions/day | UAMFleetEnv us/step | "
        "UAMFleetVecEnv us/env step | ms per batched step | speed-up |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    sizes = [(8, a) for a in AIRCRAFT_SERIES] + [(n, 40) for n in VERTIPORT_SERIES if n != 8]
    if args.quick:
        sizes = [(4, 10), (8, 40)]
    for n_vertiports, n_aircraft in sizes:
        options = {"config": {"n_vertiports": n_vertiports, "n_aircraft": n_aircraft}}
        day = decisions_per_day(options, days=1)
        steps = max(10, round(args.days * day))
        one = single_rates(options, steps, args.table_repeats, rng)
        many = batched_rates(options, copies, steps, args.table_repeats, rng)
        figures[f"scaling {n_vertiports}x{n_aircraft} us/env step"] = 1e6 / many[1]
        print(
            f"| {n_vertiports} | {n_aircraft} | {day:,.0f} | {1e6 / one[1]:.0f} | "
            f"{1e6 / many[1]:.2f} | {1e3 * copies / many[1]:.1f} | {many[1] / one[1]:.0f}x |"
        )
    return figures


if __name__ == "__main__":
    main()
