"""Gymnasium face of the submodular grid walk: coverage, item collection, experiment design."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from opsrl.envs.submodular.data import OBJECTIVES, make_set_function
from opsrl.envs.submodular.functions import SetFunction
from opsrl.envs.submodular.sim import ACTION_NAMES, SubmodularWalk

__all__ = [
    "INFORMATIVE_PATH_OPTIONS",
    "OBSERVATIONS",
    "REWARDS",
    "ExperimentDesignEnv",
    "InformativePathEnv",
    "ItemCollectionEnv",
    "SubmodularGridEnv",
    "default_start_cell",
]

REWARDS = ("marginal", "modular")
OBSERVATIONS = ("state_time", "visited")
#: entries before the visited map in every observation: row, col, t / H
STATE_TIME_SIZE = 3
#: d_optimal options of :class:`InformativePathEnv` (before the user's objective_options)
INFORMATIVE_PATH_OPTIONS: dict[str, Any] = {"variance": "gp", "n_observed": 0}


def default_start_cell(rows: int, cols: int) -> int:
    """Cell (1, 4), cut to the grid: SubPO's start cell 34 on its 30 x 30 grid."""
    return min(1, rows - 1) * cols + min(4, cols - 1)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


class SubmodularGridEnv(gym.Env[np.ndarray, np.int64]):
    """A walk on a grid whose score is a submodular function of the set of visited cells.

    ## Description

    An agent walks a ``rows x cols`` grid for H steps. The objective is ``F(V)``, a monotone
    submodular function of the set V of cells visited, not a sum over steps: visiting a
    cell twice, or two cells that cover the same area, earns less than visiting two new,
    distant ones. This is the discrete testbed of SubPO (Prajapat, Mutný, Zeilinger, Krause,
    "Submodular reinforcement learning", ICLR 2024, arXiv 2307.13372; code
    manish-pra/non-additive-RL) with its three objectives:

    - ``"coverage"``: weighted coverage ``F(V) = sum_{n in ∪_{v in V} D(v)} w(n)``; D(v) is v
      and the cells within Chebyshev distance ``radius`` (default 1: a 3x3 block). Weights
      ``"gp"`` (default: a Matérn-5/2 GP sample rescaled to [0, 1]), ``"bimodal"``
      (``sigmoid(uv)`` on [-1, 1]^2), ``"constant"`` (1), or a ``(rows, cols)`` array.
    - ``"items"``: item collection ``F(V) = sum_k min(|V ∩ G_k|, D_k)``: 6 item types with
      quotas D = (3, 2, 3, 4, 6, 3) on |G| = (18, 14, 13, 16, 18, 14) random cells.
    - ``"d_optimal"``: Bayesian D-optimal design, ``F(V) = 1/2 logdet(I + K_VV / noise)``, the
      information that noisy measurements at V give about a Matérn-5/2 GP field (see
      :class:`~opsrl.envs.submodular.functions.DOptimalDesign`), conditioned on 5 random
      cells measured before the episode.

    ``objective`` may also be any :class:`~opsrl.envs.submodular.functions.SetFunction` over
    the ``rows * cols`` cells. The instance (weights, item cells, earlier measurements) is
    fixed by ``instance_seed``, so that all evaluation episodes share it. The informative path
    planning variant is :class:`InformativePathEnv`.

    ## Action Space

    ``Discrete(5)``: 0 stay, 1 up (row - 1), 2 down (row + 1), 3 left (col - 1), 4 right
    (col + 1). A move off the grid leaves the agent where it is (the cell is entered again).
    Every action is always allowed. Other values raise a ValueError.

    ## Observation Space

    ``Box(0, 1, (D,), float32)``:

    - ``observation="state_time"`` (default): ``(row / (rows - 1), col / (cols - 1), t / H)``,
      the input of a policy Markovian in (state, time) (SubPO-M); D = 3.
    - ``observation="visited"``: the same three entries followed by the flat 0/1 map of the
      visited cells (cell index ``row * cols + col``), a summary of the history for
      history-conditioned policies (SubPO-NM); D = 3 + rows * cols.

    (A 1-row or 1-column grid observes 0 for the missing coordinate.)

    ## Rewards

    - ``reward="marginal"`` (default, SubPO): the marginal gain of the cell entered,
      ``F(V_{t+1}) - F(V_t)``. The start cell counts as visited, so the return of an episode
      is ``F(V_H) - F({s_0})``: F of the trajectory minus a constant of the instance.
    - ``reward="modular"``: ``F({s})`` of the cell entered, repeats counted (the ModPO / SRL
      baseline that treats the objective as a sum over steps).

    With either, ``info["marginal_gain"]`` holds the marginal gain and ``info["kpi"]["F"]``
    the value of the visited set: evaluate policies by it.

    ## Starting State

    The agent starts at ``start_cell`` (default cell (1, 4), i.e. 34 on the 30 x 30 grid as
    in SubPO), which counts as visited. Nothing is random within an episode: ``reset(seed=...)``
    seeds ``np_random`` as usual, but every episode of an instance starts in the same state
    and the dynamics are deterministic.

    ## Episode End

    The episode terminates after H = ``horizon`` steps (``terminated=True``): the horizon is
    part of the problem and ``t / H`` is observed, so the last state is terminal rather than
    cut short. There is no truncation. Stepping after the end raises a RuntimeError.

    ## Info

    ``{"kpi": {"F", "cells_visited", "steps"}, "cell": int, "marginal_gain": float}``: F of the
    visited set so far, the number of distinct cells visited (start included), the steps
    taken, the cell now occupied and (after a step) the marginal gain of that step. ``reset``
    returns the same keys with ``marginal_gain`` 0. ``cell`` is what
    :class:`~opsrl.envs.submodular.wrappers.MarginalGainReward` reads by default.

    ## Arguments

    ```python
    gym.make("opsrl/Coverage-v0", objective="coverage", size=(30, 30), horizon=40,
             start_cell=None, reward="marginal", observation="state_time", instance_seed=0,
             objective_options=None, render_mode=None)
    ```

    - ``objective``: ``"coverage"``, ``"items"``, ``"d_optimal"`` or a SetFunction.
    - ``size``: ``(rows, cols)`` of the grid.
    - ``horizon``: H, the number of steps per episode.
    - ``start_cell``: start cell index; None for cell (1, 4).
    - ``reward``: ``"marginal"`` or ``"modular"``.
    - ``observation``: ``"state_time"`` or ``"visited"``.
    - ``instance_seed``: seed of the instance generator (GP weights, item cells, earlier
      measurements).
    - ``objective_options``: a dict of the named objective's options (see
      :func:`~opsrl.envs.submodular.data.make_set_function`); ``coverage``: ``weights``,
      ``radius``, ``lengthscale``; ``items``: ``quotas``, ``group_sizes``, ``item_types``;
      ``d_optimal``: ``lengthscale`` (5 cells), ``noise`` (0.01), ``variance``,
      ``variance_lengthscale``, ``n_observed`` (5). Unknown keys raise.
    - ``render_mode``: None or ``"ansi"`` (a text map: ``@`` agent, ``#`` visited).

    Bad arguments raise a ValueError naming the argument at construction.

    ## Version History

    - v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        objective: str | SetFunction = "coverage",
        size: tuple[int, int] = (30, 30),
        horizon: int = 40,
        start_cell: int | None = None,
        reward: str = "marginal",
        observation: str = "state_time",
        instance_seed: int = 0,
        objective_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        rows, cols = self._check_size(size)
        if not _is_int(horizon) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if start_cell is None:
            start_cell = default_start_cell(rows, cols)
        elif not _is_int(start_cell) or not 0 <= start_cell < rows * cols:
            raise ValueError(
                f"start_cell must be a cell index in 0..{rows * cols - 1}, got {start_cell!r}"
            )
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation must be one of {', '.join(OBSERVATIONS)}, got {observation!r}"
            )
        if not _is_int(instance_seed) or instance_seed < 0:
            raise ValueError(f"instance_seed must be a non-negative integer, got {instance_seed!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        if isinstance(objective, SetFunction):
            if objective_options is not None:
                raise ValueError("objective_options only apply to a named objective")
            if objective.n_elements != rows * cols:
                raise ValueError(
                    f"objective has {objective.n_elements} elements but size {rows} x {cols} "
                    f"has {rows * cols} cells"
                )
            set_function = objective
        elif isinstance(objective, str) and objective in OBJECTIVES:
            set_function = make_set_function(
                objective, (rows, cols), int(instance_seed), objective_options
            )
        else:
            raise ValueError(
                f"objective must be one of {', '.join(OBJECTIVES)} or a SetFunction, got "
                f"{objective!r}"
            )

        self.objective = objective if isinstance(objective, str) else type(objective).__name__
        self.rows, self.cols = rows, cols
        self.horizon = int(horizon)
        self.start_cell = int(start_cell)
        self.reward_mode = reward
        self.observation_mode = observation
        self.instance_seed = int(instance_seed)
        self.render_mode = render_mode
        self.set_function = set_function
        #: F({s}) per cell: the modular reward
        self.singleton_values = set_function.singleton_values()

        self.sim = SubmodularWalk(set_function, rows, cols, self.start_cell)
        size_obs = STATE_TIME_SIZE + (rows * cols if observation == "visited" else 0)
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        self.observation_space = spaces.Box(0.0, 1.0, shape=(size_obs,), dtype=np.float32)
        self._obs = np.zeros(size_obs, dtype=np.float32)
        self._row_scale = 1.0 / (rows - 1) if rows > 1 else 0.0
        self._col_scale = 1.0 / (cols - 1) if cols > 1 else 0.0
        self._started = False

    @staticmethod
    def _check_size(size: Any) -> tuple[int, int]:
        try:
            rows, cols = size
        except (TypeError, ValueError):
            raise ValueError(f"size must be a pair (rows, cols), got {size!r}") from None
        if not (_is_int(rows) and _is_int(cols)) or rows < 1 or cols < 1:
            raise ValueError(f"size must be a pair of positive integers, got {size!r}")
        return int(rows), int(cols)

    # ----------------------------------------------------------------- public state
    @property
    def cell(self) -> int:
        """The cell the agent occupies."""
        return self.sim.cell

    @property
    def value(self) -> float:
        """F of the visited set."""
        return self.sim.value

    @property
    def trajectory(self) -> list[int]:
        """The cells of the episode so far, start cell first (a copy)."""
        return list(self.sim.trajectory)

    def cell_coordinates(self, cell: int) -> tuple[int, int]:
        """(row, col) of a cell index."""
        row, col = divmod(int(cell), self.cols)
        return row, col

    # ----------------------------------------------------------------- gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Back to the start cell (nothing here is random; ``seed`` seeds ``np_random``)."""
        super().reset(seed=seed)
        self.sim.reset()
        self._started = True
        return self._observation(), self._info(0.0)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move, add the cell entered to the visited set; see the class docstring."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.sim.t >= self.horizon:
            raise RuntimeError(f"the episode ended after {self.horizon} steps; call reset()")
        try:
            index = int(action)
        except (TypeError, ValueError):
            index = -1
        if index != action or not 0 <= index < len(ACTION_NAMES):
            raise ValueError(
                f"action must be an integer in 0..{len(ACTION_NAMES) - 1}, got {action!r}"
            )
        gain = self.sim.step(index)
        if self.reward_mode == "marginal":
            reward = gain
        else:
            reward = float(self.singleton_values[self.sim.cell])
        terminated = self.sim.t >= self.horizon
        return self._observation(), reward, terminated, False, self._info(gain)

    def render(self) -> str | None:
        """With ``render_mode="ansi"``: the grid, ``@`` the agent, ``#`` visited, ``.`` not."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render() without a render_mode; use render_mode='ansi'."
            )
            return None
        chars = np.where(self.sim.visited.reshape(self.rows, self.cols) > 0, "#", ".")
        row, col = self.cell_coordinates(self.sim.cell)
        chars[row, col] = "@"
        header = f"t={self.sim.t}/{self.horizon} F={self.sim.value:.3f}"
        return "\n".join([header, *("".join(line) for line in chars)])

    # ----------------------------------------------------------------- helpers
    def _observation(self) -> np.ndarray:
        row, col = divmod(self.sim.cell, self.cols)
        obs = self._obs
        obs[0] = row * self._row_scale
        obs[1] = col * self._col_scale
        obs[2] = self.sim.t / self.horizon
        if self.observation_mode == "visited":
            obs[STATE_TIME_SIZE:] = self.sim.visited
        return obs.copy()

    def _info(self, gain: float) -> dict[str, Any]:
        kpi = {
            "F": self.sim.value,
            "cells_visited": self.sim.n_visited,
            "steps": self.sim.t,
        }
        return {"kpi": kpi, "cell": self.sim.cell, "marginal_gain": gain}


class ItemCollectionEnv(SubmodularGridEnv):
    """:class:`SubmodularGridEnv` with ``objective="items"`` (``opsrl/ItemCollection-v0``).

    Item collection ``F(V) = sum_k min(|V ∩ G_k|, D_k)`` on a 30 x 30 grid, H = 40: six item
    types with quotas D = (3, 2, 3, 4, 6, 3) on |G| = (18, 14, 13, 16, 18, 14) cells drawn from
    ``instance_seed``. The arguments, spaces, rewards and episode end are those of
    :class:`SubmodularGridEnv`; ``objective_options`` takes ``quotas``, ``group_sizes`` and
    ``item_types``.

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        size: tuple[int, int] = (30, 30),
        horizon: int = 40,
        start_cell: int | None = None,
        reward: str = "marginal",
        observation: str = "state_time",
        instance_seed: int = 0,
        objective_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            "items",
            size,
            horizon,
            start_cell,
            reward,
            observation,
            instance_seed,
            objective_options,
            render_mode,
        )


