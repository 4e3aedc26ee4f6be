import math

import torch
import torch.nn.functional as F

from mendlight.losses import binary_as_tokens, kl_locality, masked_nll, sequence_success


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
