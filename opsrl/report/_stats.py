"""Statistics behind the report: curve bands, normalised scores, their aggregates, fronts.

Every interval is a percentile bootstrap from ``scipy.stats.bootstrap``. Scores across envs
follow rliable (Agarwal et al., "Deep RL at the edge of the statistical precipice", 2021):
the interquartile mean of normalised scores with a bootstrap stratified by env, and
performance profiles (the fraction of runs whose normalised score exceeds tau).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, trim_mean

from opsrl.results import bootstrap_rng, final_metrics

__all__ = [
    "CURVE_METRICS",
    "ScoreReference",
    "aggregate_iqm",
    "curve_bands",
    "learning_curves",
    "normalised_scores",
    "pareto_mask",
    "performance_profile",
    "score_references",
]

#: learning-curve metrics, preferred first: evaluation on the fixed seeds, else training
CURVE_METRICS = ("eval/return", "train/ep_rew_mean")


def curve_bands(
    curve: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Mean over runs at each step with a bootstrap ``confidence`` band of that mean.

    ``curve`` holds one agent's rows (``run, step, value``). Returns columns ``step, mean,
    low, high, runs``; the band is NaN at steps that fewer than two runs (or not all runs)
    reached, where a bootstrap over runs says nothing.
    """
    wide = curve.pivot_table(index="step", columns="run", values="value", aggfunc="last")
    wide = wide.sort_index()
    bands = pd.DataFrame(
        {
            "step": wide.index.to_numpy(),
            "mean": wide.mean(axis=1).to_numpy(),
            "low": np.nan,
            "high": np.nan,
            "runs": wide.notna().sum(axis=1).to_numpy(),
        }
    )
    complete = wide.notna().all(axis=1).to_numpy()
    if wide.shape[1] >= 2 and complete.any():
        values = wide.to_numpy()[complete]
        result = bootstrap(
            (values,),
            np.mean,
            axis=-1,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            **bootstrap_rng(seed),
        )
        bands.loc[complete, "low"] = result.confidence_interval.low
        bands.loc[complete, "high"] = result.confidence_interval.high
    return bands


def learning_curves(table: pd.DataFrame, env: str) -> tuple[str | None, dict[str, pd.DataFrame]]:
    """The learning-curve metric of ``env`` and, per agent, its :func:`curve_bands`.

    The metric is ``eval/return`` when any agent of the env recorded it, else
    ``train/ep_rew_mean``; ``(None, {})`` when there is no curve at all.
    """
    rows = table[(table["env"] == env) & table["metric"].isin(CURVE_METRICS)]
    metric = next((m for m in CURVE_METRICS if (rows["metric"] == m).any()), None)
    if metric is None:
        return None, {}
    rows = rows[rows["metric"] == metric]
    return metric, {
        str(agent): curve_bands(group) for agent, group in rows.groupby("agent", sort=False)
    }


@dataclass(frozen=True)
class ScoreReference:
    """How one env's returns are normalised: ``(return - low) / (high - low)``."""

    env: str
    low: float
    low_from: str
    high: float
    high_from: str

    @property
    def usable(self) -> bool:
        """Whether the range is a real one (high above low, both finite)."""
        return bool(np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low)


def score_references(
    summary: pd.DataFrame, random_labels: Sequence[str] = ("random",)
) -> list[ScoreReference]:
    """Per env, the returns that map to 0 and 1.

    0 is the random policy's mean return (a baseline whose label is in ``random_labels``),
    else the worst policy's. 1 is the tightest OR bound on the expected return where a
    baseline provides one (``best_bound``), else the best non-random baseline's mean return,
    else the best policy's.
    """
    references = []
    for env, rows in summary.groupby("env", sort=False):
        random = rows[(rows["kind"] == "baseline") & rows["agent"].isin(random_labels)]
        if len(random):
            low, low_from = float(random["mean"].iloc[0]), str(random["agent"].iloc[0])
        else:
            worst = rows.loc[rows["mean"].idxmin()]
            low, low_from = float(worst["mean"]), f"worst policy ({worst['agent']})"
        others = rows[(rows["kind"] == "baseline") & ~rows["agent"].isin(random_labels)]
        bound = rows["best_bound"].dropna() if "best_bound" in rows else pd.Series(dtype=float)
        if len(bound):
            high, high_from = float(bound.iloc[0]), "OR bound"
        elif len(others):
            best = others.loc[others["mean"].idxmax()]
            high, high_from = float(best["mean"]), f"best baseline ({best['agent']})"
        else:
            best = rows.loc[rows["mean"].idxmax()]
            high, high_from = float(best["mean"]), f"best policy ({best['agent']})"
        references.append(ScoreReference(str(env), low, low_from, high, high_from))
    return references


