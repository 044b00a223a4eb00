"""gym-super-mario-bros' single-stage env with the life-loss rule as an option.

Imported only by :class:`opsrl.envs.mario.env.MarioEnv`, after it checked that the optional
packages are installed.
"""

from __future__ import annotations

from gym_super_mario_bros.smb_env import SuperMarioBrosEnv


class MarioStageGame(SuperMarioBrosEnv):
    """A Super Mario Bros. stage (raw 240 x 256 RGB frames, NES controller-byte actions).

    The package's stage envs end the episode on any death; with
    ``terminate_on_life_loss=False`` the episode goes on after a death (the stage restarts
    from its start or checkpoint) until the flag or game over, as its full-game env does.
    """

    def __init__(
        self,
        world: int,
        stage: int,
        terminate_on_life_loss: bool = True,
        render_mode: str | None = None,
    ) -> None:
        # Set before the parent's constructor: it resets and steps the emulator.
        self.terminate_on_life_loss = terminate_on_life_loss
        super().__init__(target=(world, stage), render_mode=render_mode)

    def _get_terminated(self) -> bool:
        if self.terminate_on_life_loss:
            return bool(super()._get_terminated())
        return bool(self._is_game_over or self._flag_get)
