"""MALMEN's ``prior='keys'``: the regulariser weighted by the second moment of training edits' keys."""

from __future__ import annotations

import pytest
import torch

from mendlight.data import EditDataModule
from mendlight.data.records import write_records
from mendlight.editors.malmen_prior import PRIOR_RIDGE, normalised_second_moment
from mendlight.errors import ConfigError
from tests.editors.test_malmen import make, one_thread  # noqa: F401
from tests.editors.test_malmen_subject_keys import subject_records


def with_records(tmp_path, **kw):
    """A MALMEN with the keys prior on tiny-random-llama and a data module over three records per split."""
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", subject_records())
    dm = EditDataModule(dataset=str(tmp_path), tokenizer="tiny-random-llama", n_loc=1, max_length=48)
    dm.setup("fit")
    editor = make(rank=4, prior="keys", **kw)
    editor.attach_datamodule(dm)
    return editor, dm


def test_the_prior_is_the_normalised_second_moment_of_the_first_training_edits_keys(tmp_path):
    editor, dm = with_records(tmp_path, prior_records=2)
    rows = dm.make_batch(dm.records("train")[:2], train=False)["edit"]
    factors = editor.key_factors(rows)
    for name in editor.edit_names:
        keys = factors[name][0].double()
        expected = normalised_second_moment(keys.T @ keys, keys.shape[0]).float()
        prior = editor.key_prior(name)
        torch.testing.assert_close(prior, expected)
        size = prior.shape[0]
        assert float(prior.trace()) == pytest.approx(size * (1 + PRIOR_RIDGE), rel=1e-5)
        torch.testing.assert_close(prior, prior.T)
        assert float(torch.linalg.eigvalsh(prior.double()).min()) >= PRIOR_RIDGE * 0.999
        three = editor.key_factors(dm.make_batch(dm.records("train"), train=False)["edit"])[name][0].double()
        assert not torch.allclose(prior, normalised_second_moment(three.T @ three, len(three)).float())


def test_each_weight_is_solved_with_its_own_prior(tmp_path, monkeypatch):
    editor, dm = with_records(tmp_path)
    editor.train()
    batch = dm.make_batch(subject_records()[:2], train=False)
    editor.edit(batch["edit"])  # fills the normalisation statistics
    editor.eval()
    import mendlight.editors.malmen as malmen_module

    seen = {}
    original = malmen_module.ridge_update

    def spy(keys, values, width, log_lambda, params, chunk, prior=None):
        seen[keys.shape[1], len(seen)] = prior
        return original(keys, values, width, log_lambda, params, chunk, prior=prior)

    monkeypatch.setattr(malmen_module, "ridge_update", spy)
    with_prior = editor.edit(batch["edit"])
    passed = list(seen.values())
    assert len(passed) == len(editor.edit_names)
    for name, prior in zip(editor.edit_names, passed, strict=True):
        assert prior is editor.key_prior(name)
    monkeypatch.setattr(malmen_module, "ridge_update", original)
    editor.hparams.prior = "identity"
    plain = editor.edit(batch["edit"])
    assert any(not torch.allclose(with_prior[n], plain[n]) for n in editor.edit_names)


def test_the_identity_needs_no_data_and_the_keys_prior_asks_for_it():
    editor = make(rank=4)
    assert editor.key_prior(editor.edit_names[0]) is None
    keyed = make(rank=4, prior="keys")
    with pytest.raises(ConfigError, match=r"attach_datamodule"):
        keyed.key_prior(keyed.edit_names[0])
    with pytest.raises(ConfigError, match="prior must be one of identity, keys"):
        make(rank=4, prior="covariance")
