"""The ``ray`` backend of ``opsrl run``: the same runs and output files as the local backend,
each run a Ray Tune trial.

Every run is one trial of a Tune grid over the run names. A trial calls the very function the
local backend calls (:func:`opsrl.experiment.execute_run`), so run directories, logs, models and
the results table are identical whichever backend made them. A trial whose worker process dies
(killed, out of memory, node lost) is retried up to ``max_retries`` times: a run restarts in a
fresh hidden ``.partial`` directory, so a retry never sees a half-written result. A run that
fails with an error (a user mistake, a crash inside the run) is recorded as failed and not
retried, exactly as with the local backend. ``--resume`` works the same way too: finished runs
are on disk and are skipped before any trial starts.

Ray is the ``ray`` extra (``pip install "opsrl[ray]"``). With no address, ``ray.init`` starts a
local Ray on this machine (``num_cpus`` = the experiment's ``workers`` x ``cpus_per_run``);
``--address auto`` joins a running cluster.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from opsrl.spec import ExperimentSpec, Run

__all__ = ["KILL_ONCE_ENV", "run_ray"]

#: fault injection for testing retries: when set to a file path that does not exist yet, the
#: first trial to start creates it and its worker process is killed once its run is under way
KILL_ONCE_ENV = "OPSRL_RAY_KILL_ONCE"
#: where Ray Tune keeps its own trial records, inside the experiment directory
RAY_DIR = ".ray"


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        from opsrl.experiment import RunError

        raise RunError(
            'the ray backend needs Ray: pip install "opsrl[ray]" (or "ray[tune]")'
        ) from None
    return ray


def _kill_once_if_asked(run_dir_partial: Path) -> None:
    """Test hook (``OPSRL_RAY_KILL_ONCE``): kill this worker once its run has started."""
    marker = os.environ.get(KILL_ONCE_ENV)
    if not marker:
        return
    try:
        with open(marker, "x") as handle:  # only the first trial gets here
            handle.write(f"{os.getpid()}\n")
    except FileExistsError:
        return

    def kill_when_started() -> None:
        for _ in range(600):
            if run_dir_partial.exists():
                break
            threading.Event().wait(0.05)
        os._exit(1)  # a hard death: no cleanup, as when the OS kills a worker

    threading.Thread(target=kill_when_started, daemon=True).start()


def _trial(
    config: dict[str, Any], runs: dict[str, Run], spec: ExperimentSpec, exp_dir: str
) -> None:
    from ray import tune

    from opsrl.experiment import PARTIAL_SUFFIX, execute_run

    run = runs[config["run"]]
    _kill_once_if_asked(Path(exp_dir) / f".{run.name}{PARTIAL_SUFFIX}")
    threads = max(1, int(config["threads"]))
    outcome = execute_run(run, spec, Path(exp_dir), torch_threads=threads)
    tune.report(
        {
            "status": outcome.status,
            "error": outcome.error or "",
            "wall_time_s": outcome.wall_time,
        }
    )


def run_ray(
    runs: list[Run],
    spec: ExperimentSpec,
    exp_dir: Path,
    workers: int,
    console: Any,
) -> list[Any]:
    """Execute ``runs`` as Ray Tune trials; return one ``RunOutcome`` per run."""
    from opsrl.experiment import RunOutcome, _report

    if not runs:
        return []
    ray = _import_ray()
    from ray import tune

    options = spec.ray
    if not ray.is_initialized():
        init: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": "ERROR",
        }
        if options.address:
            init["address"] = options.address
        else:
            init["num_cpus"] = max(1, round(workers * options.cpus_per_run))
            init["num_gpus"] = 0 if options.gpus_per_run == 0 else None
        ray.init(**init)
    by_name = {run.name: run for run in runs}
    trainable = tune.with_parameters(_trial, runs=by_name, spec=spec, exp_dir=str(exp_dir))
    resources = {"cpu": options.cpus_per_run, "gpu": options.gpus_per_run}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={
            "run": tune.grid_search(list(by_name)),
            "threads": max(1, int(options.cpus_per_run)),
        },
        tune_config=tune.TuneConfig(max_concurrent_trials=workers),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str((exp_dir / RAY_DIR).resolve()),
            failure_config=tune.FailureConfig(max_failures=options.max_retries),
            verbose=0,
        ),
    )
    grid = tuner.fit()
    outcomes = []
    for result in grid:
        name = result.config["run"]
        metrics = result.metrics or {}
        if result.error is not None:
            error = str(result.error).strip().splitlines()
            message = error[-1] if error else type(result.error).__name__
            outcome = RunOutcome(
                name,
                "failed",
                error=f"worker died {options.max_retries + 1} time(s): {message}",
            )
        else:
            outcome = RunOutcome(
                name,
                str(metrics.get("status", "failed")),
                error=metrics.get("error") or None,
                wall_time=float(metrics.get("wall_time_s", 0.0)),
            )
        outcomes.append(_report(outcome, console))
    return outcomes
