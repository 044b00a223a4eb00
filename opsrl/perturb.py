"""Robustness harness: documented perturbations of env parameters, and saved runs evaluated
across perturbation levels.

A *perturbation* moves one parameter of an env away from the value a policy was trained (or a
baseline tuned) on -- more demand, more frequent machine shutdowns, more route closures --
and evaluates the saved policy, unchanged, at each level on the same episode seeds. Each
perturbation is either an env constructor keyword argument (``kwarg``; preferred where the
env has one) or a Gymnasium wrapper that shifts a simulator parameter after construction
(``wrapper``).

## Perturbations

| env id | name | parameter it shifts | nominal | valid levels | how |
|---|---|---|---|---|---|
| opsrl/LotSizing-v0 | demand_scale | every item's mean demand, x level | 1 | >= 0 (*) | wrapper |
| opsrl/JobShop-v0 | shutdown_prob | ``shutdown_prob`` | 0.05 | [0, 1) | kwarg |
| opsrl/RideSharing-v0 | demand_rate | ``demand_rate`` | 3.0 | > 0 | kwarg |
| opsrl/UAMFleet-v0 | route_closure_prob | ``config.route_closure_prob`` | 0.05 | [0, 1] | kwarg |
| opsrl/SimulatedLinearMDP-v0 | failure_prob | ``failure_prob`` | 0 | [0, 1] | kwarg |
| opsrl/AmericanPut-v0 | up_prob | ``up_prob`` | 0.5 | [0, 1] | kwarg |

- ``demand_scale``: the mean demand per period of every item is multiplied by the level (see
  Lot-sizing demand below; (*) binomial demand needs level x p <= 1).
- ``shutdown_prob``: per-tick probability that an operational machine shuts down.
- ``demand_rate``: mean new orders per minute of the synthetic gravity demand (not with
  ``trips``: replayed NYC trips have no rate).
- ``route_closure_prob``: probability that weather closes a route (both ways) for one hour of
  the day; it has no effect with ``uncertainty=False``, which is an error here.
- ``failure_prob``: probability that state x1 moves to the failure state (the test-time
  perturbation q of the robust linear-MDP testbed).
- ``up_prob``: probability that the price moves up at each step (p0 of the robust American
  put testbed).

The nominal level of a run is the value in the run's own env (its kwargs, else the env's
default), read back from the built env; the ``nominal`` column gives the envs' defaults.

**Lot-sizing demand.** ``demand_scale = s`` multiplies the mean demand of every item by s,
keeping the demand model's family where that is exact: Poisson(lam) becomes Poisson(s lam);
Binomial(n, p) becomes Binomial(n, s p) (so s may not exceed 1 / p: 2.5 for the default
Binomial(20, 0.4)); uniform demand on low..high becomes s D rounded at random to one of
its two neighbouring integers (up with probability equal to the fractional part), whose mean
is exactly s times the nominal one. The wrapper swaps the simulator's demand table
(``plant.demand_cdf``); demand is still drawn by inversion of the same uniforms, so a level
uses exactly the random numbers of the nominal env (s = 1 reproduces it bit for bit) and
demand grows with s seed by seed (common random numbers across levels).

**What a policy knows.** A kwarg perturbation builds the env with the new value, so a
baseline that reads the parameter sees it (none of the current baselines plans with
``shutdown_prob``, ``demand_rate`` or ``route_closure_prob``). The lot-sizing wrapper leaves
``instance.demand`` at its nominal model: baselines that plan on expected demand
(``base_stock``, ``rolling_mip``) keep planning for the nominal demand, as a policy tuned on
the nominal env would, while the perfect-information ``pi_mip`` sees the realised, shifted
demand path (its bound stays valid).

**Evaluation.** Every level replays the run's evaluation seeds (or ``--seed``/``--episodes``)
with whatever :func:`opsrl.experiment.evaluate_run_dir` supports: agents (with their saved
``VecNormalize`` observation statistics), per-agent policies, baselines and Reptile, which
adapts to the perturbed env before it is evaluated. Multi-policy (Pareto set) runs are
skipped.

## Command line

```
opsrl eval runs/exp/LotSizing-v0__ppo__0 --perturb demand_scale=0.5,1,1.5,2
opsrl eval runs/exp --perturb demand_scale=0.5,1,2 --output robustness.json
```

One ``--perturb NAME=V1,V2,...`` per command. Several run directories, or an experiment
directory (all its finished runs), compare agents across levels in one table (level, mean
return +- std, the perturbation's main KPIs); runs whose env has no such perturbation are
skipped with a note. ``--output X.json`` writes the summary and every episode as JSON and
the episodes as ``X.csv`` beside it.

## Python

```python
from opsrl.perturb import (
    evaluate_perturbed, make_perturbed_env, perturbations, summarize_perturbed,
)

perturbations("opsrl/JobShop-v0")            # {"shutdown_prob": Perturbation(...)}
env = make_perturbed_env("opsrl/LotSizing-v0", {"instance": "5x3"}, {"demand_scale": 1.5})
frame = evaluate_perturbed("runs/exp", "demand_scale", [0.5, 1.0, 1.5])  # one row per episode
summary = summarize_perturbed(frame)         # one row per run and level
```
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import yaml
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from opsrl import registry
from opsrl.envs.lot_sizing.data import DemandModel
from opsrl.envs.lot_sizing.sim import demand_cdf
from opsrl.spec import EnvSpec

__all__ = [
    "PERTURBATION_TABLE",
    "LotSizingDemandScale",
    "Perturbation",
    "PerturbationError",
    "PerturbedSpec",
    "evaluate_perturbed",
    "find_runs",
    "make_perturbed_env",
    "nominal_value",
    "parse_perturb",
    "perturbations",
    "scaled_demand_cdf",
    "summarize_perturbed",
]


class PerturbationError(ValueError):
    """A perturbation name, level or target the harness cannot use (one line)."""


# --------------------------------------------------------------------------------------------
# Lot sizing: demand scaled by a wrapper
# --------------------------------------------------------------------------------------------


def scaled_demand_cdf(demand: DemandModel, n_items: int, scale: float) -> np.ndarray:
    """The demand table of :func:`opsrl.envs.lot_sizing.sim.demand_cdf` with every item's mean
    demand multiplied by ``scale`` (see the module docstring for each distribution).

    Raises a :class:`PerturbationError` when binomial demand would need a success probability
    above 1.
    """
    params = demand.params
    if demand.distribution == "poisson":
        return demand_cdf(DemandModel("poisson", {"lam": params["lam"] * scale}), n_items)
    if demand.distribution == "binomial":
        p = params["p"] * scale
        if np.any(p > 1.0 + 1e-12):
            largest = float(np.max(params["p"]))
            raise PerturbationError(
                f"demand_scale={scale:g} would make the binomial success probability "
                f"{largest:g} x {scale:g} > 1; this instance's demand allows at most "
                f"{1.0 / largest:g}"
            )
        # 1 / p x p may round just above 1
        p = np.minimum(p, 1.0)
        return demand_cdf(DemandModel("binomial", {"n": params["n"], "p": p}), n_items)
    if demand.distribution == "uniform":
        return _scaled_uniform_cdf(params["low"], params["high"], n_items, scale)
    raise PerturbationError(  # DemandModel validates names; this guards a new distribution
        f"demand_scale does not know how to scale {demand.distribution} demand"
    )


def _scaled_uniform_cdf(
    low: np.ndarray, high: np.ndarray, n_items: int, scale: float
) -> np.ndarray:
    """CDF rows of s D for D uniform on low..high, rounded at random to a neighbour so that
    the mean stays exactly s E[D] (a uniform on scaled integer bounds would not)."""
    shared = low.ndim == 0 and high.ndim == 0
    lows, highs = np.broadcast_to(low, (n_items,)), np.broadcast_to(high, (n_items,))
    rows = []
    for item in range(1 if shared else n_items):
        support = np.arange(lows[item], highs[item] + 1, dtype=np.float64)
        scaled = support * scale
        floor = np.floor(scaled)
        up = scaled - floor
        pmf = np.zeros(int(floor.max()) + 2)
        np.add.at(pmf, floor.astype(np.int64), (1.0 - up) / support.size)
        np.add.at(pmf, floor.astype(np.int64) + 1, up / support.size)
        pmf = pmf[: int(np.flatnonzero(pmf).max()) + 1]
        rows.append(np.minimum(np.cumsum(pmf), 1.0))
    table = np.ones((len(rows), max(row.size for row in rows)))
    for item, row in enumerate(rows):
        table[item, : row.size] = row
    table[:, -1] = 1.0
    return table


def _cdf_means(table: np.ndarray) -> np.ndarray:
    """Mean of each row's distribution: E[D] = sum over k of P(D > k)."""
    return (1.0 - table).sum(axis=1)


