"""Experiment reports: ``opsrl report runs/<experiment>`` -> ``report.md`` + ``report.html``.

:func:`build_report` reads an experiment directory (spec, runs, results, episode traces) and
writes a Markdown report with its figures as PNG files and a self-contained HTML page with
the same content (figures embedded). The statistics and figure functions are public so that
notebooks can use them on a results table directly.
"""

from opsrl.report._build import REPORT_FILES, ReportFiles, build_report, format_number
from opsrl.report._families import FAMILIES, Family, TraceRun, family_of
from opsrl.report._load import Experiment, ReportError, RunStatus, load_experiment
from opsrl.report._plots import (
    plot_aggregate,
    plot_gantt,
    plot_kpis_over_day,
    plot_learning_curves,
    plot_lot_sizing_trace,
    plot_pareto_2d,
    plot_pareto_3d,
    plot_performance_profile,
    plot_portfolio_values,
    plot_portfolio_weights,
    png_bytes,
)
from opsrl.report._stats import (
    ScoreReference,
    aggregate_iqm,
    curve_bands,
    learning_curves,
    normalised_scores,
    pareto_mask,
    performance_profile,
    score_references,
)

__all__ = [
    "FAMILIES",
    "REPORT_FILES",
    "Experiment",
    "Family",
    "ReportError",
    "ReportFiles",
    "RunStatus",
    "ScoreReference",
    "TraceRun",
    "aggregate_iqm",
    "build_report",
    "curve_bands",
    "family_of",
    "format_number",
    "learning_curves",
    "load_experiment",
    "normalised_scores",
    "pareto_mask",
    "performance_profile",
    "plot_aggregate",
    "plot_gantt",
    "plot_kpis_over_day",
    "plot_learning_curves",
    "plot_lot_sizing_trace",
    "plot_pareto_2d",
    "plot_pareto_3d",
    "plot_performance_profile",
    "plot_portfolio_values",
    "plot_portfolio_weights",
    "png_bytes",
    "score_references",
]
