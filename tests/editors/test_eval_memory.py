"""An evaluation's peak memory grows with the number of edits k by the rows' inputs and scores only.

Before issue #14 an evaluation built the logits of every row group whole, ``[rows, positions, vocabulary]``
floats, and more than once (pre and post edit, the log-softmax): some 3 KB a position with the tiny models'
259 tokens (4.8, 37 and 151 MiB at k = 8, 64 and 256 edits of the case below), some 400–650 KB a position
with SmolLM2's 49,152 (34 GB at k = 1,000). Now the scoring passes run ``eval_chunk`` rows at a time and keep
a few bytes a position (:mod:`mendlight.editors.scoring`), and the edits of MEND, FT and ENN run
``lm_chunk`` rows at a time: what grows with k is the batch's stacked inputs and its scores.
"""

import pytest
import torch

from mendlight.profiling import TensorPeakMemory
from tests.editors.eval_cases import records, setup

#: Bytes a position may add to the peak: the stacked inputs (ids, mask, labels: three longs, 24 bytes) and
#: the scores (a long argmax and a float log-probability, 12 bytes, kept per group and model), with room
#: for the per-row tensors of the rows and metrics. A float32 logits row of the tiny vocabulary is 1,036.
BYTES_PER_POSITION = 64


def _peak(editor, dm, kind: str, k: int) -> tuple[int, int]:
    """Peak bytes of one evaluated test batch of k edits, and the batch's positions (rows × width)."""
    batch = dm.make_batch(records(kind, k), train=False)
    groups = [batch[g] for g in ("edit", "equiv", "loc", "true")]
    positions = sum(g["labels"].shape[0] for g in groups) * max(g["labels"].shape[1] for g in groups)
    with torch.no_grad(), TensorPeakMemory() as memory:  # as Lightning's test loop runs it
        editor.test_step(batch, 0)
    return memory.peak, positions


@pytest.mark.parametrize("editor_name", ["MEND", "FT", "ENN"])
def test_peak_memory_grows_by_the_rows_inputs_and_scores_not_by_vocabulary(editor_name, tmp_path):
    editor, dm, kind = setup("gpt2", editor_name, tmp_path, n_samples=0, lm_chunk=4, eval_chunk=4)
    (small, n_small), (large, n_large) = (_peak(editor, dm, kind, k) for k in (8, 128))
    per_position = (large - small) / (n_large - n_small)
    logits_row = 4 * editor.vocab_size
    print(f"{editor_name}: {small / 2**20:.2f} MiB (k=8), {large / 2**20:.2f} (k=128), {per_position:.0f} B")
    assert n_large > 15 * n_small  # k=128 has ~16 times the positions of k=8 (and far more rows than chunks)
    assert per_position < BYTES_PER_POSITION < logits_row / 16
    assert large < 3 * small  # the chunks' activations and the edit dominate both
    # in one pass (no chunks) the same evaluation holds every row's activations: the measurement sees them
    editor.hparams.eval_chunk = editor.hparams.lm_chunk = None
    unchunked, _ = _peak(editor, dm, kind, 128)
    assert unchunked - small > 5 * (large - small)
