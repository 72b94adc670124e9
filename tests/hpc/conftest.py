import sys
from pathlib import Path

import pytest
from field_fixtures import make_well_fixture

HERE = Path(__file__).resolve().parent
# Callbacks used by the resume tests live next to them; the fit processes import them by module name.
sys.path.insert(0, str(HERE))

#: 2 CPU processes, DDP over gloo, 24 steps in seconds (see the file).
TINY_CONFIG = HERE / "tiny_surrogate.yaml"


@pytest.fixture
def tiny_data(tmp_path_factory):
    """Fixture data for TINY_CONFIG: 3 training trajectories of 7 windows (21 samples), 1 val, 1 test."""
    path = tmp_path_factory.mktemp("data") / "fields.h5"
    make_well_fixture(path, n_trajectories=5, n_steps=8)
    return path
