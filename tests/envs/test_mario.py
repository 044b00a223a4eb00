"""Super Mario Bros. envs (gym-super-mario-bros 9.1.0 on nes-py): the missing-package error,
and, where the package is installed, env contracts, the life-loss option, KPIs and the
per-stage ids. Without the package the emulator tests skip with the install command."""

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.mario import (
    MARIO_INSTALL_COMMAND,
    STAGES,
    MarioEnv,
    MarioNotInstalledError,
    mario_installed,
)
from opsrl.registry import env_ids

MARIO_REASON = f"gym-super-mario-bros is not installed ({MARIO_INSTALL_COMMAND})"
RIGHT, RIGHT_B = 1, 3


def require_emulator():
    """Skip (importorskip-style) when gym-super-mario-bros or nes-py does not import."""
    if not mario_installed():
        pytest.skip(MARIO_REASON)


def test_every_stage_has_an_id():
    ids = set(env_ids())
    assert "opsrl/Mario-v0" in ids
    assert {f"opsrl/Mario-{w}-{s}-v0" for w, s in STAGES} <= ids
    assert len(STAGES) == 32


@pytest.mark.parametrize("missing", ["gym_super_mario_bros", "nes_py"])
def test_without_the_package_making_an_id_says_how_to_install(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    assert not mario_installed()
    with pytest.raises(MarioNotInstalledError) as raised:
        gym.make("opsrl/Mario-1-1-v0")
    message = str(raised.value)
    assert MARIO_INSTALL_COMMAND in message and missing in message
    assert "\n" not in message
    # a ValueError too: the runner and the CLI print it as a one-line user error
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(world=9), "world"),
        (dict(stage=0), "stage"),
        (dict(terminate_on_life_loss="yes"), "terminate_on_life_loss"),
        (dict(frame_skip=0), "frame_skip"),
    ],
)
def test_bad_arguments_are_value_errors_before_the_emulator_starts(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MarioEnv(**kwargs)


def test_a_stage_id_fixes_world_and_stage():
    with pytest.raises(ValueError, match="world is fixed by the id opsrl/Mario-1-2-v0"):
        gym.make("opsrl/Mario-1-2-v0", world=2)


def test_env_checkers_pass_without_warnings():
    require_emulator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("opsrl/Mario-1-1-v0")
        gym_check_env(env.unwrapped)  # render modes too (through the spec)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()
        env.close()


def test_interface_kpis_and_stage():
    require_emulator()
    env = gym.make("opsrl/Mario-1-2-v0", render_mode="rgb_array")
    assert (env.unwrapped.world, env.unwrapped.stage) == (1, 2)
    assert env.observation_space == spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert env.action_space == spaces.Discrete(7)
    assert env.unwrapped.get_action_meanings()[4] == "right A B"
    obs, info = env.reset(seed=0)
    assert (info["world"], info["stage"]) == (1, 2)
    assert info["kpi"] == {"distance": info["x_pos"], "flag_get": False}
    assert env.render().shape == (240, 256, 3)
    positions = []
    for _ in range(40):
        obs, _, terminated, _, info = env.step(RIGHT_B)
        positions.append(info["x_pos"])
        if terminated:
            break
    assert info["kpi"]["distance"] == max(positions) > positions[0]
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step(7)
    env.close()


def _rollout(seed, steps=40):
    env = gym.make("opsrl/Mario-1-1-v0")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(7)))
        trace += [obs, reward]
        if terminated or truncated:
            trace.append(env.reset()[0])
    env.close()
    return trace


def test_same_seed_same_episode():
    require_emulator()
    first, second = _rollout(3), _rollout(3)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def _until_life_lost(env, max_steps=600):
    """Run right (into 1-1's first Goomba) until a life is lost or the episode ends."""
    _, info = env.reset(seed=0)
    lives = info["life"]
    for step in range(max_steps):
        _, reward, terminated, truncated, info = env.step(RIGHT)
        if terminated or info["life"] < lives:
            return step, terminated, info
    raise AssertionError("Mario did not lose a life")


def test_terminate_on_life_loss_is_an_option():
    require_emulator()
    env = gym.make("opsrl/Mario-1-1-v0", noop_max=0)
    _, terminated, info = _until_life_lost(env)
    assert terminated and not info["kpi"]["flag_get"]
    env.close()
    env = gym.make("opsrl/Mario-1-1-v0", noop_max=0, terminate_on_life_loss=False)
    _, terminated, info = _until_life_lost(env)
    assert not terminated  # the stage restarts with one life less
    distance = info["kpi"]["distance"]
    _, _, terminated, _, info = env.step(RIGHT)
    assert not terminated and info["x_pos"] < distance  # back at the start
    assert info["kpi"]["distance"] == distance
    env.close()


def test_sb3_cnn_policy_trains_on_it():
    require_emulator()
    from stable_baselines3 import PPO

    env = gym.make("opsrl/Mario-1-1-v0")
    model = PPO("CnnPolicy", env, n_steps=16, batch_size=16, n_epochs=1, device="cpu", seed=0)
    model.learn(32)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(int(action))
    env.close()
