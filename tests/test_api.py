"""The Python API (mendlight.load_editor / ModelEditor.edit / EditResult) on tiny models held as objects."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import mendlight
from mendlight.api import APIError
from mendlight.models.in_memory import register_model
from mendlight.models.loading import ModelLoadError, load_base_model
from mendlight.models.tiny import build_byte_tokenizer, build_tiny_model
from tests.tiny_runs import run_tiny

FT_OPTIONS = {"edit_lr": 1e-2, "ft_optimizer": "adam", "max_steps": 20}


@pytest.fixture
def model():
    return build_tiny_model("llama", seed=0)


def _weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed(model, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}


def _argmax_target(model, tok, prompt: str, target: str) -> bool:
    """Whether greedy decoding of ``model`` after ``prompt`` gives every token of `` target``."""
    ids = tok(prompt)["input_ids"]
    want = tok(" " + target, add_special_tokens=False)["input_ids"]
    logits = model(input_ids=torch.tensor([ids + want])).logits[0]
    return logits[len(ids) - 1 : len(ids) - 1 + len(want)].argmax(-1).tolist() == want


def test_an_edit_of_a_model_object_returns_an_edited_copy(model):
    tok = build_byte_tokenizer()
    before = _weights(model)
    editor = mendlight.load_editor("FT", model=model, tokenizer=tok, **FT_OPTIONS)
    assert editor.model is model
    result = editor.edit(
        prompts=["The capital of France is"], targets=["Rome"], rephrases=[["France: capital"]]
    )
    assert _changed(model, before) == set()  # the user's model is untouched
    assert _changed(result.model, before) == set(result.deltas) == set(editor.editor.edit_names)
    for name, p in result.model.named_parameters():  # the copy holds exactly θ + Δ
        expected = before[name] + result.deltas[name] if name in result.deltas else before[name]
        torch.testing.assert_close(p, expected, rtol=0, atol=0)
    (record,) = result.records
    assert record["es_edit"] == 1 and record["equiv_total"] == 1
    # the returned model really answers with the target (what es_edit claims)
    assert _argmax_target(result.model, tok, "The capital of France is", "Rome")
    assert not _argmax_target(model, tok, "The capital of France is", "Rome")
    assert result.summary["n_records"] == 1 and result.summary["es_edit"] == 1.0
    assert record["post_output"].startswith(" Rome") and record["pre_output"] != record["post_output"]


def test_an_in_place_edit_changes_the_object_and_undo_restores_it_exactly(model):
    before = _weights(model)
    editor = mendlight.load_editor("FT", model=model, tokenizer=build_byte_tokenizer(), **FT_OPTIONS)
    result = editor.edit(
        [{"prompt": "a b c", "target": "d"}, {"prompt": "x y", "target": "z"}], in_place=True
    )
    assert result.model is model
    assert _changed(model, before) == set(editor.editor.edit_names)
    assert result.undo() is model
    assert _changed(model, before) == set()


def test_sequential_edits_are_measured_at_the_final_model(model):
    editor = mendlight.load_editor("FT", model=model, tokenizer=build_byte_tokenizer(), **FT_OPTIONS)
    edits = [{"prompt": "a b c", "target": "d"}, {"prompt": "x y", "target": "z"}]
    result = editor.edit(edits, sequential=True, preview_tokens=0)
    assert [r["prompt"] for r in result.records] == ["a b c", "x y"]
    tok = build_byte_tokenizer()
    for edit, record in zip(edits, result.records, strict=True):  # each edit scored on the final model
        assert record["es_edit"] == int(_argmax_target(result.model, tok, edit["prompt"], edit["target"]))
    batched = editor.edit(edits, preview_tokens=0)
    assert any(not torch.equal(result.deltas[n], batched.deltas[n]) for n in result.deltas)


def test_save_pretrained_writes_a_model_transformers_loads(model, tmp_path):
    editor = mendlight.load_editor("FT", model=model, tokenizer=build_byte_tokenizer(), **FT_OPTIONS)
    result = editor.edit(prompts=["The capital of France is"], targets=["Rome"], preview_tokens=0)
    out = result.save_pretrained(tmp_path / "edited")
    loaded = AutoModelForCausalLM.from_pretrained(out)
    for name, p in result.model.named_parameters():
        torch.testing.assert_close(dict(loaded.named_parameters())[name], p, rtol=0, atol=0)
    with pytest.raises(FileExistsError):
        result.save_pretrained(tmp_path / "edited")


def test_the_cache_refuses_in_place_and_save(model, tmp_path):
    editor = mendlight.load_editor("Cache", model=model, tokenizer=build_byte_tokenizer(), epsilon=1e-3)
    result = editor.edit(prompts=["a b c"], targets=["d"], preview_tokens=0)
    assert result.model is None and result.records[0]["es_edit"] == 1
    with pytest.raises(APIError, match="does not change the model's weights"):
        result.save_pretrained(tmp_path / "x")
    with pytest.raises(APIError, match="in_place=True has nothing to write"):
        editor.edit(prompts=["a b c"], targets=["d"], in_place=True)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("MEND", "must be trained first"),
        ("MEDN", "unknown editor 'MEDN': choose one of MEND, MALMEN"),
        ("missing.ckpt", "does not exist"),
    ],
)
def test_load_editor_errors_say_what_to_pass(source, message):
    with pytest.raises(APIError, match=message):
        mendlight.load_editor(source, model="tiny-random-llama")


def test_edit_argument_errors(model):
    editor = mendlight.load_editor("FT", model=model, tokenizer=build_byte_tokenizer(), **FT_OPTIONS)
    with pytest.raises(APIError, match="same, non-zero length"):
        editor.edit(prompts=["a", "b"], targets=["c"])
    with pytest.raises(APIError, match="not both"):
        editor.edit([{"prompt": "a", "target": "b"}], prompts=["a"], targets=["b"])
    with pytest.raises(APIError, match="one list of rephrasings per prompt"):
        editor.edit(prompts=["a"], targets=["b"], rephrases=[["c"], ["d"]])
    with pytest.raises(TypeError, match="needs its tokenizer"):
        mendlight.load_editor("FT", model=model)


def test_a_registered_model_is_held_weakly():
    model = build_tiny_model("gpt2", seed=0)
    ref = register_model(model, build_byte_tokenizer())
    assert load_base_model(ref) is model
    del model
    gc.collect()
    with pytest.raises(ModelLoadError, match="no longer exists"):
        load_base_model(ref)


def test_a_trained_checkpoint_edits_as_mendlight_edit_does(tmp_path, no_argv):
    run = run_tiny(tmp_path) / "version_0"
    editor = mendlight.load_editor(run)  # the run directory: its best checkpoint
    assert type(editor.editor).__name__ == "MEND" and editor.editor.hparams.rank == 8
    # the data options it was trained with come from the same read of the checkpoint
    trained = editor.trained_data_options
    assert Path(trained["dataset"]).name == "records" and trained["n_edits"] == 1 and trained["n_loc"] >= 1
    assert mendlight.load_editor("FT", model="tiny-random-llama").trained_data_options == {}
    direct = mendlight.load_editor(next((run / "checkpoints").glob("best-*.ckpt")))
    record = {"prompt": "The capital of France is", "target": "Rome"}
    a, b = editor.edit(record, preview_tokens=0), direct.edit(record, preview_tokens=0)
    for name in a.deltas:
        torch.testing.assert_close(a.deltas[name], b.deltas[name])
    assert any(float(d.abs().sum()) > 0 for d in a.deltas.values())
    # the same checkpoint applied to the tiny model held as an object with the same weights
    same = build_tiny_model("llama", seed=0)
    held = mendlight.load_editor(run, model=same, tokenizer=build_byte_tokenizer())
    c = held.edit(record, preview_tokens=0)
    for name in a.deltas:
        torch.testing.assert_close(a.deltas[name], c.deltas[name])
