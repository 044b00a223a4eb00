"""opsrl: reinforcement learning for classic control and operations research.

Importing opsrl registers every environment id (``opsrl/<Name>-v0``) with Gymnasium.
"""

__version__ = "0.1.0"

from opsrl import envs as _envs  # noqa: E402,F401  (registration side effect)

__all__ = ["__version__"]
