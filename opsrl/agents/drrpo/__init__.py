"""DR-RPO: distributionally robust regularised policy optimisation (Gu, He, Liu, Xu, arXiv
2510.14246), reconstructed (the paper's code is not public; see :class:`DRRPO`).

- :class:`DRRPO`: the algorithm, an SB3 ``BaseAlgorithm`` on Discrete finite-horizon envs;
- :class:`SoftmaxPolicy`: its per-step softmax table pi_h(a | s);
- :mod:`~opsrl.agents.drrpo.backup`: the TV and KL robust duals, the bonus, the regularised
  value and the closed-form KL mirror-descent step (plain numpy).
"""

from opsrl.agents.drrpo.backup import (
    DIVERGENCES,
    exploration_bonus,
    kl_robust_expectation,
    mirror_descent_update,
    regularized_value,
    robust_expectation,
    tv_robust_expectation,
)
from opsrl.agents.drrpo.drrpo import BONUS_KINDS, DRRPO, FEATURE_KINDS
from opsrl.agents.drrpo.policies import SoftmaxPolicy

__all__ = [
    "BONUS_KINDS",
    "DIVERGENCES",
    "DRRPO",
    "FEATURE_KINDS",
    "SoftmaxPolicy",
    "exploration_bonus",
    "kl_robust_expectation",
    "mirror_descent_update",
    "regularized_value",
    "robust_expectation",
    "tv_robust_expectation",
]