def normalised_scores(table: pd.DataFrame, references: Sequence[ScoreReference]) -> pd.DataFrame:
    """One row per run of an env with a usable reference: ``env, agent, kind, run, seed,
    return, score`` with ``score = (return - low) / (high - low)``."""
    per_run = final_metrics(table)
    frames = []
    for reference in references:
        if not reference.usable:
            continue
        rows = per_run[per_run["env"] == reference.env]
        rows = rows[["env", "agent", "kind", "run", "seed", "return"]].copy()
        rows["score"] = (rows["return"] - reference.low) / (reference.high - reference.low)
        frames.append(rows)
    columns = ["env", "agent", "kind", "run", "seed", "return", "score"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _pooled_iqm(samples: list[np.ndarray], fixed: np.ndarray):
    """A vectorised statistic: the IQM of the resampled envs pooled with the fixed values."""

    def statistic(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        batch = resampled[0].shape[:-1]
        parts = [*resampled, np.broadcast_to(fixed, (*batch, fixed.size))]
        return trim_mean(np.concatenate(parts, axis=-1), 0.25, axis=-1)

    return statistic


def aggregate_iqm(
    scores: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """Per policy: the IQM of its normalised scores pooled over envs and runs, with a
    bootstrap CI that resamples runs within each env (stratified bootstrap).

    Envs where a policy has a single run (a deterministic baseline) enter with that score
    fixed. Columns ``agent, kind, envs, runs, iqm, ci_low, ci_high``; the CI is NaN when no
    env has two runs.
    """
    rows = []
    for (agent, kind), group in scores.groupby(["agent", "kind"], sort=False):
        per_env = [g["score"].to_numpy(dtype=float) for _, g in group.groupby("env", sort=False)]
        pooled = np.concatenate(per_env)
        low = high = float("nan")
        resampled = [s for s in per_env if s.size >= 2]
        if resampled:
            fixed = np.concatenate([s for s in per_env if s.size < 2] or [np.zeros(0)])
            result = bootstrap(
                tuple(resampled),
                _pooled_iqm(resampled, fixed),
                n_resamples=n_resamples,
                confidence_level=confidence,
                method="percentile",
                vectorized=True,
                paired=False,
                **bootstrap_rng(seed),
            )
            low = float(result.confidence_interval.low)
            high = float(result.confidence_interval.high)
        rows.append(
            {
                "agent": agent,
                "kind": kind,
                "envs": len(per_env),
                "runs": int(pooled.size),
                "iqm": float(trim_mean(pooled, 0.25)),
                "ci_low": low,
                "ci_high": high,
            }
        )
    columns = ["agent", "kind", "envs", "runs", "iqm", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


def performance_profile(scores: pd.DataFrame, taus: np.ndarray | None = None) -> pd.DataFrame:
    """Fraction of runs whose normalised score exceeds tau, per policy (one column each),
    indexed by tau. Each env weighs the same: the fraction is taken per env, then averaged
    over the envs the policy ran on."""
    if taus is None:
        finite = scores["score"].to_numpy(dtype=float)
        finite = finite[np.isfinite(finite)]
        low = min(0.0, float(finite.min())) if finite.size else 0.0
        high = max(1.0, float(finite.max())) if finite.size else 1.0
        taus = np.linspace(low, high, 201)
    profile = {}
    for agent, group in scores.groupby("agent", sort=False):
        per_env = [g["score"].to_numpy(dtype=float) for _, g in group.groupby("env", sort=False)]
        profile[str(agent)] = np.mean(
            [(values[None, :] > taus[:, None]).mean(axis=1) for values in per_env], axis=0
        )
    return pd.DataFrame(profile, index=pd.Index(taus, name="tau"))


def pareto_mask(points: np.ndarray, maximize: Sequence[bool] | None = None) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, k).

    Objectives are maximised unless ``maximize[j]`` is False. A point is dominated when
    another is at least as good in every objective and better in one; equal points are all
    kept.
    """
    values = np.asarray(points, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k), got shape {values.shape}")
    if maximize is not None:
        if len(maximize) != values.shape[1]:
            raise ValueError(
                f"maximize has {len(maximize)} entries for {values.shape[1]} objectives"
            )
        values = np.where(np.asarray(maximize, dtype=bool), values, -values)
    at_least = (values[:, None, :] >= values[None, :, :]).all(axis=2)
    better = (values[:, None, :] > values[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)
    return ~dominated
