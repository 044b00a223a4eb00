"""The long results table, its summary (mean, std, IQM with bootstrap CI, gap to bound) and plots.

The long table has one row per (run, step, metric): columns ``run, env, agent, seed, kind, step,
metric, value``. Final evaluation metrics (``return``, ``return_std``, ``length``, ``kpi/<name>``,
``bound``, ``wall_time_s``) sit at each run's last step; learning curves are
``train/ep_rew_mean`` and ``eval/return``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TABLE_COLUMNS = ["run", "env", "agent", "seed", "kind", "step", "metric", "value"]
CURVE_PREFIXES = ("train/", "eval/")


def collect(exp_dir: Path, run_names: list[str]) -> pd.DataFrame:
    """Concatenate the per-run tables of the finished runs, in the spec's order."""
    frames = []
    for name in run_names:
        path = Path(exp_dir) / name / "results.csv"
        if path.is_file():
            frames.append(pd.read_csv(path))
    if not frames:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    return table[TABLE_COLUMNS]


def write_table(table: pd.DataFrame, stem: Path) -> Path:
    """Write ``stem.parquet`` (``stem.csv`` when no parquet engine is installed), atomically."""
    stem = Path(stem)
    try:
        path = stem.with_suffix(".parquet")
        tmp = path.with_name(path.name + ".tmp")
        table.to_parquet(tmp, index=False)
    except ImportError:
        path = stem.with_suffix(".csv")
        tmp = path.with_name(path.name + ".tmp")
        table.to_csv(tmp, index=False)
    tmp.replace(path)
    return path


