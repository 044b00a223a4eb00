"""The ROM-free side-scroller and the pixel pipeline it shares with Mario: level generation,
physics and rules, the preprocessing wrappers, env contracts, and that PPO learns on it."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from opsrl.envs.mario import (
    SIMPLE_MOVEMENT,
    FrameStack,
    GrayscaleResize,
    MaxAndSkipFrames,
    NoopStart,
    SideScrollerEnv,
    SideScrollerScreenEnv,
    SideScrollerSim,
)
from opsrl.envs.mario.sim import (
    BUTTONS,
    COMPLETION_REWARD,
    DEATH_PENALTY,
    GROUND_ROW,
    PIPE,
    START_X,
    TILE,
    LevelLayout,
    max_jump_height,
)

ENV_ID = "opsrl/SideScroller-v0"
FLAT = dict(length=32, gaps=0, pipes=0, platforms=0, enemies=0)
RIGHT, RIGHT_A, RIGHT_B, NOOP, LEFT = 1, 2, 3, 0, 6


def play(env, actions, seed=0):
    """Reset, then play ``actions`` (cycled) until the episode ends; the last step's data."""
    env.reset(seed=seed)
    total, step = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(actions[step % len(actions)])
        total, step = total + reward, step + 1
        if terminated or truncated:
            return total, info, step


