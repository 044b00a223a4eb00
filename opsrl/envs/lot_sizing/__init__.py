"""Multi-item, multi-machine stochastic discrete lot sizing ("SimplePlant", PDPPO).

- :mod:`~opsrl.envs.lot_sizing.data`: instances, the generator and JSON loaders;
- :mod:`~opsrl.envs.lot_sizing.sim`: the batched numpy simulator (no Gymnasium);
- :mod:`~opsrl.envs.lot_sizing.env`: :class:`LotSizingEnv`, the Gymnasium env;
- :mod:`~opsrl.envs.lot_sizing.vec`: :class:`LotSizingVecEnv`, N copies behind the SB3 VecEnv
  API (imported lazily, since it needs stable-baselines3).
"""

from __future__ import annotations

from typing import Any

from opsrl.envs.lot_sizing.data import (
    SIZES,
    DemandModel,
    LotSizingInstance,
    generate_instance,
    load_instance,
    make_instance,
)
from opsrl.envs.lot_sizing.env import LotSizingEnv

__all__ = [
    "SIZES",
    "DemandModel",
    "LotSizingEnv",
    "LotSizingInstance",
    "LotSizingVecEnv",
    "generate_instance",
    "load_instance",
    "make_instance",
]


def __getattr__(name: str) -> Any:
    # Importing stable-baselines3 (and torch) only when the batched env is asked for keeps
    # `import opsrl` light.
    if name == "LotSizingVecEnv":
        from opsrl.envs.lot_sizing.vec import LotSizingVecEnv

        return LotSizingVecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
