"""Experiment specs: YAML -> validated dataclasses -> a list of runs.

A spec names envs (id + kwargs), agents (name + hyperparameters), baselines, seeds, the
training budget, the evaluation protocol and how to execute (n_envs, device, backend,
workers). Validation is strict: an unknown key or a value of the wrong type is a one-line
``SpecError`` naming the key, before anything runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from opsrl import registry


class SpecError(ValueError):
    """A malformed experiment spec or flag (one line, names the key)."""


@dataclass
class EnvSpec:
    """An environment to train and evaluate on."""

    #: registered Gymnasium id, e.g. ``opsrl/LotSizing-v0``
    id: str
    #: keyword arguments for ``gym.make``
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: name used in run directories and tables (default: the id without its namespace)
    label: str | None = None
    #: kwargs that differ for evaluation (e.g. ``{split: test}`` to train on one period and
    #: evaluate on another); merged over ``kwargs``
    eval_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label is None:
            self.label = self.id.split("/")[-1]

    def with_kwargs(self, kwargs: dict[str, Any]) -> EnvSpec:
        """This env (same label and ``eval_kwargs``) with ``kwargs`` merged over its own."""
        if not kwargs:
            return self
        return EnvSpec(self.id, {**self.kwargs, **kwargs}, self.label, dict(self.eval_kwargs))

    def for_evaluation(self) -> EnvSpec:
        """The env spec evaluation episodes use: ``kwargs`` updated with ``eval_kwargs``."""
        return EnvSpec(self.id, {**self.kwargs, **self.eval_kwargs}, self.label)


@dataclass
class AgentSpec:
    """A learning agent from the registry with its hyperparameters."""

    #: registry name, e.g. ``ppo``, ``maskable_ppo``
    name: str
    #: SB3 policy alias (default: the agent's, ``MultiInputPolicy`` for Dict observations)
    policy: str | None = None
    #: keyword arguments for the algorithm's constructor (``learning_rate``, ``n_steps``, ...)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    #: name in run directories and tables (default: ``name``)
    label: str | None = None
    #: SB3 ``VecNormalize`` around the training envs, as rl-baselines3-zoo's ``normalize``:
    #: ``true`` (observations and rewards), or its keyword arguments (``norm_obs``,
    #: ``norm_reward``, ``clip_obs``, ``clip_reward``, ``gamma``, ``epsilon``). The statistics
    #: are saved with the run (``vecnormalize.pkl``) and evaluation normalizes observations
    #: with them; evaluation returns are always the env's own rewards.
    normalize: bool | dict[str, Any] = False
    #: training env steps of this agent (default: the experiment's ``timesteps``), as
    #: rl-baselines3-zoo's per-algorithm ``n_timesteps``: off-policy agents cost far more per step
    timesteps: int | None = None
    #: env kwargs for this agent only, merged over every env's ``kwargs`` for its training
    #: and evaluation (e.g. ``{observation: flat}`` for an MLP next to a graph policy); the
    #: env keeps its label, so the agent shares the env's rows with the baselines
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.label is None:
            self.label = self.name
        if self.timesteps is not None and self.timesteps < 1:
            raise SpecError(f"agent {self.name}: 'timesteps' must be >= 1, got {self.timesteps}")
        if isinstance(self.normalize, dict):
            unknown = sorted(set(self.normalize) - set(NORMALIZE_KEYS))
            if unknown:
                raise SpecError(
                    f"agent {self.name}: unknown 'normalize' key {unknown[0]!r}; expected one "
                    f"of: {', '.join(NORMALIZE_KEYS)}"
                )

    def normalize_kwargs(self) -> dict[str, Any] | None:
        """``VecNormalize`` keyword arguments, or None when the agent trains unnormalized."""
        if self.normalize is False:
            return None
        return {} if self.normalize is True else dict(self.normalize)


#: the ``VecNormalize`` arguments an agent's ``normalize`` mapping may set
NORMALIZE_KEYS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon")


@dataclass
class BaselineSpec:
    """A non-learning policy from the registry, evaluated on the agents' seeds."""

    #: registry name, e.g. ``random``
    name: str
    #: keyword arguments for the baseline's constructor (time limits, ...)
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: name in run directories and tables (default: ``name``)
    label: str | None = None

    def __post_init__(self) -> None:
        if self.label is None:
            self.label = self.name


@dataclass
class EvalSpec:
    """How policies are evaluated: the same episodes for every agent and baseline."""

    #: episodes in the final evaluation (and in each periodic one)
    episodes: int = 10
    #: periodic evaluation every this many env steps during training; 0 = only at the end
    freq: int = 0
    #: episode k of every evaluation resets with seed ``seed + k``
    seed: int = 1_000_000
    #: greedy actions for learned policies
    deterministic: bool = True


