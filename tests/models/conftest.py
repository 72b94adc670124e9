"""Run these tests single-threaded: their tensors are tiny, and on a shared, loaded machine OpenMP
threads waiting for each other made a 15 ms forward/backward take ~1 s."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
