"""What the benchmarks share: a one-line description of the machine, recorded next to their
figures, and the timing of an SB3 ``learn`` split into collection and training."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_note(**library_versions: str) -> str:
    """CPU, cores, Python, the given library versions, numpy and OMP_NUM_THREADS."""
    libraries = "".join(f"{name} {version}, " for name, version in library_versions.items())
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{libraries}numpy {np.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )


class PhaseTimer(BaseCallback):
    """Seconds an SB3 ``learn`` spends collecting rollouts; the rest of it is training."""

    def __init__(self) -> None:
        super().__init__()
        self.collection_s = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.collection_s += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


@dataclass
class Timing:
    """One measured ``learn``: env steps taken, total and collection seconds."""

    steps: int
    total_s: float
    collection_s: float

    def per(self, seconds: float, steps: int = 100_000) -> float:
        """``seconds`` scaled to ``steps`` env steps (the benchmarks report per 100k)."""
        return seconds * steps / self.steps
