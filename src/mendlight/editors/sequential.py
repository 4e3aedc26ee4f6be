"""Sequential (lifelong) editing: edits applied one after another, every one evaluated after the last.

With ``sequential=N`` an editor's test batches form chains of N edits (each batch may hold several
simultaneous edits). Edit i is computed on the model the first i−1 edits of its chain left — their deltas
are written into the weights (:meth:`~mendlight.editors.base.Editor.edit_from`) — and when the chain is
complete (or the test data end) every batch of the chain is evaluated at the final weights. Edit success
therefore measures whether an edit *survives* the later ones, and the drawdown is that of the whole chain.
EasyEdit changed its sequential protocol in 2026-06 to evaluate each edit right after it is made; the
protocol here is the one its README and the MEND paper's discussion describe (evaluate after all edits).
"""

from __future__ import annotations

import time

from pytorch_lightning import LightningModule

from mendlight.data.batch import EditBatch
from mendlight.models.functional import ParamDeltas


class SequentialChain:
    """The open chain of a sequential test: its batches, their edit latencies, and the model it has made.

    Args:
        editor: the editor whose ``sequential`` hyperparameter sets the chain length.

    """

    def __init__(self, editor: LightningModule) -> None:
        self.editor = editor
        self.reset()

    def reset(self) -> None:
        """Start a new chain from the editor's pre-edit model."""
        self.batches: list[tuple[EditBatch, float]] = []
        self.deltas: ParamDeltas | None = None
        self.index = getattr(self, "index", -1) + 1

    def add(self, batch: EditBatch, batch_idx: int) -> None:
        """Edit ``batch`` on the chain's current model; evaluate the chain when it is full or the data end."""
        editor = self.editor
        unit = batch.get("meta", {}).get("unit")
        if not self.batches and unit is not None:
            self.index = int(unit)  # the chain's number in the split, also when processes share the chains
        current = self.deltas if self.deltas is not None else editor.pre_edit_deltas()
        start = time.perf_counter()
        self.deltas = editor.edit_from(batch["edit"], batch.get("cond"), current)
        self.batches.append((batch, time.perf_counter() - start))
        total = editor.trainer.num_test_batches[0] if editor._trainer is not None else None
        if len(self.batches) >= editor.hparams.sequential or (total is not None and batch_idx + 1 >= total):
            self.evaluate()

    def evaluate(self) -> None:
        """Evaluate every batch of the chain at the chain's final model, then start a new chain."""
        if not self.batches:
            return
        editor, length = self.editor, len(self.batches)
        for position, (batch, latency) in enumerate(self.batches):
            out = editor.evaluate_batch(batch, deltas=self.deltas, latency=latency)
            extra = {"chain": self.index, "chain_position": position, "chain_length": length}
            editor._finish_eval(batch, "test", out, extra)
        self.reset()