class LotSizingDemandScale(gym.Wrapper):
    """``opsrl/LotSizing-v0`` with the mean demand of every item multiplied by ``demand_scale``.

    Swaps the simulator's demand table (``env.unwrapped.plant.demand_cdf``) for that of the
    scaled distribution (:func:`scaled_demand_cdf`) at construction; ``instance.demand``, what
    planning baselines read, keeps the nominal model. Demand is drawn from the same uniforms
    as in the nominal env, so ``demand_scale=1`` changes nothing and levels share their random
    numbers. The wrapped env is modified in place: wrap a fresh env.
    """

    def __init__(self, env: gym.Env, demand_scale: float) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not hasattr(base, "instance") or not hasattr(base, "plant"):
            raise PerturbationError(
                f"demand_scale needs a lot-sizing env (opsrl/LotSizing-v0); got "
                f"{type(base).__name__}"
            )
        self.demand_scale = _check_number("demand_scale", demand_scale)
        if self.demand_scale < 0:
            raise PerturbationError(f"demand_scale must be >= 0, got {demand_scale!r}")
        if self.demand_scale != 1.0:
            instance = base.instance
            table = scaled_demand_cdf(instance.demand, instance.n_items, self.demand_scale)
            # the env draws each episode's demand from plant.demand_cdf at reset (the MO
            # variant's reward_space, built before this, keeps the nominal demand bounds)
            base._plant = replace(base.plant, demand_cdf=table)


