"""Every family's sim.py is a pure simulator: no Gymnasium or SB3 import (DESIGN.md)."""

import ast
import importlib
from pathlib import Path

import pytest

from opsrl.envs import ENV_TABLE

SIM_MODULES = sorted(
    {
        entry.entry_point.split(":")[0].rsplit(".", 1)[0] + ".sim"
        for entry in ENV_TABLE
        # opsrl.envs.mo holds multi-objective views of other families, not a family
        if not entry.entry_point.startswith("opsrl.envs.mo:")
    }
)


@pytest.mark.parametrize("module_name", SIM_MODULES)
def test_simulator_is_plain_numpy(module_name):
    sim = importlib.import_module(module_name)
    tree = ast.parse(Path(sim.__file__).read_text())
    modules = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.split(".")[0] in {"gymnasium", "stable_baselines3"} for name in modules)
