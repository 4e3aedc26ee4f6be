import os
import sys

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def no_argv(monkeypatch):
    """LightningCLI warns when both args= and sys.argv are given: give it a bare argv."""
    monkeypatch.setattr(sys, "argv", ["mendlight"])