def _read_demand_scale(env: gym.Env) -> float | None:
    """Mean demand in the simulator's table over the nominal model's mean (items with demand)."""
    base = env.unwrapped
    instance = base.instance
    nominal = instance.demand.mean(instance.n_items)
    means = np.broadcast_to(_cdf_means(base.plant.demand_cdf), (instance.n_items,))
    has_demand = nominal > 0
    if not has_demand.any():
        return None
    return float(np.mean(means[has_demand] / nominal[has_demand]))


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """One documented perturbation of one env id."""

    #: registered env id it applies to
    env_id: str
    #: name on the command line (``--perturb NAME=...``)
    name: str
    #: the parameter it shifts, in the env's words
    parameter: str
    #: what a level means
    meaning: str
    #: documented nominal value (None: the env's constructor default, unknown here)
    nominal: float | None
    #: valid levels: ``low`` .. ``high`` with the given closedness
    low: float = 0.0
    high: float = math.inf
    low_inclusive: bool = True
    high_inclusive: bool = True
    #: kwarg perturbations: the constructor argument it sets ...
    kwarg: str | None = None
    #: ... or a field of that argument's mapping/dataclass (UAM ``config``)
    kwarg_field: str | None = None
    #: wrapper perturbations: ``wrapper(env, level) -> env``
    wrapper: Callable[[gym.Env, float], gym.Env] | None = field(default=None, repr=False)
    #: the effective value in a built env (None: cannot be read)
    read: Callable[[gym.Env], float | None] | None = field(default=None, repr=False)
    #: the KPIs the level moves most, shown in the command's table
    kpis: tuple[str, ...] = ()

    @property
    def how(self) -> str:
        """``"kwarg"`` or ``"wrapper"``."""
        return "wrapper" if self.wrapper is not None else "kwarg"

    @property
    def valid_range(self) -> str:
        """The valid levels as an interval, e.g. ``[0, 1)``."""
        left = "[" if self.low_inclusive else "("
        right = "]" if self.high_inclusive and math.isfinite(self.high) else ")"
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"

    def check(self, value: Any) -> float:
        """``value`` as a float if it is a valid level; else a one-line PerturbationError."""
        level = _check_number(self.name, value)
        too_low = level < self.low if self.low_inclusive else level <= self.low
        too_high = level > self.high if self.high_inclusive else level >= self.high
        if too_low or too_high:
            raise PerturbationError(
                f"{self.name}={level:g} is out of range for {self.env_id}: it must lie in "
                f"{self.valid_range}"
            )
        return level

    def apply_kwargs(self, kwargs: Mapping[str, Any], value: float) -> dict[str, Any]:
        """``kwargs`` with this (kwarg) perturbation set to ``value``."""
        assert self.kwarg is not None
        out = dict(kwargs)
        if self.kwarg_field is None:
            out[self.kwarg] = value
            return out
        current = out.get(self.kwarg)
        if current is None:
            out[self.kwarg] = {self.kwarg_field: value}
        elif isinstance(current, Mapping):
            out[self.kwarg] = {**current, self.kwarg_field: value}
        elif is_dataclass(current) and self.kwarg_field in {f.name for f in fields(current)}:
            out[self.kwarg] = replace(current, **{self.kwarg_field: value})
        else:
            raise PerturbationError(
                f"{self.name}: cannot set {self.kwarg}.{self.kwarg_field} on a "
                f"{type(current).__name__}"
            )
        return out

    def effective(self, env: gym.Env) -> float | None:
        """The parameter's value in ``env`` (None when it cannot be read)."""
        if self.read is not None:
            return self.read(env)
        value = getattr(env.unwrapped, self.kwarg or self.name, None)
        is_number = isinstance(value, int | float | np.integer | np.floating)
        return float(value) if is_number and not isinstance(value, bool) else None