def run_lengths(mask):
    """Lengths of the runs of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


# -- levels -------------------------------------------------------------------------------


def test_levels_are_seeded_and_hold_the_requested_features():
    env = SideScrollerScreenEnv(level=3, length=80, gaps=2, pipes=3, platforms=1, enemies=4)
    again = SideScrollerScreenEnv(level=3, length=80, gaps=2, pipes=3, platforms=1, enemies=4)
    other = SideScrollerScreenEnv(level=4, length=80, gaps=2, pipes=3, platforms=1, enemies=4)
    layout = env.layout
    np.testing.assert_array_equal(layout.tiles, again.layout.tiles)
    assert layout.enemy_columns == again.layout.enemy_columns
    assert not np.array_equal(layout.tiles, other.layout.tiles)
    ground = layout.tiles[GROUND_ROW]
    gaps = run_lengths(ground == 0)
    assert len(gaps) == 2 and all(2 <= width <= 3 for width in gaps)
    pipes = run_lengths((layout.tiles == PIPE).any(axis=0))
    assert len(pipes) == 3 and all(width == 2 for width in pipes)
    # flat start and end, flagpole near the end, enemies on solid ground
    assert ground[:8].all() and ground[-8:].all()
    assert layout.flag_column == 80 - 5
    assert len(layout.enemy_columns) == 4
    assert all(ground[column] for column in layout.enemy_columns)
    # every pipe can be jumped over
    pipe_height = (layout.tiles == PIPE).sum(axis=0).max()
    assert pipe_height * TILE < max_jump_height()


def test_whether_a_level_fits_does_not_depend_on_its_seed():
    # 4 gaps of up to 3 tiles, each with 3 tiles of spacing, fill the 24 middle columns
    for level in range(20):
        layout = SideScrollerScreenEnv(level=level, length=40, gaps=4, pipes=0, enemies=0).layout
        assert len(run_lengths(layout.tiles[GROUND_ROW] == 0)) == 4
    with pytest.raises(ValueError, match="length 39 is too short"):
        SideScrollerScreenEnv(level=None, length=39, gaps=4, pipes=0, enemies=0)


def test_level_none_draws_a_level_per_episode_from_the_seed():
    env = SideScrollerScreenEnv(level=None, length=64)
    env.reset(seed=1)
    first = env.layout.tiles.copy()
    env.reset(seed=1)
    np.testing.assert_array_equal(first, env.layout.tiles)
    env.reset(seed=2)
    assert not np.array_equal(first, env.layout.tiles)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(length=10), "length"),
        (dict(length=24.5), "length"),
        (dict(level=-1), "level"),
        (dict(gaps=-1), "gaps"),
        (dict(length=30, gaps=5), "length 30 is too short"),
        (dict(length=30, enemies=50), "enemies"),
        (dict(time_limit=0), "time_limit"),
        (dict(frame_skip=0), "frame_skip"),
        (dict(frame_stack=0), "frame_stack"),
        (dict(noop_max=-1), "noop_max"),
        (dict(render_mode="human"), "render_mode"),
    ],
)
def test_bad_arguments_are_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SideScrollerEnv(**kwargs)


# -- physics and rules ----------------------------------------------------------------------


def test_running_right_on_a_flat_level_reaches_the_flag():
    env = SideScrollerEnv(**FLAT, noop_max=0)
    total, info, steps = play(env, [RIGHT_B])
    layout = env.layout
    assert info["flag_get"] and info["kpi"]["flag_get"]
    assert info["kpi"]["distance"] >= layout.flag_x - 12
    assert info["reward_components"]["completion"] == COMPLETION_REWARD
    # the return is the progress, the clock and the flag (no death)
    ticks = env.game._sim.frame // 24  # the last step may end within its 4 frames
    assert steps * 4 - 3 <= env.game._sim.frame <= steps * 4
    progress = env.game._sim.max_x - START_X
    assert total == pytest.approx(progress - ticks + COMPLETION_REWARD)


def test_walking_into_a_gap_is_death_and_jumping_clears_it():
    env = SideScrollerEnv(length=32, gaps=1, pipes=0, platforms=0, enemies=0, noop_max=0)
    gap_start = env.layout.gap_columns()[0] * TILE
    _, info, _ = play(env, [RIGHT])
    assert not info["flag_get"]
    assert info["reward_components"]["death"] == DEATH_PENALTY
    assert info["kpi"]["distance"] < gap_start + 3 * TILE
    # Walk to just before the gap, then one long jump with run held.
    env.reset(seed=0)
    sim = env.game._sim
    while sim.player.x + sim.player.width < gap_start - 4:
        env.step(RIGHT_B)
    _, _, terminated, _, info = env.step(4)
    for _ in range(6):
        _, _, terminated, _, info = env.step(4)
    assert not terminated
    assert info["x_pos"] > gap_start + 2 * TILE


def test_a_pipe_blocks_and_a_jump_clears_it():
    env = SideScrollerEnv(length=32, gaps=0, pipes=1, platforms=0, enemies=0, noop_max=0)
    pipe_x = np.flatnonzero((env.layout.tiles == PIPE).any(axis=0))[0] * TILE
    env.reset(seed=0)
    for _ in range(80):
        _, _, terminated, _, info = env.step(RIGHT)
    assert not terminated
    assert info["x_pos"] + 12 <= pipe_x  # stopped at the pipe's wall
    _, info, _ = play(env, [4, 4, 4, 4, 3, 3])  # hop: hold A and run, release, repeat
    assert info["flag_get"]


def _sim_on_flat(enemy_columns, length=32):
    tiles = np.zeros((15, length), dtype=np.uint8)
    tiles[GROUND_ROW:] = 1
    layout = LevelLayout(tiles=tiles, enemy_columns=tuple(enemy_columns), flag_column=length - 5)
    return SideScrollerSim(layout, time_limit=100)


def test_running_into_an_enemy_kills_and_landing_on_it_stomps_it():
    sim = _sim_on_flat([6])
    for _ in range(200):
        outcome = sim.step(BUTTONS["right"])
        if outcome.dead:
            break
    assert outcome.dead and outcome.death == DEATH_PENALTY
    sim = _sim_on_flat([6])
    enemy = sim.enemies[0]
    # put the player just above the enemy, falling
    sim.player.x, sim.player.y, sim.player.vy = enemy.x, enemy.y - sim.player.height - 2, 3.0
    outcome = sim.step(0)
    assert not outcome.dead
    assert sim.enemies == [] and sim.stomps == 1 and outcome.stomp == 1.0
    assert sim.player.vy < 0  # bounced


def test_the_clock_running_out_is_death():
    env = SideScrollerEnv(**FLAT, time_limit=2, noop_max=0)
    _, info, steps = play(env, [NOOP])
    assert info["reward_components"]["death"] == DEATH_PENALTY
    assert info["time"] == 0
    assert steps == 2 * 24 // 4


def test_the_camera_only_scrolls_right_and_distance_is_the_maximum():
    env = SideScrollerEnv(**FLAT, noop_max=0)
    env.reset(seed=0)
    sim = env.game._sim
    cameras, positions = [], []
    for action in [RIGHT_B] * 30 + [LEFT] * 40:
        _, _, _, _, info = env.step(action)
        cameras.append(sim.camera_x)
        positions.append(info["x_pos"])
    assert cameras[-1] > 0 and all(np.diff(cameras) >= 0)
    assert info["x_pos"] == sim.camera_x  # pinned at the screen's left edge
    assert info["x_pos"] < max(positions)
    assert info["kpi"]["distance"] == max(positions)


# -- env contracts --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda: gym.make(ENV_ID), lambda: SideScrollerScreenEnv()])
def test_env_checkers_pass_without_warnings(make):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = make()
        gym_check_env(env.unwrapped, skip_render_check=env.unwrapped.spec is None)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()
        env.close()  # twice is allowed


def test_mario_interface_and_render():
    env = gym.make(ENV_ID, render_mode="rgb_array")
    assert env.observation_space == spaces.Box(0, 255, (84, 84, 4), np.uint8)
    assert env.action_space == spaces.Discrete(7)
    assert env.unwrapped.get_action_meanings() == [" ".join(a) for a in SIMPLE_MOVEMENT]
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (84, 84, 4)
    assert info["kpi"] == {"distance": 40, "flag_get": False}
    frame = env.render()
    assert frame.shape == (240, 256, 3) and frame.dtype == np.uint8
    for bad in (7, -1, 1.5, "right"):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    # numpy scalars and one-element arrays (what SB3 passes) are fine
    env.step(np.int64(3))
    env.step(np.array([3]))


def _rollout(seed, **kwargs):
    env = SideScrollerEnv(**kwargs)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(80):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(7)))
        trace += [obs, reward]
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(obs)
    return trace


def test_same_seed_same_episode_and_noop_starts_depend_on_the_seed():
    first, second = _rollout(5), _rollout(5)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # Same actions, other reset seed: only the no-op starts (enemies moved) differ.
    env = SideScrollerEnv(length=48, enemies=3, noop_max=30)
    starts = {env.reset(seed=seed)[0].tobytes() for seed in range(6)}
    assert len(starts) > 1
    env = SideScrollerEnv(length=48, enemies=3, noop_max=0)
    assert len({env.reset(seed=seed)[0].tobytes() for seed in range(6)}) == 1


# -- wrappers -------------------------------------------------------------------------------


class FrameCounter(gym.Env):
    """Frame k is a constant image of value k (and a bright pixel on odd frames); reward k."""

    metadata = {"render_modes": []}

    def __init__(self, shape=(8, 6, 3), end_at=None):
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(3)
        self.end_at, self.frame, self.actions = end_at, 0, []

    def _obs(self):
        obs = np.full(self.observation_space.shape, self.frame, dtype=np.uint8)
        if self.frame % 2:
            obs[0, 0] = 255
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.frame, self.actions = 0, []
        return self._obs(), {"x_pos": 0}

    def step(self, action):
        self.frame += 1
        self.actions.append(action)
        terminated = self.end_at is not None and self.frame >= self.end_at
        return self._obs(), float(self.frame), terminated, False, {"x_pos": self.frame}


def test_max_and_skip_repeats_sums_and_pools_the_last_two_frames():
    env = MaxAndSkipFrames(FrameCounter(), skip=4)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(2)
    assert env.unwrapped.actions == [2, 2, 2, 2]
    assert reward == 1 + 2 + 3 + 4
    assert obs[1, 1, 0] == 4 and obs[0, 0, 0] == 255  # frame 4 and frame 3's bright pixel
    assert info["x_pos"] == 4 and not terminated
    env = MaxAndSkipFrames(FrameCounter(end_at=6), skip=4)
    env.reset(seed=0)
    env.step(0)
    obs, reward, terminated, _, _ = env.step(0)
    assert terminated and reward == 5 + 6  # stops at the end
    assert obs[1, 1, 0] == 6


def test_grayscale_resize_uses_luma_and_area_averages():
    env = GrayscaleResize(FrameCounter(shape=(4, 6, 3)), size=2)
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    frame[..., 0] = 100  # pure red
    np.testing.assert_array_equal(env.observation(frame), np.full((2, 2), round(0.299 * 100)))
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    frame[:2, :3] = 255  # the top-left 2 x 3 block is white
    np.testing.assert_array_equal(env.observation(frame), [[255, 0], [0, 0]])
    # a non-integer factor averages by area: 3 columns into 2, the middle one split
    env = GrayscaleResize(FrameCounter(shape=(2, 3, 3)), size=2)
    frame = np.zeros((2, 3, 3), dtype=np.uint8)
    frame[:, 1] = 200
    np.testing.assert_array_equal(env.observation(frame), np.full((2, 2), 67))
    assert env.observation_space == spaces.Box(0, 255, (2, 2), np.uint8)


def test_frame_stack_is_channel_last_oldest_first():
    env = FrameStack(GrayscaleResize(FrameCounter(shape=(4, 4, 3)), size=4), stack=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 4, 3) and (obs == 0).all()
    for _ in range(2):
        obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs[1, 1], [0, 1, 2])
    first = obs
    obs, *_ = env.step(0)
    np.testing.assert_array_equal(obs[1, 1], [1, 2, 3])
    np.testing.assert_array_equal(first[1, 1], [0, 1, 2])  # returned arrays are never reused


def test_noop_start_presses_noop_a_seeded_number_of_times():
    counts = []
    for seed in (0, 0, 1, 2, 3):
        env = NoopStart(FrameCounter(), noop_max=30)
        env.reset(seed=seed)
        assert set(env.unwrapped.actions) <= {0}
        counts.append(len(env.unwrapped.actions))
    assert counts[0] == counts[1]
    assert len(set(counts)) > 1 and max(counts) <= 30


def test_a_game_that_ends_during_no_ops_is_started_again():
    env = NoopStart(FrameCounter(end_at=1), noop_max=30)
    seed = next(s for s in range(50) if np.random.default_rng(s).integers(0, 31) > 0)
    obs, info = env.reset(seed=seed)
    assert info["x_pos"] == 0


# -- learning -------------------------------------------------------------------------------


def test_ppo_learns_to_reach_the_flag_in_time_and_beats_random():
    """A tiny flat level with a short clock: the flag is 25 tiles away and the clock runs out
    after 72 agent steps. Running right reaches it in about 45; a random policy (its drift to
    the right is a third of that speed) never does."""
    from stable_baselines3 import PPO

    from opsrl.baselines import RandomPolicy
    from opsrl.evaluation import evaluate_policy_on_seeds
    from opsrl.experiment import make_vec_env
    from opsrl.spec import EnvSpec

    # screen_size 42: the same pipeline at a ninth of the CNN's cost
    kwargs = dict(FLAT, time_limit=12, screen_size=42)
    venv = make_vec_env(EnvSpec(ENV_ID, kwargs), n_envs=8, seed=0, vec_env="dummy")
    model = PPO(
        "CnnPolicy",
        venv,
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        learning_rate=5e-4,
        gamma=0.95,
        seed=0,
        device="cpu",
    )
    model.learn(2048)
    env = gym.make(ENV_ID, **kwargs)
    seeds = list(range(100, 110))
    learned = evaluate_policy_on_seeds(model, env, seeds, deterministic=True)
    random = evaluate_policy_on_seeds(RandomPolicy(env, 0), env, seeds)
    assert np.mean([e.kpi["flag_get"] for e in learned]) >= 0.9
    assert np.mean([e.kpi["flag_get"] for e in random]) <= 0.2
    learned_return = np.mean([e.episode_return for e in learned])
    random_return = np.mean([e.episode_return for e in random])
    assert learned_return > random_return + 100, (learned_return, random_return)
    venv.close()