def read_table(exp_dir: Path) -> pd.DataFrame:
    """Read an experiment's long table (parquet or CSV)."""
    exp_dir = Path(exp_dir)
    for path, reader in (
        (exp_dir / "results.parquet", pd.read_parquet),
        (exp_dir / "results.csv", pd.read_csv),
    ):
        if path.is_file():
            return reader(path)
    raise FileNotFoundError(f"no results table in {exp_dir}")


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (rliable's robust aggregate)."""
    values = np.sort(np.asarray(values, dtype=float))
    n = len(values)
    if n == 0:
        return float("nan")
    cut = int(np.floor(0.25 * n))
    middle = values[cut : n - cut] if n - 2 * cut > 0 else values
    return float(middle.mean())


def _vectorized_iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    # scipy's trim_mean cuts floor(0.25 n) values at each end: exactly :func:`iqm`.
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def bootstrap_rng(seed: int) -> dict[str, Any]:
    """The seeding keyword of ``scipy.stats.bootstrap`` (``rng`` from scipy 1.15,
    ``random_state`` before)."""
    import inspect

    from scipy.stats import bootstrap

    key = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    return {key: np.random.default_rng(seed)}


def bootstrap_ci(
    values: np.ndarray,
    statistic=iqm,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic`` over runs
    (``scipy.stats.bootstrap``); NaNs for fewer than two values."""
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    vectorized = statistic is iqm
    result = bootstrap(
        (values,),
        _vectorized_iqm if vectorized else statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=vectorized,
        **bootstrap_rng(seed),
    )
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def final_metrics(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run, one column per final metric (the run's last step)."""
    final = table[~table["metric"].str.startswith(CURVE_PREFIXES)]
    wide = final.pivot_table(
        index=["env", "agent", "kind", "seed", "run"],
        columns="metric",
        values="value",
        aggfunc="last",
    )
    wide.columns.name = None
    return wide.reset_index()


def steps_to_threshold(table: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run, the first env step whose evaluation return reaches ``threshold`` (NaN if
    never); the training episode return stands in where a run has no evaluation curve."""
    steps = {}
    for run, group in table.groupby("run", sort=False):
        curve = group[group["metric"] == "eval/return"]
        if curve.empty:
            curve = group[group["metric"] == "train/ep_rew_mean"]
        reached = curve[curve["value"] >= threshold].sort_values("step")
        steps[run] = float(reached["step"].iloc[0]) if len(reached) else float("nan")
    return pd.Series(steps, dtype=float)


def summarize(
    table: pd.DataFrame, thresholds: dict[str, list[float]] | None = None
) -> pd.DataFrame:
    """Per env x agent: seeds, mean, std, IQM and its 95% bootstrap CI of the final return,
    mean KPIs, the gap to the best bound known for the env (in % of the bound) and, for each
    of the env's ``thresholds``, the mean steps to reach it over the seeds that did
    (``steps_to_<t>``) and the fraction of seeds that did (``reached_<t>``)."""
    per_run = final_metrics(table)
    thresholds = thresholds or {}
    rows = []
    for (env, agent, kind), group in per_run.groupby(["env", "agent", "kind"], sort=False):
        returns = group["return"].to_numpy(dtype=float)
        low, high = bootstrap_ci(returns)
        row: dict[str, Any] = {
            "env": env,
            "agent": agent,
            "kind": kind,
            "seeds": len(group),
            "mean": float(returns.mean()),
            "std": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
            "iqm": iqm(returns),
            "iqm_ci_low": low,
            "iqm_ci_high": high,
        }
        for column in group.columns:
            if column.startswith(("kpi/", "mo/")) or column in ("bound", "wall_time_s"):
                row[column] = float(group[column].mean())
        if kind == "agent":
            runs = table[table["run"].isin(group["run"])]
            for threshold in thresholds.get(env, []):
                steps = steps_to_threshold(runs, threshold)
                row[f"steps_to_{threshold:g}"] = float(steps.mean())
                row[f"reached_{threshold:g}"] = float(steps.notna().mean())
        rows.append(row)
    summary = pd.DataFrame(rows)
    if "bound" in summary:
        # The bound is an upper bound on the expected return; the tightest one is the smallest.
        best = summary.groupby("env")["bound"].transform("min")
        summary["best_bound"] = best
        summary["gap_pct"] = 100.0 * (best - summary["mean"]) / best.abs()
    return summary


def write_summary(summary: pd.DataFrame, path: Path) -> None:
    """Write the summary table as CSV, atomically."""
    tmp = Path(str(path) + ".tmp")
    summary.to_csv(tmp, index=False)
    tmp.replace(path)


def _fmt(value: Any) -> str:
    """Numbers to read at a glance: no decimals from 100 up, three below 10."""
    if value is None or pd.isna(value):
        return "-"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 3 if size > 0 else 0
    return f"{value:,.{digits}f}"


def render_summary(summary: pd.DataFrame, title: str = "results") -> Any:
    """A rich Table of the summary: mean ± std and IQM [95% CI] of the final return, and the
    gap to the best bound where one is known."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("env", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    for header in ("seeds", "mean ± std", "IQM [95% CI]"):
        table.add_column(header, justify="right")
    has_gap = "gap_pct" in summary
    if has_gap:
        table.add_column("gap to bound", justify="right")
    for _, row in summary.iterrows():
        cells = [
            str(row["env"]),
            str(row["agent"]),
            str(row["seeds"]),
            f"{_fmt(row['mean'])} ± {_fmt(row['std'])}",
            f"{_fmt(row['iqm'])} [{_fmt(row['iqm_ci_low'])}, {_fmt(row['iqm_ci_high'])}]",
        ]
        if has_gap:
            gap = row.get("gap_pct")
            cells.append("-" if pd.isna(gap) else f"{gap:.1f}%")
        table.add_row(*cells)
    return table


def render_kpis(summary: pd.DataFrame, title: str = "KPIs (mean over seeds)") -> Any:
    """A rich Table of the mean KPIs per env and agent, or None when there are none."""
    from rich.table import Table

    kpis = [c for c in summary.columns if c.startswith("kpi/")]
    if not kpis:
        return None
    table = Table(title=title)
    table.add_column("env", no_wrap=True)
    table.add_column("agent", no_wrap=True)
    for kpi in kpis:
        table.add_column(kpi.removeprefix("kpi/").replace("_", " "), justify="right")
    for _, row in summary.iterrows():
        values = [row.get(kpi) for kpi in kpis]
        table.add_row(
            str(row["env"]),
            str(row["agent"]),
            *[_fmt(v) for v in values],
        )
    return table


def plot_curves(table: pd.DataFrame, path: Path) -> Path | None:
    """Learning curves (eval return if recorded, else training episode return) per env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = table[table["metric"].isin(["eval/return", "train/ep_rew_mean"])]
    if curves.empty:
        return None
    envs = list(dict.fromkeys(curves["env"]))
    fig, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        env_curves = curves[curves["env"] == env]
        metric = (
            "eval/return" if (env_curves["metric"] == "eval/return").any() else "train/ep_rew_mean"
        )
        env_curves = env_curves[env_curves["metric"] == metric]
        for agent, group in env_curves.groupby("agent", sort=False):
            by_step = group.groupby("step")["value"]
            mean, std = by_step.mean(), by_step.std().fillna(0.0)
            ax.plot(mean.index, mean.values, label=agent)
            ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
        finals = final_metrics(table[table["env"] == env])
        baselines = finals[finals["kind"] == "baseline"].groupby("agent", sort=False)["return"]
        for agent, value in baselines.mean().items():
            ax.axhline(value, linestyle="--", linewidth=1, label=f"{agent} (baseline)")
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = Path(str(path) + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
