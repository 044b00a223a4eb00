"""Batched ESG portfolio env: step-for-step equality with the single env and the VecEnv API."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from opsrl.envs.esg_portfolio.data import MarketData
from opsrl.envs.esg_portfolio.env import ESGPortfolioEnv
from opsrl.envs.esg_portfolio.vec import STEP_KEYS, ESGPortfolioVecEnv

ENV_ID = "opsrl/ESGPortfolio-v0"
SMALL = dict(n_assets=6, n_days=120, lookback=20)


def crash_market() -> MarketData:
    """Two assets over 6 days; CRASH loses 99.99 % on day 4 (as in test_esg_portfolio)."""
    return MarketData(
        dates=np.arange("2021-01-04", "2021-01-10", dtype="datetime64[D]"),
        tickers=("CRASH", "SAFE"),
        close=np.array([[100.0, 100.0]] * 4 + [[0.01, 100.0]] * 2),
        indicators=np.zeros((6, 4, 2)),
        esg=np.full((6, 2), 50.0),
    )


def _registered_make(**kwargs):
    if ENV_ID not in gym.registry:  # registered by opsrl.envs; stay usable without it
        gym.register(id=ENV_ID, entry_point="opsrl.envs.esg_portfolio.env:ESGPortfolioEnv")
    return gym.make(ENV_ID, **kwargs)


def assert_batched_equals_single(
    kwargs, n_envs, seed, n_steps, draw_actions, via_gym_make=False, min_episodes=1
):
    """Step the batched env and a DummyVecEnv of single envs side by side and compare
    everything an SB3 learner sees, plus the day's values and the episode KPIs."""
    make = (
        (lambda: _registered_make(**kwargs)) if via_gym_make else lambda: ESGPortfolioEnv(**kwargs)
    )
    reference = DummyVecEnv([make for _ in range(n_envs)])
    reference.seed(seed)
    venv = ESGPortfolioVecEnv(n_envs, seed=seed, **kwargs)
    np.testing.assert_array_equal(venv.reset(), reference.reset())
    assert venv.reset_infos == reference.reset_infos
    rng = np.random.default_rng(seed)
    episodes = 0
    for _ in range(n_steps):
        actions = draw_actions(rng, n_envs, venv.n_assets)
        obs, rewards, dones, infos = venv.step(actions)
        ref_obs, ref_rewards, ref_dones, ref_infos = reference.step(actions)
        assert obs.dtype == np.float32 and rewards.dtype == np.float32
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(rewards, ref_rewards)
        np.testing.assert_array_equal(dones, ref_dones)
        for i in range(n_envs):
            for key in STEP_KEYS:
                np.testing.assert_array_equal(venv.last_step[key][i], ref_infos[i][key])
            if dones[i]:
                episodes += 1
                np.testing.assert_array_equal(
                    infos[i]["terminal_observation"], ref_infos[i]["terminal_observation"]
                )
                assert infos[i]["kpi"] == ref_infos[i]["kpi"]
                assert infos[i]["ruined"] == ref_infos[i]["ruined"]
                assert venv.reset_infos[i] == reference.reset_infos[i]
            else:
                assert infos[i] == {}
        # The vectorised KPIs agree with the single envs' episode-to-date KPIs too.
        kpi = venv.kpi()
        for i in range(n_envs):
            single = reference.envs[i].unwrapped._kpi()
            for key, value in single.items():
                assert kpi[key][i] == pytest.approx(value, rel=1e-12, abs=1e-15), key
        assert venv.get_attr("day") == reference.get_attr("day")
    assert episodes >= min_episodes
    return venv


def uniform_actions(rng, n_envs, n_assets):
    # beyond the box, so that clipping is exercised too
    return rng.uniform(-1.3, 1.3, (n_envs, n_assets)).astype(np.float32)


def sometimes_equal_weights(rng, n_envs, n_assets):
    """Mostly random, some copies at a = 0: the equal-weight portfolio sits on the ESG rule's
    boundary E_p = mean ESG (up to rounding), where the grant side's tolerance decides."""
    actions = uniform_actions(rng, n_envs, n_assets)
    actions[rng.random(n_envs) < 0.3] = 0.0
    return actions


