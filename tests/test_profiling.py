"""TensorPeakMemory counts the bytes of the tensors created inside its block, at their peak."""

import torch

from mendlight.profiling import TensorPeakMemory


def test_peak_counts_live_tensors_created_inside_the_block_once():
    before = torch.ones(1000)  # created outside: not counted
    with TensorPeakMemory() as memory:
        a = torch.zeros(256, dtype=torch.float32)  # 1 KiB
        b = torch.zeros(512, dtype=torch.float64)  # 4 KiB: 5 KiB live
        view = b[:10]  # a view shares b's storage: counted once
        del a, b, view
        c = torch.zeros(1024, dtype=torch.float32)  # 4 KiB, after the others were freed
        d = before * 2  # 4,000 bytes: 8,096 live
    assert memory.peak == max(1024 + 4096, 4096 + 4000)
    assert c.numel() == 1024 and d.numel() == 1000


def test_peak_of_a_temporary_chain_is_what_is_alive_at_once():
    x = torch.ones(1000)
    with TensorPeakMemory() as memory:
        for _ in range(5):
            y = x * 2  # each y frees the one before once rebound: at most two alive
            del y
    assert memory.peak == 4000
