"""Critic-free multi-agent policy optimisation for ride-sharing order dispatch.

- :class:`OSPO`: One-Step Policy Optimization, group-normalised one-step rewards plus a
  fairness term;
- :class:`GRPO`: multi-agent Group Relative Policy Optimization, semi-MDP reward-to-go
  minus the group mean;
- :class:`ScorePolicy`: the policy both share, an MLP scoring every (vehicle, option) pair, a
  softmax over a vehicle's options, scores ``2 p - 1`` for the platform's Hungarian matching;
- :class:`SharedAgentPolicy`: plays a per-agent model (e.g. PPO trained with parameter sharing
  on the per-vehicle VecEnv) on the platform view.

Both algorithms train on a VecEnv with one slot per vehicle whose infos carry the matched
option (:class:`~opsrl.envs.ride_sharing.vec.RideSharingAgentVecEnv`). Paper: Zhao and Li,
https://arxiv.org/abs/2507.15351.
"""

from opsrl.agents.ospo.grpo import GRPO
from opsrl.agents.ospo.ospo import OSPO
from opsrl.agents.ospo.policies import ScorePolicy
from opsrl.agents.ospo.shared import SharedAgentPolicy

__all__ = ["GRPO", "OSPO", "ScorePolicy", "SharedAgentPolicy"]
