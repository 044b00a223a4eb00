"""Gymnasium face of the ROM-free side-scroller (:mod:`opsrl.envs.mario.sim`).

- :class:`SideScrollerScreenEnv`: the game as the NES emulator presents Super Mario Bros.:
  240 x 256 RGB frames, one per 60 Hz frame, and NES controller-byte actions;
- :class:`SideScrollerEnv` (``opsrl/SideScroller-v0``): that game behind exactly Mario's
  preprocessing (:func:`opsrl.envs.mario.env.preprocess`), so it has Mario's observation and
  action interface and exercises the same pixel pipeline, at numpy speed and without a ROM.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opsrl.envs.mario.env import (
    SIMPLE_MOVEMENT,
    PixelGameEnv,
    _check_render_mode,
    _discrete_index,
    _int_at_least,
    check_pipeline_args,
)
from opsrl.envs.mario.sim import (
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    LevelLayout,
    SideScrollerSim,
    generate_level,
)

__all__ = ["SideScrollerEnv", "SideScrollerScreenEnv", "level_counts"]

#: levels are drawn from their own stream, apart from the episode seeds
_LEVEL_STREAM = 0x5CA1E
MIN_LENGTH = 24


def level_counts(
    length: int,
    gaps: int | None = None,
    pipes: int | None = None,
    platforms: int | None = None,
    enemies: int | None = None,
) -> dict[str, int]:
    """Feature counts of a level, defaults filled in: per ``length - 16`` middle columns,
    a gap and a pipe every 20, a platform every 40 and an enemy every 12 (these always fit)."""
    middle = length - 16
    chosen = {"gaps": gaps, "pipes": pipes, "platforms": platforms, "enemies": enemies}
    defaults = {
        "gaps": middle // 20,
        "pipes": middle // 20,
        "platforms": middle // 40,
        "enemies": middle // 12,
    }
    return {
        name: defaults[name] if value is None else _int_at_least(name, value, 0)
        for name, value in chosen.items()
    }


class SideScrollerScreenEnv(gym.Env[np.ndarray, int]):
    """The side-scroller, one 60 Hz frame per step, as nes-py presents an NES game.

    Observations are ``Box(0, 255, (240, 256, 3), uint8)`` RGB screens; actions are NES
    controller bytes, ``Discrete(256)`` (bit 7 right, 6 left, 1 B, 0 A; the others do
    nothing here). Rewards, episode end and arguments as :class:`SideScrollerEnv`, per frame;
    ``info`` holds ``x_pos``, ``y_pos``, ``flag_get``, ``time`` (clock ticks left),
    ``stomps``, ``level`` and the reward components.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 60}

    def __init__(
        self,
        level: int | None = 0,
        length: int = 64,
        gaps: int | None = None,
        pipes: int | None = None,
        platforms: int | None = None,
        enemies: int | None = None,
        time_limit: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if level is not None:
            level = _int_at_least("level", level, 0)
        self.level = level
        self.length = _int_at_least("length", length, MIN_LENGTH)
        self.counts = level_counts(self.length, gaps, pipes, platforms, enemies)
        self.time_limit = (
            2 * self.length if time_limit is None else _int_at_least("time_limit", time_limit, 1)
        )
        self.render_mode = _check_render_mode(render_mode)
        self.observation_space = spaces.Box(0, 255, (SCREEN_HEIGHT, SCREEN_WIDTH, 3), np.uint8)
        self.action_space = spaces.Discrete(256)
        # A fixed level is drawn once (and a bad count fails here, at construction).
        self._fixed_layout = self._draw_level(level) if level is not None else None
        if level is None:
            self._draw_level(0)  # only to check that the counts fit
        self._sim: SideScrollerSim | None = None
        self._frame: np.ndarray | None = None

    def _draw_level(self, level_seed: int | np.integer) -> LevelLayout:
        rng = np.random.default_rng([_LEVEL_STREAM, int(level_seed)])
        return generate_level(rng, self.length, **self.counts)

    @property
    def layout(self) -> LevelLayout:
        """The level being played (after the first reset for ``level=None``)."""
        if self._sim is None:
            if self._fixed_layout is None:
                raise RuntimeError("call reset() first: level=None draws a level per episode")
            return self._fixed_layout
        return self._sim.layout

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self._fixed_layout is not None:
            if self._sim is None:
                self._sim = SideScrollerSim(self._fixed_layout, self.time_limit)
            self._sim.reset()
        else:
            # A new level per episode, drawn from the episode's seed.
            layout = self._draw_level(self.np_random.integers(2**31))
            self._sim = SideScrollerSim(layout, self.time_limit)
        self._frame = self._sim.render()
        return self._frame.copy(), self._info({})

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        if self._sim.done:
            raise RuntimeError("the episode has ended; call reset() before step()")
        buttons = _discrete_index(action, 256)
        outcome = self._sim.step(buttons)
        self._frame = self._sim.render(self._frame)
        components = {
            "progress": outcome.progress,
            "time": outcome.time,
            "stomp": outcome.stomp,
            "death": outcome.death,
            "completion": outcome.completion,
        }
        terminated = outcome.dead or outcome.flag_get
        return self._frame.copy(), float(outcome.reward), terminated, False, self._info(components)

    def _info(self, components: dict[str, float]) -> dict[str, Any]:
        assert self._sim is not None
        player = self._sim.player
        return {
            "x_pos": int(player.x),
            "y_pos": int(SCREEN_HEIGHT - player.y - player.height),
            "flag_get": self._sim.flag_get,
            "time": self._sim.time_left,
            "stomps": self._sim.stomps,
            "level": -1 if self.level is None else self.level,
            "reward_components": components,
        }

    def render(self) -> np.ndarray | None:
        """The current screen (``render_mode="rgb_array"``), else None."""
        if self.render_mode is None or self._frame is None:
            return None
        return self._frame.copy()


class SideScrollerEnv(PixelGameEnv):
    """A ROM-free side-scrolling platformer with Super Mario Bros.' interface.

    ## Description

    A procedurally generated level of 16-pixel tiles (15 rows, ``length`` columns): ground
    with gaps, pipes, brick platforms and walking enemies, a flat start and a flagpole near
    the end. The player runs right, jumps over gaps and pipes, stomps or avoids enemies and
    reaches the flag. Physics and rules follow Super Mario Bros. (see
    :mod:`opsrl.envs.mario.sim`); the screen is rendered as 240 x 256 RGB frames like the NES
    and goes through exactly Mario's preprocessing, so agents, configs and the pixel
    pipeline can be tested in seconds without a ROM, and ``level`` gives meta-learning
    (Reptile) as many tasks as wanted.

    ## Action Space

    ``Discrete(7)``, Mario's ``SIMPLE_MOVEMENT``: 0 NOOP, 1 right, 2 right+A (jump),
    3 right+B (run), 4 right+A+B, 5 A, 6 left. Holding A makes a jump higher; A must be
    released (another action) to jump again. An index outside ``[0, 7)`` is a ``ValueError``.

    ## Observation Space

    ``Box(0, 255, (84, 84, 4), uint8)``: four stacked 84 x 84 grayscale frames, channel-last,
    each the maximum of the last two of ``frame_skip`` rendered frames (as :class:`MarioEnv`).

    ## Rewards

    Summed over the skipped frames, as gym-super-mario-bros 9.x: pixels of new maximal x,
    -1 per clock tick (24 frames), +1 per stomped enemy, -25 on death, +50 at the flag
    (not clipped).

    ## Starting State

    The player at x = 40 on the ground, enemies at their columns (they start walking left
    when near the screen), the clock at ``time_limit`` ticks; then 0 to ``noop_max`` no-op
    frames drawn from the reset seed. With ``level=None`` a new level is drawn from the
    reset seed every episode.

    ## Episode End

    ``terminated`` when the player touches the flagpole or dies: falls into a gap, runs into
    an enemy, or the clock runs out (``time_limit`` ticks, by default ``2 * length``: about
    ``12 * length`` agent steps). Never ``truncated``.

    ## Info

    ``x_pos``, ``y_pos``, ``flag_get``, ``time`` (ticks left), ``stomps``, ``level``, the
    reward components of the last frame, and ``info["kpi"]``: ``distance`` (the largest
    ``x_pos`` of the episode so far, pixels) and ``flag_get``.

    ## Arguments

    ```python
    gym.make("opsrl/SideScroller-v0", level=0, length=64, gaps=None, pipes=None,
             platforms=None, enemies=None, time_limit=None, frame_skip=4, screen_size=84,
             frame_stack=4, noop_max=30, render_mode=None)
    ```

    - ``level``: which level (the seed of its layout; every int is another level), or
      ``None`` for a new level every episode.
    - ``length``: columns of the level (at least 24; 16 fill the screen).
    - ``gaps``, ``pipes``, ``platforms``, ``enemies``: how many of each (default: one gap and
      one pipe per 20 columns between the flat ends, a platform per 40, an enemy per 12);
      more than fit is a ``ValueError``.
    - ``time_limit``: clock ticks (24 frames each) at the start.
    - ``frame_skip``, ``screen_size``, ``frame_stack``, ``noop_max``: the preprocessing.
    - ``render_mode``: ``"rgb_array"`` makes ``render()`` return the last 240 x 256 frame.

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        level: int | None = 0,
        length: int = 64,
        gaps: int | None = None,
        pipes: int | None = None,
        platforms: int | None = None,
        enemies: int | None = None,
        time_limit: int | None = None,
        frame_skip: int = 4,
        screen_size: int = 84,
        frame_stack: int = 4,
        noop_max: int = 30,
        render_mode: str | None = None,
    ) -> None:
        check_pipeline_args(frame_skip, screen_size, frame_stack, noop_max)
        game = SideScrollerScreenEnv(
            level, length, gaps, pipes, platforms, enemies, time_limit, render_mode
        )
        super().__init__(
            game, SIMPLE_MOVEMENT, frame_skip, screen_size, frame_stack, noop_max, render_mode
        )

    @property
    def layout(self) -> LevelLayout:
        """The level being played."""
        return self.game.layout  # type: ignore[attr-defined]
