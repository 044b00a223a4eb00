"""Experiment specs: errors name the key, shorthands expand, runs are the cross product."""

import pytest

from opsrl.spec import SpecError, expand, load_spec, parse_key_values, spec_from_dict


def _spec(**overrides):
    data = {"name": "t", "envs": ["CartPole-v1"], "agents": ["ppo"], "seeds": [0, 1]}
    data.update(overrides)
    return data


def test_shorthands_and_expansion():
    spec = spec_from_dict(_spec(baselines=["random"], envs=["CartPole-v1", "opsrl/LotSizing-v0"]))
    runs = expand(spec)
    assert len(runs) == 2 * 2 * 2
    assert runs[0].name == "CartPole-v1__ppo__0"
    assert {run.kind for run in runs} == {"agent", "baseline"}
    assert spec.envs[1].label == "LotSizing-v0"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"agentz": ["ppo"]}, "unknown key 'agentz'"),
        ({"timesteps": "1e5"}, "'timesteps' must be an integer"),
        ({"seeds": 3}, "'seeds' must be a list"),
        ({"eval": {"episodes": "many"}}, "'eval.episodes' must be an integer"),
        ({"eval": {"episode": 3}}, "unknown key 'eval.episode'"),
        ({"envs": ["opsrl/NoSuchEnv-v0"]}, "unknown env id 'opsrl/NoSuchEnv-v0'"),
        ({"agents": ["ppoo"]}, "unknown agent 'ppoo'; did you mean 'ppo'?"),
        ({"agents": [{"name": "ppo", "hyperparam": {}}]}, "unknown key 'agents[0].hyperparam'"),
        ({"vec_env": "threads"}, "'vec_env' must be one of"),
        ({"vectorization": "dummy", "vec_env": "dummy"}, "give one of 'vec_env' and"),
        ({"agents": ["ppo", "ppo"]}, "label 'ppo' is used twice"),
        ({"timesteps": 0}, "'timesteps' must be >= 1"),
        ({"envs": [{"kwargs": {}}]}, "missing required key 'envs[0].id'"),
    ],
)
def test_bad_specs_are_one_line_errors(overrides, message):
    with pytest.raises(SpecError) as error:
        spec_from_dict(_spec(**overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_deterministic_baselines_run_once():
    spec = spec_from_dict(_spec(envs=["opsrl/LotSizing-v0"], baselines=["random", "base_stock"]))
    names = [run.name for run in expand(spec)]
    assert "LotSizing-v0__random__1" in names
    assert [n for n in names if "base_stock" in n] == ["LotSizing-v0__base_stock__0"]


def test_baseline_restricted_to_its_env():
    with pytest.raises(SpecError, match="baseline 'pi_mip' does not apply to CartPole-v1"):
        spec_from_dict(_spec(baselines=["pi_mip"]))


def test_integral_float_timesteps_accepted():
    assert spec_from_dict(_spec(timesteps=1.0e5)).timesteps == 100000


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("envs: [CartPole-v1\nagents: ppo\n")
    with pytest.raises(SpecError, match=r"bad.yaml: invalid YAML at line \d"):
        load_spec(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(SpecError, match="mapping at the top level"):
        load_spec(scalar)
    good = tmp_path / "good.yaml"
    good.write_text("envs: [CartPole-v1]\nagents: [ppo]\n")
    assert load_spec(good).name == "good"


def test_key_values():
    parsed = parse_key_values(
        ["learning_rate:3e-4", "n_steps:128", "flag:true", "net:[64, 64]"], "-h"
    )
    assert parsed == {"learning_rate": 3e-4, "n_steps": 128, "flag": True, "net": [64, 64]}
    with pytest.raises(SpecError, match="key:value"):
        parse_key_values(["learning_rate=3"], "--hyperparams")


def test_eval_kwargs_override_for_evaluation():
    spec = spec_from_dict(
        _spec(
            envs=[
                {
                    "id": "opsrl/LotSizing-v0",
                    "kwargs": {"instance": "3x2", "horizon": 5},
                    "eval_kwargs": {"horizon": 7},
                }
            ]
        )
    )
    evaluation = spec.envs[0].for_evaluation()
    assert evaluation.kwargs == {"instance": "3x2", "horizon": 7}
    assert spec.envs[0].kwargs["horizon"] == 5


def test_vectorization_is_an_alias_of_vec_env():
    assert spec_from_dict(_spec(vectorization="subproc")).vec_env == "subproc"
