import json
import math

import pytest

from mendlight.metrics import PROTOCOLS
from mendlight.reporting import (
    build_results,
    comparison_markdown,
    format_number,
    load_results,
    main,
    results_markdown,
    summarise,
    write_measurement,
    write_results,
)


def row(i, **kw):
    base = {
        "id": f"r{i}",
        "prompt": f"prompt {i}",
        "target": f"target {i}",
        "target_true": None,
        "known": None,
        "es_edit": 1,
        "equiv_success": 0,
        "equiv_total": 0,
        "loc_pre_correct": 0,
        "loc_post_correct": 0,
        "loc_total": 0,
        "loc_agree_sum": 0.0,
        "loc_pre_nll": 0.0,
        "loc_post_nll": 0.0,
        "loc_tokens": 0,
        "latency_s": 0.1,
        "pre_output": "",
        "post_output": "",
    }
    base.update(kw)
    return base


ROWS = [
    row(
        0,
        known=True,
        es_edit=1,
        equiv_success=2,
        equiv_total=3,
        loc_pre_correct=2,
        loc_post_correct=1,
        loc_total=2,
        loc_agree_sum=1.5,
        loc_pre_nll=2.0,
        loc_post_nll=4.0,
        loc_tokens=4,
        latency_s=0.2,
        prompt="a | b\nc",
        target="x|y",
        pre_output="old",
        post_output="new\nline",
    ),
    row(
        1,
        known=False,
        es_edit=0,
        equiv_success=1,
        equiv_total=1,
        loc_pre_correct=1,
        loc_post_correct=1,
        loc_total=1,
        loc_agree_sum=1.0,
        loc_pre_nll=1.0,
        loc_post_nll=2.0,
        loc_tokens=2,
        latency_s=0.4,
    ),
    row(
        2,
        known=True,
        es_edit=1,
        equiv_success=0,
        equiv_total=0,
        loc_pre_correct=0,
        loc_post_correct=0,
        loc_total=1,
        loc_agree_sum=0.5,
        loc_tokens=0,
        latency_s=0.3,
    ),
]


def test_summarise_hand_computed():
    s = summarise(ROWS)
    assert s["n_records"] == 3
    assert s["es_edit"] == pytest.approx(2 / 3)
    assert s["es_equiv"] == pytest.approx(3 / 4)
    assert s["es"] == pytest.approx((2 + 3) / (3 + 4))
    assert s["acc_drawdown"] == pytest.approx((3 - 2) / 4)
    assert s["locality"] == pytest.approx(3.0 / 4)
    assert s["ppl_drawdown"] == pytest.approx(math.exp(6 / 6) - math.exp(3 / 6))
    assert s["edit_latency_s"] == pytest.approx(0.3)
    assert s["known_fraction"] == pytest.approx(2 / 3)


def test_summarise_none_handling():
    rows = [row(0, es_edit=0, known=None, latency_s=None), row(1, es_edit=1, known=None, latency_s=None)]
    s = summarise(rows)
    assert s["es_edit"] == pytest.approx(0.5)
    assert s["es"] == pytest.approx(0.5)
    for key in ("es_equiv", "acc_drawdown", "ppl_drawdown", "locality", "edit_latency_s", "known_fraction"):
        assert s[key] is None, key
    empty = summarise([])
    assert empty["n_records"] == 0
    assert all(v is None for k, v in empty.items() if k != "n_records")


def test_summarise_missing_keys_are_no_data():
    s = summarise([{"id": "a", "es_edit": 1}])
    assert s["es"] == 1.0 and s["ppl_drawdown"] is None and s["locality"] is None


def test_build_results_subsets_and_protocol():
    res = build_results(
        ROWS,
        editor="mend",
        base_model="tiny",
        dataset="zsre",
        split="test",
        protocol={"seed": 0},
        extra={"checkpoint": "ckpt.pt"},
    )
    assert res["editor"] == "mend" and res["checkpoint"] == "ckpt.pt"
    assert set(res["subsets"]) == {"all", "known", "unknown"}
    known = res["subsets"]["known"]
    assert known["n_records"] == 2
    assert known["es_edit"] == 1.0
    assert known["es"] == pytest.approx((2 + 2) / (2 + 3))
    assert known["known_fraction"] == 1.0
    unknown = res["subsets"]["unknown"]
    assert unknown["n_records"] == 1 and unknown["es_edit"] == 0.0 and unknown["known_fraction"] == 0.0
    assert res["protocol"]["seed"] == 0
    assert res["protocol"]["metrics"] == PROTOCOLS
    assert res["records"] == ROWS
    assert {"platform", "cpu_count", "torch", "device"} <= set(res["machine"])
    assert res["created"].endswith("+00:00")


