import pytest
import torch

# The tests use tiny tensors: one thread avoids OpenMP start-up and contention costs that dwarf the work.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