def _read_uam_route_closure(env: gym.Env) -> float:
    config = env.unwrapped.config
    # with uncertainty off no route ever closes, whatever route_closure_prob says
    return float(config.route_closure_prob) if config.uncertainty else 0.0


def _read_demand_rate(env: gym.Env) -> float | None:
    demand = env.unwrapped.core.demand
    return None if demand is None else float(demand.demand_rate)


PERTURBATION_TABLE: tuple[Perturbation, ...] = (
    Perturbation(
        "opsrl/LotSizing-v0",
        "demand_scale",
        "every item's mean demand, x level",
        "each item's mean demand per period is multiplied by the level; the distribution "
        "family is kept where exact (see the module docstring)",
        nominal=1.0,
        wrapper=LotSizingDemandScale,
        read=_read_demand_scale,
        kpis=("total_cost", "lost_sales_cost", "fill_rate"),
    ),
    Perturbation(
        "opsrl/JobShop-v0",
        "shutdown_prob",
        "shutdown_prob",
        "per-tick probability that an operational machine shuts down",
        nominal=0.05,
        high=1.0,
        high_inclusive=False,
        kwarg="shutdown_prob",
        kpis=("makespan", "downtime"),
    ),
    Perturbation(
        "opsrl/RideSharing-v0",
        "demand_rate",
        "demand_rate",
        "mean new orders per minute of the synthetic gravity demand (not with trips)",
        nominal=3.0,
        low_inclusive=False,
        kwarg="demand_rate",
        read=_read_demand_rate,
        kpis=("appeared_orders", "served_orders", "mean_pickup_minutes"),
    ),
    Perturbation(
        "opsrl/UAMFleet-v0",
        "route_closure_prob",
        "config.route_closure_prob",
        "probability that weather closes a route (both ways) for one hour of the day",
        nominal=0.05,
        high=1.0,
        kwarg="config",
        kwarg_field="route_closure_prob",
        read=_read_uam_route_closure,
        kpis=("profit", "passengers_served", "flights"),
    ),
    Perturbation(
        "opsrl/SimulatedLinearMDP-v0",
        "failure_prob",
        "failure_prob",
        "probability that state x1 moves to the failure state (the test-time perturbation q "
        "of the robust linear-MDP testbed)",
        nominal=0.0,
        high=1.0,
        kwarg="failure_prob",
    ),
    Perturbation(
        "opsrl/AmericanPut-v0",
        "up_prob",
        "up_prob",
        "probability that the price moves up at each step (p0 of the robust American put testbed)",
        nominal=0.5,
        high=1.0,
        kwarg="up_prob",
    ),
)


def perturbations(env_id: str) -> dict[str, Perturbation]:
    """The documented perturbations of ``env_id`` by name (empty when it has none)."""
    return {p.name: p for p in PERTURBATION_TABLE if p.env_id == env_id}


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise PerturbationError(f"{name}: {value!r} is not a number")
    if not math.isfinite(float(value)):
        raise PerturbationError(f"{name}: {value!r} is not a finite number")
    return float(value)


def _perturbation(env_id: str, name: str) -> Perturbation:
    known = perturbations(env_id)
    if name in known:
        return known[name]
    if not known:
        with_some = sorted({p.env_id for p in PERTURBATION_TABLE})
        raise PerturbationError(
            f"{env_id} has no documented perturbations; envs with some: {', '.join(with_some)}"
        )
    raise PerturbationError(
        f"unknown perturbation '{name}' for {env_id}; known: {', '.join(sorted(known))}"
    )