@dataclass
class RaySpec:
    """Options of the ``ray`` backend (ignored by ``local``)."""

    #: Ray cluster to join (``auto``: the running cluster); none starts a local Ray
    address: str | None = None
    #: CPUs reserved per run (its torch threads)
    cpus_per_run: float = 1.0
    #: GPUs reserved per run (fractions share a GPU)
    gpus_per_run: float = 0.0
    #: times a run whose worker died is started again before it counts as failed
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.cpus_per_run <= 0:
            raise SpecError(f"'ray.cpus_per_run' must be > 0, got {self.cpus_per_run}")
        if self.gpus_per_run < 0:
            raise SpecError(f"'ray.gpus_per_run' must be >= 0, got {self.gpus_per_run}")
        if self.max_retries < 0:
            raise SpecError(f"'ray.max_retries' must be >= 0, got {self.max_retries}")


@dataclass
class ExperimentSpec:
    """A whole experiment: the cross product envs x (agents + baselines) x seeds."""

    #: experiment name; runs go to ``<output_dir>/<name>/``
    name: str
    envs: list[EnvSpec]
    agents: list[AgentSpec] = field(default_factory=list)
    baselines: list[BaselineSpec] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    #: training env steps per agent run
    timesteps: int = 10_000
    eval: EvalSpec = field(default_factory=EvalSpec)
    #: parallel env copies feeding each learner
    n_envs: int = 1
    #: ``auto`` (the env's batched VecEnv if it has one and n_envs >= 2, else dummy), ``dummy``,
    #: ``subproc``, ``batched``
    vec_env: Literal["auto", "dummy", "subproc", "batched"] = "auto"
    #: torch device of the learners: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...
    device: str = "auto"
    #: where runs execute: ``local`` (a process pool on this machine) or ``ray`` (Ray Tune
    #: trials on a local Ray or a cluster: same runs, same output files)
    backend: Literal["local", "ray"] = "local"
    #: runs executed at once
    workers: int = 1
    #: options of the ``ray`` backend
    ray: RaySpec = field(default_factory=RaySpec)
    #: parent directory of the experiment directory
    output_dir: str = "runs"
    #: per env label, return thresholds; the summary reports the env steps each agent needs
    #: to reach them (first evaluation at or above the threshold)
    thresholds: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.envs:
            raise SpecError("experiment spec: 'envs' must name at least one env")
        if not self.agents and not self.baselines:
            raise SpecError("experiment spec: name at least one of 'agents' or 'baselines'")
        if not self.seeds:
            raise SpecError("experiment spec: 'seeds' must hold at least one seed")
        for key in ("timesteps", "n_envs", "workers"):
            if getattr(self, key) < 1:
                raise SpecError(f"experiment spec: '{key}' must be >= 1, got {getattr(self, key)}")
        if self.eval.episodes < 1:
            raise SpecError("experiment spec: 'eval.episodes' must be >= 1")
        if self.eval.freq < 0:
            raise SpecError("experiment spec: 'eval.freq' must be >= 0")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError(f"experiment spec: 'seeds' has duplicates: {self.seeds}")
        for entry in self.envs:
            registry.check_env_id(entry.id)
        for agent in self.agents:
            registry.agent_entry(agent.name)
        for baseline in self.baselines:
            registry.baseline_entry(baseline.name)
            for env in self.envs:
                registry.check_baseline_env(baseline.name, env.id)
        unknown_envs = set(self.thresholds) - {e.label for e in self.envs}
        if unknown_envs:
            raise SpecError(
                f"experiment spec: 'thresholds' names env {sorted(unknown_envs)[0]!r}, which is "
                "not an env label of this spec"
            )
        labels = [a.label for a in self.agents] + [b.label for b in self.baselines]
        for kind, names in (("agent/baseline", labels), ("env", [e.label for e in self.envs])):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise SpecError(
                    f"experiment spec: {kind} label {duplicates[0]!r} is used twice; "
                    "give one of them a distinct 'label'"
                )


def agent_timesteps(agent: AgentSpec, spec: ExperimentSpec) -> int:
    """Training env steps of ``agent`` in ``spec``: its own ``timesteps`` or the experiment's."""
    return agent.timesteps if agent.timesteps is not None else spec.timesteps


