import os

import numpy as np
import pytest
import torch

# Two pytest-xdist workers share 2 cores: one thread each keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - seeds legacy global RNG users too
