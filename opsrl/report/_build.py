"""Assemble the report of an experiment directory and write ``report.md`` and
``report.html``."""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import opsrl
from opsrl.report._document import Document, Heading, Image, Paragraph, Table
from opsrl.report._families import TraceRun, family_of
from opsrl.report._load import STATUS_TEXT, Experiment, load_experiment
from opsrl.report._plots import (
    plot_aggregate,
    plot_learning_curves,
    plot_pareto_2d,
    plot_pareto_3d,
    plot_performance_profile,
    png_bytes,
    policy_colors,
)
from opsrl.report._stats import (
    aggregate_iqm,
    learning_curves,
    normalised_scores,
    performance_profile,
    score_references,
)
from opsrl.results import final_metrics

__all__ = ["REPORT_FILES", "ReportFiles", "build_report", "format_number"]

#: folder (beside report.md) of the figures and of replayed traces
REPORT_FILES = "report_files"
#: final metrics named ``objective/<name>`` make a run a point of a Pareto front
OBJECTIVE_PREFIX = "objective/"


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote."""

    markdown: Path
    html: Path
    figures: list[Path]


def format_number(value: float | None) -> str:
    """About four significant digits, thousands separated; ``-`` for missing values."""
    if value is None or not math.isfinite(float(value)):
        return "-"
    value = float(value)
    size = abs(value)
    if size >= 1000 or size == 0:
        return f"{value:,.0f}"
    decimals = min(3 - math.floor(math.log10(size)), 8)
    return f"{value:,.{decimals}f}"


def _percent(value: float | None) -> str:
    if value is None or not math.isfinite(float(value)):
        return "-"
    return f"{value:,.1f}%"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "env"


class _Builder:
    """Builds the Document of one experiment; figures become Image blocks."""

    def __init__(self, experiment: Experiment, figure_dir: Path, replay: bool) -> None:
        self.experiment = experiment
        self.figure_dir = figure_dir
        self.replay = replay
        self.document = Document(f"Experiment report: {experiment.name}")
        spec = experiment.spec
        policies: list[str] = []
        if spec is not None:
            policies = [str(a.label) for a in spec.agents] + [str(b.label) for b in spec.baselines]
        if len(experiment.table):
            policies += [str(p) for p in dict.fromkeys(experiment.table["agent"])]
        self.colors = policy_colors(list(dict.fromkeys(policies)))

    # ---------------------------------------------------------------------------- helpers
    def image(self, name: str, figure, caption: str) -> None:
        self.document.add(Image(f"{name}.png", png_bytes(figure), caption))

    # ---------------------------------------------------------------------------- sections
    def build(self) -> Document:
        self.overview()
        self.problems()
        for env in self.experiment.envs:
            self.env_section(env)
        self.across_envs()
        return self.document

    def overview(self) -> None:
        experiment, spec = self.experiment, self.experiment.spec
        total, done = len(experiment.runs), len(experiment.finished)
        bullets = [f"runs: {done} of {total} finished"]
        if spec is not None:
            agents = ", ".join(
                a.label + ("" if a.timesteps is None else f" ({a.timesteps:,} steps)")
                for a in spec.agents
            )
            bullets += [
                "envs: " + ", ".join(f"{e.label} (`{e.id}`)" for e in spec.envs),
                "agents: "
                + (agents or "none")
                + f"; {spec.timesteps:,} training env steps each unless noted, seeds "
                + ", ".join(str(s) for s in spec.seeds),
                "baselines: " + (", ".join(b.label for b in spec.baselines) or "none"),
                f"evaluation: {spec.eval.episodes} episodes on seeds {spec.eval.seed}.."
                f"{spec.eval.seed + spec.eval.episodes - 1}, the same for every agent and "
                "baseline; returns below are the mean over those episodes per run",
            ]
        self.document.add(
            Paragraph(
                f"Made by `opsrl report` (opsrl {opsrl.__version__}) on "
                f"{time.strftime('%Y-%m-%d %H:%M')} from `{experiment.path}`.",
                bullets=bullets,
            ),
            Paragraph(
                f"Reproduce: `opsrl run {experiment.path / 'spec.yaml'} --name "
                f"{experiment.name}`; remake this report: `opsrl report {experiment.path}`."
            ),
        )
        if experiment.notes:
            self.document.add(Paragraph("Notes:", bullets=list(experiment.notes)))

    def problems(self) -> None:
        problems = self.experiment.problems
        self.document.add(Heading("Missing or failed runs"))
        if not problems:
            self.document.add(Paragraph(f"None: all {len(self.experiment.runs)} runs finished."))
            return
        self.document.add(
            Paragraph(
                f"{len(problems)} of {len(self.experiment.runs)} runs have no result; the "
                "tables and figures below use the finished runs only. "
                "`opsrl run SPEC --resume` runs them again."
            ),
            Table(
                ["run", "status", "detail"],
                [[p.name, STATUS_TEXT.get(p.status, p.status), p.detail] for p in problems],
            ),
        )

    def env_section(self, env: str) -> None:
        experiment = self.experiment
        env_id = experiment.env_ids.get(env, "")
        family = family_of(env_id)
        heading = f"{env}" + (f" (`{env_id}`" + (f", {family.name})" if family else ")"))
        self.document.add(Heading(heading))
        kwargs = experiment.env_kwargs.get(env)
        if kwargs:
            settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
            self.document.add(Paragraph(f"Evaluation env arguments: `{settings}`."))
        summary = experiment.summary
        rows = summary[summary["env"] == env] if len(summary) else summary
        if not len(rows):
            self.document.add(Paragraph("No finished run for this env."))
            return
        best_known = self.best_known(env, family)
        self.results_table(env, rows, best_known)
        self.thresholds_table(env, rows)
        self.kpi_table(env, rows)
        self.curves(env, rows)
        if family is not None:
            self.traces(env, family)
        self.pareto(env)

    def best_known(self, env: str, family) -> tuple[str, float] | None:
        if family is None or family.best_known is None:
            return None
        env_id = self.experiment.env_ids.get(env)
        try:
            return family.best_known(env_id, self.experiment.env_kwargs.get(env, {}))
        except Exception as error:  # noqa: BLE001 - a missing reference is not worth a failure
            self.document.add(Paragraph(f"(No best-known value: {error}.)"))
            return None

    def results_table(self, env: str, rows: pd.DataFrame, best_known) -> None:
        table = self.experiment.table
        finals = table[(table["env"] == env) & (table["metric"] == "return")]
        steps = finals.groupby("agent")["step"].mean()
        has_bound = "gap_pct" in rows and rows["gap_pct"].notna().any()
        columns = ["policy", "kind", "seeds", "mean ± std", "IQM [95% CI]"]
        if has_bound:
            columns.append("gap to bound")
        kpi_column = None
        if best_known is not None:
            kpi, value = best_known
            kpi_column = f"kpi/{kpi}"
            columns.append(f"gap to best known {kpi} ({format_number(value)})")
        columns += ["wall time (s)", "env steps"]
        body = []
        for _, row in rows.iterrows():
            cells = [
                str(row["agent"]),
                str(row["kind"]),
                str(int(row["seeds"])),
                f"{format_number(row['mean'])} ± {format_number(row['std'])}",
                f"{format_number(row['iqm'])} [{format_number(row['iqm_ci_low'])}, "
                f"{format_number(row['iqm_ci_high'])}]",
            ]
            if has_bound:
                cells.append(_percent(row.get("gap_pct")))
            if best_known is not None:
                mean_kpi = row.get(kpi_column)
                gap = (
                    None
                    if mean_kpi is None
                    else 100.0 * (mean_kpi - best_known[1]) / abs(best_known[1])
                )
                cells.append(_percent(gap))
            cells.append(format_number(row.get("wall_time_s")))
            step = steps.get(row["agent"]) if row["kind"] == "agent" else None
            cells.append(f"{round(step):,}" if step is not None else "-")
            body.append(cells)
        bound_note = ""
        if has_bound:
            bound_note = (
                f" Gap to bound: (best bound - mean) / |best bound|, best bound "
                f"{format_number(rows['best_bound'].iloc[0])} (the tightest OR bound on the "
                "expected return)."
            )
        self.document.add(
            Table(
                columns,
                body,
                ["l", "l"] + ["r"] * (len(columns) - 2),
                caption=f"{env}: final return per run, over seeds",
            ),
            Paragraph(
                "Mean ± std and the interquartile mean with its 95% bootstrap CI of the runs' "
                "final evaluation return (higher is better)." + bound_note
            ),
        )

    def thresholds_table(self, env: str, rows: pd.DataFrame) -> None:
        spec = self.experiment.spec
        thresholds = spec.thresholds.get(env, []) if spec is not None else []
        agents = rows[rows["kind"] == "agent"]
        if not thresholds or not len(agents):
            return
        columns = ["agent"] + [f"return ≥ {format_number(t)}" for t in thresholds]
        body = []
        for _, row in agents.iterrows():
            cells = [str(row["agent"])]
            for t in thresholds:
                steps, reached = row.get(f"steps_to_{t:g}"), row.get(f"reached_{t:g}")
                cells.append(
                    f"{format_number(steps)} ({100 * reached:.0f}% of seeds)"
                    if reached is not None and math.isfinite(reached)
                    else "-"
                )
            body.append(cells)
        self.document.add(
            Table(
                columns,
                body,
                ["l"] + ["r"] * len(thresholds),
                caption=f"{env}: env steps to reach a return (mean over the seeds that did)",
            )
        )

    def kpi_table(self, env: str, rows: pd.DataFrame) -> None:
        kpis = [c for c in rows.columns if c.startswith("kpi/") and rows[c].notna().any()]
        if not kpis:
            return
        self.document.add(
            Table(
                ["policy"] + [k.removeprefix("kpi/").replace("_", " ") for k in kpis],
                [
                    [str(row["agent"])] + [format_number(row[k]) for k in kpis]
                    for _, row in rows.iterrows()
                ],
                ["l"] + ["r"] * len(kpis),
                caption=f"{env}: KPIs of the final evaluation (mean over seeds)",
            )
        )

    def curves(self, env: str, rows: pd.DataFrame) -> None:
        metric, bands = learning_curves(self.experiment.table, env)
        if metric is None:
            return
        baselines = rows[rows["kind"] == "baseline"]
        references = [(str(r["agent"]), float(r["mean"])) for _, r in baselines.iterrows()]
        bound = None
        if "best_bound" in rows and rows["best_bound"].notna().any():
            bound = float(rows["best_bound"].dropna().iloc[0])
        source = "evaluation on the fixed seeds" if metric == "eval/return" else "training"
        figure = plot_learning_curves(
            bands,
            references,
            bound,
            title=f"{env}: learning curves",
            ylabel=metric,
            colors=self.colors,
        )
        caption = (
            f"{env}: learning curves ({metric}, {source}): mean over seeds with a 95% "
            "bootstrap band"
        )
        if references:
            caption += "; dashed lines: the baselines' final mean return"
        if bound is not None:
            caption += "; black line: the OR bound"
        self.image(f"{_slug(env)}__curves", figure, caption + ".")

    # ---------------------------------------------------------------------------- traces
    def _trace_candidates(self, env: str) -> list[tuple[float, object]]:
        experiment = self.experiment
        finals = final_metrics(experiment.table[experiment.table["env"] == env])
        final_return = dict(zip(finals["run"], finals["return"], strict=True))
        candidates = []
        for run in experiment.finished:
            if run.env != env:
                continue
            score = experiment.first_episode_return(run.name)
            if score is None:
                score = final_return.get(run.name, -np.inf)
            candidates.append((float(score), run))
        return sorted(candidates, key=lambda pair: pair[0], reverse=True)

    def _trace_of(self, run, replay_notes: list[str]) -> tuple[pd.DataFrame | None, bool]:
        saved = self.experiment.saved_trace(run.name)
        if saved is not None:
            return saved, False
        cached = self.figure_dir / "traces" / f"{run.name}.csv"
        if cached.is_file():
            return pd.read_csv(cached), True
        if not self.replay:
            return None, False
        from opsrl.experiment import evaluate_run_dir

        try:
            evaluation = evaluate_run_dir(
                self.experiment.run_dir(run.name), episodes=1, capture_trace=True
            )
        except Exception as error:  # noqa: BLE001 - one run's replay must not sink the report
            replay_notes.append(f"{run.name}: {type(error).__name__}: {error}")
            return None, False
        trace = evaluation.get("trace")
        if trace is None:
            return None, False
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        trace.to_csv(tmp, index=False)
        os.replace(tmp, cached)
        return trace, True

    def traces(self, env: str, family) -> None:
        chosen: dict[str, TraceRun] = {}
        notes: list[str] = []
        for score, run in self._trace_candidates(env):
            key = run.policy if family.traces_of_every_policy else run.kind
            if key in chosen:
                continue
            trace, replayed = self._trace_of(run, notes)
            if trace is None or not len(trace):
                continue
            chosen[key] = TraceRun(run.name, run.policy, run.kind, run.seed, score, trace, replayed)
        if notes:
            self.document.add(Paragraph("Replays that failed:", bullets=notes))
        if not chosen:
            self.document.add(
                Paragraph(
                    f"No episode trace for {env}: the runs predate trace.csv, or the env has no "
                    "`episode_trace()`. `opsrl report --replay-traces` replays the first "
                    "evaluation episode of the best runs to make one."
                )
            )
            return
        try:
            figures = family.trace_figures(env, list(chosen.values()))
        except (KeyError, ValueError, TypeError) as error:
            self.document.add(Paragraph(f"Trace figures of {env} failed: {error}."))
            return
        for slug, figure, caption in figures:
            self.image(f"{_slug(env)}__{slug}", figure, caption)

    def pareto(self, env: str) -> None:
        finals = final_metrics(self.experiment.table[self.experiment.table["env"] == env])
        objectives = [c for c in finals.columns if c.startswith(OBJECTIVE_PREFIX)]
        if len(objectives) < 2:
            return
        points = finals.dropna(subset=objectives)
        names = [o.removeprefix(OBJECTIVE_PREFIX) for o in objectives]
        points = points.rename(columns=dict(zip(objectives, names, strict=True)))
        if len(names) == 2:
            figure = plot_pareto_2d(points, names, title=f"{env}: Pareto front", colors=self.colors)
        else:
            figure = plot_pareto_3d(
                points, names[:3], title=f"{env}: Pareto front", colors=self.colors
            )
        shown = names[:3]
        self.image(
            f"{_slug(env)}__pareto",
            figure,
            f"{env}: final objectives of every run ({', '.join(shown)}; all maximised) and "
            "their Pareto front.",
        )

    # ---------------------------------------------------------------------------- aggregate
    def across_envs(self) -> None:
        summary = self.experiment.summary
        self.document.add(Heading("Across environments"))
        if not len(summary):
            self.document.add(Paragraph("No finished run."))
            return
        references = score_references(summary, self.experiment.random_labels)
        self.document.add(
            Paragraph(
                "Scores are normalised per env as (return - R0) / (R1 - R0): R0 is the mean "
                "return of the random baseline (else the worst policy), R1 the tightest OR "
                "bound on the expected return where a baseline gives one (else the best "
                "non-random baseline, else the best policy). So 0 is random play and 1 the "
                "bound (or the best baseline). The aggregate is the interquartile mean (IQM) "
                "of the scores of all runs of all envs, with a 95% percentile bootstrap CI "
                "that resamples runs within each env (`scipy.stats.bootstrap`); the "
                "performance profile gives, for each tau, the fraction of runs (averaged "
                "over envs) whose score exceeds tau."
            ),
            Table(
                ["env", "R0 (score 0)", "R1 (score 1)"],
                [
                    [
                        r.env,
                        f"{format_number(r.low)}: {r.low_from}",
                        f"{format_number(r.high)}: {r.high_from}"
                        + ("" if r.usable else " (not above R0: env left out)"),
                    ]
                    for r in references
                ],
                ["l", "r", "r"],
                caption="Normalisation of each env",
            ),
        )
        scores = normalised_scores(self.experiment.table, references)
        if not len(scores):
            self.document.add(Paragraph("No env has a usable normalisation."))
            return
        aggregate = aggregate_iqm(scores).sort_values("iqm", ascending=False)
        self.document.add(
            Table(
                ["policy", "kind", "envs", "runs", "IQM of normalised score [95% CI]"],
                [
                    [
                        str(r["agent"]),
                        str(r["kind"]),
                        str(int(r["envs"])),
                        str(int(r["runs"])),
                        f"{format_number(r['iqm'])} [{format_number(r['ci_low'])}, "
                        f"{format_number(r['ci_high'])}]",
                    ]
                    for _, r in aggregate.iterrows()
                ],
                ["l", "l", "r", "r", "r"],
                caption="Aggregate over envs",
            )
        )
        self.image(
            "aggregate_iqm",
            plot_aggregate(aggregate, colors=self.colors),
            "IQM of the normalised scores over all envs and runs, per policy, with its 95% "
            "stratified bootstrap CI.",
        )
        self.image(
            "performance_profile",
            plot_performance_profile(performance_profile(scores), colors=self.colors),
            "Performance profiles: fraction of runs whose normalised score exceeds tau "
            "(averaged over envs), per policy; a curve above another is better everywhere.",
        )


def _write_atomic(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def build_report(
    exp_dir: str | Path,
    output_dir: str | Path | None = None,
    replay_traces: bool = False,
) -> ReportFiles:
    """Write ``report.md`` (figures in ``report_files/``) and a self-contained ``report.html``
    for the experiment in ``exp_dir``.

    The report holds, per env, the results table (mean ± std, IQM with its bootstrap CI, gap
    to the OR bound and to a best-known value, wall time, env steps), steps to the spec's
    return thresholds, the KPIs, learning curves, the family's episode-trace figures (Gantt
    chart, inventory and setups, portfolio value and weights, KPIs over the day) and Pareto
    fronts of runs with ``objective/<name>`` metrics; then normalised scores aggregated over
    envs and performance profiles. Runs that failed or are missing get their own section.

    Args:
        exp_dir: an experiment directory, ``runs/<experiment>``.
        output_dir: where to write (default ``exp_dir``).
        replay_traces: replay the first evaluation episode of the featured runs that have no
            ``trace.csv`` (runs made before traces existed) and keep those traces in
            ``report_files/traces/``.

    Raises:
        ReportError: ``exp_dir`` is not an experiment directory.
    """
    experiment = load_experiment(exp_dir)
    output = Path(output_dir) if output_dir is not None else experiment.path
    output.mkdir(parents=True, exist_ok=True)
    figure_dir = output / REPORT_FILES
    figure_dir.mkdir(exist_ok=True)
    document = _Builder(experiment, figure_dir, replay_traces).build()

    written = []
    for image in document.images:
        path = figure_dir / image.name
        _write_atomic(path, image.png)
        written.append(path)
    keep = {p.name for p in written}
    for stale in figure_dir.glob("*.png"):
        if stale.name not in keep:
            stale.unlink()
    markdown = output / "report.md"
    html = output / "report.html"
    _write_atomic(markdown, document.to_markdown(REPORT_FILES))
    _write_atomic(html, document.to_html())
    return ReportFiles(markdown, html, written)
