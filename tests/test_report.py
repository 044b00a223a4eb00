"""`opsrl report`: a tiny experiment's report, its tables parsed back, figures checked by data."""

import base64
import io
import json
import re
import shutil
import struct
from html.parser import HTMLParser

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import yaml
from gymnasium.envs.classic_control import CartPoleEnv
from rich.console import Console
from scipy.stats import trim_mean

import opsrl.report
from opsrl import results
from opsrl.cli import main
from opsrl.evaluation import evaluate_policy_on_seeds
from opsrl.experiment import run_experiment
from opsrl.report import (
    aggregate_iqm,
    build_report,
    family_of,
    format_number,
    learning_curves,
    normalised_scores,
    pareto_mask,
    performance_profile,
    plot_gantt,
    plot_kpis_over_day,
    plot_learning_curves,
    plot_lot_sizing_trace,
    plot_pareto_2d,
    plot_pareto_3d,
    plot_portfolio_values,
    plot_portfolio_weights,
    png_bytes,
    score_references,
)
from opsrl.spec import spec_from_dict

ENV = "LS"
HORIZON = 20


def _tiny_spec(output_dir, name="tiny", **changes):
    data = {
        "name": name,
        "output_dir": str(output_dir),
        "envs": [
            {
                "id": "opsrl/LotSizing-v0",
                "label": ENV,
                "kwargs": {"instance": "3x2", "horizon": HORIZON},
            }
        ],
        "agents": [
            {"name": "ppo", "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1}}
        ],
        "baselines": ["random", "base_stock"],
        "seeds": [0, 1],
        "timesteps": 128,
        "eval": {"episodes": 2, "freq": 64},
    }
    data.update(changes)
    return spec_from_dict(data)


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """PPO (2 seeds, 128 steps) + random (2 seeds) + base stock on a 3-item lot-sizing plant,
    run as `opsrl run` runs it, report included."""
    spec = _tiny_spec(tmp_path_factory.mktemp("report"))
    return run_experiment(spec, console=_quiet(), progress=False)


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


def _markdown_table(markdown: str, caption: str) -> pd.DataFrame:
    """The Markdown table that follows the bold ``caption`` line, as strings."""
    lines = markdown.splitlines()
    start = lines.index(f"**{caption}**") + 2
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return pd.DataFrame(rows, columns=header)


def _number(text: str) -> float:
    return float("nan") if text == "-" else float(text.replace(",", ""))


def _close(text: str, value: float) -> bool:
    """A number as the report prints it (about four significant digits) matches ``value``."""
    if text == "-":
        return not np.isfinite(value)
    return abs(_number(text) - value) <= max(5e-4 * abs(value), 0.51 if abs(value) >= 1000 else 0)


# --------------------------------------------------------------------------------------------
# The report of a tiny experiment
# --------------------------------------------------------------------------------------------


class _TagChecker(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def test_run_writes_markdown_and_self_contained_html(tiny):
    exp = tiny.exp_dir
    assert tiny.report_path == exp / "report.md"
    markdown = (exp / "report.md").read_text()
    page = (exp / "report.html").read_text()
    linked = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", markdown)
    # curves, lot-sizing traces of the best agent and the best baseline, aggregate, profile
    assert len(linked) == 5
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.stack == []
    sources = [image["src"] for image in checker.images]
    assert len(sources) == len(linked)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    for source, path in zip(sources, linked, strict=True):
        png = base64.b64decode(source.removeprefix("data:image/png;base64,"))
        assert png == (exp / path).read_bytes()
        width, height = _png_size(png)
        assert width >= 500 and height >= 200
    assert "None: all 5 runs finished." in markdown


def test_results_table_holds_the_summary_numbers(tiny):
    exp = tiny.exp_dir
    markdown = (exp / "report.md").read_text()
    table = _markdown_table(markdown, f"{ENV}: final return per run, over seeds")
    summary = results.summarize(results.read_table(exp)).set_index("agent")
    assert set(table["policy"]) == set(summary.index) == {"ppo", "random", "base_stock"}
    for _, row in table.iterrows():
        expected = summary.loc[row["policy"]]
        mean, std = row["mean ± std"].split(" ± ")
        assert _close(mean, expected["mean"]) and _close(std, expected["std"])
        iqm, low, high = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", row["IQM [95% CI]"]).groups()
        assert _close(iqm, expected["iqm"])
        assert _close(low, expected["iqm_ci_low"]) and _close(high, expected["iqm_ci_high"])
        assert int(row["seeds"]) == expected["seeds"]
        assert _close(row["wall time (s)"], expected["wall_time_s"])
        assert row["env steps"] == ("128" if row["policy"] == "ppo" else "-")
    kpis = _markdown_table(markdown, f"{ENV}: KPIs of the final evaluation (mean over seeds)")
    for _, row in kpis.iterrows():
        assert _close(row["total cost"], summary.loc[row["policy"], "kpi/total_cost"])


def test_learning_curve_figure_draws_the_seed_means(tiny):
    table = results.read_table(tiny.exp_dir)
    metric, bands = learning_curves(table, ENV)
    assert metric == "eval/return" and list(bands) == ["ppo"]
    summary = results.summarize(table)
    baselines = summary[summary["kind"] == "baseline"]
    references = list(zip(baselines["agent"], baselines["mean"], strict=True))
    figure = plot_learning_curves(bands, references, bound=None, title=ENV)
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    evals = table[(table["metric"] == "eval/return") & (table["agent"] == "ppo")]
    expected = evals.groupby("step")["value"].mean()
    np.testing.assert_array_equal(lines["ppo"].get_xdata(), expected.index.to_numpy())
    np.testing.assert_allclose(lines["ppo"].get_ydata(), expected.to_numpy())
    for agent, mean in references:
        assert lines[f"{agent} (baseline)"].get_ydata()[0] == pytest.approx(mean)
    band = bands["ppo"]
    assert (band["low"] <= band["mean"] + 1e-9).all() and (
        band["mean"] <= band["high"] + 1e-9
    ).all()
    assert _png_size(png_bytes(figure, dpi=100)) == (700, 420)


def test_runs_save_the_first_evaluation_episode_trace(tiny):
    env = gym.make("opsrl/LotSizing-v0", instance="3x2", horizon=HORIZON)
    max_level = env.unwrapped.instance.max_inventory_level
    for run in ("LS__ppo__0", "LS__random__1", "LS__base_stock__0"):
        run_dir = tiny.exp_dir / run
        trace = pd.read_csv(run_dir / "trace.csv")
        first = json.loads((run_dir / "eval.json").read_text())["episodes"][0]
        assert len(trace) == HORIZON == first["length"]
        assert trace["total_cost"].sum() == pytest.approx(-first["episode_return"])
        for item in range(1, 4):
            before = trace[f"inventory/{item}"].shift(1).to_numpy()[1:]
            available = before + trace[f"produced/{item}"].to_numpy()[1:]
            demand = trace[f"demand/{item}"].to_numpy()[1:]
            lost = trace[f"lost/{item}"].to_numpy()[1:]
            after = trace[f"inventory/{item}"].to_numpy()[1:]
            np.testing.assert_array_equal(lost, np.maximum(demand - available, 0))
            np.testing.assert_array_equal(
                after, np.minimum(np.maximum(available - demand, 0), max_level[item - 1])
            )


class _BrokenTraceEnv(CartPoleEnv):
    def episode_trace(self):
        raise RuntimeError("no trace today")


class _AlwaysLeft:
    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return 0, state


def test_a_failing_episode_trace_costs_only_the_trace():
    with pytest.warns(UserWarning, match="no trace today"):
        (episode,) = evaluate_policy_on_seeds(
            _AlwaysLeft(), _BrokenTraceEnv(), [0], capture_trace=True
        )
    assert episode.trace is None and episode.length > 0
    assert "trace" not in episode.to_dict()


def test_lot_sizing_trace_figure_data(tiny):
    trace = pd.read_csv(tiny.exp_dir / "LS__base_stock__0" / "trace.csv")
    figure = plot_lot_sizing_trace(trace)
    ax_inventory, ax_setup, ax_cost = figure.axes[:3]  # then the colour bar
    lines = ax_inventory.get_lines()
    assert len(lines) == 3
    for item, line in enumerate(lines, start=1):
        np.testing.assert_array_equal(line.get_ydata(), trace[f"inventory/{item}"])
    image = ax_setup.get_images()[0].get_array()
    runs = trace[["machine/0", "machine/1"]].to_numpy().T
    np.testing.assert_array_equal(np.nan_to_num(np.asarray(image, dtype=float)), runs)
    setup, holding, lost = ax_cost.containers
    np.testing.assert_allclose([b.get_height() for b in setup], trace["setup_cost"])
    np.testing.assert_allclose(
        [b.get_y() for b in lost], trace["setup_cost"] + trace["holding_cost"]
    )
    np.testing.assert_allclose([b.get_height() for b in lost], trace["lost_sales_cost"])
    assert _png_size(png_bytes(figure)) == (1000, 800)


def test_report_of_a_deleted_run_says_missing_and_replays_traces(tiny, tmp_path):
    exp = tmp_path / "tiny"
    shutil.copytree(tiny.exp_dir, exp)
    shutil.rmtree(exp / "LS__ppo__1")
    for trace in exp.glob("*/trace.csv"):
        trace.unlink()
    files = build_report(exp, replay_traces=True)
    markdown = files.markdown.read_text()
    section = markdown.split("## Missing or failed runs")[1].split("\n## ")[0]
    assert "| LS__ppo__1 | missing | no run directory |" in section
    table = _markdown_table(markdown, f"{ENV}: final return per run, over seeds")
    assert table.set_index("policy").loc["ppo", "seeds"] == "1"
    replayed = sorted(p.name for p in (exp / "report_files" / "traces").glob("*.csv"))
    assert replayed == ["LS__base_stock__0.csv", "LS__ppo__0.csv"]
    assert "LS__lot_sizing_agent.png" in markdown and "replayed" in markdown


def test_report_of_a_failed_run_says_failed(tmp_path):
    spec = _tiny_spec(
        tmp_path,
        name="broken",
        agents=[],
        baselines=["random", {"name": "base_stock", "kwargs": {"no_such_option": 1}}],
        seeds=[0],
    )
    outcome = run_experiment(spec, console=_quiet(), progress=False)
    assert [f.name for f in outcome.failures] == ["LS__base_stock__0"]
    assert json.loads((outcome.exp_dir / "failures.json").read_text()).keys() == {
        "LS__base_stock__0"
    }
    markdown = outcome.report_path.read_text()
    section = markdown.split("## Missing or failed runs")[1].split("\n## ")[0]
    assert "| LS__base_stock__0 | failed |" in section and "no_such_option" in section
    assert "| random | baseline | 1 |" in markdown


def test_run_no_report_flag_and_a_failing_report_keeps_results(tmp_path, monkeypatch, capsys):
    flags = ["run", "--env", "opsrl/LotSizing-v0", "--baseline", "random", "--env-kwargs"]
    flags += ["instance:3x2", "horizon:5", "--eval-episodes", "1", "--no-progress"]
    flags += ["--output", str(tmp_path)]
    assert main([*flags, "--name", "plain", "--no-report"]) == 0
    assert not (tmp_path / "plain" / "report.md").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full\nsecond line")

    monkeypatch.setattr(opsrl.report, "build_report", broken)
    assert main([*flags, "--name", "unlucky"]) == 0
    out = capsys.readouterr().out
    assert "warning: no report (RuntimeError: disk full)" in out
    assert (tmp_path / "unlucky" / "results.parquet").is_file()
    assert not (tmp_path / "unlucky" / "report.md").exists()


# --------------------------------------------------------------------------------------------
# Statistics and figures on synthetic data
# --------------------------------------------------------------------------------------------


def _final_rows(env, agent, kind, returns, bound=None):
    rows = []
    for seed, value in enumerate(returns):
        metrics = {"return": value} if bound is None else {"return": value, "bound": bound}
        for metric, number in metrics.items():
            rows.append(
                {
                    "run": f"{env}__{agent}__{seed}",
                    "env": env,
                    "agent": agent,
                    "seed": seed,
                    "kind": kind,
                    "step": 100,
                    "metric": metric,
                    "value": number,
                }
            )
    return rows


def test_normalised_scores_aggregate_and_profiles():
    table = pd.DataFrame(
        _final_rows("A", "ppo", "agent", [-60.0, -40.0, -20.0])
        + _final_rows("A", "random", "baseline", [-110.0, -90.0])
        + _final_rows("A", "mip", "baseline", [-30.0], bound=0.0)
        + _final_rows("B", "ppo", "agent", [5.0, 6.0, 7.0])
        + _final_rows("B", "random", "baseline", [1.0, 1.0])
        + _final_rows("B", "mip", "baseline", [9.0])
    )
    summary = results.summarize(table)
    references = {r.env: r for r in score_references(summary)}
    assert (references["A"].low, references["A"].high) == (-100.0, 0.0)
    assert references["A"].high_from == "OR bound" and references["A"].low_from == "random"
    assert (references["B"].low, references["B"].high) == (1.0, 9.0)
    assert references["B"].high_from == "best baseline (mip)"
    scores = normalised_scores(table, list(references.values()))
    ppo = scores[scores["agent"] == "ppo"].set_index(["env", "seed"])["score"]
    assert ppo.loc[("A", 0)] == pytest.approx(0.4) and ppo.loc[("B", 2)] == pytest.approx(0.75)
    aggregate = aggregate_iqm(scores).set_index("agent")
    pooled = [0.4, 0.6, 0.8, 0.5, 0.625, 0.75]
    assert aggregate.loc["ppo", "iqm"] == pytest.approx(trim_mean(pooled, 0.25))
    assert aggregate.loc["ppo", "ci_low"] <= aggregate.loc["ppo", "iqm"]
    assert aggregate.loc["ppo", "iqm"] <= aggregate.loc["ppo", "ci_high"]
    assert (aggregate.loc["ppo", "envs"], aggregate.loc["ppo", "runs"]) == (2, 6)
    # a deterministic baseline (one run per env) has no interval
    assert aggregate.loc["mip", "iqm"] == pytest.approx(trim_mean([0.7, 1.0], 0.25))
    assert np.isnan(aggregate.loc["mip", "ci_low"])
    profile = performance_profile(scores, taus=np.array([0.0, 0.45, 0.7, 1.0]))
    # ppo: env A scores .4 .6 .8, env B .5 .625 .75 -> per-env fractions averaged
    np.testing.assert_allclose(profile["ppo"], [1.0, (2 / 3 + 1.0) / 2, (1 / 3 + 1 / 3) / 2, 0])
    assert profile["mip"].iloc[-1] == 0.0 and profile["mip"].iloc[0] == 1.0


def test_references_without_random_or_baselines():
    table = pd.DataFrame(
        _final_rows("C", "ppo", "agent", [3.0, 5.0]) + _final_rows("C", "a2c", "agent", [1.0])
    )
    (reference,) = score_references(results.summarize(table))
    assert (reference.low, reference.high) == (1.0, 4.0)
    assert reference.low_from == "worst policy (a2c)"
    assert reference.high_from == "best policy (ppo)"


def _schedule():
    columns = ["kind", "job", "op", "machine", "start", "end", "leave", "paused", "swap"]
    rows = [
        ("op", 0, 0, 0, 0, 3, 3, 0, False),
        ("op", 1, 0, 1, 0, 2, 4, 0, False),  # blocked on machine 1 over [2, 4)
        ("op", 0, 1, 1, 4, 9, 9, 2, False),  # paused 2 by the down window
        ("op", 1, 1, 0, 4, 6, 6, 0, True),
        ("op", 2, 0, 2, 0, 5, 5, 0, False),
        ("down", -1, -1, 1, 5, 7, 7, 0, False),
    ]
    return pd.DataFrame(rows, columns=columns)


def test_gantt_bars_match_the_schedule():
    schedule = _schedule()
    figure = plot_gantt(schedule, title="synthetic")
    ax = figure.axes[0]
    bars = {c.get_label(): c for c in ax.containers}
    ops = schedule[schedule["kind"] == "op"]
    processing = [
        (r.get_x(), r.get_width(), r.get_y() + r.get_height() / 2) for r in bars["processing"]
    ]
    expected = list(zip(ops["start"], ops["end"] - ops["start"], ops["machine"], strict=True))
    np.testing.assert_allclose(processing, expected)
    (blocked,) = bars["blocked"]
    assert (blocked.get_x(), blocked.get_width()) == (2, 2)
    assert blocked.get_y() + blocked.get_height() / 2 == pytest.approx(1)
    (down,) = bars["down"]
    assert (down.get_x(), down.get_width()) == (5, 2)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["makespan 9"].get_xdata()[0] == 9
    assert list(lines["left by swap"].get_xdata()) == [6]
    assert _png_size(png_bytes(figure)) == (1000, int(round(100 * (1.4 + 0.42 * 3))))
    with pytest.raises(ValueError, match="leave"):
        plot_gantt(schedule.drop(columns="leave"))


def test_portfolio_trace_and_figures():
    env = gym.make(
        "opsrl/ESGPortfolio-v0", n_assets=4, n_days=120, episode_days=8, market="esg_regulated"
    )
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    previous, info = env.unwrapped.portfolio_value, {}
    for _ in range(8):
        _, _, terminated, _, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
    trace = env.unwrapped.episode_trace()
    assert terminated and len(trace) == 8
    values = np.concatenate([[previous], trace["portfolio_value"]])
    expected = (
        values[:-1] * (1 + trace["portfolio_return"])
        - trace["transaction_cost"]
        + trace["grant"]
        - trace["tax"]
    )
    np.testing.assert_allclose(trace["portfolio_value"], expected, rtol=1e-12)
    assert trace["portfolio_value"].iloc[-1] == pytest.approx(info["kpi"]["portfolio_value"])
    weights = trace[[c for c in trace.columns if c.startswith("weight/")]]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert trace["date"].iloc[-1] == info["date"]
    values_figure = plot_portfolio_values({"random": trace})
    (line,) = values_figure.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), trace["portfolio_value"])
    weights_figure = plot_portfolio_weights(trace, largest=2)
    stacks = weights_figure.axes[0].collections
    assert [c.get_label() for c in stacks][-1] == "other (2)" and len(stacks) == 3