class ExperimentDesignEnv(SubmodularGridEnv):
    """:class:`SubmodularGridEnv` with ``objective="d_optimal"`` (``opsrl/ExperimentDesign-v0``).

    Bayesian D-optimal experiment design on a 30 x 30 grid, H = 40: each visited cell is a
    noisy measurement (noise variance 0.01) of a unit-variance Matérn-5/2 GP field
    (lengthscale 5 cells) already measured at 5 random cells (from ``instance_seed``);
    ``F(V) = 1/2 logdet(I + K_VV / noise)`` with K the posterior covariance. The arguments,
    spaces, rewards and episode end are those of :class:`SubmodularGridEnv`;
    ``objective_options`` takes ``lengthscale``, ``noise``, ``variance``,
    ``variance_lengthscale`` and ``n_observed``.

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        size: tuple[int, int] = (30, 30),
        horizon: int = 40,
        start_cell: int | None = None,
        reward: str = "marginal",
        observation: str = "state_time",
        instance_seed: int = 0,
        objective_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            "d_optimal",
            size,
            horizon,
            start_cell,
            reward,
            observation,
            instance_seed,
            objective_options,
            render_mode,
        )


class InformativePathEnv(SubmodularGridEnv):
    """Informative path planning on a larger map (``opsrl/InformativePath-v0``).

    ## Description

    A sensing robot crosses a 60 x 60 map in H = 100 steps, taking a noisy measurement (noise
    variance 0.01) of an unknown field at every cell it enters. The field is a Matérn-5/2 GP
    (lengthscale 5 cells) whose prior variance varies over the map: it is itself a GP sample
    (lengthscale 10 cells) rescaled to [0, 1] and drawn from ``instance_seed``, so some regions
    are worth surveying and others hardly at all. The objective is the information gained
    about the field, ``F(V) = 1/2 logdet(I + K_VV / noise)``: the D-optimal design objective of
    :class:`SubmodularGridEnv` (``objective="d_optimal"``) with ``variance="gp"`` and no
    earlier measurements (``n_observed=0``). Unlike coverage, a measurement also informs the
    cells around it through the kernel, with a reach set by the lengthscale.

    Spaces, rewards, starting state (cell (1, 4) unless ``start_cell`` is given), episode end
    and info are those of :class:`SubmodularGridEnv`. Step cost grows with the number of
    distinct cells measured (a rank-one update of a |V| x |V| factor).

    ## Arguments

    As :class:`SubmodularGridEnv` without ``objective``; ``size=(60, 60)``, ``horizon=100``,
    and ``objective_options`` (d_optimal keys) are applied over
    :data:`INFORMATIVE_PATH_OPTIONS`.

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        size: tuple[int, int] = (60, 60),
        horizon: int = 100,
        start_cell: int | None = None,
        reward: str = "marginal",
        observation: str = "state_time",
        instance_seed: int = 0,
        objective_options: Mapping[str, Any] | None = None,
        render_mode: str | None = None,
    ) -> None:
        if objective_options is not None and not isinstance(objective_options, Mapping):
            raise ValueError(f"objective_options must be a dict or None, got {objective_options!r}")
        super().__init__(
            "d_optimal",
            size,
            horizon,
            start_cell,
            reward,
            observation,
            instance_seed,
            {**INFORMATIVE_PATH_OPTIONS, **(objective_options or {})},
            render_mode,
        )
