"""Summary statistics of the long results table."""

import numpy as np
import pandas as pd
import pytest

from opsrl.results import bootstrap_ci, iqm, summarize


def test_iqm_trims_quartiles():
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0])) == pytest.approx(3.5)
    assert iqm(np.array([2.0])) == 2.0


def test_bootstrap_ci_brackets_iqm():
    values = np.arange(10, dtype=float)
    low, high = bootstrap_ci(values)
    assert low <= iqm(values) <= high
    assert np.isnan(bootstrap_ci(np.array([1.0]))[0])


def _rows(agent, kind, seed, ret, bound=None):
    rows = [("return", ret), ("kpi/fill_rate", 0.9)]
    if bound is not None:
        rows.append(("bound", bound))
    return [
        {
            "run": f"E__{agent}__{seed}",
            "env": "E",
            "agent": agent,
            "seed": seed,
            "kind": kind,
            "step": 100,
            "metric": m,
            "value": v,
        }
        for m, v in rows
    ] + [
        {
            "run": f"E__{agent}__{seed}",
            "env": "E",
            "agent": agent,
            "seed": seed,
            "kind": kind,
            "step": 50,
            "metric": "train/ep_rew_mean",
            "value": -1e9,
        }
    ]


def test_summary_mean_std_and_gap_to_bound():
    table = pd.DataFrame(
        _rows("ppo", "agent", 0, -120.0)
        + _rows("ppo", "agent", 1, -140.0)
        + _rows("mip", "baseline", 0, -110.0, bound=-100.0)
        + _rows("mip", "baseline", 1, -110.0, bound=-104.0)
    )
    summary = summarize(table).set_index("agent")
    assert summary.loc["ppo", "mean"] == pytest.approx(-130.0)
    assert summary.loc["ppo", "std"] == pytest.approx(np.std([-120, -140], ddof=1))
    assert summary.loc["ppo", "seeds"] == 2
    # best bound -102 (mean over the bound's episodes); gap of ppo = 28/102
    assert summary.loc["ppo", "gap_pct"] == pytest.approx(100 * 28 / 102)
    assert summary.loc["mip", "kpi/fill_rate"] == pytest.approx(0.9)


def test_steps_to_threshold_from_eval_curve():
    curve = [(1000, -500.0), (2000, -300.0), (3000, -250.0)]
    table = pd.DataFrame(
        _rows("ppo", "agent", 0, -250.0)
        + [
            {
                "run": "E__ppo__0",
                "env": "E",
                "agent": "ppo",
                "seed": 0,
                "kind": "agent",
                "step": s,
                "metric": "eval/return",
                "value": v,
            }
            for s, v in curve
        ]
        + _rows("ppo", "agent", 1, -400.0)
    )
    summary = summarize(table, {"E": [-300.0, -100.0]}).set_index("agent")
    # seed 0 reaches -300 at step 2000; seed 1 has only a training curve far below
    assert summary.loc["ppo", "steps_to_-300"] == 2000
    assert summary.loc["ppo", "reached_-300"] == 0.5
    assert summary.loc["ppo", "reached_-100"] == 0.0
