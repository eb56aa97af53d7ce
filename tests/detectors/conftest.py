import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own dispatched_ops module


@pytest.fixture
def one_thread():
    """Small convolutions on a shared 2-core machine run ~15x faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
