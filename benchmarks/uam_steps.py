"""UAM fleet env steps per second, the graph policy's decision time per day, and training speed.

Three tables:

1. **Env steps/s** of ``UAMFleetEnv`` (8 vertiports, 40 aircraft) with a random feasible
   policy (choices drawn from a seeded generator, timed for every setting alike), for the
   graph and the flat observation, with and without uncertainties; then a scaling series
   (graph observation, uncertainties on): 10, 20, 40 and 80 aircraft at 8 vertiports, and
   4, 8 and 16 vertiports at 40 aircraft. A step is one aircraft's decision; whole days run,
   resets included. Also the decisions per day of the random feasible policy.
2. **Decision time** of an (untrained: the time does not depend on the weights)
   ``GraphFleetPolicy`` with its default size: one ``predict`` with the action mask per
   decision, as the experiment runner evaluates it (batch 1, CPU, one thread; CUDA too when
   available), times the decisions per day, over the same sizes.
3. **Training speed**: ``GraphFleetPPO`` (graph observation) and sb3-contrib ``MaskablePPO``
   with an MLP on the flat observation, both at their defaults for ``n_envs`` copies in a
   ``DummyVecEnv`` with ``reward="per_flight"``, seconds of ``learn()`` per 100k env steps
   split into rollout collection and training (``opsrl.machine.PhaseTimer``); what
   ``experiments/uam_fleet.yaml``'s budget rests on.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/uam_steps.py      # or: opsrl bench uam_steps
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
from typing import Any

import numpy as np

BASE = {"n_vertiports": 8, "n_aircraft": 40}
AIRCRAFT_SERIES = (10, 20, 40, 80)
VERTIPORT_SERIES = (4, 8, 16)


def time_env(
    config: dict[str, Any], observation: str, seconds: float, seed: int = 0
) -> tuple[float, float]:
    """Decisions per second of a random feasible policy, and mean decisions per finished day."""
    from opsrl.envs.uam import UAMFleetEnv

    env = UAMFleetEnv(config=config, observation=observation)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps, day_steps, days = 0, 0, []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or not days:
        feasible = np.flatnonzero(env.action_masks())
        _, _, terminated, _, _ = env.step(int(feasible[rng.integers(feasible.size)]))
        steps += 1
        day_steps += 1
        if terminated:
            days.append(day_steps)
            day_steps = 0
            env.reset()
    return steps / (time.perf_counter() - start), float(np.mean(days))


def time_policy(config: dict[str, Any], decisions: int, device: str, seed: int = 0) -> float:
    """Seconds per decision of GraphFleetPolicy.predict (batch 1, with the action mask) along
    a day, policy and env stepping together; only the predict calls are timed."""
    import torch as th

    from opsrl.agents.uam_graph import GraphFleetPolicy
    from opsrl.envs.uam import UAMFleetEnv

    env = UAMFleetEnv(config=config)
    th.manual_seed(seed)
    policy = GraphFleetPolicy(env.observation_space, env.action_space, lambda _: 3e-4).to(device)
    obs, _ = env.reset(seed=seed)
    for _ in range(5):  # warm-up (allocator, CUDA kernels)
        policy.predict(obs, action_masks=env.action_masks(), deterministic=True)
    elapsed = 0.0
    for _ in range(decisions):
        mask = env.action_masks()
        if device.startswith("cuda"):
            th.cuda.synchronize()
        start = time.perf_counter()
        action, _ = policy.predict(obs, action_masks=mask, deterministic=True)
        elapsed += time.perf_counter() - start
        obs, _, terminated, _, _ = env.step(int(action))
        if terminated:
            obs, _ = env.reset()
    return elapsed / decisions


def time_learning(agent: str, steps: int, n_envs: int, seed: int = 0) -> Any:
    """One ``learn(steps)`` of ``agent`` ("graph_fleet_ppo" or "maskable_ppo") at 8 x 40."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    from opsrl.agents.uam_graph import GraphFleetPPO
    from opsrl.envs.uam import UAMFleetEnv
    from opsrl.machine import PhaseTimer, Timing

    observation = "graph" if agent == "graph_fleet_ppo" else "flat"
    venv = make_vec_env(
        UAMFleetEnv,
        n_envs=n_envs,
        seed=seed,
        env_kwargs={"config": BASE, "observation": observation, "reward": "per_flight"},
    )
    if agent == "graph_fleet_ppo":
        model = GraphFleetPPO("GraphFleetPolicy", venv, seed=seed, device="cpu")
    else:
        model = MaskablePPO("MlpPolicy", venv, seed=seed, device="cpu")
    timer = PhaseTimer()
    start = time.perf_counter()
    model.learn(steps, callback=timer)
    total = time.perf_counter() - start
    venv.close()
    return Timing(int(model.num_timesteps), total, timer.collection_s)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure everything, print markdown tables, return the figures by name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per env measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (median)")
    parser.add_argument("--decisions", type=int, default=300, help="timed policy decisions")
    parser.add_argument(
        "--learn-steps", type=int, default=8192, help="env steps per learn() timing (0: skip)"
    )
    parser.add_argument("--n-envs", type=int, default=4, help="env copies for the learn() timing")
    args = parser.parse_args(argv)

    import torch as th
    import torch_geometric

    from opsrl.machine import machine_note

    th.set_num_threads(1)
    figures: dict[str, float] = {}
    print(
        f"# uam_steps, {datetime.date.today()}; "
        f"{machine_note(torch=th.__version__, torch_geometric=torch_geometric.__version__)}"
    )

    print("\n## Env steps/s (random feasible policy)\n")
    print("| vertiports | aircraft | observation | uncertainty | decisions/s | decisions/day |")
    print("|---:|---:|---|---|---:|---:|")
    settings = [(BASE, obs, unc) for obs in ("graph", "flat") for unc in (True, False)]
    settings += [({"n_vertiports": 8, "n_aircraft": a}, "graph", True) for a in AIRCRAFT_SERIES]
    settings += [({"n_vertiports": n, "n_aircraft": 40}, "graph", True) for n in VERTIPORT_SERIES]
    per_day: dict[tuple[int, int], float] = {}
    seen = set()
    for config, observation, uncertainty in settings:
        key = (config["n_vertiports"], config["n_aircraft"], observation, uncertainty)
        if key in seen:
            continue
        seen.add(key)
        runs = [
            time_env({**config, "uncertainty": uncertainty}, observation, args.seconds, seed)
            for seed in range(args.repeats)
        ]
        rate = statistics.median(r[0] for r in runs)
        days = statistics.mean(r[1] for r in runs)
        if uncertainty and observation == "graph":
            per_day[key[:2]] = days
        figures[f"env {key[0]}x{key[1]} {observation} uncertainty={uncertainty}"] = rate
        print(
            f"| {key[0]} | {key[1]} | {observation} | {uncertainty} | {rate:,.0f} | {days:,.0f} |"
        )

    devices = ["cpu"] + (["cuda"] if th.cuda.is_available() else [])
    print("\n## GraphFleetPolicy decision time (predict, batch 1; decisions/day of random play)\n")
    print("| vertiports | aircraft | device | ms/decision | decisions/day | s/day |")
    print("|---:|---:|---|---:|---:|---:|")
    for (n, a), days in per_day.items():
        for device in devices:
            seconds = time_policy({"n_vertiports": n, "n_aircraft": a}, args.decisions, device)
            figures[f"policy {n}x{a} {device} s/decision"] = seconds
            print(f"| {n} | {a} | {device} | {1e3 * seconds:.2f} | {days:,.0f} | "
                  f"{seconds * days:.2f} |")  # fmt: skip

    if args.learn_steps > 0:
        print(
            f"\n## learn() at 8 x 40, {args.n_envs} envs, defaults, reward per_flight "
            "(seconds per 100k env steps)\n"
        )
        print("| agent | observation | total | collection | training | env steps/s |")
        print("|---|---|---:|---:|---:|---:|")
        for agent in ("graph_fleet_ppo", "maskable_ppo"):
            timing = time_learning(agent, args.learn_steps, args.n_envs)
            rate = timing.steps / timing.total_s
            figures[f"learn {agent} steps/s"] = rate
            observation = "graph" if agent == "graph_fleet_ppo" else "flat"
            print(
                f"| {agent} | {observation} | {timing.per(timing.total_s):,.0f} | "
                f"{timing.per(timing.collection_s):,.0f} | "
                f"{timing.per(timing.total_s - timing.collection_s):,.0f} | {rate:,.0f} |"
            )
    return figures


if __name__ == "__main__":
    main()
