"""experiments/key_transfer.py: how much of a least-squares edit the rephrases' keys receive."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "key_transfer.py"
spec = importlib.util.spec_from_file_location("key_transfer", SCRIPT)
key_transfer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(key_transfer)


@pytest.mark.parametrize("n_keys", [5, 40])  # fewer keys than dimensions (dual solve) and more (primal)
def test_mix_weights_are_the_ridge_update_read_at_the_queries(n_keys):
    torch.manual_seed(0)
    keys, queries = torch.randn(n_keys, 16, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    values = torch.randn(n_keys, 4, dtype=torch.float64)
    update = torch.linalg.solve(keys.T @ keys + 0.3 * torch.eye(16, dtype=torch.float64), keys.T @ values)
    weights = key_transfer.mix_weights(keys, queries, 0.3)
    assert weights.shape == (3, n_keys)
    torch.testing.assert_close(weights @ values, queries @ update)  # h(u')ᵀV = u'ᵀΔW


def test_a_rephrase_with_its_edits_key_gets_the_whole_shift_and_no_cross_talk():
    keys = torch.eye(6)  # orthogonal keys: edit 0 owns rows 0-1, edit 1 rows 2-3, edit 2 rows 4-5
    edits = [keys[0:2], keys[2:4], keys[4:6]]
    transfer, cross_talk, own_fit = key_transfer.measure_group(edits, [(1, keys[2:4].clone())], 1e-9)
    assert (
        transfer == pytest.approx(1.0) and cross_talk == pytest.approx(0.0) and own_fit == pytest.approx(1.0)
    )
    # half of the rephrase's key along its own edit's, half along another edit's: both weights 1/2
    mixed = (keys[2:4] + keys[4:6]) / 2
    transfer, cross_talk, _ = key_transfer.measure_group(edits, [(1, mixed)], 1e-9)
    assert transfer == pytest.approx(0.5) and cross_talk == pytest.approx(0.5)
    # the edit's own other answer token is not cross-talk
    transfer, cross_talk, _ = key_transfer.measure_group(edits, [(1, keys[[3, 3]])], 1e-9)
    assert transfer == pytest.approx(0.5) and cross_talk == pytest.approx(0.0)


def test_a_regulariser_shrinks_what_a_lone_key_passes_on():
    key = torch.tensor([[3.0, 4.0]])  # |u|² = 25
    transfer, _, own_fit = key_transfer.measure_group([key], [(0, key.clone())], 25.0)
    assert transfer == pytest.approx(0.5) and own_fit == pytest.approx(0.5)  # |u|² / (|u|² + λ)


def test_rephrases_whose_target_tokens_do_not_match_are_left_out():
    keys = torch.eye(4)
    assert key_transfer.measure_group([keys[:2], keys[2:]], [(0, keys[:3])], 1e-6) is None


def test_the_script_measures_every_block_of_a_tiny_model_and_writes_its_tables(tmp_path):
    out = tmp_path / "transfer"
    key_transfer.main(["--model", "tiny-random-llama", "--ks", "1", "2", "--singles", "2", "--out", str(out)])
    payload = json.loads(out.with_suffix(".json").read_text())
    rows = payload["rows"]
    assert {(r["k"], r["weight"]) for r in rows} == {(k, w) for k in (1, 2) for w in ("up_proj", "down_proj")}
    assert sorted({r["block"] for r in rows}) == [0, 1, 2, 3] and len(rows) == 2 * 2 * 4 * 2
    for row in rows:
        assert row["groups"] >= 1 and row["cross_talk"] >= 0.0
        if row["k"] == 1:
            assert row["cross_talk"] == 0.0  # a lone edit has no other edit's keys
    assert payload["command"] == (
        f"python experiments/key_transfer.py --model tiny-random-llama --ks 1 2 --singles 2 --out {out}"
    )
    text = out.with_suffix(".md").read_text()
    assert "| block | up_proj k=1 | up_proj k=2 | down_proj k=1 | down_proj k=2 |" in text


def test_subject_keys_are_one_per_row_at_the_subjects_last_token(tmp_path):
    from mendlight.data.encoding import CausalEncoder
    from mendlight.models.loading import load_tokenizer

    tok = load_tokenizer("tiny-random-llama")
    texts = ["Q: Where is Lake Tiny? A: Here", "Lake Tiny lies in", "Nothing to see"]
    encoded = [tok(t, add_special_tokens=True)["input_ids"] for t in texts]
    width = max(len(e) for e in encoded)
    rows = {
        "input_ids": torch.tensor([e + [0] * (width - len(e)) for e in encoded]),
        "attention_mask": torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded]),
    }
    mask = key_transfer.subject_positions(rows, texts, ["Lake Tiny"] * 3, CausalEncoder(tok, max_length=64))
    assert mask.sum(dim=1).tolist() == [1, 1, 0]  # the third row does not name the subject
    for i in range(2):
        last = int(mask[i].nonzero())
        assert tok.decode(rows["input_ids"][i][: last + 1]).endswith("Lake Tiny")
    out = tmp_path / "subject"
    key_transfer.main(["--model", "tiny-random-llama", "--keys", "subject", "--ks", "2", "--out", str(out)])
    assert {r["k"] for r in json.loads(out.with_suffix(".json").read_text())["rows"]} == {2}


def test_non_positive_counts_are_refused(capsys):
    with pytest.raises(SystemExit):
        key_transfer.main(["--ks", "0"])
    assert "positive integers" in capsys.readouterr().err


def test_whitened_keys_give_the_solve_under_the_covariance_regulariser():
    torch.manual_seed(0)
    samples = torch.randn(400, 8, dtype=torch.float64) @ torch.randn(8, 8, dtype=torch.float64)
    transform, scale = key_transfer.whitener(samples, ridge=0.0)
    second_moment = (samples @ transform).T @ (samples @ transform) / len(samples)
    torch.testing.assert_close(second_moment, torch.eye(8, dtype=torch.float64))
    c0 = samples.T @ samples / len(samples)
    assert scale == pytest.approx(float(c0.trace()) / 8)
    # read at raw queries, the whitened ridge solve is argmin |KΔW − V|² + λ tr(ΔWᵀ C₀ ΔW)
    keys, queries = torch.randn(5, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    values = torch.randn(5, 2, dtype=torch.float64)
    update = torch.linalg.solve(keys.T @ keys + 0.7 * c0, keys.T @ values)
    weights = key_transfer.mix_weights(keys @ transform, queries @ transform, 0.7)
    torch.testing.assert_close(weights @ values, queries @ update)


def test_the_script_whitens_by_training_keys(tmp_path):
    out = tmp_path / "whitened"
    args = ["--model", "tiny-random-llama", "--ks", "2", "--whiten", "train", "--whiten-records", "8"]
    key_transfer.main([*args, "--out", str(out)])
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert len(rows) == 2 * 4 * 2 and all(0.0 <= r["own_fit"] <= 1.0 + 1e-9 for r in rows)
    assert "--whiten train" in json.loads(out.with_suffix(".json").read_text())["command"]
