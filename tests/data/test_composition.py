"""Batch composition: the largest share of one prompt template (and relation) in each batch of k edits."""

import pytest

from mendlight.data.composition import batch_composition, composition_line, prompt_template
from mendlight.reporting import build_results, comparison_markdown, results_markdown


def test_prompt_template_replaces_the_first_occurrence_of_the_subject():
    assert (
        prompt_template("Q: What is the capital of France? A:", "France")
        == "Q: What is the capital of {s}? A:"
    )
    assert prompt_template("Paris, Paris is in", "Paris") == "{s}, Paris is in"
    assert prompt_template("The sky is", None) == "The sky is"
    assert prompt_template("The sky is", "Mars") == "The sky is"  # the subject is not in the prompt


def _rows(templates, relations=None):
    relations = relations or [None] * len(templates)
    return [{"template": t, "relation": r} for t, r in zip(templates, relations, strict=True)]


def test_batch_composition_counts_each_batch_of_k_consecutive_rows():
    rows = _rows(["a", "a", "b", "c", "c", "c", "d"], ["r", "r", "r", "s", "s", "t", "u"])
    comp = batch_composition(rows, 3)
    # batches [a a b] [c c c] [d]: template shares 2/3, 1, 1; relation shares 1, 2/3, 1
    assert comp["edits_per_batch"] == 3 and comp["batches"] == 3
    assert comp["largest_template_share"]["max"] == 1.0
    assert comp["largest_template_share"]["mean"] == pytest.approx((2 / 3 + 1 + 1) / 3)
    assert comp["largest_relation_share"]["mean"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    mixed = batch_composition(_rows(["a", "b", "c", "d"]), 4)
    assert mixed["largest_template_share"] == {"max": 0.25, "mean": 0.25}
    assert mixed["largest_relation_share"] is None  # the rows do not name their relations
    assert batch_composition(rows, None) is None and batch_composition(rows, 0) is None
    assert batch_composition([{"template": None}], 2) is None


def test_results_report_the_composition_of_their_batches():
    base = {"es_edit": 1, "equiv_success": 1, "equiv_total": 1, "known": None}
    rows = [{**r, **base} for r in _rows(["x {s}", "x {s}", "y {s}", "z {s}"], ["p", "p", "q", "q"])]
    res = build_results(
        rows, editor="mend", base_model="m", dataset="d", split="test", protocol={"n_edits_per_batch": 2}
    )
    assert res["composition"]["largest_template_share"] == {"max": 1.0, "mean": 0.75}
    line = composition_line(res["composition"])
    assert (
        line.startswith("2 batch(es) of 2 simultaneous edit(s)") and "1.000 at most, 0.750 on average" in line
    )
    assert f"Batches: {line}" in results_markdown(res)
    assert comparison_markdown([res, {**res, "editor": "ft"}]).count("Batches: ") == 1  # same batching once
    no_k = build_results(rows, editor="mend", base_model="m", dataset="d", split="test", protocol={})
    assert no_k["composition"] is None and "Batches:" not in results_markdown(no_k)
