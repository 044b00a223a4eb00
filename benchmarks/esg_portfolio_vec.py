"""Env steps per second of the ESG portfolio env: single env, SB3 VecEnvs, batched VecEnv.

Two settings of ``opsrl/ESGPortfolio-v0`` on the synthetic market: the fixed walk through the
data (30 assets, 300 days, lookback 60: 239-day episodes that every copy plays in step), and
a training-like one (regulated market, ESG row in the state, ``random_start`` with 20-day
episodes: copies restart at different days, each drawing its first day from its own
generator). Random actions uniform in the box, drawn before the clock starts; automatic
resets included. Each setting is the median of ``--repeats`` runs of at least ``--seconds``
(on to the end of the episode when that is within 3x the time):

(a) one ``ESGPortfolioEnv`` (``gym.make``) stepped in a Python loop;
(b) SB3 ``DummyVecEnv`` of 64 envs;
(c) SB3 ``SubprocVecEnv`` with 2 worker processes;
(d) ``ESGPortfolioVecEnv`` with 64, 1024 and 4096 copies.

Then the scaling series: microseconds per env step of (a) and of the batched env at 1024
copies against the number of assets (10, 30, 100 at 300 days) and the market's length (300,
1000, 3000 days at 30 assets), with the batched env's construction time and the size of the
observation rows it precomputes per day.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/esg_portfolio_vec.py  # or: opsrl bench esg_portfolio_vec
"""

from __future__ import annotations

import argparse
import datetime
import time

from opsrl.bench import BenchEnv, measure_env_steps
from opsrl.envs.esg_portfolio.vec import ESGPortfolioVecEnv
from opsrl.machine import machine_note

ENV_ID = "opsrl/ESGPortfolio-v0"
BATCHED = "opsrl.envs.esg_portfolio.vec:ESGPortfolioVecEnv"
SETTINGS = {
    "fixed walk, 30 assets x 300 days": {"n_assets": 30, "n_days": 300},
    "regulated, ESG in state, random 20-day episodes": {
        "n_assets": 30,
        "n_days": 300,
        "market": "esg_regulated",
        "esg_in_state": True,
        "random_start": True,
        "episode_days": 20,
    },
}
ASSETS_SERIES = (10, 30, 100)
DAYS_SERIES = (300, 1000, 3000)


def esg_env(kwargs: dict) -> BenchEnv:
    """The bench description of the ESG env with ``kwargs`` and its batched VecEnv."""
    return BenchEnv(ENV_ID, kwargs, "esg_portfolio", BATCHED)


def episode_length(kwargs: dict) -> int | None:
    """Days per episode when they are the same for every episode (no random start)."""
    if kwargs.get("random_start"):
        return kwargs.get("episode_days")
    lookback = kwargs.get("lookback", 60)
    return kwargs.get("episode_days") or kwargs["n_days"] - 1 - lookback


def main(argv: list[str] | None = None) -> None:
    """Measure, print the markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting (median)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per run")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="time by the wall clock or by this process's CPU time (SubprocVecEnv: wall)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny settings")
    # parse_known_args: stay usable when run with another command line in sys.argv
    args, _ = parser.parse_known_args(argv)
    repeats, seconds = (1, 0.05) if args.quick else (args.repeats, args.seconds)
    copies = (16, 64) if args.quick else (64, 1024, 4096)
    dummy_envs = 8 if args.quick else 64
    scaling_copies = 64 if args.quick else 1024
    timing = dict(seconds=seconds, repeats=repeats, clock=args.clock)

    clock = "CPU" if args.clock == "cpu" else "wall-clock"
    print(
        f"ESG portfolio env steps/s, median of {repeats} run(s) of at least {seconds:g} {clock} s"
    )
    print(f"{datetime.date.today().isoformat()}; {machine_note()}\n")
    header = ["single", f"DummyVecEnv({dummy_envs})", "SubprocVecEnv(2)"]
    header += [f"batched({n})" for n in copies]
    print("| setting | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for name, kwargs in SETTINGS.items():
        env, length = esg_env(kwargs), episode_length(kwargs)
        single = measure_env_steps(env, "single", **timing)
        dummy = measure_env_steps(env, "dummy", dummy_envs, episode_length=length, **timing)
        subproc = measure_env_steps(env, "subproc", 2, episode_length=length, **timing)
        cells = [f"{single:,.0f}", f"{dummy:,.0f}", f"{subproc:,.0f}"]
        for n in copies:
            rate = measure_env_steps(env, "batched", n, episode_length=length, **timing)
            cells.append(f"{rate:,.0f} ({rate / dummy:.1f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nIn brackets: batched / DummyVecEnv({dummy_envs}).\n")

    print(f"Step cost against problem size (batched: {scaling_copies} copies)\n")
    print("| assets | days | single us/step | batched us/step | batched build s | rows MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    sizes = [(n, 300) for n in ASSETS_SERIES] + [(30, d) for d in DAYS_SERIES if d != 300]
    if args.quick:
        sizes = sizes[:2]
    for n_assets, n_days in sizes:
        kwargs = {"n_assets": n_assets, "n_days": n_days}
        env, length = esg_env(kwargs), episode_length(kwargs)
        single = measure_env_steps(env, "single", **timing)
        batched = measure_env_steps(env, "batched", scaling_copies, episode_length=length, **timing)
        start = time.perf_counter()
        venv = ESGPortfolioVecEnv(scaling_copies, seed=0, **kwargs)
        build = time.perf_counter() - start
        rows = venv._market_rows.nbytes / 1e6  # the per-day observation rows it precomputed
        print(
            f"| {n_assets} | {n_days} | {1e6 / single:,.1f} | {1e6 / batched:,.2f} | "
            f"{build:.2f} | {rows:,.1f} |"
        )


if __name__ == "__main__":
    main()