def test_build_results_without_known_and_extra_clash():
    rows = [row(0), row(1, es_edit=0)]
    res = build_results(rows, editor="ft", base_model="tiny", dataset="zsre", split="val", protocol={})
    assert set(res["subsets"]) == {"all"}
    with pytest.raises(ValueError, match="editor"):
        build_results(
            rows, editor="ft", base_model="m", dataset="d", split="s", protocol={}, extra={"editor": "x"}
        )


def test_write_results_round_trip_and_markdown(tmp_path):
    res = build_results(
        ROWS, editor="mend", base_model="tiny-gpt", dataset="zsre", split="test", protocol={"seed": 0}
    )
    json_path, md_path = write_results(tmp_path / "run", res)
    assert json_path.name == "results.json" and md_path.name == "results.md"
    loaded = json.loads(json_path.read_text())
    assert loaded == res
    assert load_results(tmp_path / "run") == res
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    md = md_path.read_text()
    assert md == results_markdown(res)
    for text in ("mend", "tiny-gpt", "zsre", "test", res["created"]):
        assert text in md
    assert "| all | 3 | 0.714 | 0.667 | 0.750 | 0.250 | 1.070 | 0.750 | 300.000 |" in md
    assert "known facts" in md and "unknown facts" in md
    assert "## Samples" in md
    assert "a \\| b<br>c" in md and "x\\|y" in md and "new<br>line" in md
    assert "| – |" not in md.split("## Samples")[0]


def test_markdown_dashes_for_missing_metrics():
    res = build_results(
        [row(0, latency_s=None)], editor="ft", base_model="m", dataset="d", split="s", protocol={}
    )
    md = results_markdown(res)
    assert "| all | 1 | 1.000 | 1.000 | – | – | – | – | – |" in md
    assert "known facts" not in md


def test_format_number():
    assert format_number(None) == "–"
    assert format_number(float("nan")) == "–"
    assert format_number(3) == "3"
    assert format_number(0.12345) == "0.123"
    assert format_number(0.0125, 1000.0) == "12.500"


def _two_results():
    a = build_results(ROWS, editor="mend", base_model="tiny", dataset="zsre", split="test", protocol={})
    b = build_results(
        [row(0, es_edit=0), row(1)], editor="ft", base_model="tiny", dataset="zsre", split="test", protocol={}
    )
    return a, b


def test_comparison_markdown_two_editors():
    a, b = _two_results()
    md = comparison_markdown([a, b])
    assert "zsre" in md and "test" in md and "tiny" in md
    assert "Warning" not in md
    assert "| mend | all | 3 | 0.714 |" in md
    assert "| mend | known facts | 2 |" in md
    assert "| mend | unknown facts | 1 |" in md
    assert "| ft | all | 2 | 0.500 | 0.500 | – |" in md
    assert md.index("| mend | all") < md.index("| ft | all")


def test_comparison_markdown_warns_on_mismatch():
    a, b = _two_results()
    b["dataset"] = "fever"
    md = comparison_markdown([a, b])
    assert "Warning" in md and "dataset" in md.split("Warning")[1]


def test_main_cli(tmp_path, capsys):
    a, b = _two_results()
    write_results(tmp_path / "mend_run", a)
    ft_json, _ = write_results(tmp_path / "ft_run", b)
    out = tmp_path / "cmp" / "table.md"
    assert main([str(tmp_path / "mend_run"), str(ft_json), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| mend | all |" in printed and "| ft | all |" in printed
    assert out.read_text() == printed


def test_main_cli_errors(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    with pytest.raises(SystemExit) as exc:
        main([str(missing)])
    assert exc.value.code == 2
    assert str(missing) in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"foo": 1}))
    with pytest.raises(SystemExit):
        main([str(bad)])
    assert "not a results file" in capsys.readouterr().err
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(SystemExit):
        main([str(garbage)])
    assert str(garbage) in capsys.readouterr().err


