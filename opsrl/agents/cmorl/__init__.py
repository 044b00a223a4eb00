"""C-MORL: Pareto sets of policies by constrained policy optimisation (Liu et al., ICLR 2025).

- :class:`CMORL`: the orchestrator (stage 1: one MOPPO per preference vector; stage 2:
  crowding-distance selection and IPO-constrained extensions); ``learn``, ``pareto_set``,
  ``predict(obs, weights=...)``, ``save``/``load`` of the whole set;
- :class:`MOPPO`: multi-objective PPO (SB3 subclass) with a vector critic, scalarised
  advantage and the log-barrier update;
- :class:`MOActorCriticPolicy`: its policy (vector value head, running normalisation);
- :class:`MORolloutBuffer`: vector rewards, values and per-objective GAE;
- :class:`VectorRewardInfo`, :func:`make_mo_vec_env`: MO envs on SB3 VecEnvs;
- :func:`evaluate_objectives`, :func:`barrier_policy_loss`, :func:`constraint_thresholds`.

The env follows MO-Gymnasium: numpy reward vector and ``reward_space``.
"""

from opsrl.agents.cmorl.buffers import MORolloutBuffer, MORolloutBufferSamples, vector_gae
from opsrl.agents.cmorl.cmorl import (
    CMORL,
    LinearScalarizationGrid,
    ParetoSolution,
    default_weight_step,
    select_parents,
)
from opsrl.agents.cmorl.moppo import (
    MOPPO,
    VectorRewardInfo,
    barrier_policy_loss,
    constraint_thresholds,
    evaluate_objectives,
    make_mo_env,
    make_mo_vec_env,
)
from opsrl.agents.cmorl.policies import (
    MlpPolicy,
    MOActorCriticPolicy,
    MOMultiInputActorCriticPolicy,
    MultiInputPolicy,
    RunningMeanStd,
)

__all__ = [
    "CMORL",
    "LinearScalarizationGrid",
    "MOPPO",
    "MORolloutBuffer",
    "MORolloutBufferSamples",
    "MOActorCriticPolicy",
    "MOMultiInputActorCriticPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "ParetoSolution",
    "RunningMeanStd",
    "VectorRewardInfo",
    "barrier_policy_loss",
    "constraint_thresholds",
    "default_weight_step",
    "evaluate_objectives",
    "make_mo_env",
    "make_mo_vec_env",
    "select_parents",
    "vector_gae",
]
