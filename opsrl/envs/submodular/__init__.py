"""Submodular-reward environments (SubPO, Prajapat et al., ICLR 2024).

- :mod:`~opsrl.envs.submodular.functions`: monotone submodular set functions over grid cells
  (weighted coverage, item collection, D-optimal design) with incremental marginal gains;
- :mod:`~opsrl.envs.submodular.data`: instance generators (weights, item cells, GP samples);
- :mod:`~opsrl.envs.submodular.sim`: the grid walk and its visited set (plain numpy);
- :mod:`~opsrl.envs.submodular.env`: :class:`SubmodularGridEnv` and its registered variants;
- :mod:`~opsrl.envs.submodular.wrappers`: :class:`MarginalGainReward`, which gives any
  Gymnasium env a submodular reward.
"""

from __future__ import annotations

from opsrl.envs.submodular.data import (
    DEFAULT_GROUP_SIZES,
    DEFAULT_QUOTAS,
    OBJECTIVES,
    bimodal_weights,
    constant_weights,
    gp_weights,
    grid_points,
    make_set_function,
    random_item_types,
    sample_gp_grid,
)
from opsrl.envs.submodular.env import (
    ExperimentDesignEnv,
    InformativePathEnv,
    ItemCollectionEnv,
    SubmodularGridEnv,
)
from opsrl.envs.submodular.functions import (
    DOptimalDesign,
    ItemCollection,
    SetFunction,
    WeightedCoverage,
    matern52,
)
from opsrl.envs.submodular.wrappers import MarginalGainReward

__all__ = [
    "DEFAULT_GROUP_SIZES",
    "DEFAULT_QUOTAS",
    "OBJECTIVES",
    "DOptimalDesign",
    "ExperimentDesignEnv",
    "InformativePathEnv",
    "ItemCollection",
    "ItemCollectionEnv",
    "MarginalGainReward",
    "SetFunction",
    "SubmodularGridEnv",
    "WeightedCoverage",
    "bimodal_weights",
    "constant_weights",
    "gp_weights",
    "grid_points",
    "make_set_function",
    "matern52",
    "random_item_types",
    "sample_gp_grid",
]
