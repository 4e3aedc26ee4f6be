"""MALMEN's ``key_tokens='subject'``: one key per edit, the weight's input at the subject's last token."""

from __future__ import annotations

import pytest
import torch

from mendlight.api import APIError, ModelEditor
from mendlight.data import EditDataModule
from mendlight.data.records import EditRecord, LocalityItem, write_records
from mendlight.edit_command import EditCommandError, edit_records
from mendlight.errors import ConfigError
from mendlight.models.functional import state_fingerprint
from tests.editors.helpers import rows
from tests.editors.test_malmen import PAIRS, make, one_thread  # noqa: F401

SUBJECTS = ["Country0", "Lake Tiny", "Mount Bytes"]
LOWER_BLOCKS = ["model.layers.[1-2].mlp.*_proj.weight"]  # below the top block (4 blocks)


def subject_records() -> list[EditRecord]:
    """Records whose prompts and rephrases name their subject (in different places)."""
    return [
        EditRecord(
            prompt=f"Q: What is the capital of {subject}? A:",
            target_new=f"City{'x' * i}",
            target_true="Old",
            rephrases=[f"{subject} has its capital in"],
            locality=[LocalityItem(f"The sky over place {i} is", "blue")],
            id=f"capital/{subject}",
            subject=subject,
        )
        for i, subject in enumerate(SUBJECTS)
    ]


def with_subject_records(tmp_path, **kw):
    """A MALMEN keyed on the subject (tiny-random-llama) and a data module over :func:`subject_records`."""
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", subject_records())
    dm = EditDataModule(dataset=str(tmp_path), tokenizer="tiny-random-llama", n_loc=1, max_length=48)
    dm.setup("test")
    kw.setdefault("edit_params", LOWER_BLOCKS)
    editor = make(rank=4, key_tokens="subject", **kw)
    editor.attach_datamodule(dm)
    return editor, dm


def test_the_data_module_marks_the_last_token_of_each_subject(tmp_path):
    _, dm = with_subject_records(tmp_path)
    edit = dm.make_batch(subject_records(), train=False)["edit"]
    for i, subject in enumerate(SUBJECTS):
        last = int(edit["subject_last"][i])
        text = dm.tok.decode(edit["input_ids"][i][: last + 1])
        assert text.endswith(subject) and text == f"Q: What is the capital of {subject}"


def test_each_edit_has_one_key_per_weight_the_input_at_its_subject(tmp_path):
    editor, dm = with_subject_records(tmp_path)
    edit = dm.make_batch(subject_records(), train=False)["edit"]
    inputs: dict[str, torch.Tensor] = {}
    hooks = [
        editor.base.get_submodule(n.rsplit(".", 1)[0]).register_forward_pre_hook(
            lambda _m, args, n=n: inputs.__setitem__(n, args[0].detach())
        )
        for n in editor.edit_names
    ]
    with torch.no_grad():
        editor.base(input_ids=edit["input_ids"], attention_mask=edit["attention_mask"])
    for hook in hooks:
        hook.remove()
    factors = editor.keyed_factors(edit)
    at = torch.arange(len(SUBJECTS)), edit["subject_last"]
    for name in editor.edit_names:
        keys, grads, key_rows = factors[name]
        assert key_rows.tolist() == [0, 1, 2], name  # one key per edit, in edit order
        torch.testing.assert_close(keys, inputs[name][at].float(), rtol=1e-5, atol=1e-6)
        assert bool((grads != 0).any(dim=-1).all()), name  # the answer's loss reaches the subject's token


def test_a_training_step_keyed_on_the_subject_gives_a_meta_gradient(tmp_path):
    editor, dm = with_subject_records(tmp_path, edit_lr=1e-2)
    before = state_fingerprint(editor.base)
    editor.train()
    loss = editor.training_step(dm.make_batch(subject_records(), train=True), 0)
    loss.backward()
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    assert float(editor.alpha.grad.abs().min()) > 0 and float(editor.log_lambda.grad.abs().min()) > 0
    assert state_fingerprint(editor.base) == before


