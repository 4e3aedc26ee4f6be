"""The baseline editors on the real embedded SmolLM2-135M: FT+KL, ENN, KE and the caching editor.

FT+KL and Cache edit a known fact (France's capital → Rome) and are held to what the paper's protocol
measures: the target becomes the argmax while an unrelated fact keeps its answer. ENN and KE train on the real
model (their memory and second-order paths run at this scale): a few steps on one training batch must lower
its loss, and their edits leave the frozen base untouched.
"""

import pytest
import torch

from mendlight.data import LocalityItem
from mendlight.editors import ENN, FTKL, KE, Cache
from mendlight.models.functional import state_fingerprint

pytestmark = pytest.mark.real

UNRELATED = LocalityItem("The official language of Germany is", "German")


def _quiet(editor):
    editor.log_dict = editor.log = lambda *a, **k: None
    return editor


def _edited_and_kept(editor, dm, fact):
    batch = dm.make_batch([fact], train=False)
    before = state_fingerprint(editor.base, editor.edit_names)
    out = editor.evaluate_batch(batch)
    assert bool(out.pre_true.correct().all()), "SmolLM2 knows Paris"
    assert bool(out.post_edit.correct().all()), "Rome became the argmax"
    assert bool(out.post_loc.correct().all()), "German kept"
    assert state_fingerprint(editor.base, editor.edit_names) == before


def test_ft_kl_edits_a_known_fact(datamodule, france_to_rome):
    ft_kl = FTKL(base_model="smollm2-135m", edit_lr=1e-3, ft_optimizer="adam", max_steps=100)
    ft_kl.attach_datamodule(datamodule)
    ft_kl.eval()
    _edited_and_kept(ft_kl, datamodule, france_to_rome(UNRELATED))
    assert 1 <= ft_kl.last_steps < 100


def test_cache_answers_the_edit_and_leaves_an_unrelated_fact(datamodule, france_to_rome):
    cache = Cache(base_model="smollm2-135m", epsilon=1.0)
    cache.eval()
    _edited_and_kept(cache, datamodule, france_to_rome(UNRELATED))


def _learns_one_batch(editor, dm, fact, steps):
    """Train on one real training batch repeatedly: the outer loss must fall (gradients reach the editor)."""
    batch = dm.make_batch(dm.records("train")[:1], train=True)
    opt = editor.configure_optimizers()
    editor.train()
    losses = []
    for step in range(steps):
        loss = editor.training_step(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    editor.eval()
    fact = dm.make_batch([fact], train=False)
    before = state_fingerprint(editor.base)
    out = editor.evaluate_batch(fact)
    assert state_fingerprint(editor.base) == before and torch.isfinite(out.post_edit.logp).all()
    assert losses[-1] < losses[0], losses
    return losses


def test_enn_trains_on_the_real_model(datamodule, france_to_rome):
    torch.manual_seed(0)
    enn = _quiet(ENN(base_model="smollm2-135m", edit_lr=1e-3))
    _learns_one_batch(enn, datamodule, france_to_rome(UNRELATED), steps=5)


def test_ke_trains_on_the_real_model(datamodule, france_to_rome):
    torch.manual_seed(0)
    ke = _quiet(KE(base_model="smollm2-135m", optimizer=lambda p: torch.optim.Adam(p, lr=1e-4)))
    _learns_one_batch(ke, datamodule, france_to_rome(UNRELATED), steps=5)
