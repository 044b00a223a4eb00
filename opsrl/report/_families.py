"""Which family an env id belongs to, and what the report draws from its episode traces.

One small table, :data:`FAMILIES`: a family is recognised from the name part of the env id
(``opsrl/JobShop-v0`` -> ``JobShop``; a ``mo-`` prefix is ignored) and brings the figures it
draws from the traces of the featured runs (see :class:`TraceRun`) and, where the family has
them, best-known values to report a gap against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from opsrl.report._plots import (
    plot_gantt,
    plot_kpis_over_day,
    plot_lot_sizing_trace,
    plot_portfolio_values,
    plot_portfolio_weights,
)

__all__ = ["FAMILIES", "Family", "TraceRun", "family_of"]


@dataclass
class TraceRun:
    """The first evaluation episode of one run, with its trace."""

    run: str
    policy: str
    kind: str  # "agent" or "baseline"
    seed: int
    #: return of the traced episode (the first evaluation episode)
    episode_return: float
    trace: pd.DataFrame
    #: the trace was made by the report replaying the episode, not saved by the run
    replayed: bool = False

    @property
    def label(self) -> str:
        """``policy (seed s)``, marked when replayed."""
        text = f"{self.policy} (seed {self.seed})"
        return f"{text}, replayed" if self.replayed else text


#: a family's trace figures: (file slug, figure, caption) from the featured runs
FigureList = list[tuple[str, Figure, str]]


def best_of_each_kind(runs: Sequence[TraceRun]) -> list[TraceRun]:
    """The best agent run and the best baseline run (by the traced episode's return), the
    better of the two first."""
    chosen = []
    for kind in ("agent", "baseline"):
        of_kind = [r for r in runs if r.kind == kind]
        if of_kind:
            chosen.append(max(of_kind, key=lambda r: r.episode_return))
    return sorted(chosen, key=lambda r: r.episode_return, reverse=True)


def _job_shop_figures(env: str, runs: Sequence[TraceRun]) -> FigureList:
    figures = []
    for position, run in enumerate(best_of_each_kind(runs)):
        ops = run.trace[run.trace["kind"] == "op"]
        makespan = float(ops[["end", "leave"]].max().max()) if len(ops) else float("nan")
        which = "best schedule" if position == 0 else f"best {run.kind} schedule"
        title = f"{env}: {which}, {run.label}, makespan {makespan:g}"
        figures.append(
            (
                f"gantt_{run.kind}",
                plot_gantt(run.trace, title=title),
                f"Gantt chart of the {which} ({run.label}, first evaluation episode): "
                "machines on the y axis, bars coloured by job, hatched = blocked (finished, "
                "waiting for its next machine), grey = machine down, red line = makespan.",
            )
        )
    return figures


def _lot_sizing_figures(env: str, runs: Sequence[TraceRun]) -> FigureList:
    figures = []
    for run in best_of_each_kind(runs):
        cost = float(run.trace["total_cost"].sum())
        figures.append(
            (
                f"lot_sizing_{run.kind}",
                plot_lot_sizing_trace(run.trace, title=f"{env}: {run.label}, cost {cost:,.0f}"),
                f"Lot sizing, best {run.kind} ({run.label}), first evaluation episode: "
                "inventory per item, the item each machine runs (dots = changeovers) and the "
                "cost of each period.",
            )
        )
    return figures


def _portfolio_figures(env: str, runs: Sequence[TraceRun]) -> FigureList:
    ordered = sorted(runs, key=lambda r: r.episode_return, reverse=True)
    figures: FigureList = [
        (
            "portfolio_values",
            plot_portfolio_values(
                {r.label: r.trace for r in ordered}, title=f"{env}: portfolio value"
            ),
            "Portfolio value over the evaluation period, best run of each policy (the same "
            "market path for all).",
        )
    ]
    for run in best_of_each_kind(runs):
        figures.append(
            (
                f"portfolio_weights_{run.kind}",
                plot_portfolio_weights(run.trace, title=f"{env}: weights of {run.label}"),
                f"Portfolio weights over time of the best {run.kind} ({run.label}), with the "
                "cumulative transaction cost, grant and tax.",
            )
        )
    return figures


def _kpis_over_day_figures(env: str, runs: Sequence[TraceRun]) -> FigureList:
    return [
        (
            f"kpis_{run.kind}",
            plot_kpis_over_day(run.trace, title=f"{env}: {run.label}"),
            f"KPIs over the day of the best {run.kind} ({run.label}), first evaluation episode.",
        )
        for run in best_of_each_kind(runs)
    ]


def _job_shop_best_known(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, float] | None:
    """The best-known makespan of the env's instance (deterministic problem only)."""
    import gymnasium as gym

    env = gym.make(env_id, **env_kwargs)
    try:
        env.reset(seed=0)
        sim = env.unwrapped.sim
        if getattr(sim, "shutdown_prob", 0.0) > 0:
            return None  # machine breakdowns: the static best-known value does not apply
        best = sim.instance.best_known(bool(sim.blocking))
    finally:
        env.close()
    return None if best is None else ("makespan", float(best))


@dataclass(frozen=True)
class Family:
    """A problem family of the report."""

    name: str
    #: lower-case fragments, one of which the env id's name part contains
    keys: tuple[str, ...]
    #: figures from the featured runs' traces: ``(env label, runs) -> [(slug, fig, caption)]``
    trace_figures: Callable[[str, Sequence[TraceRun]], FigureList]
    #: the best-known value of a KPI for an env, ``(env id, env kwargs) -> (kpi, value)``;
    #: the results table reports the gap of the mean KPI to it (lower is better)
    best_known: Callable[[str, dict[str, Any]], tuple[str, float] | None] | None = None
    #: whether every policy's trace is wanted (else the best agent and the best baseline)
    traces_of_every_policy: bool = False


FAMILIES: tuple[Family, ...] = (
    Family("job shop", ("jobshop",), _job_shop_figures, best_known=_job_shop_best_known),
    Family("lot sizing", ("lotsizing",), _lot_sizing_figures),
    Family("portfolio", ("portfolio",), _portfolio_figures, traces_of_every_policy=True),
    Family("urban air mobility", ("uam", "airmobility", "vertiport"), _kpis_over_day_figures),
    Family("ride sharing", ("ridesharing", "ridehailing"), _kpis_over_day_figures),
)


def family_of(env_id: str | None) -> Family | None:
    """The family of ``env_id`` (``opsrl/JobShop-v0``, ``opsrl/mo-JobShop-v0``, ...), or None."""
    if not env_id:
        return None
    name = env_id.split("/")[-1].rsplit("-v", 1)[0].lower().removeprefix("mo-")
    name = name.replace("_", "").replace("-", "")
    return next((f for f in FAMILIES if any(key in name for key in f.keys)), None)
