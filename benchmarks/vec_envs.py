"""Env and PPO throughput of every OR env under each vectorisation: the `opsrl bench` table.

For each OR env of the registry (lot sizing, job shop, UAM, ride sharing, ESG portfolio; small
default kwargs, see ``opsrl.bench.DEFAULT_KWARGS``):

1. env steps per second of one env, SB3 ``DummyVecEnv`` (64 copies), ``SubprocVecEnv`` (2
   workers) and, where the family has one, its batched VecEnv at 64 / 1024 / 4096 copies with
   the batched / DummyVecEnv ratio (random valid actions, masks where the env has them);
2. end-to-end PPO training throughput (MaskablePPO for masked envs) with each vectorisation,
   split into rollout collection, time inside the env and training;
3. step cost against problem size.

The same as bare ``opsrl bench`` and with the same flags (``--quick``, ``--envs``, ``--copies``,
``--ppo-steps``, ``--output FILE.md``, ...; ``--help`` lists them). Run from the repository
root::

    OMP_NUM_THREADS=1 python benchmarks/vec_envs.py --output bench.md   # or: opsrl bench
"""

from __future__ import annotations

import sys

from opsrl.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