def test_comparison_names_its_command_and_where_each_row_was_measured():
    a, b = _two_results()
    a["machine"] = {
        "platform": "Linux-x86_64",
        "cpu_count": 2,
        "torch_threads": 2,
        "torch": "2.13.0",
        "device": "cpu",
        "commit": "abc1234",
    }
    md = comparison_markdown([a, b], title="Table 4 analogue", command="bash experiments/x.sh")
    assert md.startswith("# Table 4 analogue\n") and "Reproduce with `bash experiments/x.sh`." in md
    line = next(x for x in md.splitlines() if x.startswith("- mend: measured "))
    assert a["created"] in line and "2 CPUs" in line and "commit abc1234" in line and "torch 2.13.0" in line
    assert any(x.startswith("- ft: measured ") for x in md.splitlines())


def test_results_record_the_commit_and_threads():
    a, _ = _two_results()
    assert "torch_threads" in a["machine"] and "commit" in a["machine"]


def test_results_split_by_seen_relations_and_per_relation():
    rows = [
        row(0, relation="capital", relation_in_train=True, es_edit=1, equiv_success=1, equiv_total=2),
        row(1, relation="capital", relation_in_train=True, es_edit=0),
        row(2, relation="currency", relation_in_train=False, es_edit=1),
        row(3, relation=None, relation_in_train=None, es_edit=0),
    ]
    res = build_results(rows, editor="mend", base_model="tiny", dataset="facts", split="test", protocol={})
    assert set(res["subsets"]) == {"all", "seen_relations", "unseen_relations"}
    seen, unseen = res["subsets"]["seen_relations"], res["subsets"]["unseen_relations"]
    assert seen["n_records"] == 2 and seen["es"] == pytest.approx((1 + 0 + 1) / (2 + 2))
    assert unseen["n_records"] == 1 and unseen["es_edit"] == 1.0
    per = res["by_relation"]
    assert list(per) == ["capital", "currency"]  # the row without a relation is left out, names sorted
    assert per["capital"]["n_records"] == 2 and per["capital"]["seen"] is True
    assert per["capital"]["es_edit"] == 0.5
    assert per["currency"]["seen"] is False and per["currency"]["es"] == 1.0
    md = results_markdown(res)
    assert "relations not seen in training" in md
    assert "| currency | no | 1 | 1.000 |" in md


def test_comparison_lists_es_per_relation_for_every_editor():
    a = build_results(
        [row(0, relation="capital", relation_in_train=True), row(1, relation="currency", es_edit=0)],
        editor="mend",
        base_model="m",
        dataset="d",
        split="test",
        protocol={},
    )
    b = build_results(
        [row(0, relation="capital", relation_in_train=True, es_edit=0)],
        editor="ft",
        base_model="m",
        dataset="d",
        split="test",
        protocol={},
    )
    md = comparison_markdown([a, b])
    assert "| relation | in training | n | ES mend | ES ft |" in md
    assert "| capital | yes | 1 | 1.000 | 0.000 |" in md
    assert "| currency | ? | 1 | 0.000 | - |" in md  # ft has no currency row; the split is unknown
    assert "## ES per relation" not in comparison_markdown(
        [build_results([row(0)], editor="x", base_model="m", dataset="d", split="t", protocol={})]
    )


def test_write_measurement_writes_rows_and_text_with_provenance(tmp_path):
    out = tmp_path / "sub" / "probe"
    write_measurement(str(out), "A probe", "python experiments/x.py --k 2", "| a |\n|---|\n| 1 |", [{"k": 2}])
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["rows"] == [{"k": 2}] and payload["command"] == "python experiments/x.py --k 2"
    assert payload["date"].endswith("UTC") and payload["cpu_count"] and "torch" in payload
    lines = out.with_suffix(".md").read_text().splitlines()
    assert lines[:3] == ["# A probe", "", "- command: python experiments/x.py --k 2"]
    assert lines[-3:] == ["| a |", "|---|", "| 1 |"]
