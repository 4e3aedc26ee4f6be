import pytest
import torch

from mendlight.data import EditDataModule, EditRecord, LocalityItem
from mendlight.data.records import write_records
from mendlight.editors import Cache
from mendlight.editors.cache import ANSWER_MARGIN, CacheEdit, input_mask
from mendlight.editors.cache_epsilon import DistanceProfile, distance_profile, pick_epsilon
from mendlight.metrics import token_nll

TINY = "tiny-random-llama"


def _record(i):
    return EditRecord(
        prompt=f"The capital of Country{i} is",
        target_new=f"City{i}",
        target_true="Old",
        rephrases=[f"The capital of Country{i} is:", f"Something else entirely {i * 7}"],
        locality=[LocalityItem(f"An unrelated question number {i}?", "no")],
        id=f"r{i}",
    )


@pytest.fixture
def dm():
    return EditDataModule(tokenizer=TINY, n_loc=1)


def test_input_mask_is_the_prompt_of_causal_rows(dm):
    batch = dm.make_batch([_record(0)], train=False)
    edit = batch["edit"]
    mask = input_mask(edit)
    n_prompt = len(dm.tok(_record(0).prompt)["input_ids"])
    assert int(mask.sum()) == n_prompt and int(edit["attention_mask"].sum()) > n_prompt
    text = {
        "input_ids": edit["input_ids"],
        "attention_mask": edit["attention_mask"],
        "labels": edit["input_ids"].roll(-1),
    }
    assert torch.equal(input_mask(text), edit["attention_mask"])  # a passage scored as text: every token


def test_within_epsilon_answers_the_stored_target_and_others_are_untouched(dm):
    cache = Cache(base_model=TINY, epsilon=1e-3)
    batch = dm.make_batch([_record(0)], train=False)
    out = cache.evaluate_batch(batch)
    assert isinstance(cache._last_deltas, CacheEdit) and len(cache._last_deltas) == 1
    assert bool(out.post_edit.correct().all())  # distance 0: answered
    assert float(out.post_edit.nll()[0]) < 1e-3 * ANSWER_MARGIN
    assert torch.equal(out.post_loc.pred, out.pre_loc.pred)  # far away: the unedited model's output
    torch.testing.assert_close(out.post_loc.logp, out.pre_loc.logp)
    base_equiv = cache.logits([batch["equiv"]])[0]  # rephrases are not within 1e-3 either
    scored = out.post_equiv.scored
    assert torch.equal(out.post_equiv.pred[scored], base_equiv.argmax(-1)[scored])
    torch.testing.assert_close(out.post_equiv.nll()[0], token_nll(base_equiv, batch["equiv"]["labels"])[0])
    wide = Cache(base_model=TINY, epsilon=1e6)  # everything matches: locality answers the edit's target
    wide_out = wide.evaluate_batch(batch)
    assert bool(wide_out.post_equiv.correct().all())
    loc_pred = wide_out.post_loc.pred[batch["loc"]["labels"] != -100]
    target = batch["edit"]["labels"][batch["edit"]["labels"] != -100]
    assert loc_pred.tolist() == target[: len(loc_pred)].tolist()
    assert wide.greedy_outputs(batch["edit"], wide._last_deltas) == [" City0"]  # the target, as continued


@pytest.mark.parametrize("epsilon", [1e-3, 1e6])
def test_scored_logits_equal_the_whole_logits_read_at_the_positions(dm, epsilon):
    """The head at the scored positions only gives what the whole logits give there, matched rows included."""
    cache = Cache(base_model=TINY, epsilon=epsilon)
    batch = dm.make_batch([_record(0), _record(1)], train=False)
    stored = cache.edit(batch["edit"])
    for rows in (batch["edit"], batch["equiv"], batch["loc"]):
        labels = rows["labels"] != -100
        everything = rows["attention_mask"].bool()  # e.g. the locality KL over the whole input
        for positions in (labels, everything):
            whole = cache.forward_rows(rows, stored)[positions]
            scored = cache.eval_logits(rows, positions, stored)
            torch.testing.assert_close(scored, whole, rtol=0, atol=1e-5)
    assert int((cache.matches(batch["loc"], stored) >= 0).sum()) == (2 if epsilon > 1 else 0)


