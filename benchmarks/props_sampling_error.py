"""PROPS vs on-policy sampling: sampling error of the data collected for a FIXED target policy.

The fixed-target experiment of Corrado & Hanna (arXiv 2311.08290): a target policy pi_theta
that never changes; 16 batches of n = 1024 steps collected into a buffer that keeps all of
them (b = 16), either by pi_theta itself (on-policy sampling) or by the PROPS behaviour
policy, updated every m = 256 steps on the buffer; after 1, 2, 4, 8 and 16 batches, the
sampling error of the whole buffer with respect to pi_theta
(:func:`opsrl.agents.props.sampling_error`: pi_D fitted by maximum likelihood from
pi_theta with its hidden layers frozen, SE = mean_D[log pi_D(a|s) - log pi_theta(a|s)]; by
default fitted to convergence with L-BFGS, ``--epochs N`` for N full-batch epochs of Adam at
1e-3 as the paper does).

PROPS settings are the reference's for this experiment (``cmds/se_fixed_target.py``): PROPS
learning rate 1e-3, lambda 0.1, delta 0.05, eps 0.3, 16 epochs, minibatches of 1,008 (the
buffer less m, in 16). Targets: ``random`` (the seeded initial 64-64 tanh policy) and
``trained`` (SB3 PPO trained for ``--train-steps`` steps with the same seed, then frozen).
The same target, env seed and fitting procedure serve both samplers; the reduction is
1 - SE(PROPS) / SE(on-policy) over the seeds' means. The paper reports 35-45 % lower
sampling error after 16 batches with expert MuJoCo targets.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/props_sampling_error.py                 # CartPole-v1
    OMP_NUM_THREADS=1 python benchmarks/props_sampling_error.py --env Pendulum-v1 --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
from typing import Any

import stable_baselines3
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from opsrl.agents.props import PROPS, fixed_target_sampling_error
from opsrl.machine import machine_note

N_STEPS = 1024
N_BATCHES = 16
MEASURE_AT = (1, 2, 4, 8, 16)


def target_state(env_id: str, target: str, seed: int, train_steps: int) -> dict[str, Any]:
    """The fixed target policy's weights: the seeded initial policy, or PPO after training."""
    if target == "random":
        return PROPS("MlpPolicy", env_id, device="cpu", seed=seed).policy.state_dict()
    ppo = PPO("MlpPolicy", make_vec_env(env_id, n_envs=4, seed=seed), device="cpu", seed=seed)
    ppo.learn(train_steps)
    return ppo.policy.state_dict()


def measure(
    env_id: str, behavior: str, state: dict[str, Any], seed: int, epochs: int | None
) -> dict[int, float]:
    """Sampling error of one sampler after each measured batch count."""
    model = PROPS(
        "MlpPolicy",
        make_vec_env(env_id, n_envs=1, seed=seed),
        n_steps=N_STEPS,
        n_batches=N_BATCHES,
        behavior=behavior,
        props_n_steps=256,
        props_learning_rate=1e-3,
        props_kl_coef=0.1,
        props_target_kl=0.05,
        props_clip_range=0.3,
        props_n_epochs=16,
        props_batch_size=(N_BATCHES * N_STEPS - 256) // 16,
        device="cpu",
        seed=seed,
    )
    model.policy.load_state_dict(state)
    model.behavior_policy.load_state_dict(state)
    return fixed_target_sampling_error(model, N_BATCHES, epochs=epochs, measure_at=MEASURE_AT)


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main(argv: list[str] | None = None) -> dict[str, dict[int, float]]:
    """Measure, print a markdown table, return the mean sampling errors per sampler."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1", help="Gymnasium env id")
    parser.add_argument("--target", choices=("random", "trained"), default="random")
    parser.add_argument("--train-steps", type=int, default=20_000, help="PPO steps (trained)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. seeds-1")
    parser.add_argument(
        "--epochs", type=int, default=None, help="Adam epochs of the pi_D fit (default: L-BFGS)"
    )
    # parse_known_args: `opsrl bench` runs this file with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    th.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    samplers = ("on_policy", "props")
    errors: dict[str, list[dict[int, float]]] = {sampler: [] for sampler in samplers}
    start = time.perf_counter()
    for seed in range(args.seeds):
        state = target_state(args.env, args.target, seed, args.train_steps)
        for sampler in samplers:
            errors[sampler].append(measure(args.env, sampler, state, seed, args.epochs))
    elapsed = time.perf_counter() - start

    fit = "L-BFGS to convergence" if args.epochs is None else f"{args.epochs} Adam epochs"
    target = (
        "the seeded initial policy"
        if args.target == "random"
        else f"SB3 PPO after {args.train_steps:,} steps"
    )
    print(
        f"{args.env}, fixed target: {target}; batches of {N_STEPS} steps, PROPS every 256 "
        f"steps; {args.seeds} seeds, mean ± std; pi_D fit: {fit}; "
        f"{elapsed:.0f} s"
    )
    print(
        f"{datetime.date.today().isoformat()}; "
        f"{machine_note(torch=str(th.__version__), sb3=stable_baselines3.__version__)}\n"
    )
    print("| batches | steps | on-policy SE | PROPS SE | PROPS lower by |")
    print("|---:|---:|---:|---:|---:|")
    means: dict[str, dict[int, float]] = {sampler: {} for sampler in samplers}
    for batch in MEASURE_AT:
        column = {sampler: [run[batch] for run in errors[sampler]] for sampler in samplers}
        for sampler in samplers:
            means[sampler][batch] = statistics.mean(column[sampler])
        reduction = 1 - means["props"][batch] / means["on_policy"][batch]
        print(
            f"| {batch} | {batch * N_STEPS:,} | {mean_std(column['on_policy'])} | "
            f"{mean_std(column['props'])} | {100 * reduction:.0f} % |"
        )
    return means


if __name__ == "__main__":
    main()
