"""End-to-end edits of the real embedded SmolLM2-135M (the GGUF is dequantised and cached once per machine).

A known fact is edited to a counterfactual target; the target must become the argmax while another fact keeps
its answer. MEND is first trained briefly on the embedded facts' training split.

FT is held to a *neighbour* (same relation and wording, another subject: Japan's capital stays Tokyo). MEND
after 120 training steps is held to an *unrelated* fact (Germany's official language stays German): a
neighbour is beyond a briefly trained MEND on this model. Measured 2026-11-24 (2 CPU threads, seeds 0 and 1,
checked every 40 steps up to 200): with the edit France→Rome, Tokyo's log-probability on "The capital of
Japan is" fell from -0.35 to between -0.65 and -9.5 and Rome became the argmax in 7 of 10 checks (18 of 20
before the fact builder added neighbours to the training locality), while German stayed the argmax in all
10 (log-probability -1.01 before, -0.97 to -1.32 after). The demo table reports neighbour locality.
"""

import pytest
import torch

from mendlight.data import EditRecord, LocalityItem
from mendlight.editors import FT, MEND
from mendlight.losses import sequence_success
from mendlight.models.functional import state_fingerprint

pytestmark = pytest.mark.real

NEIGHBOUR = LocalityItem("The capital of Japan is", "Tokyo")
UNRELATED = LocalityItem("The official language of Germany is", "German")


def _check_edit(editor, dm, fact: EditRecord):
    locality = fact.locality[0]
    batch = dm.make_batch([fact], train=False)
    before = state_fingerprint(editor.base, editor.edit_names)
    out = editor.evaluate_batch(batch)
    assert bool(out.pre_true.correct().all()), "SmolLM2 knows Paris"
    pre_target = bool(sequence_success(editor.logits([batch["edit"]])[0], batch["edit"]["labels"]).all())
    assert not pre_target, "Rome is not the unedited answer"
    assert bool(out.post_edit.correct().all()), "edit made Rome the argmax"
    assert bool(out.pre_loc.correct().all()), f"SmolLM2 knows {locality.answer}"
    assert bool(out.post_loc.correct().all()), f"{locality.answer} kept"
    assert state_fingerprint(editor.base, editor.edit_names) == before
    return out


def test_ft_edits_a_known_fact(datamodule, france_to_rome):
    ft = FT(base_model="smollm2-135m", edit_lr=1e-3, ft_optimizer="adam", max_steps=100)
    ft.eval()
    _check_edit(ft, datamodule, france_to_rome(NEIGHBOUR))
    assert 1 <= ft.last_steps <= 100


def test_mend_edits_a_known_fact_after_short_training(datamodule, france_to_rome):
    torch.manual_seed(0)
    mend = MEND(base_model="smollm2-135m", rank=256, edit_lr=1e-4, lr_lr=1e-5)
    mend.log_dict = mend.log = lambda *a, **k: None
    opt = mend.configure_optimizers()
    mend.train()
    for step, batch in enumerate(datamodule.train_dataloader()):
        loss = mend.training_step(batch, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step + 1 >= 120:
            break
    mend.eval()
    _check_edit(mend, datamodule, france_to_rome(UNRELATED))


def test_embedded_model_is_dequantised_once_into_the_cache():
    from pathlib import Path

    from mendlight.models.loading import embedded_model_file, resolve_model_dir

    cached = Path(resolve_model_dir("smollm2-135m"))
    assert (cached / "config.json").is_file() and (cached / "model.safetensors").is_file()
    assert (cached / "tokenizer.json").is_file()
    assert embedded_model_file("smollm2-135m").suffix == ".gguf"
    assert resolve_model_dir("smollm2-135m") == str(cached)  # the same cache entry is reused