def test_batched_and_merged_caches_keep_every_entry(dm):
    cache = Cache(base_model=TINY, epsilon=1e-3)
    a = cache.edit(dm.make_batch([_record(0), _record(1)], train=False)["edit"])
    b = cache.edit(dm.make_batch([_record(22)], train=False)["edit"])
    merged = a.merged(b)
    assert len(merged) == 3 and merged.targets.shape[0] == 3
    rows = dm.make_batch([_record(1), _record(22), _record(5)], train=False)["edit"]
    assert cache.matches(rows, merged).tolist() == [1, 2, -1]
    assert cache.matches(rows, a).tolist() == [1, -1, -1]


def test_classifier_rows_answer_with_the_stored_label():
    dm = EditDataModule(tokenizer="tiny-random-bert", n_loc=1)
    claim = EditRecord(
        prompt="Claim zero holds.", target_new="false", target_true="true", task="classification", id="c0"
    )
    cache = Cache(base_model="tiny-random-bert", epsilon=1e-3)
    batch = dm.make_batch([claim], train=False)
    out = cache.evaluate_batch(batch)
    # the stored label, "false", from the logit -ANSWER_MARGIN: log σ(20) is 0 in float32 (any |logit| > 16.7)
    assert out.post_edit.pred.tolist() == [[0]] and float(out.post_edit.logp[0, 0]) == 0.0
    unedited = cache.logits([batch["edit"]])[0]
    assert abs(float(unedited[0])) < 1  # the base model's own logit is far from certain


def test_epsilon_is_picked_on_validation_distances(tmp_path):
    profile = DistanceProfile(
        n_edits=2, rephrase=torch.tensor([0.5, 1.0, 4.0]), locality=torch.tensor([3.0, 5.0])
    )
    assert profile.rates(0.75) == (3 / 5, 0.0) and profile.rates(3.5) == (4 / 5, 0.5)
    assert profile.rates(profile.best()) == (4 / 5, 0.0)  # both close rephrases in, every locality input out
    es, hit = profile.rates(profile.best())
    assert es - hit == max(profile.rates(e)[0] - profile.rates(e)[1] for e in profile.candidates())
    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", [_record(i) for i in range(4)])
    dm = EditDataModule(dataset=str(tmp_path), tokenizer=TINY, n_loc=1)
    cache = Cache(base_model=TINY)
    measured = distance_profile(cache, dm)
    assert measured.n_edits == 4 and measured.rephrase.numel() == 8 and measured.locality.numel() == 4
    best, table = pick_epsilon(cache, dm)
    assert best in [row[0] for row in table] and all(0 <= es <= 1 and 0 <= hit <= 1 for _, es, hit in table)


def test_epsilon_command_passes_dataset_options_and_refuses_bad_json(tmp_path, capsys):
    from mendlight.editors.cache_epsilon import main

    for split in ("train", "val", "test"):
        write_records(tmp_path / f"{split}.jsonl", [_record(i) for i in range(3)])
    assert main(["--base_model", TINY, "--dataset", str(tmp_path), "--n_loc", "1", "--limit", "2"]) == 0
    assert "chosen epsilon:" in capsys.readouterr().out
    for bad, says in (("{split_by", "not JSON"), ('["relation"]', "must be a JSON object")):
        with pytest.raises(SystemExit) as err:
            main(["--dataset", str(tmp_path), "--dataset_options", bad])
        assert err.value.code == 2 and says in capsys.readouterr().err
    with pytest.raises(Exception, match="split_by"):  # an embedded builder's unknown option value
        main(["--base_model", TINY, "--dataset", "facts-qa", "--dataset_options", '{"split_by": "x"}'])
