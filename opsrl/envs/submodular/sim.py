"""A walker on a grid that scores the set of cells it visits (plain numpy, no Gymnasium).

The walker moves one cell per step (stay, up, down, left, right; a move off the grid stays in
place). The visited set starts with the starting cell; each step adds the cell entered and
the set function's accumulator returns the marginal gain, so a step costs one gain
evaluation and an in-place update of the 0/1 visited map.
"""

from __future__ import annotations

import numpy as np

from opsrl.envs.submodular.functions import SetFunction

__all__ = ["ACTION_MOVES", "ACTION_NAMES", "SubmodularWalk", "move_table"]

ACTION_NAMES = ("stay", "up", "down", "left", "right")
#: (row, col) displacement of each action; "up" decreases the row index
ACTION_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def move_table(rows: int, cols: int) -> np.ndarray:
    """``(rows * cols, 5)`` table of the cell reached by each action from each cell."""
    row, col = np.divmod(np.arange(rows * cols), cols)
    table = np.empty((rows * cols, len(ACTION_MOVES)), dtype=np.int64)
    for action, (d_row, d_col) in enumerate(ACTION_MOVES):
        next_row = np.clip(row + d_row, 0, rows - 1)
        next_col = np.clip(col + d_col, 0, cols - 1)
        table[:, action] = next_row * cols + next_col
    return table


class SubmodularWalk:
    """One walker, its visited set and the value F of that set.

    Parameters
    ----------
    set_function:
        F over the ``rows * cols`` cells.
    rows, cols:
        grid size.
    start_cell:
        the cell of every episode's start; it counts as visited.
    """

    def __init__(self, set_function: SetFunction, rows: int, cols: int, start_cell: int) -> None:
        if set_function.n_elements != rows * cols:
            raise ValueError(
                f"the set function has {set_function.n_elements} elements but the grid has "
                f"{rows * cols} cells"
            )
        self.set_function = set_function
        self.rows, self.cols = rows, cols
        self.start_cell = int(start_cell)
        self.moves = move_table(rows, cols)
        #: 0/1 map of visited cells, updated in place (float32: it is copied into observations)
        self.visited = np.zeros(rows * cols, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Back to the start cell, with only it visited."""
        self.visited[:] = 0.0
        self.accumulator = self.set_function.state()
        self.cell = self.start_cell
        self.t = 0
        self.n_visited = 0
        self.trajectory = [self.start_cell]
        self._visit(self.start_cell)

    @property
    def value(self) -> float:
        """F of the visited set."""
        return float(self.accumulator.value)

    def step(self, action: int) -> float:
        """Move by ``action`` (an index into :data:`ACTION_NAMES`); return the marginal gain."""
        self.cell = int(self.moves[self.cell, action])
        self.t += 1
        self.trajectory.append(self.cell)
        return self._visit(self.cell)

    def _visit(self, cell: int) -> float:
        if not self.visited[cell]:
            self.visited[cell] = 1.0
            self.n_visited += 1
        return self.set_function.add(self.accumulator, cell)
