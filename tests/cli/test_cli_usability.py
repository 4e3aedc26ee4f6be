"""The ``mendlight`` command as a person meets it: help, version, short errors, where each run goes.

Every command runs in-process in a temporary working directory on ``configs/tiny_debug.yaml`` (a tiny random
Llama), or on a copy of it with the test-time editor FT.
"""

from __future__ import annotations

import re
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import mendlight
import mendlight.editors
from mendlight import cli_parser
from mendlight.models.loading import ModelLoadError, resolve_model_dir
from tests.cli.conftest import one_error_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
EDITORS = sorted(n for n in mendlight.editors.__all__ if n != "Editor")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _ft_config(path: Path) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = {
        "class_path": "mendlight.editors.FT",
        "init_args": {"base_model": "tiny-random-llama", "edit_lr": 0.01, "max_steps": 3, "n_samples": 1},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------------------------- help
def test_help_describes_mendlight_and_lists_every_subcommand(run_mendlight):
    code, out, _ = run_mendlight(["--help"])
    assert code == 0
    assert "Lightning Trainer command line tool" not in out
    assert "mendlight: learned model editing" in out
    assert out.startswith("usage: mendlight ")
    assert "{fit,validate,test,predict,edit,table,download-embedded}" in out
    for name, line in cli_parser.SUBCOMMANDS.items():
        assert re.search(rf"^  {name}\s+{re.escape(line)}$", out, re.MULTILINE), name
    assert "table" in cli_parser.SUBCOMMANDS and "--version" in out


def test_version_prints_the_package_version(run_mendlight):
    code, out, err = run_mendlight(["--version"])
    assert (code, out, err) == (0, f"mendlight {metadata.version('mendlight')}\n", "")


def test_version_falls_back_to_the_module_version(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli_parser.package_version() == mendlight.__version__


# ----------------------------------------------------------------------------------------------- parse errors
@pytest.mark.parametrize(
    ("option", "value", "known", "near"),
    [
        ("model", "MEDN", EDITORS, "MEND"),
        ("model", "mendlight.editors.MEDN", EDITORS, "MEND"),
        ("model", "ft", EDITORS, "FT"),
        ("data", "EditDataModul", ["EditDataModule"], "EditDataModule"),
    ],
)
def test_an_unknown_class_is_one_line_with_the_known_ones(run_mendlight, option, value, known, near):
    code, out, err = run_mendlight(["fit", "-c", str(TINY), f"--{option}", value])
    assert code == 2
    what = "editor" if option == "model" else "data module"
    assert one_error_line(err) == (
        f"mendlight: error: --{option} {value}: no {what} of that name; known {what}s: {', '.join(known)}; "
        f"closest: {near} (--{option} {near})"
    )
    assert err.count("\n") == 2 and "usage" not in err and "Subtypes" not in err  # the error and a tip
    assert err.splitlines()[1] == "tip: `mendlight fit --help` lists the options"
    assert not Path("runs").exists()


def test_an_unknown_class_path_in_a_config_file_is_named(run_mendlight, tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"]["class_path"] = "mendlight.editors.MEDN"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, _, err = run_mendlight(["test", "-c", str(path)])
    assert code == 2
    assert "--model mendlight.editors.MEDN: no editor of that name" in one_error_line(err)
    assert "closest: MEND" in err


def test_the_editor_list_comes_from_mendlight_editors():
    assert cli_parser.known_classes("model") == EDITORS and "Editor" not in EDITORS
    assert cli_parser.closest("zzzz", EDITORS) is None
    assert "closest" not in cli_parser.unknown_class_message("model", "zzzz")


def test_a_missing_config_is_named_with_the_configs_file_of_that_name(run_mendlight, tmp_path):
    (tmp_path / "configs" / "sub").mkdir(parents=True)
    (tmp_path / "configs" / "sub" / "mine.yaml").write_text("{}\n")
    code, _, err = run_mendlight(["fit", "-c", "mine.yaml"])
    assert code == 2
    assert one_error_line(err) == (
        "mendlight: error: -c/--config mine.yaml: no such file (did you mean configs/sub/mine.yaml?)"
    )
    assert len(err.splitlines()) == 2  # no usage before it

    code, _, err = run_mendlight(["test", "-c", "nowhere.yaml"])
    assert one_error_line(err) == "mendlight: error: -c/--config nowhere.yaml: no such file"
    # a packaged config's name is no error: it names the packaged file (--print_config runs nothing)
    code, out, _ = run_mendlight(["fit", "--config", "smollm2_qa", "--print_config"])
    assert code == 0 and "base_model: smollm2-135m" in out and "dataset: facts-qa" in out


def test_other_parse_errors_have_no_usage_dump(run_mendlight):
    code, _, err = run_mendlight(["fit", "-c", str(TINY), "--model.init_args.rank", "abc"])
    assert code == 2
    assert err.startswith("mendlight: error: ") and "usage:" not in err
    assert "Got value: abc" in err and "rank" in err


def test_testing_an_untrained_mend_without_a_checkpoint_is_one_line(run_mendlight):
    code, _, err = run_mendlight(["test", "-c", str(TINY)])  # MEND, and no --ckpt_path
    assert code == 2
    assert one_error_line(err) == (
        "mendlight: error: normalisation statistics are empty: train the editor (mendlight fit) or load a "
        "trained checkpoint (--ckpt_path)"
    )
    assert not Path("runs").exists()  # the run directory it had claimed holds nothing and is removed


# ------------------------------------------------------------------------------------------------- hub models
def test_an_unknown_hub_model_offline_fails_at_once(run_mendlight, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    code, _, err = run_mendlight(
        ["fit", "-c", str(TINY), "--model.init_args.base_model", "nosuch-org/nosuch"]
    )
    assert code == 2 and time.monotonic() - start < 15
    line = one_error_line(err)
    assert "'nosuch-org/nosuch'" in line and "HF_HUB_OFFLINE is set" in line and "smollm2-135m" in line
    assert not Path("runs").exists()


def test_an_unreachable_hub_fails_at_once_without_retries(run_mendlight, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    code, _, err = run_mendlight(
        ["test", "-c", str(TINY), "--model.init_args.base_model", "nosuch-org/nosuch"]
    )
    assert code == 2 and time.monotonic() - start < 15  # the same command failed after 30 s before
    line = one_error_line(err)
    assert "'nosuch-org/nosuch'" in line and "(http://127.0.0.1:9) is unreachable" in line


def _fake_cached(cache: Path, repo: str) -> None:
    """``repo`` in a Hugging Face cache layout, with its config.json."""
    entry = cache / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("abc123")
    (entry / "snapshots" / "abc123").mkdir(parents=True)
    (entry / "snapshots" / "abc123" / "config.json").write_text("{}")


def test_a_cached_hub_model_switches_to_offline_when_the_hub_is_unreachable(tmp_path, monkeypatch, caplog):
    from huggingface_hub import constants

    from mendlight.models.hub import hub_model_problem

    _fake_cached(tmp_path / "hub", "org/cached")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert hub_model_problem("org/cached") is None
    assert constants.HF_HUB_OFFLINE is True  # transformers reads the cache only, with no request retried
    assert "using the cached copy of 'org/cached'" in caplog.text
    assert hub_model_problem("org/not-cached") == "is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    assert resolve_model_dir("org/cached") == "org/cached"


def test_an_invalid_hub_name_is_refused_without_asking_the_hub(monkeypatch):
    from mendlight.models import hub

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: pytest.fail("the hub was asked"))
    with pytest.raises(ModelLoadError) as err:
        resolve_model_dir("two words")
    assert str(err.value) == (
        "base model 'two words' is not a local path, an alias or a valid Hugging Face hub name; pass a local "
        "model directory, a .gguf file, or an embedded alias (smollm2-135m, minilm-l6-factcheck)"
    )


# -------------------------------------------------------------------------------------------- run directories
def test_every_command_ends_with_its_run_directory(run_mendlight, tmp_path):
    fit = ["fit", "-c", str(TINY), "--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    code, out, _ = run_mendlight(fit)
    assert code == 0 and _last_line(out) == "run: runs/tiny_debug/version_0"
    ckpt = "runs/tiny_debug/version_0/checkpoints/last.ckpt"
    # the evaluations of a training run's checkpoint go inside that run
    for n, command in enumerate(["validate", "test"]):
        code, out, _ = run_mendlight([command, "-c", str(TINY), "--ckpt_path", ckpt])
        assert code == 0 and _last_line(out) == f"run: runs/tiny_debug/version_0/tests/version_{n}", command
    assert Path("runs/tiny_debug/version_0/tests/version_1/results.json").is_file()
    # ... also with the run's own saved config (its logger names the run)
    saved = ["test", "-c", "runs/tiny_debug/version_0/config.yaml", "--ckpt_path", ckpt]
    code, out, _ = run_mendlight(saved)
    assert code == 0 and _last_line(out) == "run: runs/tiny_debug/version_0/tests/version_2"
    # ... unless the user names the run
    code, out, _ = run_mendlight([*saved, "--trainer.logger.init_args.name", "mine"])
    assert code == 0 and _last_line(out) == "run: runs/mine/version_0"
    assert sorted(p.name for p in Path("runs/tiny_debug").iterdir()) == ["version_0"]

    ft = _ft_config(tmp_path / "tiny_ft.yaml")
    edit = [
        "edit",
        "-c",
        str(ft),
        "--prompt",
        "The capital of France is",
        "--target",
        "Rome",
        "--n_check",
        "0",
    ]
    code, out, _ = run_mendlight([*edit, "--max_new_tokens", "2"])
    assert code == 0 and _last_line(out) == "run: runs/tiny_ft/version_0"
    assert {p.name for p in Path("runs/tiny_ft/version_0").iterdir()} == {"edit.json", "config.yaml"}

    table = ["table", "-c", str(TINY), "--editor", f"FT={ft}", "--out", "tables/t"]
    code, out, _ = run_mendlight([*table, "--", "--trainer.limit_test_batches", "1"])
    assert code == 0 and _last_line(out) == "run: runs/tiny_ft/version_1"
    assert Path("tables/t.md").is_file()


def test_default_root_dir_holds_the_run(run_mendlight, tmp_path):
    root = tmp_path / "elsewhere"
    code, out, _ = run_mendlight(
        ["fit", "-c", str(TINY), "--trainer.max_steps", "1", "--trainer.default_root_dir", str(root)]
    )
    assert code == 0
    run = root / "tiny_debug" / "version_0"
    assert _last_line(out) == "run: elsewhere/tiny_debug/version_0"
    assert {"config.yaml", "fit.json", "hparams.yaml"} <= {p.name for p in run.iterdir()}
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert not Path("runs").exists()
    saved = yaml.safe_load((run / "config.yaml").read_text())["trainer"]
    assert saved["default_root_dir"] == str(root) and saved["logger"]["init_args"]["save_dir"] == str(root)


def test_an_explicit_logger_save_dir_wins_over_default_root_dir(run_mendlight, tmp_path):
    args = ["fit", "-c", str(TINY), "--trainer.max_steps", "1", "--trainer.enable_checkpointing", "false"]
    args += ["--trainer.default_root_dir", "root", "--trainer.logger.init_args.save_dir", "logs"]
    code, out, _ = run_mendlight(args)
    assert code == 0 and _last_line(out) == "run: logs/tiny_debug/version_0"
    assert not Path("root").exists()


def test_fast_dev_run_writes_nothing(run_mendlight, tmp_path):
    code, out, _ = run_mendlight(["fit", "-c", str(TINY), "--trainer.fast_dev_run", "true"])
    assert code == 0
    assert list(tmp_path.rglob("*")) == []  # no stray fit.json in the working directory, no run
    assert _last_line(out) == "run: none (--trainer.fast_dev_run writes no run directory)"


def test_a_checkpoint_belongs_to_the_run_it_lies_in(tmp_path):
    from mendlight.run_dirs import checkpoint_run

    run = tmp_path / "runs" / "x" / "version_3"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(b"")
    assert checkpoint_run(ckpt) is None  # no fit.json or config.yaml: not a run
    (run / "fit.json").write_text("{}")
    assert checkpoint_run(ckpt) == run.resolve()
    assert checkpoint_run(str(run / "checkpoints" / "missing.ckpt")) is None
    loose = tmp_path / "model.ckpt"
    loose.write_bytes(b"")
    assert checkpoint_run(loose) is None
    assert checkpoint_run("https://example.org/runs/x/checkpoints/last.ckpt") is None
    assert checkpoint_run("last") is None and checkpoint_run(None) is None
