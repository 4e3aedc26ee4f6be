import math

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from mendlight.metrics import (
    PROTOCOLS,
    AccuracyDrawdown,
    EditSuccess,
    LocalityAgreement,
    PerplexityDrawdown,
    has_target,
    sequence_correct,
    token_nll,
)

X = -100


def t(rows):
    return torch.tensor(rows, dtype=torch.long)


# ---------- helpers


def test_has_target_and_sequence_correct():
    labels = t([[X, 5, 6], [X, X, X], [1, X, 2], [X, 7, X]])
    pred = t([[9, 5, 6], [0, 0, 0], [1, 3, 0], [7, 7, 7]])
    assert has_target(labels).tolist() == [True, False, True, True]
    # row0: scored 5,6 match; row1: no target -> False; row2: pos2 mismatch; row3: only pos1 scored, matches
    assert sequence_correct(pred, labels).tolist() == [True, False, False, True]


def test_sequence_correct_classification():
    assert sequence_correct(t([1, 0, 1, 0]), t([1, 1, 1, X])).tolist() == [True, False, True, False]
    assert has_target(t([1, X])).tolist() == [True, False]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        sequence_correct(t([[1, 2]]), t([[1, 2, 3]]))
    with pytest.raises(ValueError):
        has_target(torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError):
        token_nll(torch.zeros(2, 3, 4), t([[1, 2]]))


def test_token_nll_matches_manual_log_softmax():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, dtype=torch.float16)
    labels = t([[1, X, 4], [X, X, 0]])
    nll, n = token_nll(logits, labels)
    lf = logits.float()
    manual = 0.0
    for b, i, y in [(0, 0, 1), (0, 2, 4), (1, 2, 0)]:
        row = lf[b, i]
        manual -= (row[y] - torch.log(torch.exp(row).sum())).item()
    assert nll.dtype == torch.float32
    assert n.item() == 3
    assert nll.item() == pytest.approx(manual, rel=1e-5)


def test_token_nll_no_scored_tokens_and_grad():
    logits = torch.randn(1, 2, 3, requires_grad=True)
    nll, n = token_nll(logits, t([[X, X]]))
    assert nll.item() == 0.0 and n.item() == 0
    nll, _ = token_nll(logits, t([[0, X]]))
    nll.backward()
    assert logits.grad is not None and logits.grad[0, 1].abs().sum() == 0


# ---------- EditSuccess


def test_edit_success_masking_and_empty_rows():
    m = EditSuccess()
    labels = t([[X, 5, 6], [X, X, X], [1, X, 2], [X, 7, X]])
    pred = t([[9, 5, 6], [0, 0, 0], [1, 3, 0], [7, 7, 7]])
    m.update(pred, labels)
    # 3 rows counted (the empty row is ignored), 2 successes
    assert m.total.item() == 3 and m.correct.item() == 2
    assert m.compute().item() == pytest.approx(2 / 3)


def test_edit_success_accumulates_and_resets():
    m = EditSuccess()
    m.update(t([[1, 2]]), t([[1, 2]]))  # success
    m.update(t([[1, 2], [3, 4]]), t([[1, 3], [X, 4]]))  # fail, success
    m.update(t([1, 0, 1]), t([1, 1, X]))  # classification: success, fail, ignored
    assert m.compute().item() == pytest.approx(3 / 5)
    m.reset()
    m.update(t([[0]]), t([[1]]))
    assert m.compute().item() == 0.0


def test_edit_success_no_rows_is_nan():
    m = EditSuccess()
    m.update(t([[1, 2]]), t([[X, X]]))
    assert math.isnan(m.compute().item())


def test_metric_attributes():
    for cls, hib in [
        (EditSuccess, True),
        (AccuracyDrawdown, False),
        (PerplexityDrawdown, False),
        (LocalityAgreement, True),
    ]:
        assert cls.full_state_update is False
        assert cls.is_differentiable is False
        assert cls.higher_is_better is hib
        m = cls()
        assert m._reductions and all(fx is dim_zero_sum for fx in m._reductions.values())


# ---------- AccuracyDrawdown


def test_accuracy_drawdown_hand_computed():
    m = AccuracyDrawdown()
    labels = t([[X, 1, 2], [X, 3, X], [4, 4, 4], [X, X, X]])
    pre = t([[0, 1, 2], [9, 3, 9], [4, 4, 0], [0, 0, 0]])  # correct: yes, yes, no (empty ignored)
    post = t([[0, 1, 0], [9, 3, 9], [4, 4, 4], [1, 1, 1]])  # correct: no, yes, yes
    m.update(pre, post, labels)
    m.update(t([1, 0]), t([0, 0]), t([1, 0]))  # pre: 2 correct, post: 1 correct
    # rows=5, pre_correct=4, post_correct=3
    pre_acc, post_acc = m.accuracies()
    assert pre_acc.item() == pytest.approx(4 / 5)
    assert post_acc.item() == pytest.approx(3 / 5)
    assert m.compute().item() == pytest.approx(1 / 5)
    m.reset()
    m.update(pre[:1], pre[:1], labels[:1])
    assert m.compute().item() == 0.0


def test_accuracy_drawdown_negative_when_edit_helps():
    m = AccuracyDrawdown()
    m.update(t([[0, 0]]), t([[1, 2]]), t([[1, 2]]))
    assert m.compute().item() == pytest.approx(-1.0)