def parse_perturb(text: str, env_id: str | None = None) -> tuple[str, list[float]]:
    """``"NAME=V1,V2,..."`` as ``(name, [levels])`` (repeated levels dropped, order kept).

    With ``env_id`` the name must be one of that env's perturbations and every level in its
    valid range. Mistakes raise a one-line :class:`PerturbationError`.
    """
    example = "e.g. demand_scale=0.5,1,1.5"
    name, equals, values = str(text).partition("=")
    name = name.strip()
    if not equals or not name:
        raise PerturbationError(f"--perturb takes NAME=V1,V2,... ({example}), got {text!r}")
    items = [item.strip() for item in values.split(",")]
    if not any(items):
        raise PerturbationError(f"--perturb {name}: no levels given ({example})")
    levels: list[float] = []
    for item in items:
        if not item:
            raise PerturbationError(f"--perturb {name}: empty level in {values!r}")
        try:
            level = float(item)
        except ValueError:
            raise PerturbationError(f"--perturb {name}: level {item!r} is not a number") from None
        if not math.isfinite(level):
            raise PerturbationError(f"--perturb {name}: level {item!r} is not a finite number")
        if level not in levels:
            levels.append(level)
    if env_id is not None:
        perturbation = _perturbation(env_id, name)
        for level in levels:
            perturbation.check(level)
    return name, levels


# --------------------------------------------------------------------------------------------
# Building perturbed envs
# --------------------------------------------------------------------------------------------


def _as_spec(env: str | EnvSpec, kwargs: Mapping[str, Any] | None) -> EnvSpec:
    if isinstance(env, EnvSpec):
        return env.with_kwargs(dict(kwargs or {}))
    return EnvSpec(env, dict(kwargs or {}))


def _wrap(
    env: gym.Env, wrappers: Sequence[tuple[Perturbation, float]], checks: Sequence[Any]
) -> gym.Env:
    """Apply the wrapper perturbations, then check that every level took effect."""
    try:
        for perturbation, level in wrappers:
            assert perturbation.wrapper is not None
            env = perturbation.wrapper(env, level)
        for perturbation, level in checks:
            effective = perturbation.effective(env)
            if effective is not None and not math.isclose(
                effective, level, rel_tol=1e-6, abs_tol=1e-12
            ):
                raise PerturbationError(
                    f"{perturbation.name}={level:g} does not take effect in "
                    f"{perturbation.env_id} with these env kwargs: its effective "
                    f"{perturbation.parameter} is {effective:g}"
                )
    except Exception:
        env.close()
        raise
    return env


def _make_wrapped(
    env_id: str,
    wrappers: tuple[tuple[Perturbation, float], ...],
    checks: tuple[tuple[Perturbation, float], ...],
    **kwargs: Any,
) -> gym.Env:
    """VecEnv worker factory (picklable): ``gym.make`` then the wrapper perturbations."""
    registry.ensure_env_registered(env_id)
    return _wrap(gym.make(env_id, **kwargs), wrappers, checks)


