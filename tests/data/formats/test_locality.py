import pytest

from mendlight.data.formats.locality import attach_locality, dataset_locality
from mendlight.data.records import EditRecord, LocalityItem

POOL = [LocalityItem(f"Loc {i}?", f"A{i}") for i in range(20)]


def records(n, **kwargs):
    return [EditRecord(f"Edit {i}?", "new", target_true=f"old{i}", id=f"e{i}", **kwargs) for i in range(n)]


def test_dataset_locality_uses_prompts_and_true_targets():
    recs = [*records(2), EditRecord("No truth?", "new", id="x")]
    assert dataset_locality(recs) == [LocalityItem("Edit 0?", "old0"), LocalityItem("Edit 1?", "old1")]


def test_attach_draws_n_distinct_items_deterministically():
    first = attach_locality(records(6), POOL, 3, seed=0)
    again = attach_locality(records(6), POOL, 3, seed=0)
    assert [r.locality for r in first] == [r.locality for r in again]
    for record in first:
        assert len(record.locality) == 3
        assert len({i.prompt for i in record.locality}) == 3
        assert all(item in POOL for item in record.locality)
    other = attach_locality(records(6), POOL, 3, seed=1)
    assert [r.locality for r in other] != [r.locality for r in first]


def test_attach_does_not_depend_on_the_other_records():
    many = attach_locality(records(6), POOL, 2, seed=5)
    single = attach_locality([records(6)[4]], POOL, 2, seed=5)
    assert single[0].locality == many[4].locality


def test_attach_never_uses_the_edit_itself():
    pool = [LocalityItem("Edit 0?", "old0"), LocalityItem("Other?", "x"), LocalityItem("Reph?", "y")]
    record = EditRecord("Edit 0?", "new", rephrases=["Reph?"], id="e0")
    for seed in range(10):
        (out,) = attach_locality([EditRecord(**{**record.to_dict(), "locality": []})], pool, 3, seed=seed)
        assert out.locality == [LocalityItem("Other?", "x")]  # a small pool gives every usable item


def test_attach_scans_the_whole_pool_when_the_first_picks_are_excluded():
    # The record's rephrases cover all but one item of a pool much larger than n + 4.
    pool = [LocalityItem(f"R{i}", "a") for i in range(30)] + [LocalityItem("Free?", "b")]
    record = EditRecord("P?", "t", rephrases=[f"R{i}" for i in range(30)], id="e")
    assert attach_locality([record], pool, 1)[0].locality == [LocalityItem("Free?", "b")]


def test_attach_keeps_existing_items_first_and_zero_or_empty_pool_is_a_no_op():
    own = LocalityItem("Own?", "o")
    (record,) = attach_locality(records(1, locality=[own]), POOL, 2)
    assert record.locality[0] == own and len(record.locality) == 3
    assert attach_locality(records(2), POOL, 0)[0].locality == []
    assert attach_locality(records(2), [], 3)[1].locality == []
    no_ids = attach_locality([EditRecord("P?", "t"), EditRecord("Q?", "t")], POOL, 1)
    assert all(len(r.locality) == 1 for r in no_ids)


def test_attach_negative_n():
    with pytest.raises(ValueError, match="must be >= 0, got -1"):
        attach_locality(records(1), POOL, -1)