# ---------- PerplexityDrawdown


def test_perplexity_drawdown_token_weighted():
    m = PerplexityDrawdown()
    m.update(torch.tensor(2.0), torch.tensor(3.0), torch.tensor(4))
    m.update(1.0, 3.0, 2)
    # pre: 3/6 = 0.5, post: 6/6 = 1.0 (token-weighted, not mean of per-batch perplexities)
    pre_ppl, post_ppl = m.perplexities()
    assert pre_ppl.item() == pytest.approx(math.exp(0.5), rel=1e-6)
    assert post_ppl.item() == pytest.approx(math.e, rel=1e-6)
    assert m.compute().item() == pytest.approx(math.e - math.exp(0.5), rel=1e-6)
    m.reset()
    m.update(0.0, 0.0, 0)
    assert math.isnan(m.compute().item())


def test_perplexity_drawdown_with_token_nll():
    torch.manual_seed(1)
    pre_logits, post_logits = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    labels = t([[1, 2, X, X], [X, 3, 4, 5]])
    pre_nll, n = token_nll(pre_logits, labels)
    post_nll, _ = token_nll(post_logits, labels)
    m = PerplexityDrawdown()
    m.update(pre_nll, post_nll, n)
    expected = math.exp(post_nll.item() / 5) - math.exp(pre_nll.item() / 5)
    assert m.compute().item() == pytest.approx(expected, rel=1e-5)


# ---------- LocalityAgreement


def test_locality_agreement_hand_computed():
    m = LocalityAgreement()
    labels = t([[X, 1, 1, 1], [X, X, 2, 2], [X, X, X, X]])
    pre = t([[5, 29, 234, 334], [0, 0, 7, 8], [1, 2, 3, 4]])
    post = t([[6, 29, 234, 333], [1, 1, 7, 9], [0, 0, 0, 0]])
    m.update(pre, post, labels)
    # row0: 2/3 agree (EasyEdit README example), row1: 1/2, row2 ignored
    assert m.total.item() == 2
    assert m.compute().item() == pytest.approx((2 / 3 + 1 / 2) / 2)
    m.update(t([1, 0]), t([1, 1]), t([0, 0]))  # classification: 1, 0
    assert m.compute().item() == pytest.approx((2 / 3 + 1 / 2 + 1 + 0) / 4)
    m.reset()
    m.update(pre[2:], post[2:], labels[2:])
    assert math.isnan(m.compute().item())


def test_forward_returns_batch_value():
    m = EditSuccess()
    batch = m(t([[1, 2], [0, 0]]), t([[1, 2], [1, 2]]))
    assert batch.item() == pytest.approx(0.5)
    m(t([[1, 2]]), t([[1, 2]]))
    assert m.compute().item() == pytest.approx(2 / 3)


def test_protocols_keys():
    expected = {
        "es",
        "es_edit",
        "es_equiv",
        "acc_drawdown",
        "ppl_drawdown",
        "locality",
        "edit_latency_s",
        "known_fraction",
    }
    assert set(PROTOCOLS) == expected
    assert all(isinstance(v, str) and len(v) > 20 for v in PROTOCOLS.values())


def test_the_metrics_and_the_row_summary_share_one_formula_each():
    from mendlight.metrics import perplexity_drawdown_of
    from mendlight.reporting import summarise

    # perplexity drawdown: token-weighted; an overflowing perplexity is inf, inf - inf is "no data"
    metric = PerplexityDrawdown()
    metric.update(torch.tensor(3.0), torch.tensor(5.0), torch.tensor(2))
    assert float(metric.compute()) == pytest.approx(math.exp(2.5) - math.exp(1.5))
    rows = [{"loc_pre_nll": 3.0, "loc_post_nll": 5.0, "loc_tokens": 2}]
    assert summarise(rows)["ppl_drawdown"] == perplexity_drawdown_of(3.0, 5.0, 2)
    assert float(metric.compute()) == pytest.approx(summarise(rows)["ppl_drawdown"], rel=1e-7)
    overflow = PerplexityDrawdown()
    overflow.update(1.0, 1e6, 1)
    assert float(overflow.compute()) == math.inf == perplexity_drawdown_of(1.0, 1e6, 1)
    both = PerplexityDrawdown()
    both.update(1e6, 1e6, 1)
    assert math.isnan(float(both.compute())) and perplexity_drawdown_of(1e6, 1e6, 1) is None
    assert summarise([{"loc_pre_nll": 1e6, "loc_post_nll": 1e6, "loc_tokens": 1}])["ppl_drawdown"] is None

    # accuracy drawdown and edit success: the same counts give the same number either way
    drawdown = AccuracyDrawdown()
    labels = torch.tensor([[-100, 1], [-100, 2], [-100, 3]])
    drawdown.update(torch.tensor([[0, 1], [0, 2], [0, 0]]), torch.tensor([[0, 1], [0, 0], [0, 0]]), labels)
    loc_rows = [{"loc_pre_correct": 2, "loc_post_correct": 1, "loc_total": 3}]
    assert (
        float(drawdown.compute())
        == pytest.approx(summarise(loc_rows)["acc_drawdown"])
        == pytest.approx(1 / 3)
    )
    assert math.isnan(float(EditSuccess().compute())) and summarise([])["es"] is None
