"""sciml's errors survive pickling and a DataLoader worker's re-raise with their one-line message."""

import pickle

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError


@pytest.mark.parametrize(
    "error",
    [
        DataFormatError("flow.h5", "t1_fields/velocity", "2 non-finite value(s) (NaN) in trajectory 1"),
        DataFormatError("flow.h5", None, "not an HDF5 file"),
        DatasetNotFoundError("data/flow.h5", "python -m sciml.data.generate --out data"),
        ConfigError("batch_size", "expected an integer >= 1, got 0"),
    ],
)
def test_errors_pickle_with_their_fields(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)


class _BadSample(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        if index == 2:
            raise DataFormatError(
                "flow.h5", "t1_fields/velocity", "1 non-finite value(s) (Inf) in trajectory 2"
            )
        return torch.zeros(1)


def test_an_error_raised_in_a_dataloader_worker_arrives_as_itself_with_its_message():
    loader = DataLoader(_BadSample(), batch_size=1, num_workers=1)
    with pytest.raises(DataFormatError) as caught:
        list(loader)
    assert str(caught.value) == "flow.h5: t1_fields/velocity: 1 non-finite value(s) (Inf) in trajectory 2"
    assert "DataLoader worker process 0" in caught.value.worker_report  # the traceback is kept for debugging


def test_a_plain_message_is_kept_as_it_is():
    assert str(ConfigError("config key 'x': bad")) == "config key 'x': bad"
    assert str(DatasetNotFoundError("data/x.h5")) == "dataset not found at data/x.h5"