def test_kpis_over_day_one_panel_per_kpi():
    day = pd.DataFrame({"hour": np.arange(6, 22), "served": np.arange(16) * 2.0})
    day["waiting"] = 16 - np.arange(16)
    day["zone"] = "north"  # text columns are not KPIs
    figure = plot_kpis_over_day(day)
    shown = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["served", "waiting"]
    np.testing.assert_array_equal(shown[1].get_lines()[0].get_ydata(), day["waiting"])
    with pytest.raises(ValueError, match="time column"):
        plot_kpis_over_day(day.drop(columns="hour"))


def test_pareto_front_and_its_plots():
    points = np.array([[1.0, 5.0], [2.0, 4.0], [1.5, 3.0], [3.0, 1.0], [3.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(pareto_mask(points), [True, True, False, True, True, False])
    np.testing.assert_array_equal(
        pareto_mask(points, maximize=[True, False]), [False, False, False, True, True, True]
    )
    with pytest.raises(ValueError, match="maximize"):
        pareto_mask(points, maximize=[True])
    frame = pd.DataFrame(points, columns=["profit", "service"])
    frame["agent"] = ["a", "a", "b", "b", "c", "c"]
    figure = plot_pareto_2d(frame, ["profit", "service"])
    front = {line.get_label(): line for line in figure.axes[0].get_lines()}["Pareto front"]
    np.testing.assert_array_equal(front.get_xdata(), [1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(front.get_ydata(), [5.0, 4.0, 1.0, 1.0])
    frame["cost"] = [1.0, 1.0, 0.0, 5.0, 5.0, 0.0]
    figure = plot_pareto_3d(frame, ["profit", "service", "cost"], maximize=[True, True, False])
    assert len(figure.axes) == 4 and figure.axes[0].name == "3d"
    with pytest.raises(ValueError, match="three objectives"):
        plot_pareto_3d(frame, ["profit", "service"])


def _objective_experiment(exp):
    """Three runs with two ``objective/`` metrics each, written by hand (no spec.yaml)."""
    for seed, (a, b) in enumerate([(1.0, 3.0), (2.0, 2.0), (0.5, 0.5)]):
        run = exp / f"E__ppo__{seed}"
        run.mkdir(parents=True)
        identity = {
            "kind": "agent",
            "seed": seed,
            "env": {"id": "opsrl/mo-Test-v0", "label": "E"},
            "agent": {"name": "ppo", "label": "ppo"},
        }
        (run / "config.yaml").write_text(yaml.safe_dump({"run": identity}))
        (run / "eval.json").write_text(json.dumps({"episodes": [{"episode_return": a + b}]}))
        rows = _final_rows("E", "ppo", "agent", [a + b])
        rows += [dict(rows[0], metric="objective/profit", value=a)]
        rows += [dict(rows[0], metric="objective/service", value=b)]
        frame = pd.DataFrame(rows)
        frame["run"] = run.name
        frame["seed"] = seed
        frame.to_csv(run / "results.csv", index=False)
    return exp


def test_pareto_section_for_runs_with_objective_metrics(tmp_path):
    exp = _objective_experiment(tmp_path / "mo")
    files = build_report(exp)
    markdown = files.markdown.read_text()
    assert "E__pareto.png" in markdown and "no spec.yaml" in markdown
    assert (exp / "report_files" / "E__pareto.png").is_file()


def test_cli_report_prints_where_and_rejects_a_non_experiment(tmp_path, capsys):
    exp = _objective_experiment(tmp_path / "mo")
    assert main(["report", str(exp), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "out" / "report.md") in out and "report.html" in out
    assert (tmp_path / "out" / "report_files").is_dir()
    assert not (exp / "report.md").exists()
    for path in (tmp_path / "nowhere", tmp_path / "out" / "report_files"):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("opsrl report: error:") and "\n" not in err


def test_family_of_env_ids():
    assert family_of("opsrl/JobShop-v0").name == "job shop"
    assert family_of("opsrl/mo-JobShop-v0").name == "job shop"
    assert family_of("opsrl/LotSizing-v0").name == "lot sizing"
    assert family_of("opsrl/ESGPortfolio-v0").name == "portfolio"
    assert family_of("opsrl/UAM-v0").name == "urban air mobility"
    assert family_of("opsrl/RideSharing-v0").name == "ride sharing"
    assert family_of("CartPole-v1") is None and family_of(None) is None


def test_format_number_keeps_four_significant_digits():
    assert format_number(-1745.882) == "-1,746"
    assert format_number(28.628) == "28.63"
    assert format_number(0.0012346) == "0.001235"
    assert format_number(0.0) == "0"
    assert format_number(float("nan")) == "-" and format_number(None) == "-"
