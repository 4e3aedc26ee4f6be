import math

import torch
import torch.nn.functional as F

from mendlight.losses import binary_as_tokens, edit_nll, kl_locality, masked_nll, sequence_success


def test_binary_nll_is_bce_with_logits_over_labelled_rows():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0], requires_grad=True)
    labels = torch.tensor([1, 1, 0, -100])
    expected = F.binary_cross_entropy_with_logits(logits[:3], labels[:3].float())
    got = masked_nll(logits, labels)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert logits.grad is not None and float(logits.grad[3]) == 0.0


def test_binary_kl_is_the_closed_form_bernoulli_kl():
    a = torch.tensor([1.5, -0.3, 0.0])
    b = torch.tensor([0.2, 0.7, -2.0])
    closed = (
        torch.sigmoid(a) * (F.logsigmoid(a) - F.logsigmoid(b))
        + torch.sigmoid(-a) * (F.logsigmoid(-a) - F.logsigmoid(-b))
    ).mean()
    got = kl_locality(a, b, torch.ones(3, dtype=torch.long))
    torch.testing.assert_close(got, closed)
    assert float(kl_locality(a, a, torch.ones(3, dtype=torch.long))) == 0.0


def test_binary_success_is_the_sign_of_the_logit():
    logits = torch.tensor([0.1, -0.1, 0.0, 4.0])
    labels = torch.tensor([1, 0, 1, -100])
    assert sequence_success(logits, labels).tolist() == [True, True, False, False]


def test_binary_as_tokens_shapes_and_probabilities():
    logits, labels = binary_as_tokens(torch.tensor([0.0, math.log(3.0)]), torch.tensor([0, 1]))
    assert logits.shape == (2, 1, 2) and labels.shape == (2, 1)
    torch.testing.assert_close(logits.softmax(-1)[1, 0], torch.tensor([0.25, 0.75]))


def test_token_losses_unchanged_for_sequences():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[-100, 1, 2], [3, -100, -100]])
    expected = F.cross_entropy(logits.reshape(-1, 5), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(masked_nll(logits, labels), expected)


def test_edit_nll_sums_each_edit_rows_mean():
    logits = torch.randn(3, 4, 6)
    labels = torch.tensor([[-100, 1, 2, 3], [4, -100, -100, -100], [-100, -100, -100, -100]])
    per_row = [F.cross_entropy(logits[i], labels[i], ignore_index=-100) for i in range(2)]
    torch.testing.assert_close(edit_nll(logits, labels), per_row[0] + per_row[1])  # the empty row adds 0
    # one edit row: the same as the token mean
    torch.testing.assert_close(edit_nll(logits[:1], labels[:1]), masked_nll(logits[:1], labels[:1]))


def test_edit_nll_gradient_of_an_edit_does_not_depend_on_the_others():
    """Each edit row's gradient is what it is alone (a token mean over k rows would scale it by ~1/k)."""
    logits = torch.randn(5, 3, 7, requires_grad=True)
    labels = torch.tensor([[-100, 2, 3]] * 5)
    (alone,) = torch.autograd.grad(edit_nll(logits[:1], labels[:1]), logits)
    (together,) = torch.autograd.grad(edit_nll(logits, labels), logits)
    torch.testing.assert_close(together[0], alone[0])
    (mean_grad,) = torch.autograd.grad(masked_nll(logits, labels), logits)
    torch.testing.assert_close(mean_grad[0], alone[0] / 5)


def test_edit_nll_binary_rows_are_edits():
    logits = torch.tensor([2.0, -1.0, 0.5])
    labels = torch.tensor([1, 1, -100])
    expected = F.binary_cross_entropy_with_logits(logits[:2], labels[:2].float(), reduction="sum")
    torch.testing.assert_close(edit_nll(logits, labels), expected)
    assert float(edit_nll(logits, torch.full((3,), -100))) == 0.0
