"""Peak memory of tensors, measured the same way on every device (benchmarks and memory tests).

``torch.cuda.max_memory_allocated`` exists only on CUDA and the process's peak RSS only grows; to compare the
memory of one call at several sizes on a CPU, :class:`TensorPeakMemory` counts the bytes held by the tensors
created inside a ``with`` block (each storage once, while it is alive) and keeps their peak. Tensors created
before the block (the model's weights, the inputs) are not counted.
"""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class TensorPeakMemory(TorchDispatchMode):
    """The peak of the bytes held by tensors created inside the block (storages counted once, while alive).

    Every operator's outputs are recorded as they are created; a storage is forgotten when it is freed. The
    bookkeeping costs time: measure memory and time in separate runs.

    Example::

        with TensorPeakMemory() as memory:
            editor.edit(rows)
        print(memory.peak)  # bytes
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        #: the largest number of bytes held at once by tensors created inside the block
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                held = self.live.get(key)
                if held is None or held[0].expired():
                    self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
                    self.live[key] = (StorageWeakRef(storage), storage.nbytes())
                    self.peak = max(self.peak, sum(n for _, n in self.live.values()))
        return out