class PerturbedSpec:
    """An env spec with perturbation levels: builds the env and a VecEnv of it.

    Kwarg perturbations are merged into :attr:`env_spec`'s kwargs; wrapper perturbations are
    applied around each built env. Unknown names and out-of-range levels raise a
    :class:`PerturbationError` here. With no levels it builds exactly what
    :func:`opsrl.experiment.make_env` and :func:`opsrl.experiment.make_vec_env` build.
    """

    def __init__(self, spec: EnvSpec, levels: Mapping[str, float] | None = None) -> None:
        self.spec = spec
        self.levels = dict(levels or {})
        kwargs = dict(spec.kwargs)
        wrappers, checks = [], []
        for name, value in self.levels.items():
            perturbation = _perturbation(spec.id, name)
            level = perturbation.check(value)
            if perturbation.wrapper is not None:
                wrappers.append((perturbation, level))
            else:
                kwargs = perturbation.apply_kwargs(kwargs, level)
            checks.append((perturbation, level))
        #: the spec with the kwarg perturbations merged in (wrappers not included)
        self.env_spec = EnvSpec(spec.id, kwargs, spec.label, dict(spec.eval_kwargs))
        self._wrappers, self._checks = tuple(wrappers), tuple(checks)

    def make(self) -> gym.Env:
        """The perturbed env (a one-line error for bad kwargs or levels)."""
        from opsrl.experiment import make_env

        return _wrap(make_env(self.env_spec), self._wrappers, self._checks)

    def make_vec(self, n_envs: int, seed: int) -> VecEnv:
        """``n_envs`` copies as a ``DummyVecEnv`` with Monitor, copy i seeded ``seed + i`` (as
        :func:`opsrl.experiment.make_vec_env` with ``vec_env="dummy"``)."""
        from opsrl.experiment import make_vec_env

        if not self.levels:
            return make_vec_env(self.env_spec, n_envs, seed, "dummy")
        self.make().close()  # fail here, with a clear message
        return sb3_make_vec_env(
            functools.partial(_make_wrapped, self.env_spec.id, self._wrappers, self._checks),
            n_envs=n_envs,
            seed=seed,
            env_kwargs={"render_mode": None, **self.env_spec.kwargs},
            vec_env_cls=DummyVecEnv,
        )


def make_perturbed_env(
    env: str | EnvSpec,
    kwargs: Mapping[str, Any] | None = None,
    levels: Mapping[str, float] | None = None,
) -> gym.Env:
    """Build ``env`` (an id or an :class:`~opsrl.spec.EnvSpec`) with ``kwargs`` and the
    perturbation ``levels`` (``{name: level}``, see :func:`perturbations`)."""
    return PerturbedSpec(_as_spec(env, kwargs), dict(levels or {})).make()


def _signature_default(env_id: str, kwarg: str) -> float | None:
    """The registered kwargs' or the entry point's default value of ``kwarg``."""
    try:
        env_spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    value = env_spec.kwargs.get(kwarg)
    if value is None and isinstance(env_spec.entry_point, str):
        try:
            entry = registry.load_object(env_spec.entry_point)
            parameter = inspect.signature(entry).parameters.get(kwarg)
        except (ImportError, AttributeError, TypeError, ValueError):
            parameter = None
        value = None if parameter is None else parameter.default
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if is_number else None


def nominal_value(env: str | EnvSpec, name: str, kwargs: Mapping[str, Any] | None = None) -> float:
    """The level of perturbation ``name`` in the unperturbed env (its kwargs, else its
    default), read back from the built env where it can be."""
    spec = _as_spec(env, kwargs)
    perturbation = _perturbation(spec.id, name)
    built = PerturbedSpec(spec).make()
    try:
        value = perturbation.effective(built)
    finally:
        built.close()
    if value is None and perturbation.kwarg is not None and perturbation.kwarg_field is None:
        given = spec.kwargs.get(perturbation.kwarg)
        if isinstance(given, int | float) and not isinstance(given, bool):
            value = float(given)
        else:
            value = _signature_default(spec.id, perturbation.kwarg)
    if value is None:
        value = perturbation.nominal
    if value is None:
        raise PerturbationError(f"the nominal {name} of {spec.id} cannot be determined")
    # a level read back from a distribution table carries float noise (1.0000000000000002)
    return float(f"{value:.12g}")


# --------------------------------------------------------------------------------------------
# Evaluating saved runs across levels
# --------------------------------------------------------------------------------------------


def _run_config(run_dir: Path) -> dict[str, Any]:
    from opsrl.experiment import CONFIG_FILE

    return yaml.safe_load((run_dir / CONFIG_FILE).read_text())["run"]


