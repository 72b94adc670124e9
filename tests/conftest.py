"""Shared test setup.

* ``import sciml`` first: it sets OMP_WAIT_POLICY=PASSIVE before any test module loads torch's OpenMP.
* The fixture generators under tests/data are importable as plain modules (``import field_fixtures``).
* Every test runs on one torch thread: the test grids are far too small to split across threads, and on a
  shared CPU each intra-op barrier waits for a descheduled worker (a 12^3 solver run measured 0.3 s on one
  thread and 20 s on two under load). No result depends on the thread count.
"""

import sys
from pathlib import Path

import pytest

import sciml  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))


@pytest.fixture(autouse=True)
def _single_intra_op_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