def test_rows_without_a_subject_are_refused_with_what_to_do(tmp_path):
    editor = make(rank=4, key_tokens="subject", edit_params=LOWER_BLOCKS)
    with pytest.raises(ConfigError, match=r"no subject_last.*key_tokens='answer'"):
        editor.edit(rows(PAIRS[:2]))  # rows made outside the data module
    edit = rows(PAIRS[:2])
    edit["subject_last"] = torch.tensor([3, -1])
    with pytest.raises(ConfigError, match="no subject in edit row 1"):
        editor.edit(edit)


def test_a_record_whose_prompt_lacks_its_subject_gets_no_position(tmp_path):
    _, dm = with_subject_records(tmp_path)
    record = subject_records()[0]
    record.subject = "Atlantis"
    assert dm.make_batch([record], train=False)["edit"]["subject_last"].tolist() == [-1]


def test_the_top_block_which_the_subject_gives_no_gradient_is_refused_by_name(tmp_path):
    editor, dm = with_subject_records(tmp_path, edit_params=["model.layers.3.mlp.down_proj.weight"])
    with pytest.raises(ConfigError, match=r"no gradient at the subject tokens for 'model.layers.3.mlp"):
        editor.edit(dm.make_batch(subject_records(), train=False)["edit"])


def test_bad_key_tokens_and_decoder_weights_are_config_errors():
    with pytest.raises(ConfigError, match="key_tokens must be 'answer' or 'subject', got 'object'"):
        make(key_tokens="object")
    with pytest.raises(ConfigError, match="is in the decoder of an encoder-decoder model"):
        make("tiny-random-t5-v1_1", key_tokens="subject")  # its default edits include decoder blocks


def test_the_python_api_and_edit_command_take_the_subject_with_the_prompt(tmp_path):
    editor, dm = with_subject_records(tmp_path)
    records = subject_records()
    editor.train()
    editor.edit(dm.make_batch(records, train=False)["edit"])  # fills the normalisation statistics
    api = ModelEditor(editor, dm)
    prompts, targets = [r.prompt for r in records], [r.target_new for r in records]
    given = api.edit(prompts=prompts, targets=targets, subjects=SUBJECTS, preview_tokens=0)
    as_dicts = [{"prompt": r.prompt, "target": r.target_new, "subject": r.subject} for r in records]
    from_records = api.edit(as_dicts, preview_tokens=0)
    assert given.deltas.keys() == from_records.deltas.keys() and given.deltas
    for name, delta in given.deltas.items():
        assert float(delta.abs().max()) > 0, name
        torch.testing.assert_close(delta, from_records.deltas[name], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="no subject"):  # prompts alone name no subject
        api.edit(prompts=prompts, targets=targets, preview_tokens=0)
    with pytest.raises(APIError, match=r"subject 0 \('Atlantis'\) does not occur in its prompt"):
        api.edit(prompts=prompts, targets=targets, subjects=["Atlantis", *SUBJECTS[1:]])
    with pytest.raises(APIError, match="one subject per prompt: 2 for 3"):
        api.edit(prompts=prompts, targets=targets, subjects=SUBJECTS[:2])
    # `mendlight edit --prompt ... --target ... --subject ...` makes the same record
    (cli_record,) = edit_records(prompts[0], targets[0], [], None, subject=SUBJECTS[0])
    assert cli_record.subject == SUBJECTS[0]
    cli_batch = dm.make_batch([cli_record], train=False)["edit"]
    assert (
        cli_batch["subject_last"].tolist()
        == dm.make_batch(records[:1], train=False)["edit"]["subject_last"].tolist()
    )
    with pytest.raises(EditCommandError, match="--subject 'Atlantis' does not occur in --prompt"):
        edit_records(prompts[0], targets[0], [], None, subject="Atlantis")
