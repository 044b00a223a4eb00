"""Super Mario Bros. envs and the pixel preprocessing they share with the side-scroller.

- The preprocessing wrappers, usable on any env that emits RGB frames and takes an NES
  controller byte: :class:`JoypadActions` (a discrete list of button combinations),
  :class:`EpisodeKPI` (``info["kpi"]``: distance and flag), :class:`NoopStart` (random no-op
  frames after reset), :class:`MaxAndSkipFrames` (frame skip, max over the last two frames),
  :class:`GrayscaleResize` (luminance, area resize) and :class:`FrameStack` (channel-last);
  :func:`preprocess` chains them in the standard (Atari / Mario) order.
- :class:`PixelGameEnv`: a game behind that chain as one ``gymnasium.Env`` (so that the
  checkers, ``env.unwrapped`` and determinism tests see the preprocessed env).
- :class:`MarioEnv` (``opsrl/Mario-v0``, ``opsrl/Mario-<world>-<stage>-v0``): a Super Mario
  Bros. stage of gym-super-mario-bros 9.1.0 (NES emulator, ROM in that package) behind it.

gym-super-mario-bros is optional: without it, making a Mario env raises
:class:`MarioNotInstalledError` with the install command (:data:`MARIO_INSTALL_COMMAND`).
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "MARIO_INSTALL_COMMAND",
    "SIMPLE_MOVEMENT",
    "STAGES",
    "EpisodeKPI",
    "FrameStack",
    "GrayscaleResize",
    "JoypadActions",
    "MarioEnv",
    "MarioNotInstalledError",
    "MaxAndSkipFrames",
    "NoopStart",
    "PixelGameEnv",
    "mario_installed",
    "preprocess",
    "require_mario",
]

#: The install target of the Mario envs. gym-super-mario-bros 9.1.0 declares Python >= 3.13
#: but works on 3.11; nes-py then builds from source (about 15 s). Its wheel holds the ROMs.
MARIO_INSTALL_COMMAND = (
    "pip install --no-deps --ignore-requires-python gym-super-mario-bros==9.1.0 nes-py==9.0.1"
)

#: The 7 button combinations of gym-super-mario-bros' ``SIMPLE_MOVEMENT`` (same order).
SIMPLE_MOVEMENT: tuple[tuple[str, ...], ...] = (
    ("NOOP",),
    ("right",),
    ("right", "A"),
    ("right", "B"),
    ("right", "A", "B"),
    ("A",),
    ("left",),
)

#: Super Mario Bros.' 32 stages as (world, stage).
STAGES: tuple[tuple[int, int], ...] = tuple((w, s) for w in range(1, 9) for s in range(1, 5))

#: NES controller bits, as nes-py lays out its action byte.
_BUTTON_BITS = {
    "right": 0b1000_0000,
    "left": 0b0100_0000,
    "down": 0b0010_0000,
    "up": 0b0001_0000,
    "start": 0b0000_1000,
    "select": 0b0000_0100,
    "B": 0b0000_0010,
    "A": 0b0000_0001,
    "NOOP": 0,
}

#: ITU-R 601 luma weights (what OpenCV's and Gymnasium's grayscale conversions use).
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class MarioNotInstalledError(ImportError, ValueError):
    """gym-super-mario-bros (or nes-py) is missing. A ``ValueError`` too, so that the CLI and
    the experiment runner report it in one line like any other bad env argument."""


def mario_installed() -> bool:
    """Whether gym-super-mario-bros and nes-py import."""
    try:
        require_mario()
    except MarioNotInstalledError:
        return False
    return True


def require_mario() -> None:
    """Import gym-super-mario-bros and nes-py, or raise :class:`MarioNotInstalledError`."""
    for module in ("nes_py", "gym_super_mario_bros"):
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise MarioNotInstalledError(
                f"Super Mario Bros. envs need gym-super-mario-bros 9.1.0 and nes-py 9.0.1 "
                f"({module} is not installed); install them with: {MARIO_INSTALL_COMMAND}"
            ) from error


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------


def _int_at_least(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return int(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_render_mode(render_mode: str | None) -> str | None:
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
    return render_mode


def check_pipeline_args(
    frame_skip: Any, screen_size: Any, frame_stack: Any, noop_max: Any
) -> tuple[int, int, int, int]:
    """Validate the preprocessing arguments (``ValueError`` naming the bad one)."""
    return (
        _int_at_least("frame_skip", frame_skip, 1),
        _int_at_least("screen_size", screen_size, 8),
        _int_at_least("frame_stack", frame_stack, 1),
        _int_at_least("noop_max", noop_max, 0),
    )


# --------------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------------


def _discrete_index(action: Any, n: int) -> int:
    """``action`` as an index of ``Discrete(n)``; anything else is a ``ValueError``."""
    value = action
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"action must be an integer in [0, {n}), got {action!r}")
    if not 0 <= value < n:
        raise ValueError(f"action {int(value)} is outside Discrete({n})")
    return int(value)


class JoypadActions(gym.ActionWrapper):
    """``Discrete(len(actions))`` over button combinations, sent as an NES controller byte.

    Our own version of nes-py's ``JoypadSpace`` (whose ``reset(seed=...)`` failed before
    nes-py 9): an index outside the list is a ``ValueError``, never a silent no-op.
    """

    def __init__(self, env: gym.Env, actions: Sequence[Sequence[str]] = SIMPLE_MOVEMENT) -> None:
        super().__init__(env)
        if not actions:
            raise ValueError("actions must list at least one button combination")
        codes = []
        for buttons in actions:
            unknown = [b for b in buttons if b not in _BUTTON_BITS]
            if unknown:
                raise ValueError(
                    f"actions: unknown button {unknown[0]!r}; buttons are {sorted(_BUTTON_BITS)}"
                )
            code = 0
            for button in buttons:
                code |= _BUTTON_BITS[button]
            codes.append(code)
        self._codes = tuple(codes)
        self._meanings = tuple(" ".join(buttons) for buttons in actions)
        self.action_space = spaces.Discrete(len(codes))

    def action(self, action: Any) -> int:
        """The controller byte of action index ``action``."""
        return self._codes[_discrete_index(action, len(self._codes))]

    def get_action_meanings(self) -> list[str]:
        """The buttons of each action, e.g. ``"right A"``."""
        return list(self._meanings)


class EpisodeKPI(gym.Wrapper):
    """Adds ``info["kpi"]``: ``distance``, the largest ``info["x_pos"]`` of the episode so far,
    and ``flag_get``, whether the flag was reached (from the game's ``info``). Wrap the
    per-frame game so that frames skipped later still count."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._distance = 0
        self._flag_get = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._distance, self._flag_get = int(info["x_pos"]), bool(info.get("flag_get", False))
        return obs, self._with_kpi(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._distance = max(self._distance, int(info["x_pos"]))
        self._flag_get = self._flag_get or bool(info.get("flag_get", False))
        return obs, reward, terminated, truncated, self._with_kpi(info)

    def _with_kpi(self, info: dict[str, Any]) -> dict[str, Any]:
        info = dict(info)
        info["kpi"] = {"distance": self._distance, "flag_get": self._flag_get}
        return info


class NoopStart(gym.Wrapper):
    """After each reset, a random number (0 to ``noop_max``, from the reset seed) of no-op
    frames: a deterministic game then starts from seed-dependent states (Atari's no-op
    starts; Mario's enemies and clock move meanwhile)."""

    def __init__(self, env: gym.Env, noop_max: int = 30, noop_action: int = 0) -> None:
        super().__init__(env)
        self.noop_max = _int_at_least("noop_max", noop_max, 0)
        self.noop_action = noop_action

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        noops = int(self.np_random.integers(0, self.noop_max + 1)) if self.noop_max else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(self.noop_action)
            if terminated or truncated:  # a game that ends while idle: start it again
                obs, info = self.env.reset(options=options)
                break
        return obs, info


class MaxAndSkipFrames(gym.Wrapper):
    """Repeats each action for ``skip`` frames, sums their rewards and returns the
    element-wise maximum of the last two frames (NES sprites flicker between frames).

    Frames are copied: nes-py returns a view of its screen buffer that the next frame
    overwrites.
    """

    def __init__(self, env: gym.Env, skip: int = 4) -> None:
        super().__init__(env)
        self.skip = _int_at_least("skip", skip, 1)
        assert env.observation_space.shape is not None
        self._frames = np.zeros((2, *env.observation_space.shape), env.observation_space.dtype)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return np.array(obs, copy=True), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        total, kept = 0.0, 0
        terminated = truncated = False
        info: dict[str, Any] = {}
        for frame in range(self.skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            done = terminated or truncated
            # Only the last two frames are pooled; an episode that ends early keeps its end.
            if frame >= self.skip - 2 or done:
                np.copyto(self._frames[kept % 2], obs)
                kept += 1
            if done:
                break
        if kept >= 2:
            pooled = np.maximum(self._frames[0], self._frames[1])
        else:
            pooled = self._frames[0].copy()
        return pooled, total, bool(terminated), bool(truncated), info


def _area_weights(source: int, target: int) -> np.ndarray:
    """``(target, source)`` matrix averaging each output pixel's share of the input pixels."""
    edges = np.arange(target + 1, dtype=np.float64) * source / target
    pixels = np.arange(source, dtype=np.float64)
    overlap = np.clip(
        np.minimum(edges[1:, None], pixels[None, :] + 1) - np.maximum(edges[:-1, None], pixels),
        0.0,
        None,
    )
    return (overlap * target / source).astype(np.float32)


class GrayscaleResize(gym.ObservationWrapper):
    """RGB ``(H, W, 3)`` uint8 frames to ``(size, size)`` uint8 grayscale.

    Luma weights 0.299/0.587/0.114 and an area-average resize (what OpenCV's INTER_AREA
    computes), done as two small matrix products in numpy: no OpenCV dependency, the same
    pixels on every machine.
    """

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        shape = env.observation_space.shape
        if shape is None or len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"GrayscaleResize needs (H, W, 3) RGB frames, got shape {shape}")
        self.size = _int_at_least("size", size, 1)
        self._rows = _area_weights(shape[0], self.size)
        self._columns = _area_weights(shape[1], self.size).T.copy()
        self.observation_space = spaces.Box(0, 255, (self.size, self.size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """One frame, grayscale and resized."""
        height, width, _ = observation.shape
        gray = (observation.reshape(-1, 3).astype(np.float32) @ _LUMA).reshape(height, width)
        small = self._rows @ gray @ self._columns
        return np.clip(np.rint(small), 0, 255).astype(np.uint8)


class FrameStack(gym.Wrapper):
    """The last ``stack`` frames as channels, ``(H, W, stack)`` (SB3's CnnPolicy takes it as
    is, like its Atari pipeline's ``VecFrameStack``); reset fills the stack with the first
    frame."""

    def __init__(self, env: gym.Env, stack: int = 4) -> None:
        super().__init__(env)
        self.stack = _int_at_least("stack", stack, 1)
        shape = env.observation_space.shape
        if shape is None or len(shape) != 2:
            raise ValueError(f"FrameStack needs (H, W) frames, got shape {shape}")
        self._frames: deque[np.ndarray] = deque(maxlen=self.stack)
        self.observation_space = spaces.Box(0, 255, (*shape, self.stack), np.uint8)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        frame, info = self.env.reset(seed=seed, options=options)
        self._frames.extend([frame] * self.stack)
        return np.stack(self._frames, axis=-1), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        frame, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(frame)
        return np.stack(self._frames, axis=-1), reward, terminated, truncated, info


def preprocess(
    env: gym.Env,
    actions: Sequence[Sequence[str]] = SIMPLE_MOVEMENT,
    frame_skip: int = 4,
    screen_size: int = 84,
    frame_stack: int = 4,
    noop_max: int = 30,
) -> gym.Env:
    """The standard Mario pipeline around a game that emits ``(H, W, 3)`` RGB frames and
    takes an NES controller byte: joypad actions, KPIs, no-op starts, skip 4 with max
    pooling, grayscale 84 x 84, a stack of 4 (channel-last ``Box(0, 255, (84, 84, 4))``)."""
    frame_skip, screen_size, frame_stack, noop_max = check_pipeline_args(
        frame_skip, screen_size, frame_stack, noop_max
    )
    if tuple(actions[0]) != ("NOOP",):
        raise ValueError("actions[0] must be ('NOOP',): no-op starts press it")
    env = JoypadActions(env, actions)
    env = EpisodeKPI(env)
    env = NoopStart(env, noop_max)
    env = MaxAndSkipFrames(env, frame_skip)
    env = GrayscaleResize(env, screen_size)
    return FrameStack(env, frame_stack)


# --------------------------------------------------------------------------------------------
# One env around a preprocessed game
# --------------------------------------------------------------------------------------------


class PixelGameEnv(gym.Env[np.ndarray, np.int64]):
    """A game that emits RGB frames and takes an NES controller byte, behind
    :func:`preprocess`, as one ``gymnasium.Env``.

    Being an ``Env`` rather than a wrapper, its ``unwrapped`` is itself: Gymnasium's and
    SB3's checkers and the determinism tests see the preprocessed observations. Its random
    generator is seeded along with the game's; ``close()`` may be called twice.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        game: gym.Env,
        actions: Sequence[Sequence[str]] = SIMPLE_MOVEMENT,
        frame_skip: int = 4,
        screen_size: int = 84,
        frame_stack: int = 4,
        noop_max: int = 30,
        render_mode: str | None = None,
    ) -> None:
        self.render_mode = _check_render_mode(render_mode)
        self._game = game
        self._pipeline = preprocess(game, actions, frame_skip, screen_size, frame_stack, noop_max)
        self.observation_space = self._pipeline.observation_space
        self.action_space = self._pipeline.action_space
        self._closed = False

    @property
    def game(self) -> gym.Env:
        """The game under the preprocessing (raw frames and controller bytes)."""
        return self._game

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return self._pipeline.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._pipeline.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        """The last full-size RGB frame (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None:
            return None
        frame = self._game.render()
        return None if frame is None else np.array(frame, copy=True)

    def get_action_meanings(self) -> list[str]:
        """The buttons of each action, e.g. ``"right A"``."""
        return self._pipeline.get_wrapper_attr("get_action_meanings")()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pipeline.close()


# --------------------------------------------------------------------------------------------
# Super Mario Bros.
# --------------------------------------------------------------------------------------------


class MarioEnv(PixelGameEnv):
    """One stage of Super Mario Bros. (NES), with the standard preprocessing.

    ## Description

    The NES game, emulated by nes-py and set up by gym-super-mario-bros 9.1.0 (Gymnasium API)
    on a single stage (world 1-8, stage 1-4): Mario starts at the stage's beginning and runs
    right towards the flagpole. This is the setting of RAMario (Jain, arXiv 2305.09655) and of
    the SB3 / PyTorch Mario tutorials. Requires the optional install
    (:data:`MARIO_INSTALL_COMMAND`; the ROM ships in that package's wheel); without it the
    constructor raises :class:`MarioNotInstalledError` saying so.

    ## Action Space

    ``Discrete(7)``: gym-super-mario-bros' ``SIMPLE_MOVEMENT`` -- 0 NOOP, 1 right,
    2 right+A (jump), 3 right+B (run), 4 right+A+B, 5 A, 6 left. As on the NES, holding A
    does not jump again: A must be released (another action) first. An index outside
    ``[0, 7)`` is a ``ValueError``.

    ## Observation Space

    ``Box(0, 255, (84, 84, 4), uint8)``: the last four agent steps' frames, channel-last
    (what SB3's Atari pipeline gives ``CnnPolicy``). Each frame is the element-wise maximum of
    the last two of the ``frame_skip`` emulated 240 x 256 RGB frames, turned to luma
    grayscale and area-resized to 84 x 84 (numpy; see :class:`GrayscaleResize`).

    ## Rewards

    gym-super-mario-bros 9.1's reward summed over the skipped frames: per frame, the pixels
    of new maximal x (up to 5), minus the clock's ticks, score / 100, 5 per coin, +-5 per
    power-up change, +50 on reaching the flag and -25 on dying, clipped to [-15, 15] per
    frame by the package.

    ## Starting State

    The stage's start after the package's start-screen skip, then 0 to ``noop_max`` no-op
    frames drawn from the reset seed (the emulator itself is deterministic: without no-ops
    every episode of a deterministic policy would be the same).

    ## Episode End

    ``terminated`` on reaching the flag, and on losing a life (``terminate_on_life_loss=True``,
    the default, as the package's stage envs) or at game over (three lives;
    ``terminate_on_life_loss=False``: after a death the stage restarts from its start or
    checkpoint). Dying includes the clock running out (400 ticks, about 2,400 agent steps),
    so episodes are bounded without a time limit. Never ``truncated``.

    ## Info

    The package's info (``x_pos``, ``y_pos``, ``flag_get``, ``life``, ``time``, ``score``,
    ``coins``, ``world``, ``stage``, reward components, ...) of the last frame, and
    ``info["kpi"]``: ``distance``, the largest ``x_pos`` of the episode so far (RAMario's
    "distance"), and ``flag_get``.

    ## Arguments

    ```python
    gym.make("opsrl/Mario-1-2-v0")                    # a stage by id (32 ids), or
    gym.make("opsrl/Mario-v0", world=1, stage=2, terminate_on_life_loss=True,
             frame_skip=4, screen_size=84, frame_stack=4, noop_max=30, render_mode=None)
    ```

    - ``world`` (1-8), ``stage`` (1-4): the stage (``opsrl/Mario-v0`` only; the per-stage ids
      fix them).
    - ``terminate_on_life_loss``: end the episode when Mario loses a life.
    - ``frame_skip``, ``screen_size``, ``frame_stack``, ``noop_max``: the preprocessing.
    - ``render_mode``: ``"rgb_array"`` makes ``render()`` return the last 240 x 256 RGB frame.

    ## Version History

    - v0: initial version (gym-super-mario-bros 9.1.0, nes-py 9.0.1).
    """

    def __init__(
        self,
        world: int = 1,
        stage: int = 1,
        terminate_on_life_loss: bool = True,
        frame_skip: int = 4,
        screen_size: int = 84,
        frame_stack: int = 4,
        noop_max: int = 30,
        render_mode: str | None = None,
    ) -> None:
        world = _int_at_least("world", world, 1)
        stage = _int_at_least("stage", stage, 1)
        if world > 8:
            raise ValueError(f"world must be between 1 and 8, got {world}")
        if stage > 4:
            raise ValueError(f"stage must be between 1 and 4, got {stage}")
        terminate_on_life_loss = _flag("terminate_on_life_loss", terminate_on_life_loss)
        check_pipeline_args(frame_skip, screen_size, frame_stack, noop_max)
        _check_render_mode(render_mode)
        require_mario()
        from opsrl.envs.mario._nes import MarioStageGame

        self.world, self.stage = world, stage
        self.terminate_on_life_loss = terminate_on_life_loss
        game = MarioStageGame(world, stage, terminate_on_life_loss, render_mode=render_mode)
        super().__init__(
            game, SIMPLE_MOVEMENT, frame_skip, screen_size, frame_stack, noop_max, render_mode
        )


def _stage_entry_point(world: int, stage: int) -> Callable[..., MarioEnv]:
    env_id = f"opsrl/Mario-{world}-{stage}-v0"

    def make_stage(**kwargs: Any) -> MarioEnv:
        for fixed in ("world", "stage"):
            if fixed in kwargs:
                raise ValueError(
                    f"{fixed} is fixed by the id {env_id}; use opsrl/Mario-v0 to choose it"
                )
        return MarioEnv(world=world, stage=stage, **kwargs)

    make_stage.__name__ = make_stage.__qualname__ = f"mario_{world}_{stage}"
    make_stage.__doc__ = f"``{env_id}``: :class:`MarioEnv` on world {world}, stage {stage}."
    return make_stage


# The entry points of the per-stage ids (``opsrl.envs.mario.env:mario_1_1`` ...): the env
# table names an entry point per id and has no per-id kwargs.
for _world, _stage in STAGES:
    globals()[f"mario_{_world}_{_stage}"] = _stage_entry_point(_world, _stage)
del _world, _stage
