"""Test domains of distributionally robust RL (train on the nominal env, test perturbed).

- :mod:`~opsrl.envs.robust.sim`: plain-numpy dynamics, features and payoffs (no Gymnasium);
- :mod:`~opsrl.envs.robust.env`: :class:`SimulatedLinearMDPEnv` (``failure_prob`` perturbs
  x1's transition) and :class:`AmericanPutEnv` (``up_prob`` perturbs the price moves).

Both expose ``features()`` (S, A, d) on the simplex and ``horizon`` for linear-MDP agents such
as :class:`opsrl.agents.drrpo.DRRPO`.
"""

from __future__ import annotations

from opsrl.envs.robust.env import AmericanPutEnv, SimulatedLinearMDPEnv

__all__ = ["AmericanPutEnv", "SimulatedLinearMDPEnv"]
