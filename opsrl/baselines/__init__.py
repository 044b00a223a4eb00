"""Non-learning policies (heuristics, OR-Tools models) evaluated on the agents' seeds."""

from opsrl.baselines.base import BaselinePolicy, Solution
from opsrl.baselines.common import RandomPolicy

__all__ = ["BaselinePolicy", "RandomPolicy", "Solution"]
