"""The chunked evaluation reports what the full-logits evaluation reported, for every editor and layout.

``tests/fixtures/eval_reference.json`` holds the per-record rows (``results.json``'s, sample outputs included)
and the metric values of test batches (k = 1 and 3), sequential chains and predict steps of every editor on
a decoder-only, an encoder-decoder and a classifier model, as the evaluation of commit 75248c0 computed them
from full ``[rows, positions, vocab]`` logits (:mod:`tests.editors.eval_cases`). The evaluation now keeps
only scores at the scored positions, ``eval_chunk`` rows at a time: every count, flag and string must be the
same, and every float the same up to float32 rounding (a sum in another order).
"""

import json
import math
from pathlib import Path

import pytest
import torch

from mendlight.editors.scores import RowScores, fill_scores
from mendlight.losses import binary_as_tokens, kl_locality, kl_terms
from mendlight.metrics import sequence_correct, token_nll
from tests.editors.eval_cases import case_names, run

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "eval_reference.json").read_text())


def _assert_same(got, want, where: str) -> None:
    """Equal structure and values; floats to float32 rounding (``rel 1e-5``), everything else exactly."""
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}/{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-5, abs=1e-7), where
    else:
        assert got == want and type(got) is type(want), where


def test_the_reference_covers_every_editor_layout_and_protocol():
    assert sorted(REFERENCE) == sorted(case_names())
    editors = {name.split("/")[2] for name in REFERENCE}
    assert editors == {"MEND", "MALMEN", "FT", "FTKL", "ENN", "KE", "Cache"}
    rows = [row for case in REFERENCE.values() for row in case["rows"]]
    # the cases exercise the numbers: successes and failures, partial agreement, known and unknown facts
    assert {row["es_edit"] for row in rows} == {0, 1}
    assert {row["known"] for row in rows} == {True, False, None}
    assert 0 < sum(0 < row["loc_agree_sum"] < row["loc_total"] for row in rows) < len(rows)
    assert all(row["loc_pre_nll"] > 0 for row in rows if row["loc_tokens"])


#: Every case in chunks of two rows (chunks that straddle the row groups); the batches of three edits also
#: in one pass over all their rows.
CHUNKINGS = [(name, 2) for name in case_names()] + [
    (name, None) for name in case_names() if name.startswith("batch/") and name.endswith("/3")
]


def _reference_ppl_rounding(case: dict) -> float:
    """The rounding in the reference's logged perplexity drawdown, and what the rows' tolerance allows it.

    The reference subtracted the two perplexities as float32 numbers; the metric now subtracts them in
    float64 (the formula it shares with ``reporting.summarise``). The reference rounded each perplexity and
    the difference to float32, and the value logged now is rounded to float32 once: four half units in the
    last place of at most the larger perplexity, ``2 eps ppl``, with the perplexities from the reference's
    own rows.

    The rows' locality NLLs themselves are held to ``rel 1e-5`` (float32 sums in another order), and a
    perplexity is ``exp`` of their token mean m: a relative change r of the NLLs moves it by ``ppl · m · r``,
    so the drawdown may move by ``1e-5 · (ppl_pre · m_pre + ppl_post · m_post)`` while every row still
    matches. (Comparing the perplexities at ``rel 1e-5`` would ask the NLLs for ``1e-5 / m``: at the mean
    NLLs of 5–20 of these tiny random models, 1e-6 or better, which a fresh install's kernels need not give.)
    """
    rows = case["rows"]
    tokens = sum(r["loc_tokens"] or 0 for r in rows)
    if not tokens:
        return 0.0
    means = [sum(r[key] or 0.0 for r in rows) / tokens for key in ("loc_pre_nll", "loc_post_nll")]
    ppls = [math.exp(m) for m in means]
    rows_tolerance = 1e-5 * sum(ppl * abs(m) for ppl, m in zip(ppls, means, strict=True))
    return 2 * float(torch.finfo(torch.float32).eps) * max(ppls) + rows_tolerance


@pytest.mark.parametrize(("name", "eval_chunk"), CHUNKINGS)
def test_chunked_scores_report_the_full_logits_numbers(name, eval_chunk, tmp_path):
    got = json.loads(json.dumps(run(name, tmp_path, eval_chunk=eval_chunk)))  # as results.json holds it
    want = REFERENCE[name]
    if isinstance(want.get("metrics", {}).get("ppl_drawdown"), float):
        dd = want["metrics"]["ppl_drawdown"]
        assert got["metrics"]["ppl_drawdown"] == pytest.approx(
            dd, rel=1e-5, abs=1e-7 + _reference_ppl_rounding(want)
        )
        got["metrics"]["ppl_drawdown"] = dd  # compared; the rest must match as below
    _assert_same(got, want, name)


def test_scores_of_packed_logits_are_those_of_the_full_logits():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 7)
    labels = torch.tensor([[-100, 2, 3, -100, -100], [-100] * 5, [-100, 4, -100, 6, 1]])
    at = (labels != -100) | torch.tensor([[True] * 5, [False] * 5, [False] * 5])  # KL positions too
    scores = RowScores.empty(labels)
    fill_scores(scores, 0, logits[:2][at[:2]], at[:2])  # two chunks of rows
    fill_scores(scores, 2, logits[2:][at[2:]], at[2:])
    assert torch.equal(sequence_correct(scores.pred, labels), sequence_correct(logits.argmax(-1), labels))
    scored = labels != -100
    assert torch.equal(scores.pred[scored], logits.argmax(-1)[scored])
    assert (scores.pred[~scored] == -100).all() and (scores.logp[~scored] == 0).all()
    nll, n = scores.nll()
    full_nll, full_n = token_nll(logits, labels)
    assert int(n) == int(full_n) == 5 and float(nll) == pytest.approx(float(full_nll), rel=1e-6)
    sums, counts = scores.row_nll()
    assert counts == [2, 0, 3] and sums[1] == 0.0
    assert sums[2] == pytest.approx(float(token_nll(logits[2:], labels[2:])[0]), rel=1e-6)
    assert float(scores.mean_nll()) == pytest.approx(float(full_nll) / 5, rel=1e-6)
    assert float(RowScores.empty(torch.full((2, 3), -100)).mean_nll()) == 0.0


def test_kl_terms_average_to_the_locality_kl():
    torch.manual_seed(0)
    pre, post = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    terms = kl_terms(pre[mask.bool()], post[mask.bool()])
    assert terms.shape == (5,) and (terms > 0).all()
    assert float(terms.mean()) == pytest.approx(float(kl_locality(pre, post, mask)), rel=1e-6)
    binary_pre, binary_post = torch.tensor([0.5, -2.0]), torch.tensor([1.5, -1.0])  # classifier logits
    p, q = torch.sigmoid(binary_pre), torch.sigmoid(binary_post)
    bernoulli = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    packed = kl_terms(binary_as_tokens(binary_pre)[:, 0], binary_as_tokens(binary_post)[:, 0])
    torch.testing.assert_close(packed, bernoulli)
