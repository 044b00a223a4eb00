"""``opsrl`` command line: a thin dispatcher over list | run | eval | bench | report.

User mistakes (unknown ids, bad YAML keys, wrong types, missing files) end in one line on
stderr and exit status 2 (``OPSRL_DEBUG=1`` shows the traceback instead); failed runs make
``opsrl run`` exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import sys
import time
from pathlib import Path
from typing import Any

from opsrl import __version__


def _add_run_parser(subparsers: Any) -> None:
    run = subparsers.add_parser(
        "run",
        help="run an experiment spec, one training from flags, or (no arguments) the quickstart",
        description="Train and evaluate agents and baselines. `opsrl run SPEC.yaml` runs a spec; "
        "`opsrl run --env ID --agent NAME -n STEPS --seed S` one training; bare `opsrl run` "
        "the built-in quickstart.",
    )
    run.add_argument("spec", nargs="?", help="experiment spec (YAML)")
    run.add_argument("--env", help="env id, e.g. opsrl/LotSizing-v0")
    run.add_argument("--agent", "--algo", dest="agent", help="agent name (see `opsrl list`)")
    run.add_argument("--baseline", action="append", help="baseline to evaluate alongside")
    run.add_argument("-n", "--n-timesteps", dest="timesteps", type=int, help="training env steps")
    run.add_argument("--seed", type=int, nargs="+", help="one or more seeds")
    run.add_argument(
        "--hyperparams",
        nargs="+",
        metavar="KEY:VALUE",
        help="agent hyperparameters, e.g. learning_rate:3e-4 n_steps:256",
    )
    run.add_argument(
        "--env-kwargs", nargs="+", metavar="KEY:VALUE", help="env arguments, e.g. instance:25x15"
    )
    run.add_argument("--policy", help="SB3 policy (default MlpPolicy)")
    run.add_argument(
        "--normalize",
        action="store_true",
        help="VecNormalize observations and rewards in training (as rl-zoo's normalize: true)",
    )
    run.add_argument("--n-envs", type=int, help="parallel env copies per learner")
    run.add_argument("--vec-env", choices=["auto", "dummy", "subproc", "batched"])
    run.add_argument("--device", help="torch device: auto, cpu, cuda")
    run.add_argument("--eval-episodes", type=int, help="evaluation episodes")
    run.add_argument("--eval-freq", type=int, help="evaluate every N env steps (0: at the end)")
    run.add_argument("--workers", type=int, help="runs executed at once")
    run.add_argument(
        "--backend", choices=["local", "ray"], help="local process pool (default) or Ray Tune"
    )
    run.add_argument("--address", help="ray backend: cluster address (auto: the running one)")
    run.add_argument("--cpus-per-run", type=float, help="ray backend: CPUs per run")
    run.add_argument("--gpus-per-run", type=float, help="ray backend: GPUs per run")
    run.add_argument(
        "--max-retries", type=int, help="ray backend: restarts of a run whose worker died"
    )
    run.add_argument("--name", help="experiment name (directory under --output)")
    run.add_argument("--output", help="parent directory of experiments (default runs)")
    run.add_argument(
        "--resume", action="store_true", help="keep finished runs and run only the unfinished ones"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument(
        "--no-report",
        action="store_true",
        help="do not write report.md / report.html at the end (see `opsrl report`)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``opsrl`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="opsrl", description="Reinforcement learning for operations research."
    )
    parser.add_argument("--version", action="version", version=f"opsrl {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    subparsers.add_parser("list", help="list env ids, agents and baselines")
    _add_run_parser(subparsers)
    evaluate = subparsers.add_parser("eval", help="re-evaluate a finished run's saved model")
    evaluate.add_argument("run_dir", help="a run directory, runs/<exp>/<env>__<agent>__<seed>")
    evaluate.add_argument("--episodes", type=int, help="episodes (default: the run's)")
    evaluate.add_argument("--seed", type=int, help="first episode seed (default: the run's)")
    evaluate.add_argument("--output", help="also write the evaluation as JSON here")
    bench = subparsers.add_parser("bench", help="run a benchmark from ./benchmarks")
    bench.add_argument("name", nargs="?", help="benchmark script name (default: list them)")
    report = subparsers.add_parser(
        "report",
        help="write report.md and a self-contained report.html for an experiment",
        description="Learning curves, results tables with OR gaps, aggregate scores and "
        "per-family figures (Gantt charts, inventory traces, portfolio weights, Pareto fronts) "
        "of an experiment directory.",
    )
    report.add_argument("exp_dir", help="an experiment directory, runs/<experiment>")
    report.add_argument("--output", help="write the report here (default: the experiment dir)")
    report.add_argument(
        "--replay-traces",
        action="store_true",
        help="replay the first evaluation episode of the best runs that have no trace.csv",
    )
    return parser


def _cmd_list(console: Any) -> int:
    import gymnasium as gym
    from rich.table import Table

    from opsrl import registry

    envs = Table(title="environments")
    for column in ("id", "description", "vectorized"):
        envs.add_column(column)
    stages = [e.id for e in registry.ENV_TABLE if re.fullmatch(r"opsrl/Mario-\d-\d-v0", e.id)]
    for entry in registry.ENV_TABLE:
        assert entry.id in gym.registry
        if entry.id in stages[1:]:
            continue  # one row stands for the family of stage ids
        if entry.id in stages[:1]:
            envs.add_row(
                "opsrl/Mario-<world>-<stage>-v0", f"{len(stages)} stages, as opsrl/Mario-v0", ""
            )
            continue
        vectorized = "batched" if entry.batched_entry_point else ""
        if entry.agents_entry_point:
            vectorized = "per agent"
        envs.add_row(entry.id, entry.description, vectorized)
    agents = Table(title="agents")
    for column in ("name", "algorithm", "source", "action masks"):
        agents.add_column(column)
    for agent in registry.AGENT_TABLE:
        agents.add_row(
            agent.name, agent.description, agent.source, "yes" if agent.uses_action_masks else ""
        )
    baselines = Table(title="baselines")
    for column in ("name", "description", "envs"):
        baselines.add_column(column)
    for baseline in registry.BASELINE_TABLE:
        baselines.add_row(baseline.name, baseline.description, ", ".join(baseline.env_ids) or "any")
    for table in (envs, agents, baselines):
        console.print(table)
    return 0


def _spec_from_args(args: argparse.Namespace) -> tuple[Any, bool]:
    """Build the ExperimentSpec of ``opsrl run`` and whether it resumes."""
    from opsrl.experiment import default_spec_path
    from opsrl.spec import SpecError, load_spec, parse_key_values, spec_from_dict, spec_to_dict

    flag_mode = args.env is not None or args.agent is not None or args.baseline
    if args.spec and flag_mode:
        raise SpecError("give either a spec file or --env/--agent flags, not both")
    resume = args.resume
    if flag_mode:
        if not args.env or not (args.agent or args.baseline):
            raise SpecError("one training needs --env ID and --agent NAME (or --baseline NAME)")
        agents = []
        if args.agent:
            hyperparams = parse_key_values(args.hyperparams, "--hyperparams")
            agent: dict[str, Any] = {"name": args.agent, "hyperparams": hyperparams}
            # rl-zoo spells it as a hyperparameter; here it is the agent's ``normalize``
            if "normalize" in hyperparams:
                agent["normalize"] = hyperparams.pop("normalize")
            if args.normalize:
                agent["normalize"] = True
            if args.policy:
                agent["policy"] = args.policy
            agents.append(agent)
        env_label = args.env.split("/")[-1]
        who = args.agent or args.baseline[0]
        seed = (args.seed or [0])[0]
        data: dict[str, Any] = {
            "name": args.name or f"{env_label}__{who}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}",
            "envs": [{"id": args.env, "kwargs": parse_key_values(args.env_kwargs, "--env-kwargs")}],
            "agents": agents,
            "baselines": list(args.baseline or []),
        }
    else:
        if args.hyperparams or args.env_kwargs or args.policy or args.normalize:
            raise SpecError(
                "--hyperparams, --env-kwargs, --policy and --normalize go with --env/--agent; "
                "in a spec file set them per agent/env"
            )
        path = Path(args.spec) if args.spec else default_spec_path()
        if not args.spec:
            resume = True  # bare `opsrl run` twice shows the finished quickstart
        data = spec_to_dict(load_spec(path))
        if args.name:
            data["name"] = args.name
    overrides = {
        "timesteps": args.timesteps,
        "seeds": args.seed,
        "n_envs": args.n_envs,
        "vec_env": args.vec_env,
        "device": args.device,
        "workers": args.workers,
        "output_dir": args.output,
        "backend": args.backend,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    ray_options = {
        "address": args.address,
        "cpus_per_run": args.cpus_per_run,
        "gpus_per_run": args.gpus_per_run,
        "max_retries": args.max_retries,
    }
    ray_options = {k: v for k, v in ray_options.items() if v is not None}
    if ray_options:
        data["ray"] = {**(data.get("ray") or {}), **ray_options}
    evaluation = dict(data.get("eval") or {})
    if args.eval_episodes is not None:
        evaluation["episodes"] = args.eval_episodes
    if args.eval_freq is not None:
        evaluation["freq"] = args.eval_freq
    data["eval"] = evaluation
    return spec_from_dict(data), resume


def _cmd_run(args: argparse.Namespace, console: Any) -> int:
    from opsrl import results
    from opsrl.experiment import run_experiment
    from opsrl.spec import expand

    spec, resume = _spec_from_args(args)
    runs = len(expand(spec))
    console.print(
        f"[bold]experiment {spec.name}[/bold]: {runs} run(s) -> {Path(spec.output_dir) / spec.name}"
    )
    outcome = run_experiment(
        spec,
        resume=resume,
        console=console,
        progress=not args.no_progress,
        report=not args.no_report,
    )
    if len(outcome.summary):
        console.print(results.render_summary(outcome.summary, title=f"{spec.name}: final return"))
        kpis = results.render_kpis(outcome.summary)
        if kpis is not None:
            console.print(kpis)
    if outcome.table_path is not None:
        console.print(f"results table: {outcome.table_path}")
        console.print(f"summary: {outcome.exp_dir / 'summary.csv'}")
        console.print(f"TensorBoard: tensorboard --logdir {outcome.exp_dir}")
    if outcome.report_path is not None:
        html = outcome.report_path.with_suffix(".html")
        console.print(f"report: {outcome.report_path} and {html}", soft_wrap=True)
    if outcome.failures:
        console.print(
            f"[red]{len(outcome.failures)} run(s) failed[/red]; "
            "rerun with --resume to retry only those"
        )
        return 1
    return 0


def _cmd_eval(args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from opsrl.experiment import evaluate_run_dir

    evaluation = evaluate_run_dir(args.run_dir, episodes=args.episodes, seed=args.seed)
    table = Table(
        title=f"evaluation of {args.run_dir} on seeds "
        f"{evaluation['seeds'][0]}..{evaluation['seeds'][-1]}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in evaluation["summary"].items():
        table.add_row(key, f"{value:,.4g}")
    console.print(table)
    if args.output:
        Path(args.output).write_text(json.dumps(evaluation, indent=2))
        console.print(f"written to {args.output}")
    return 0


def _cmd_bench(args: argparse.Namespace, console: Any) -> int:
    bench_dir = Path("benchmarks")
    scripts = sorted(p.stem for p in bench_dir.glob("*.py")) if bench_dir.is_dir() else []
    if not scripts:
        raise FileNotFoundError(
            "no benchmarks/ directory here; run `opsrl bench` from the repository root"
        )
    if args.name is None:
        console.print("benchmarks: " + ", ".join(scripts))
        return 0
    if args.name not in scripts:
        raise ValueError(f"unknown benchmark '{args.name}'; known: {', '.join(scripts)}")
    runpy.run_path(str(bench_dir / f"{args.name}.py"), run_name="__main__")
    return 0


def _cmd_report(args: argparse.Namespace, console: Any) -> int:
    from opsrl.report import build_report

    files = build_report(args.exp_dir, output_dir=args.output, replay_traces=args.replay_traces)
    console.print(f"report: {files.markdown}", soft_wrap=True)
    console.print(
        f"        {files.html} (self-contained, {len(files.figures)} figures)", soft_wrap=True
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``opsrl`` console script."""
    from rich.console import Console

    from opsrl.experiment import RunError
    from opsrl.spec import SpecError

    args = build_parser().parse_args(argv)
    console = Console()
    commands = {
        "list": lambda: _cmd_list(console),
        "run": lambda: _cmd_run(args, console),
        "eval": lambda: _cmd_eval(args, console),
        "bench": lambda: _cmd_bench(args, console),
        "report": lambda: _cmd_report(args, console),
    }
    try:
        return commands[args.command]()
    except (SpecError, RunError, FileNotFoundError, ValueError) as error:
        if os.environ.get("OPSRL_DEBUG"):
            raise
        print(f"opsrl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("opsrl: interrupted; finished runs are kept, rerun with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
