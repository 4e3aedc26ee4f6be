"""``mendlight edit``'s report: target spacing, previews, the locality check, ``--json`` and ``edit.json``.

The edits run in-process with the test-time editors FT and Cache on ``tiny-random-llama`` (a byte-level
tokenizer, so decoded text is exact) and the first records of the embedded ``facts`` dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from mendlight.data.module import EditDataModule
from mendlight.data.records import EditRecord, LocalityItem
from mendlight.edit_command import edit_records
from mendlight.editors.base import Editor
from mendlight.locality_check import dataset_prompts, edit_relation, plan_check
from mendlight.models.functional import edited_params, model_logits
from mendlight.models.loading import load_base_model, load_tokenizer
from mendlight.preview import Preview, answer_key
from tests.cli.conftest import one_error_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
BASE = "tiny-random-llama"
PROMPT = "The capital of France is"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _config(path: Path, editor: str = "FT") -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    init = {"base_model": BASE, "n_samples": 1}
    if editor == "FT":
        init.update(edit_lr=0.01, max_steps=5, ft_optimizer="adam")
    cfg["model"] = {"class_path": f"mendlight.editors.{editor}", "init_args": init}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _data() -> EditDataModule:
    return EditDataModule(tokenizer=BASE, max_length=128, max_eval_records=8)


def _edit_json(run_mendlight, cfg: Path, *extra: str) -> tuple[dict, str, str]:
    """Run ``mendlight edit --json``; return the parsed report, stdout and stderr."""
    code, out, err = run_mendlight(["edit", "-c", str(cfg), "--prompt", PROMPT, "--json", *extra])
    assert code == 0, err[-3000:]
    return json.loads(out), out, err


# --------------------------------------------------------------------------------------------- target spacing
def test_a_target_with_a_leading_space_gets_one_space_not_two():
    data = _data()
    rows = {
        t: data.make_batch(edit_records(PROMPT, t, [], None), train=False)["edit"] for t in ("Rome", " Rome")
    }
    assert torch.equal(rows["Rome"]["input_ids"], rows[" Rome"]["input_ids"])
    assert torch.equal(rows["Rome"]["labels"], rows[" Rome"]["labels"])
    text = load_tokenizer(BASE).decode(rows[" Rome"]["input_ids"][0], skip_special_tokens=True)
    assert text == PROMPT + " Rome"


def test_file_records_follow_the_same_rule(tmp_path):
    path = tmp_path / "edits.jsonl"
    lines = [{"prompt": PROMPT, "target_new": " Rome"}, {"prompt": PROMPT, "target_new": "Rome"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    records = edit_records(None, None, [], str(path))
    assert [r.target_new for r in records] == [" Rome", "Rome"]  # kept as given; the encoder spaces them
    rows = _data().make_batch(records, train=False)["edit"]
    assert torch.equal(rows["input_ids"][0], rows["input_ids"][1])
    assert torch.equal(rows["labels"][0], rows["labels"][1])


def test_edit_help_documents_the_spacing_rule_and_the_new_options(run_mendlight):
    code, out, _ = run_mendlight(["edit", "--help"])
    text = " ".join(out.split())
    assert code == 0
    assert "after one space, added only when the target does not already start with whitespace" in text
    assert '"Rome" and " Rome" make the same edit' in text
    for option in ("--check", "--n_check", "--json"):
        assert option in out


# --------------------------------------------------------------------------------------------------- previews
def _argmax_loop(model, deltas, ids: list[int], n: int, eos: int | None) -> list[int]:
    """The old preview loop: a full forward at θ + Δ for every new token (no KV cache), argmax."""
    params = edited_params(model, deltas) if deltas else None
    seq, new = torch.tensor([ids]), []
    for _ in range(n):
        with torch.no_grad():
            logits = model_logits(model, {"input_ids": seq, "attention_mask": torch.ones_like(seq)}, params)
        nxt = int(logits[0, -1].argmax())
        if nxt == eos:
            break
        new.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return new


@pytest.fixture
def deltas_seen(monkeypatch) -> list:
    """The edits ``evaluate_batch`` computed, in order."""
    seen: list = []
    real = Editor.evaluate_batch

    def spy(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        seen.append(self._last_deltas)
        return out

    monkeypatch.setattr(Editor, "evaluate_batch", spy)
    return seen


def test_previews_equal_the_old_greedy_loop(run_mendlight, tmp_path, deltas_seen):
    rephrase, check = "France's capital city is", "The capital of Italy is"
    report, _, _ = _edit_json(
        run_mendlight, _config(tmp_path / "ft.yaml"), "--target", "Rome", "--rephrases", rephrase,
        "--check", check, "--max_new_tokens", "6",
    )  # fmt: skip
    (deltas,) = deltas_seen
    assert deltas and all(d.abs().sum() > 0 for d in deltas.values())
    base = load_base_model(BASE)
    tok = load_tokenizer(BASE)
    shown = report["previews"] + report["locality_check"]["prompts"]
    assert [(p["kind"], p["prompt"]) for p in shown] == [
        ("edit", PROMPT),
        ("rephrase", rephrase),
        ("check", check),
    ]
    for item in shown:
        ids = tok(item["prompt"])["input_ids"]
        for key, d in (("pre", None), ("post", deltas)):
            expected = tok.decode(_argmax_loop(base, d, ids, 6, tok.eos_token_id), skip_special_tokens=True)
            assert item[key] == expected, (item["prompt"], key)
        assert item["changed"] == (item["pre"] != item["post"])
    assert report["previews"][0]["post"] != report["previews"][0]["pre"]  # FT made Rome the answer


@pytest.mark.parametrize("epsilon", [0.01, 1.0e6])
def test_cache_previews_are_the_unedited_answers_or_the_stored_target(run_mendlight, tmp_path, epsilon):
    report, _, _ = _edit_json(
        run_mendlight, _config(tmp_path / "cache.yaml", "Cache"), "--target", "Rome", "--check", "Zebras eat",
        "--max_new_tokens", "5", "--model.init_args.epsilon", str(epsilon),
    )  # fmt: skip
    base, tok = load_base_model(BASE), load_tokenizer(BASE)
    edit, check = report["previews"][0], report["locality_check"]["prompts"][0]
    for item in (edit, check):
        ids = tok(item["prompt"])["input_ids"]
        assert item["pre"] == tok.decode(_argmax_loop(base, None, ids, 5, tok.eos_token_id))
    assert edit["post"] == " Rome"  # the stored target, after its separating space
    if epsilon < 1:  # the check prompt is far from the stored edit: the unedited answer
        assert check["post"] == check["pre"] and check["changed"] is False
    else:  # every prompt is within ε: the cache answers the stored target (a locality failure, marked)
        assert check["post"] == " Rome" and check["changed"] is True
        assert report["locality_check"]["changed"] == 1


def test_the_cache_editor_refuses_save_as_no_weight_changed(run_mendlight, tmp_path, monkeypatch):
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "saved"
    cfg = _config(tmp_path / "cache.yaml", "Cache")
    code, stdout, err = run_mendlight(
        ["edit", "-c", str(cfg), "--prompt", PROMPT, "--target", "R", "--save", str(out)]
    )
    assert code == 2
    line = one_error_line(err)
    assert "a Cache edit is not a weight change" in line and "no edited model to save" in line
    assert "MEND" in line and "Cache" not in line.split("weights (")[1]  # only weight editors are offered
    assert not out.exists() and "Saved" not in stdout and not Path("runs").exists()


# --------------------------------------------------------------------------------------------- locality check
def test_the_check_prompts_come_from_the_dataset_by_relation(run_mendlight, tmp_path):
    pool = _data()
    pool.setup_split("test")
    records = pool.records("test")
    by_relation: dict[str, list[EditRecord]] = {}
    for r in records:
        by_relation.setdefault(str(r.relation), []).append(r)
    relation, (first, *others) = next((k, v) for k, v in by_relation.items() if len(v) > 1)
    prompt = first.prompt.replace(first.subject, "Lyon")  # the same template, another subject

    code, out, err = run_mendlight(
        ["edit", "-c", str(_config(tmp_path / "ft.yaml")), "--prompt", prompt, "--target", "Rome", "--json"]
    )
    assert code == 0, err[-2000:]
    check = json.loads(out)["locality_check"]
    assert check["source"] == "the dataset's test records" and check["relation"] == relation
    same = [p["prompt"] for p in check["prompts"] if p["kind"] == "same relation"]
    unrelated = [p["prompt"] for p in check["prompts"] if p["kind"] == "unrelated"]
    assert same == [r.prompt for r in records if r.relation == relation][:2]
    relation_of = {r.prompt: r.relation for r in records}
    assert len(unrelated) == 2 and len({relation_of[p] for p in unrelated} | {relation}) == 3
    assert check["total"] == len(same) + 2 and check["changed"] == sum(p["changed"] for p in check["prompts"])
    assert err.strip().splitlines()[-1].startswith("run: runs/ft/version_0")  # stdout is the JSON alone


def test_text_report_marks_each_changed_answer(run_mendlight, tmp_path):
    cfg = _config(tmp_path / "ft.yaml")
    args = [
        "edit",
        "-c",
        str(cfg),
        "--prompt",
        PROMPT,
        "--target",
        "Rome",
        "--check",
        "The capital of France",
    ]
    code, out, _ = run_mendlight([*args, "--check", "Bananas are", "--max_new_tokens", "4"])
    assert code == 0
    report = json.loads(Path("runs/ft/version_0/edit.json").read_text())
    check = report["locality_check"]
    assert check["source"] == "--check" and [p["kind"] for p in check["prompts"]] == ["check", "check"]
    assert f"Locality check (--check): {check['changed']} of 2 answers changed" in out
    for p in check["prompts"]:
        mark = f"{p['pre']!r} -> {p['post']!r}  CHANGED" if p["changed"] else f"{p['pre']!r} (unchanged)"
        assert f"  [check] {p['prompt']!r}: {mark}" in out
    assert out.count("CHANGED") == check["changed"]
    assert out.strip().splitlines()[-1] == "run: runs/ft/version_0"
    assert "Timings: edit " in out


def test_no_check_with_n_check_0(run_mendlight, tmp_path):
    report, _, _ = _edit_json(
        run_mendlight, _config(tmp_path / "ft.yaml"), "--target", "Rome", "--n_check", "0"
    )
    off = {"source": "none", "relation": None, "note": "off (--n_check 0)", "changed": 0, "total": 0}
    assert report["locality_check"] == {**off, "prompts": []}


def test_json_report_is_one_object_and_is_saved_in_the_run(run_mendlight, tmp_path):
    report, out, _ = _edit_json(
        run_mendlight,
        _config(tmp_path / "ft.yaml"),
        "--target",
        " Rome",
        "--check",
        "Snow is",
        "--n_check",
        "1",
    )
    assert json.loads(out) == report  # nothing else on stdout
    assert set(report) == {
        "editor", "base_model", "ckpt_path", "edits", "previews", "locality_check", "timings", "saved", "run"
    }  # fmt: skip
    assert report["editor"] == "FT" and report["base_model"] == BASE and report["saved"] is None
    (edit,) = report["edits"]
    assert edit["prompt"] == PROMPT and edit["target"] == " Rome"  # the target as given
    assert edit["target_is_argmax"] is True and (edit["rephrases_success"], edit["rephrases_total"]) == (0, 0)
    assert report["previews"][0]["post"].startswith(" Rome")  # one space: the target's own
    timings = report["timings"]
    assert set(timings) == {"edit_s", "preview_s", "check_s", "total_s"}
    assert (
        all(v > 0 for v in timings.values())
        and timings["total_s"] >= timings["edit_s"] + timings["preview_s"]
    )
    run = Path(report["run"])
    assert run == Path("runs/ft/version_0")
    assert json.loads((run / "edit.json").read_text()) == report
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["class_path"] == "mendlight.editors.FT"


# ------------------------------------------------------------------------------------------------------ units
def _rec(prompt: str, relation: str | None, subject: str | None, **kw) -> EditRecord:
    return EditRecord(prompt=prompt, target_new="x", relation=relation, subject=subject, **kw)


def test_edit_relation_by_template_then_by_similarity():
    pool = [
        _rec("The tz database zone for Paris is", "city_timezone", "Paris"),
        _rec("The city of Oslo is located in the country of", "city_country", "Oslo"),
    ]
    assert (
        edit_relation([_rec("The city of Lyon is located in the country of", None, None)], pool)
        == "city_country"
    )
    assert edit_relation([_rec("The tz database zone of Lyon is", None, None)], pool) == "city_timezone"
    assert edit_relation([_rec("Bananas are", None, None)], pool) is None
    assert edit_relation([_rec("Bananas are", "fruit", None)], pool) == "fruit"  # the record's own relation


def test_dataset_prompts_leave_out_the_edited_subject():
    pool = [
        _rec("The city of Oslo is located in the country of", "city_country", "Oslo"),
        _rec("Oslo lies in the country of", "city_country", "Oslo"),
        _rec("The city of Lima is located in the country of", "city_country", "Lima"),
        _rec("The tz database zone for Lima is", "city_timezone", "Lima"),
        _rec("Kenya's currency is the", "currency", "Kenya", locality=[LocalityItem("Snow is", "white")]),
    ]
    edits = [_rec("The city of Oslo is located in the country of", None, "Oslo")]
    plan = dataset_prompts(edits, pool, 2)
    assert plan.relation == "city_country"
    assert plan.prompts == [
        ("same relation", "The city of Lima is located in the country of"),
        ("unrelated", "The tz database zone for Lima is"),
        ("unrelated", "Kenya's currency is the"),
    ]


def test_records_with_locality_items_are_checked_on_those():
    items = [LocalityItem("Snow is", "white"), LocalityItem(PROMPT, "Paris"), LocalityItem("Ice is", "cold")]
    edits = [_rec(PROMPT, None, None, locality=items)]
    plan = plan_check(edits, [], datamodule=None, n=2)  # the data module is not needed
    assert plan.source == "the records' locality items"
    assert plan.prompts == [("locality", "Snow is"), ("locality", "Ice is")]  # never the edit prompt itself
    assert plan_check(edits, ["A", "B"], None, 2).prompts == [("check", "A"), ("check", "B")]


def test_a_classifier_answer_changes_only_with_its_label():
    assert answer_key("true (p_true=0.81)") == "true" and answer_key("false (cached)") == "false"
    assert not Preview("check", "c", "true (p_true=0.81)", "true (p_true=0.64)").changed
    assert Preview("check", "c", "true (p_true=0.51)", "false (p_true=0.49)").changed
    assert Preview("check", "c", " Paris", " Rome").changed
