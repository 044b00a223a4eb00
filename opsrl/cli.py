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
    evaluate = subparsers.add_parser(
        "eval",
        help="re-evaluate a finished run's saved model, optionally under a perturbation",
        description="Evaluate a run's saved agent or baseline again on fixed seeds. With "
        "--perturb NAME=V1,V2,... evaluate it at each level of a documented perturbation "
        "(see opsrl.perturb: demand_scale, shutdown_prob, demand_rate, route_closure_prob, "
        "...) on the same seeds; several run or experiment directories then share one table.",
    )
    evaluate.add_argument(
        "run_dir",
        nargs="+",
        help="a run directory, runs/<exp>/<env>__<agent>__<seed>; with --perturb also several, "
        "or experiment directories (all their finished runs)",
    )
    evaluate.add_argument("--episodes", type=int, help="episodes (default: the run's)")
    evaluate.add_argument("--seed", type=int, help="first episode seed (default: the run's)")
    evaluate.add_argument(
        "--perturb",
        action="append",
        metavar="NAME=V1,V2,...",
        help="evaluate at each level of this perturbation, e.g. demand_scale=0.5,1,2 (one per "
        "command)",
    )
    evaluate.add_argument(
        "--output",
        help="also write the evaluation as JSON here (with --perturb: the episodes as CSV beside)",
    )
    _add_bench_parser(subparsers)
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

    if args.episodes is not None and args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {args.episodes}")
    if args.perturb:
        return _cmd_eval_perturbed(args, console)
    if len(args.run_dir) > 1:
        raise ValueError(
            "give one run directory (several, or experiment directories, go with --perturb)"
        )
    run_dir = args.run_dir[0]
    evaluation = evaluate_run_dir(run_dir, episodes=args.episodes, seed=args.seed)
    table = Table(
        title=f"evaluation of {run_dir} on seeds "
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


def _cmd_eval_perturbed(args: argparse.Namespace, console: Any) -> int:
    """``opsrl eval RUN_DIR... --perturb NAME=V1,V2,...``: one row per run and level."""
    import math

    import pandas as pd
    from rich.table import Table

    from opsrl.perturb import (
        evaluate_perturbed,
        parse_perturb,
        perturbations,
        summarize_perturbed,
    )

    if len(args.perturb) > 1:
        raise ValueError(f"one --perturb per command, got {len(args.perturb)}")
    name, levels = parse_perturb(args.perturb[0])
    with console.status(f"evaluating {name} levels") as status:
        frame = evaluate_perturbed(
            args.run_dir,
            name,
            levels,
            episodes=args.episodes,
            seed=args.seed,
            progress=lambda run, level: status.update(f"{run}: {name}={level:g}"),
        )
    skipped = frame.attrs.get("skipped", {})
    for run, reason in skipped.items():
        console.print(f"[dim]skipped {run}: {reason}[/dim]")
    summary = summarize_perturbed(frame)
    definitions = {env_id: perturbations(env_id)[name] for env_id in frame["env_id"].unique()}
    wanted = [f"kpi/{k}" for d in definitions.values() for k in d.kpis]
    kpis = [c for c in dict.fromkeys(wanted) if c in summary] or [
        c for c in summary.columns if c.startswith("kpi/")
    ]
    seeds = sorted(frame["seed"].unique())
    parameters = ", ".join(dict.fromkeys(d.parameter for d in definitions.values()))
    table = Table(
        title=f"{name} levels ({parameters}), seeds {seeds[0]}..{seeds[-1]}",
        caption="* the run's nominal level",
    )
    # a run is env x agent x seed: show the parts that vary
    who = [key for key in ("env", "agent", "run_seed") if summary[key].nunique() > 1]
    for key in who:
        width = int(summary[key].astype(str).str.len().max())
        table.add_column("seed" if key == "run_seed" else key, min_width=width)
    table.add_column("level", justify="right", no_wrap=True)
    table.add_column("return (mean ± std)", justify="right", no_wrap=True)
    for kpi in kpis:
        table.add_column(kpi.removeprefix("kpi/").replace("_", " "), justify="right")
    for _, row in summary.iterrows():
        level = f"{row['level']:g}"
        if math.isclose(row["level"], row["nominal"], rel_tol=1e-9, abs_tol=1e-12):
            level += "*"
        cells = [level, f"{row['return']:,.4g} ± {row['return_std']:,.3g}"]
        cells += ["" if pd.isna(row[k]) else f"{row[k]:,.4g}" for k in kpis]
        table.add_row(*[str(row[key]) for key in who], *cells)
    console.print(table)
    if args.output:
        json_path = Path(args.output)
        csv_path = json_path.with_suffix(".csv")
        if csv_path == json_path:
            csv_path = json_path.with_name(f"{json_path.stem}.episodes.csv")

        def records(table: pd.DataFrame) -> list[dict[str, Any]]:
            # JSON has no NaN: a KPI an episode did not report becomes null
            return table.astype(object).where(table.notna(), None).to_dict(orient="records")

        payload = {
            "perturbation": name,
            "levels": levels,
            "seeds": [int(s) for s in seeds],
            "definitions": {
                env_id: {
                    "parameter": d.parameter,
                    "meaning": d.meaning,
                    "how": d.how,
                    "valid_range": d.valid_range,
                }
                for env_id, d in definitions.items()
            },
            "skipped": skipped,
            "summary": records(summary),
            "episodes": records(frame),
        }
        json_path.write_text(json.dumps(payload, indent=2))
        frame.to_csv(csv_path, index=False)
        console.print(f"written to {json_path} and {csv_path}", soft_wrap=True)
    return 0


def _add_bench_parser(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="env and PPO throughput table of the OR envs, or a script from ./benchmarks",
        description="Bare `opsrl bench` measures env steps/s of every OR env as one env, in SB3 "
        "DummyVecEnv and SubprocVecEnv and as its batched VecEnv, PPO training throughput per "
        "vectorisation, and step cost against problem size, and prints markdown tables. "
        "`opsrl bench NAME [ARGS...]` runs benchmarks/NAME.py with ARGS; `--list` lists them.",
    )
    bench.add_argument("name", nargs="?", help="a script in benchmarks/ (default: the env table)")
    bench.add_argument(
        "script_args", nargs=argparse.REMAINDER, help="arguments passed on to the script"
    )
    bench.add_argument("--list", action="store_true", help="list the scripts in benchmarks/")
    bench.add_argument("--quick", action="store_true", help="tiny settings: a smoke run")
    bench.add_argument(
        "--envs", help="comma-separated env ids or families (default: all OR envs), e.g. job_shop"
    )
    bench.add_argument(
        "--copies", help="copies of the batched env, one column each (default 64,1024,4096)"
    )
    bench.add_argument(
        "--ppo-steps", type=int, help="env steps per PPO learn (default 8192; 0: no PPO table)"
    )
    bench.add_argument("--repeats", type=int, help="runs per measurement, median (default 3)")
    bench.add_argument("--seconds", type=float, help="minimum seconds per measurement (default 1)")
    bench.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        help="time env steps by the wall clock (default) or by this process's CPU time "
        "(steadier on a shared machine)",
    )
    bench.add_argument("--device", help="torch device of the PPO runs (default cpu)")
    bench.add_argument("--no-scaling", action="store_true", help="skip the problem-size table")
    bench.add_argument("--output", metavar="FILE.md", help="also write the tables to this file")


