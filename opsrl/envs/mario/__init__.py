"""Super Mario Bros. (NES, optional install) and a ROM-free side-scroller with its interface.

- :mod:`~opsrl.envs.mario.env`: the preprocessing wrappers (frame skip with max pooling,
  grayscale 84 x 84, frame stack, ``SIMPLE_MOVEMENT`` joypad actions, distance/flag KPIs),
  :class:`PixelGameEnv` and :class:`MarioEnv` (``opsrl/Mario-v0`` and
  ``opsrl/Mario-<world>-<stage>-v0``, over gym-super-mario-bros 9.1.0);
- :mod:`~opsrl.envs.mario.sim`: the side-scroller's numpy simulator and level generator;
- :mod:`~opsrl.envs.mario.side_scroller`: :class:`SideScrollerEnv`
  (``opsrl/SideScroller-v0``), the side-scroller behind the same preprocessing.

Mario needs ``pip install --no-deps --ignore-requires-python gym-super-mario-bros==9.1.0
nes-py==9.0.1`` (:data:`MARIO_INSTALL_COMMAND`); the ROMs ship in that package's wheel and
never in this repository.
"""

from __future__ import annotations

from opsrl.envs.mario.env import (
    MARIO_INSTALL_COMMAND,
    SIMPLE_MOVEMENT,
    STAGES,
    EpisodeKPI,
    FrameStack,
    GrayscaleResize,
    JoypadActions,
    MarioEnv,
    MarioNotInstalledError,
    MaxAndSkipFrames,
    NoopStart,
    PixelGameEnv,
    mario_installed,
    preprocess,
    require_mario,
)
from opsrl.envs.mario.side_scroller import SideScrollerEnv, SideScrollerScreenEnv, level_counts
from opsrl.envs.mario.sim import LevelLayout, SideScrollerSim, generate_level

__all__ = [
    "MARIO_INSTALL_COMMAND",
    "SIMPLE_MOVEMENT",
    "STAGES",
    "EpisodeKPI",
    "FrameStack",
    "GrayscaleResize",
    "JoypadActions",
    "LevelLayout",
    "MarioEnv",
    "MarioNotInstalledError",
    "MaxAndSkipFrames",
    "NoopStart",
    "PixelGameEnv",
    "SideScrollerEnv",
    "SideScrollerScreenEnv",
    "SideScrollerSim",
    "generate_level",
    "level_counts",
    "mario_installed",
    "preprocess",
    "require_mario",
]