@pytest.mark.parametrize(
    "kwargs, n_steps, draw, episodes",
    [
        (dict(episode_days=15, **SMALL), 50, uniform_actions, 9),
        (
            dict(
                market="esg_regulated",
                esg_in_state=True,
                esg_model="ar1",
                reward="value_change",
                transaction_cost=0.005,
                grant_rate=0.3,
                tax_rate=1e-3,
                **SMALL,
            ),
            120,
            sometimes_equal_weights,
            3,
        ),
        # random first days and the split's end: copies finish and restart at different steps
        (
            dict(random_start=True, market="esg_regulated", split="train", **SMALL),
            140,
            sometimes_equal_weights,
            6,
        ),
        (
            dict(
                random_start=True, episode_days=7, split="test", n_assets=6, n_days=120, lookback=5
            ),
            40,
            uniform_actions,
            15,
        ),
        # more assets than one BLAS block (16): the batched dot products still agree exactly
        (dict(n_assets=37, n_days=50, lookback=10, esg_in_state=True), 60, uniform_actions, 3),
    ],
    ids=[
        "standard",
        "regulated-esg-state-ar1-value-change",
        "random-start-train",
        "random-start-test-episode-days",
        "37-assets",
    ],
)
def test_batched_env_equals_single_envs_across_episodes(kwargs, n_steps, draw, episodes):
    assert_batched_equals_single(kwargs, 3, 100, n_steps, draw, min_episodes=episodes)


def test_batched_env_equals_gym_make_envs():
    kwargs = dict(market="esg_regulated", episode_days=10, **SMALL)
    assert_batched_equals_single(
        kwargs, 2, 7, 25, uniform_actions, via_gym_make=True, min_episodes=4
    )


def test_ruined_copies_restart_alone():
    steps = iter(range(1000))

    def all_in(rng, n_envs, n_assets):
        # Copy 0 alternates SAFE, CRASH: all in the crash from the other asset (turnover 2,
        # 10 % cost) ruins it on its second day, every episode. Copy 1 stays in SAFE (3-day
        # episodes), copy 2 picks at random.
        choice = np.array([next(steps) % 2 == 0, 1, rng.integers(2)], dtype=np.int64)
        actions = -np.ones((n_envs, n_assets), dtype=np.float32)
        actions[np.arange(n_envs), choice] = 1.0
        return actions

    kwargs = dict(data=crash_market(), lookback=2, transaction_cost=0.1)
    venv = assert_batched_equals_single(kwargs, 3, 0, 8, all_in, min_episodes=6)
    # after 8 days: copy 0 finished 4 ruined episodes, copy 1 two and is 2 days into a third
    assert venv.get_attr("episode_step", [0, 1]) == [0, 2]
    venv.reset()
    steps = iter(range(1000))
    venv.step(all_in(np.random.default_rng(0), 3, 2))
    _, rewards, dones, infos = venv.step(all_in(np.random.default_rng(0), 3, 2))
    assert dones[0] and infos[0]["ruined"] and infos[0]["kpi"]["portfolio_value"] == 0.0
    assert infos[0]["kpi"]["annual_return"] == -1.0 and infos[0]["kpi"]["max_drawdown"] == 1.0
    assert np.isfinite(rewards).all() and not dones[1]


