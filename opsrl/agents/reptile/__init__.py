"""Reptile meta-learning (Nichol et al. 2018) as a wrapper around any SB3 algorithm.

:class:`Reptile` meta-trains an initialisation over a list of task envs (e.g. Mario stages or
side-scroller levels) and adapts it to a held-out task with :meth:`Reptile.adapt`;
:func:`reptile_update` is the outer update, :func:`linear_step_size` its annealed step size.
"""

from __future__ import annotations

from opsrl.agents.reptile.reptile import Reptile, TaskEnv, linear_step_size, reptile_update

__all__ = ["Reptile", "TaskEnv", "linear_step_size", "reptile_update"]
