"""Read an experiment directory: its spec, the runs it expects and how each ended, the
long results table and its summary. Nothing here writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from opsrl import results
from opsrl.experiment import (
    CONFIG_FILE,
    EVAL_FILE,
    FAILURES_FILE,
    PARTIAL_SUFFIX,
    TRACE_FILE,
    is_finished,
)
from opsrl.spec import ExperimentSpec, expand, spec_from_dict

__all__ = ["Experiment", "ReportError", "RunStatus", "load_experiment"]


class ReportError(ValueError):
    """The report cannot be made for a reason the user can fix (one line)."""


#: what each run status means, for the report's "missing or failed runs" section
STATUS_TEXT = {
    "finished": "finished",
    "failed": "failed",
    "unfinished": "unfinished (running, or killed)",
    "incomplete": "incomplete run directory",
    "missing": "missing",
}


@dataclass(frozen=True)
class RunStatus:
    """One run the experiment expects (or holds), and how it ended."""

    name: str
    env: str
    policy: str
    kind: str
    seed: int
    status: str
    detail: str = ""


@dataclass
class Experiment:
    """What the report knows of an experiment directory."""

    path: Path
    name: str
    spec: ExperimentSpec | None
    runs: list[RunStatus]
    #: env label -> env id
    env_ids: dict[str, str] = field(default_factory=dict)
    #: env label -> kwargs of its evaluation env
    env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: notes on what could not be read (shown in the report)
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> list[RunStatus]:
        return [run for run in self.runs if run.status == "finished"]

    @property
    def problems(self) -> list[RunStatus]:
        return [run for run in self.runs if run.status != "finished"]

    @property
    def envs(self) -> list[str]:
        """Env labels in spec order, then any other env with finished runs."""
        labels = list(self.env_ids)
        labels += [run.env for run in self.runs if run.env not in labels]
        return list(dict.fromkeys(labels))

    @property
    def random_labels(self) -> list[str]:
        """Labels of the baselines that play at random (the 0 of normalised scores)."""
        if self.spec is None:
            return ["random"]
        return [b.label for b in self.spec.baselines if b.name == "random"] or ["random"]

    def run_dir(self, name: str) -> Path:
        return self.path / name

    def first_episode_return(self, name: str) -> float | None:
        """Return of the run's first evaluation episode (the traced one), from eval.json."""
        try:
            evaluation = json.loads((self.run_dir(name) / EVAL_FILE).read_text())
            return float(evaluation["episodes"][0]["episode_return"])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return None

    def saved_trace(self, name: str) -> pd.DataFrame | None:
        """The run's ``trace.csv``, or None."""
        path = self.run_dir(name) / TRACE_FILE
        return pd.read_csv(path) if path.is_file() else None


def _read_spec(path: Path, notes: list[str]) -> ExperimentSpec | None:
    spec_file = path / "spec.yaml"
    if not spec_file.is_file():
        notes.append("no spec.yaml: the runs are listed from the directory")
        return None
    try:
        return spec_from_dict(yaml.safe_load(spec_file.read_text()), default_name=path.name)
    except (ValueError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        notes.append(f"spec.yaml could not be read ({first}): runs are listed from the directory")
        return None


def _read_failures(path: Path, notes: list[str]) -> dict[str, str]:
    failures_file = path / FAILURES_FILE
    if not failures_file.is_file():
        return {}
    try:
        failures = json.loads(failures_file.read_text())
        return {str(k): str(v or "") for k, v in failures.items()}
    except (ValueError, AttributeError):
        notes.append(f"{FAILURES_FILE} could not be read")
        return {}


def _status(path: Path, name: str, failures: dict[str, str]) -> tuple[str, str]:
    run_dir = path / name
    if is_finished(run_dir):
        return "finished", ""
    if name in failures:
        return "failed", failures[name]
    if (path / f".{name}{PARTIAL_SUFFIX}").is_dir():
        return "unfinished", "a partial run directory exists: the run is running or was killed"
    if run_dir.exists():
        return "incomplete", "the run directory lacks config.yaml, eval.json or results.csv"
    return "missing", "no run directory"


def _identity(run_dir: Path) -> dict[str, Any] | None:
    try:
        identity = yaml.safe_load((run_dir / CONFIG_FILE).read_text())["run"]
        return identity if isinstance(identity, dict) else None
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def load_experiment(path: str | Path) -> Experiment:
    """Read ``runs/<experiment>``; a path that is not one raises :class:`ReportError`."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path} is not a directory; give an experiment directory (runs/<name>)")
    run_dirs = sorted(
        d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".") and is_finished(d)
    )
    if not (path / "spec.yaml").is_file() and not run_dirs:
        raise ReportError(
            f"{path} is not an experiment directory (no spec.yaml and no finished run in it); "
            "give runs/<experiment>"
        )
    notes: list[str] = []
    spec = _read_spec(path, notes)
    failures = _read_failures(path, notes)
    runs: list[RunStatus] = []
    env_ids: dict[str, str] = {}
    env_kwargs: dict[str, dict[str, Any]] = {}
    if spec is not None:
        for env in spec.envs:
            assert env.label is not None
            env_ids[env.label] = env.id
            env_kwargs[env.label] = env.for_evaluation().kwargs
        for run in expand(spec):
            status, detail = _status(path, run.name, failures)
            runs.append(
                RunStatus(
                    run.name,
                    str(run.env.label),
                    run.policy_label,
                    run.kind,
                    run.seed,
                    status,
                    detail,
                )
            )
    known = {run.name for run in runs}
    for run_dir in run_dirs:
        identity = _identity(run_dir)
        if run_dir.name in known or identity is None:
            continue
        env = identity.get("env") or {}
        member = identity.get("agent") or identity.get("baseline") or {}
        label = env.get("label") or str(env.get("id", "?")).split("/")[-1]
        env_ids.setdefault(label, env.get("id", ""))
        env_kwargs.setdefault(label, {**env.get("kwargs", {}), **env.get("eval_kwargs", {})})
        runs.append(
            RunStatus(
                run_dir.name,
                label,
                str(member.get("label") or member.get("name") or "?"),
                str(identity.get("kind", "agent")),
                int(identity.get("seed", 0)),
                "finished",
                "not in spec.yaml" if spec is not None else "",
            )
        )
    finished = [run.name for run in runs if run.status == "finished"]
    table = results.collect(path, finished)
    thresholds = spec.thresholds if spec is not None else {}
    summary = results.summarize(table, thresholds) if len(table) else pd.DataFrame()
    return Experiment(
        path=path,
        name=spec.name if spec is not None else path.name,
        spec=spec,
        runs=runs,
        env_ids=env_ids,
        env_kwargs=env_kwargs,
        table=table,
        summary=summary,
        notes=notes,
    )