def test_vec_env_api_attributes_methods_and_seeding():
    kwargs = dict(random_start=True, episode_days=8, **SMALL)
    venv = ESGPortfolioVecEnv(4, seed=3, **kwargs)
    obs = venv.reset()
    singles = [ESGPortfolioEnv(**kwargs) for _ in range(4)]
    for i, env in enumerate(singles):
        env.reset(seed=3 + i)
    assert venv.get_attr("day") == [env.day for env in singles]
    assert venv.get_attr("episode_end", [1, 2]) == [singles[1].episode_end, singles[2].episode_end]
    assert venv.get_attr("date", 0) == [singles[0].date]
    assert venv.get_attr("portfolio_value") == [1e6] * 4
    np.testing.assert_array_equal(venv.get_attr("holdings", 3)[0], singles[3].holdings)
    np.testing.assert_array_equal(venv.get_attr("esg_scores", 2)[0], singles[2].esg_scores)
    assert venv.get_attr("tickers", 0) == [singles[0].tickers]
    assert venv.get_attr("n_assets") == [6] * 4 and venv.get_attr("lookback", 1) == [20]
    histories = venv.env_method("return_history", 5)
    for history, env in zip(histories, singles, strict=True):
        np.testing.assert_array_equal(history, env.return_history(5))
    np.testing.assert_array_equal(
        venv.env_method("price_history", indices=[2])[0], singles[2].price_history()
    )
    np.testing.assert_array_equal(
        venv.get_attr("return_history", 1)[0](3), singles[1].return_history(3)
    )
    weights = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    actions = venv.env_method("weights_to_action", weights)
    np.testing.assert_array_equal(actions[0], singles[0].weights_to_action(weights))
    np.testing.assert_allclose(
        venv.env_method("action_to_weights", actions[0])[1], weights, rtol=1e-5
    )
    with pytest.raises(ValueError, match="daily returns exist"):
        venv.env_method("return_history", 10_000)
    with pytest.raises(ValueError, match="window"):
        venv.env_method("return_history", 0)
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    assert not venv.has_attr("action_masks")  # continuous actions: no masks
    with pytest.raises(AttributeError):
        venv.get_attr("no_such_attribute")
    with pytest.raises(AttributeError, match="supported: action_to_weights"):
        venv.env_method("action_masks")
    with pytest.raises(AttributeError, match="read-only"):
        venv.set_attr("day", 3)
    with pytest.raises(AttributeError, match="read-only"):
        venv.set_attr("lookback", 3)
    with pytest.raises(ValueError, match="reward_mode must be one of"):
        venv.set_attr("reward_mode", "value")
    with pytest.raises(ValueError, match="all copies"):
        venv.set_attr("reward_mode", "value_change", indices=[0])
    venv.set_attr("reward_mode", "value_change")
    assert venv.reward_mode == "value_change"

    # Seeds apply once; the generators go on; seed() re-seeds the next reset.
    assert not np.array_equal(venv.reset(), obs) or venv.get_attr("day") != [
        env.day for env in singles
    ]
    assert venv.seed(3) == [3, 4, 5, 6]
    np.testing.assert_array_equal(venv.reset(), obs)
    assert venv.get_attr("day") == [env.day for env in singles]

    with pytest.raises(ValueError, match=r"actions must have shape \(4, 6\)"):
        venv.step(np.zeros((4, 5)))
    bad = np.zeros((4, 6))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="copy 2 contains NaN"):
        venv.step(bad)


def test_step_before_reset_and_bad_arguments():
    venv = ESGPortfolioVecEnv(2, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 6)))
    for num_envs in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_envs"):
            ESGPortfolioVecEnv(num_envs, **SMALL)
    with pytest.raises(ValueError, match="seed"):
        ESGPortfolioVecEnv(2, seed=-1, **SMALL)
    with pytest.raises(ValueError, match="render_mode"):
        ESGPortfolioVecEnv(2, render_mode="ansi", **SMALL)
    # the single env's argument checks apply unchanged
    with pytest.raises(ValueError, match="market must be one of"):
        ESGPortfolioVecEnv(2, market="green", **SMALL)
    with pytest.raises(ValueError, match="episode_days"):
        ESGPortfolioVecEnv(2, episode_days=500, **SMALL)


def test_trains_with_ppo_under_vec_monitor():
    from stable_baselines3 import PPO

    venv = VecMonitor(ESGPortfolioVecEnv(8, seed=0, episode_days=10, **SMALL))
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(384)
    assert len(model.ep_info_buffer) > 0
    assert all(np.isfinite(info["r"]) for info in model.ep_info_buffer)


def test_experiment_runner_builds_it_for_vec_env_batched(monkeypatch):
    """With ``batched_entry_point`` in the env's EnvEntry, ``vec_env: batched`` (and ``auto``)
    give this env under VecMonitor, copy i seeded with seed + i."""
    import dataclasses

    from opsrl import registry
    from opsrl.experiment import make_vec_env
    from opsrl.spec import EnvSpec

    entry = registry.env_entry(ENV_ID)
    batched = dataclasses.replace(
        entry, batched_entry_point="opsrl.envs.esg_portfolio.vec:ESGPortfolioVecEnv"
    )
    monkeypatch.setattr(registry, "env_entry", lambda env_id: batched if env_id == ENV_ID else None)
    kwargs = dict(random_start=True, episode_days=5, **SMALL)
    for kind in ("batched", "auto"):
        venv = make_vec_env(EnvSpec(ENV_ID, kwargs), 3, 11, kind)
        assert isinstance(venv, VecMonitor) and isinstance(venv.venv, ESGPortfolioVecEnv)
        reference = DummyVecEnv([lambda: ESGPortfolioEnv(**kwargs) for _ in range(3)])
        reference.seed(11)
        np.testing.assert_array_equal(venv.reset(), reference.reset())