@dataclass(frozen=True)
class Run:
    """One unit of work: an agent trained (or a baseline evaluated) on one env with one seed."""

    experiment: str
    env: EnvSpec
    seed: int
    agent: AgentSpec | None = None
    baseline: BaselineSpec | None = None

    @property
    def kind(self) -> str:
        return "agent" if self.agent is not None else "baseline"

    @property
    def policy_label(self) -> str:
        member = self.agent if self.agent is not None else self.baseline
        assert member is not None and member.label is not None
        return member.label

    @property
    def name(self) -> str:
        """Directory name ``<env>__<agent>__<seed>``."""
        return f"{self.env.label}__{self.policy_label}__{self.seed}"


def expand(spec: ExperimentSpec) -> list[Run]:
    """The runs of ``spec``: envs x (agents, then baselines) x seeds.

    A deterministic baseline gives the same episodes whatever its seed, so it runs once,
    with the first seed.
    """
    runs = []
    for env in spec.envs:
        for agent in spec.agents:
            agent_env = env.with_kwargs(agent.env_kwargs)
            runs += [Run(spec.name, agent_env, seed, agent=agent) for seed in spec.seeds]
        for baseline in spec.baselines:
            seeds = (
                spec.seeds if registry.baseline_entry(baseline.name).stochastic else spec.seeds[:1]
            )
            runs += [Run(spec.name, env, seed, baseline=baseline) for seed in seeds]
    return runs


# --------------------------------------------------------------------------------------------
# Parsing and validation
# --------------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against ``annotation``; build nested dataclasses; raise SpecError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except SpecError as error:
                errors.append(error)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise SpecError(f"'{where}' must be one of {_type_name(annotation)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise SpecError(f"'{where}' must be a list, got {type(value).__name__}")
        return [_coerce(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"'{where}' must be a mapping, got {type(value).__name__}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if annotation is bool:
        if not isinstance(value, bool):
            raise SpecError(f"'{where}' must be true or false, got {value!r}")
        return value
    if annotation is int:
        # YAML reads 1.0e5 as a float; an integral float is what the user meant.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            hint = (
                " (write 100000 or 1.0e5: YAML reads 1e5 as text)" if isinstance(value, str) else ""
            )
            raise SpecError(f"'{where}' must be an integer, got {value!r}{hint}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SpecError(f"'{where}' must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise SpecError(f"'{where}' must be a string, got {value!r}")
        return value
    raise SpecError(f"'{where}': unsupported field type {annotation}")  # pragma: no cover


#: a bare string where a mapping is expected means this field
_SHORTHAND = {EnvSpec: "id", AgentSpec: "name", BaselineSpec: "name"}


def _build(cls: type, data: Any, where: str) -> Any:
    if isinstance(data, str) and cls in _SHORTHAND:
        data = {_SHORTHAND[cls]: data}
    if data is None and cls in (EvalSpec, RaySpec):
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"'{where}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        prefix = f"{where}." if where else ""
        raise SpecError(f"unknown key '{prefix}{unknown[0]}'; expected one of: {', '.join(fields)}")
    values = {}
    for name, spec_field in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            values[name] = _coerce(data[name], hints[name], key)
        elif spec_field.default is dataclasses.MISSING and (
            spec_field.default_factory is dataclasses.MISSING
        ):
            raise SpecError(f"missing required key '{key}'")
    try:
        return cls(**values)
    except registry.RegistryError as error:
        raise SpecError(str(error)) from None


def spec_from_dict(data: Any, default_name: str = "experiment") -> ExperimentSpec:
    """Validate a plain mapping (as read from YAML) into an ``ExperimentSpec``."""
    if not isinstance(data, dict):
        raise SpecError("experiment spec must be a YAML mapping at the top level")
    data = dict(data)
    data.setdefault("name", default_name)
    if "vectorization" in data:
        # the issue tracker's and the docs' word for vec_env; one of the two, not both
        if "vec_env" in data:
            raise SpecError("give one of 'vec_env' and 'vectorization' (one setting), not both")
        data["vec_env"] = data.pop("vectorization")
    return _build(ExperimentSpec, data, "")


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate an experiment spec from a YAML file."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"experiment spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}: invalid YAML{at}: {getattr(error, 'problem', error)}") from None
    try:
        return spec_from_dict(data, default_name=path.stem)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None


def spec_to_dict(spec: Any) -> Any:
    """Plain-data form of a spec (for the resolved config written next to each run)."""
    return dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else spec


def parse_value(text: str) -> Any:
    """Parse a command-line value: ints, floats (``3e-4`` too), booleans, lists, strings."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["learning_rate:3e-4", "n_steps:128"]`` -> ``{"learning_rate": 3e-4, "n_steps": 128}``."""
    result: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise SpecError(f"{flag} expects key:value pairs, got {item!r}")
        result[key] = parse_value(value)
    return result