#: options of the env table, which a benchmarks/ script does not take
_BENCH_TABLE_OPTIONS = (
    "envs",
    "copies",
    "ppo_steps",
    "repeats",
    "seconds",
    "clock",
    "device",
    "no_scaling",
    "output",
)


def _bench_table(args: argparse.Namespace, console: Any) -> int:
    from opsrl import bench

    for name in ("ppo_steps", "repeats"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "ppo_steps" else 1):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be at least {0 if name == 'ppo_steps' else 1}")
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError("--seconds must be positive")
    overrides: dict[str, Any] = {}
    if args.copies is not None:
        overrides["copies"] = bench.parse_copies(args.copies)
    for name in ("ppo_steps", "repeats", "seconds", "clock", "device"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.no_scaling:
        overrides["scaling"] = False
    settings = (
        bench.BenchSettings.quick(**overrides) if args.quick else bench.BenchSettings(**overrides)
    )
    selection = [name.strip() for name in args.envs.split(",") if name.strip()] if args.envs else []
    if args.envs is not None and not selection:
        raise ValueError("--envs needs at least one env id or family name")
    envs = bench.or_envs(selection)
    report = bench.run_bench(settings, envs)
    table = bench.render_markdown(report)
    console.print(table, markup=False, highlight=False, soft_wrap=True)
    if args.output:
        flags = ["--quick"] if args.quick else []
        for name in _BENCH_TABLE_OPTIONS[:-2]:
            if getattr(args, name) is not None:
                flags += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        flags += ["--no-scaling"] if args.no_scaling else []
        command = " ".join(["opsrl bench", *flags])
        Path(args.output).write_text(f"Command: `{command}`\n\n{table}")
        console.print(f"written to {args.output}", soft_wrap=True)
    return 0


def _cmd_bench(args: argparse.Namespace, console: Any) -> int:
    if args.name is None and not args.list:
        return _bench_table(args, console)
    given = [
        f"--{n.replace('_', '-')}"
        for n in _BENCH_TABLE_OPTIONS
        if getattr(args, n) not in (None, False)
    ]
    if given:
        raise ValueError(
            f"{', '.join(given)} apply to the env table (bare `opsrl bench`), not to a script; "
            "give script arguments after its name"
        )
    bench_dir = Path("benchmarks")
    scripts = sorted(p.stem for p in bench_dir.glob("*.py")) if bench_dir.is_dir() else []
    if not scripts:
        raise FileNotFoundError(
            "no benchmarks/ directory here; run `opsrl bench NAME` from the repository root"
        )
    if args.list:
        if args.name is not None:
            raise ValueError("--list takes no script name")
        console.print("benchmarks: " + ", ".join(scripts))
        return 0
    if args.name not in scripts:
        raise ValueError(f"unknown benchmark '{args.name}'; known: {', '.join(scripts)}")
    path = bench_dir / f"{args.name}.py"
    # The script reads its own arguments from sys.argv, as when run with python directly.
    script_args = (["--quick"] if args.quick else []) + list(args.script_args)
    saved_argv = sys.argv
    sys.argv = [str(path), *script_args]
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved_argv
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
