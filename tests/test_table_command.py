import json
from pathlib import Path

import pytest
import yaml

from mendlight.cli import main
from mendlight.table_command import TableError, parse_editor, task_drawdown

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_debug.yaml"


def test_parse_editor_forms(tmp_path):
    run = tmp_path / "runs" / "x" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")
    for name in ("last.ckpt", "best-10.ckpt"):
        (run / "checkpoints" / name).write_bytes(b"")
    spec = parse_editor(str(run))
    assert spec.config == run / "config.yaml" and spec.ckpt.name == "best-10.ckpt" and spec.label is None
    spec = parse_editor(f"MEND (no norm)={run / 'checkpoints' / 'last.ckpt'}")
    assert (
        spec.label == "MEND (no norm)"
        and spec.config == run / "config.yaml"
        and spec.ckpt.name == "last.ckpt"
    )
    spec = parse_editor(f"{TINY}::{run / 'checkpoints' / 'last.ckpt'}")
    assert spec.config == TINY and spec.ckpt.name == "last.ckpt"
    assert parse_editor(str(TINY)).ckpt is None
    fragment = ROOT / "configs" / "editor" / "ft.yaml"
    composed = parse_editor(f"FT={TINY},{fragment}")
    assert composed.configs == [TINY, fragment] and composed.label == "FT" and composed.ckpt is None
    with pytest.raises(TableError, match="does not exist"):
        parse_editor(f"{TINY},{tmp_path / 'nope.yaml'}")
    with pytest.raises(TableError, match="no config file"):
        parse_editor(str(tmp_path / "nothing.yaml"))
    with pytest.raises(TableError, match="does not exist"):
        parse_editor(f"{TINY}::{tmp_path / 'missing.ckpt'}")


def test_task_drawdown_follows_the_records():
    assert task_drawdown({"records": [{"task": "generation"}]}) == ("ppl DD", "ppl_drawdown")
    assert task_drawdown({"records": [{"task": "completion"}, {"task": "completion"}]})[1] == "acc_drawdown"


def test_table_evaluates_every_editor_on_the_setting_records(tmp_path, monkeypatch, no_argv):
    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(TINY), "--trainer.max_steps=2", "--trainer.val_check_interval=2"])
    fit_run = tmp_path / "runs" / "tiny_debug" / "version_0"
    ft = yaml.safe_load((ROOT / "configs" / "smollm2_facts_ft.yaml").read_text())
    ft["model"]["init_args"].update(base_model="tiny-random-llama", edit_lr=1e-2)
    ft["data"]["init_args"].update(max_eval_records=99)  # replaced by the setting's data section
    ft_cfg = tmp_path / "ft_tiny.yaml"
    ft_cfg.write_text(yaml.safe_dump(ft))
    out = tmp_path / "tables" / "t4"
    status = main(
        [
            "table",
            "-c",
            str(TINY),
            "--editor",
            str(fit_run),
            "--editor",
            f"Fine-tuning={ft_cfg}",
            "--out",
            str(out),
        ]
        + ["--title", "Tiny table", "--command", "pytest", "--", "--trainer.limit_test_batches=3"]
    )
    assert status == 0
    md = (tmp_path / "tables" / "t4.md").read_text()
    assert md.startswith("# Tiny table\n") and "Reproduce with `pytest`." in md
    assert "| MEND | 3 |" in md and "| Fine-tuning | 3 |" in md and "(acc DD)" in md
    summary = json.loads((tmp_path / "tables" / "t4.json").read_text())
    assert [r["label"] for r in summary["rows"]] == ["MEND", "Fine-tuning"]
    assert [line.split(":")[0] for line in summary["provenance"]] == ["- MEND", "- Fine-tuning"]  # row labels
    for row in summary["rows"]:
        results = json.loads((Path(row["run"]) / "results.json").read_text())
        assert results["subsets"]["all"]["n_records"] == 3  # the same records for every editor
        assert results["protocol"]["n_edits_per_batch"] == 1  # the data module's evaluation batch
        assert row["composition"] == results["composition"]
        assert results["composition"]["batches"] == 3 and results["composition"]["edits_per_batch"] == 1
        assert [r["id"] for r in results["records"]] == [
            r["id"]
            for r in json.loads((Path(summary["rows"][0]["run"]) / "results.json").read_text())["records"]
        ]
    assert list((tmp_path / "tables" / "t4_tb").glob("events.out.tfevents.*"))
    assert main(["table", "-c", str(TINY), "--editor", str(tmp_path / "nope"), "--out", str(out)]) == 2


def _tiny_variant(path: Path, model: dict | None = None, data: dict | None = None) -> Path:
    """``configs/tiny_debug.yaml`` with some of its model or data init args replaced."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"]["init_args"].update(model or {})
    cfg["data"]["init_args"].update(data or {})
    path.write_text(yaml.safe_dump(cfg))
    return path


ALIASES = "(smollm2-135m, minilm-l6-factcheck)"
DATASETS = "(facts, facts-qa, claims, generation)"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "hub model",
            "base model 'made-up-org/no-such-model' is not in the Hugging Face cache and HF_HUB_OFFLINE is "
            f"set; pass a local model directory, a .gguf file, or an embedded alias {ALIASES}",
        ),
        (
            "dataset",
            f"dataset '{{tmp}}/no-such-dataset' is neither an embedded dataset {DATASETS} nor a directory; "
            "pass one of those or a directory holding train.jsonl, val.jsonl and test.jsonl",
        ),
        (
            "untrained MEND",
            "normalisation statistics are empty: train the editor (mendlight fit) or load a trained "
            "checkpoint (--ckpt_path)",
        ),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, monkeypatch, capsys, no_argv, case, message):
    from huggingface_hub import constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    setting, editor = TINY, TINY  # MEND from a bare config: no checkpoint, so never trained
    if case == "hub model":
        editor = _tiny_variant(tmp_path / "hub.yaml", model={"base_model": "made-up-org/no-such-model"})
    elif case == "dataset":
        setting = _tiny_variant(tmp_path / "data.yaml", data={"dataset": str(tmp_path / "no-such-dataset")})
    status = main(["table", "-c", str(setting), "--editor", str(editor), "--out", "tables/t"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [f"mendlight table: error: {message.format(tmp=tmp_path)}"]
    assert not Path("runs").exists() and not Path("tables").exists()  # the stopped run left nothing
