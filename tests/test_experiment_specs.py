"""Every shipped experiment spec (experiments/*.yaml and the quickstart) is valid as written."""

from pathlib import Path

import pytest

from opsrl.experiment import default_spec_path
from opsrl.spec import expand, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "experiments").glob("*.yaml")) + [default_spec_path()]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_spec_loads_and_expands(path):
    spec = load_spec(path)
    assert expand(spec), f"{path.name} expands to no runs"
