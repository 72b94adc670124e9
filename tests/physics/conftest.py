import pytest
import torch


@pytest.fixture(autouse=True)
def _single_intra_op_thread():
    """Run the physics tests on one torch thread.

    The solver's kernels on tiny test grids are far too small to split, and on a shared CPU every
    intra-op barrier waits for a descheduled worker: a 12^3 run measured 0.3 s with one thread and
    20 s with two under load. The results do not depend on the thread count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
