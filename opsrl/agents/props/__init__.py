"""PROPS: Proximal Robust On-Policy Sampling (Corrado & Hanna, arXiv 2311.08290).

- :class:`PROPS`: the algorithm, an SB3 ``PPO`` subclass that trains on the last few batches
  and collects them with an adaptive behaviour policy;
- :class:`PROPSRolloutBuffer`: the ring buffer of raw steps, recomputed for the current policy;
- :func:`sampling_error`, :func:`fixed_target_sampling_error`: the paper's sampling-error
  measure and its fixed-target experiment.
"""

from opsrl.agents.props.buffers import PROPSRolloutBuffer
from opsrl.agents.props.policies import CnnPolicy, MlpPolicy
from opsrl.agents.props.props import BEHAVIORS, PROPS
from opsrl.agents.props.sampling import fixed_target_sampling_error, sampling_error

__all__ = [
    "BEHAVIORS",
    "PROPS",
    "CnnPolicy",
    "MlpPolicy",
    "PROPSRolloutBuffer",
    "fixed_target_sampling_error",
    "sampling_error",
]