def find_runs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Run directories from run directories and experiment directories (all their finished
    runs, sorted by name), in the order given."""
    from opsrl.experiment import CONFIG_FILE, is_finished

    if isinstance(paths, str | Path):
        paths = [paths]
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / CONFIG_FILE).is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_dir() and not p.name.startswith(".") and is_finished(p)
            )
            if not found:
                raise PerturbationError(
                    f"{path} is neither a run directory (no {CONFIG_FILE}) nor an experiment "
                    "directory with finished runs"
                )
        else:
            raise PerturbationError(f"{path} is not a run or experiment directory")
        runs += [run for run in found if run not in runs]
    if not runs:
        raise PerturbationError("no run directories given")
    return runs


def _skip_reason(identity: Mapping[str, Any], name: str) -> str | None:
    env_id = identity["env"]["id"]
    if name not in perturbations(env_id):
        return f"{env_id} has no perturbation '{name}'"
    agent = identity.get("agent")
    if agent is not None and registry.agent_entry(agent["name"]).multi_policy:
        return f"{agent['name']} is a multi-policy (Pareto set) run"
    return None


def evaluate_perturbed(
    run_dirs: str | Path | Iterable[str | Path],
    name: str,
    values: Sequence[float],
    episodes: int | None = None,
    seed: int | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> pd.DataFrame:
    """Evaluate saved runs at every level of perturbation ``name`` on the same episode seeds.

    Args:
        run_dirs: a run directory, an experiment directory (all its finished runs) or a list
            of them.
        name: a perturbation of the runs' env (see :func:`perturbations`).
        values: the levels.
        episodes, seed: episodes and first episode seed (default: each run's evaluation).
        progress: called with ``(run name, level)`` before each evaluation.

    Returns:
        A tidy DataFrame, one row per (run, level, episode): ``run, env, env_id, agent,
        run_seed, perturbation, level, nominal, episode, seed`` (the episode's), ``return,
        length`` and one ``kpi/<name>`` column per KPI. ``frame.attrs["skipped"]`` maps
        the runs left out (another env, or a multi-policy run) to why. Runs none of which
        has the perturbation, and invalid levels, raise a one-line
        :class:`PerturbationError` before anything is evaluated.
    """
    from opsrl.experiment import evaluate_run_dir

    levels = [float(v) for v in values]
    if not levels:
        raise PerturbationError(f"{name}: no levels given")
    runs, skipped, env_ids = [], {}, []
    for run_dir in find_runs(run_dirs):
        identity = _run_config(run_dir)
        env_ids.append(identity["env"]["id"])
        reason = _skip_reason(identity, name)
        if reason is None:
            runs.append((run_dir, identity))
        else:
            skipped[run_dir.name] = reason
    if not runs:
        if len(set(env_ids)) == 1:
            _perturbation(env_ids[0], name)  # unknown name: the error lists the known ones
        raise PerturbationError(f"no run to evaluate: {'; '.join(sorted(set(skipped.values())))}")
    # check every level on every distinct env before the (long) evaluations start
    nominals: dict[str, float] = {}
    checked: dict[str, float] = {}
    for run_dir, identity in runs:
        spec = EnvSpec(**identity["env"]).for_evaluation()
        key = repr((spec.id, sorted(spec.kwargs.items(), key=lambda kv: kv[0])))
        if key not in checked:
            for level in levels:
                PerturbedSpec(spec, {name: level}).make().close()
            checked[key] = nominal_value(spec, name)
        nominals[run_dir.name] = checked[key]
    rows = []
    for run_dir, identity in runs:
        member = identity.get("agent") or identity.get("baseline") or {}
        for level in levels:
            if progress is not None:
                progress(run_dir.name, level)
            evaluation = evaluate_run_dir(run_dir, episodes, seed, perturbation={name: level})
            for index, episode in enumerate(evaluation["episodes"]):
                rows.append(
                    {
                        "run": run_dir.name,
                        "env": identity["env"].get("label") or identity["env"]["id"],
                        "env_id": identity["env"]["id"],
                        "agent": member.get("label") or member.get("name"),
                        "run_seed": identity["seed"],
                        "perturbation": name,
                        "level": level,
                        "nominal": nominals[run_dir.name],
                        "episode": index,
                        "seed": episode["seed"],
                        "return": episode["episode_return"],
                        "length": episode["length"],
                        **{f"kpi/{k}": v for k, v in episode["kpi"].items()},
                    }
                )
    frame = pd.DataFrame(rows)
    frame.attrs["skipped"] = skipped
    return frame


def summarize_perturbed(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, level) of :func:`evaluate_perturbed`'s frame: ``return`` (mean),
    ``return_std`` (population std, as ``opsrl eval``), ``length`` and every KPI's mean."""
    keys = ["run", "env", "env_id", "agent", "run_seed", "perturbation", "level", "nominal"]
    kpis = [c for c in frame.columns if c.startswith("kpi/")]
    grouped = frame.groupby(keys, sort=False)
    summary = grouped[["return", "length", *kpis]].mean()
    summary.insert(1, "return_std", grouped["return"].std(ddof=0))
    summary.insert(0, "episodes", grouped.size())
    return summary.reset_index()
