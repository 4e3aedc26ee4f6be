"""End-to-end tests of the ``mendlight`` command on ``configs/tiny_debug.yaml``, run in-process.

One ``fit`` run (module fixture) is shared: the other tests read its files, ``test`` and ``edit`` from
its checkpoint, and resume from it. Every run lands under a temporary directory
(``runs/<config stem>/version_N``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from mendlight.cli import main
from mendlight.data.module import EditDataModule
from mendlight.data.records import EditRecord
from mendlight.edit_command import EditCommandError, load_editor_checkpoint
from mendlight.editors import MEND
from mendlight.models.arch import resolve_edit_params
from mendlight.models.functional import forward_with, state_fingerprint
from mendlight.models.loading import load_base_model
from tests.cli.conftest import main_in

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
TINY_CFG = yaml.safe_load(TINY.read_text())
MAX_STEPS = int(TINY_CFG["trainer"]["max_steps"])
VAL_EVERY = int(TINY_CFG["trainer"]["val_check_interval"])
N_TEST = int(TINY_CFG["trainer"]["limit_test_batches"])
BASE = TINY_CFG["model"]["init_args"]["base_model"]
WELFORD_RE = re.compile(r"^transforms\.[^.]+\.(u_norm|delta_norm)\.(count|mean|m2)$")
RECORD_KEYS = {
    "id",
    "prompt",
    "target",
    "target_true",
    "known",
    "es_edit",
    "equiv_success",
    "equiv_total",
    "loc_pre_correct",
    "loc_post_correct",
    "loc_total",
    "loc_agree_sum",
    "loc_pre_nll",
    "loc_post_nll",
    "loc_tokens",
    "latency_s",
    "pre_output",
    "post_output",
}


@dataclass(frozen=True)
class FitRun:
    """The shared ``fit`` run: the directory the CLI ran in and the run's version directory."""

    root: Path
    version: Path

    @property
    def last(self) -> Path:
        return self.version / "checkpoints" / "last.ckpt"

    @property
    def config(self) -> Path:
        return self.version / "config.yaml"


@pytest.fixture(scope="module")
def fit_run(tmp_path_factory) -> FitRun:
    """``mendlight fit -c configs/tiny_debug.yaml`` once, in a temporary working directory."""
    root = tmp_path_factory.mktemp("cli_fit")
    main_in(root, ["fit", "-c", str(TINY)])
    return FitRun(root=root, version=root / "runs" / "tiny_debug" / "version_0")


# ---------------------------------------------------------------------------------------------- helpers
def _versions(root: Path, name: str = "tiny_debug") -> set[str]:
    return {p.name for p in (root / "runs" / name).glob("version_*")}


def _only_new_version(root: Path, before: set[str], name: str = "tiny_debug") -> Path:
    """The single version directory a command created; it is numbered after the existing ones."""
    new = _versions(root, name) - before
    assert len(new) == 1, f"expected one new run directory, got {sorted(new)}"
    (only,) = new
    expected = max((int(v.split("_")[1]) for v in before), default=-1) + 1
    assert only == f"version_{expected}"
    return root / "runs" / name / only


def _tests_of(fit_run: FitRun) -> set[str]:
    return {p.name for p in (fit_run.version / "tests").glob("version_*")}


def _before(fit_run: FitRun) -> tuple[set[str], set[str]]:
    """The shared run's test runs and the training runs beside it, before a command."""
    return _tests_of(fit_run), _versions(fit_run.root)


def _only_new_test(fit_run: FitRun, before: tuple[set[str], set[str]]) -> Path:
    """The single test run a command made of the shared run's checkpoint: inside it, ``tests/version_K``."""
    tests, versions = before
    new = _tests_of(fit_run) - tests
    assert len(new) == 1, f"expected one new test run, got {sorted(new)}"
    (only,) = new
    assert only == f"version_{max((int(v.split('_')[1]) for v in tests), default=-1) + 1}"
    assert _versions(fit_run.root) == versions, "the test made a run beside the training run"
    return fit_run.version / "tests" / only


def _load_ckpt(path: Path) -> dict:
    # weights_only=True is what ``mendlight edit`` uses: the checkpoint must load without pickled objects.
    return torch.load(path, map_location="cpu", weights_only=True)


def _welford(state: dict) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if WELFORD_RE.match(k)}


def _events(version: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (path,) = version.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(path), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def _text(acc, tag: str) -> str:
    return acc.Tensors(tag)[-1].tensor_proto.string_val[0].decode()


def _mend_like(ckpt: dict) -> MEND:
    """A fresh MEND built with the checkpoint's hyperparameters (base weights from the tiny model)."""
    hp = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    return MEND(**hp)


def _ft_config(path: Path) -> Path:
    """tiny_debug with the test-time editor FT instead of MEND (FT has no rank/lr_lr/optimizer)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = {
        "class_path": "mendlight.editors.FT",
        "init_args": {
            "base_model": BASE,
            "edit_lr": 0.01,
            "max_steps": 20,
            "ft_optimizer": "adam",
            "n_samples": 2,
            "sample_tokens": 4,
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


# ---------------------------------------------------------------------------------------------- fit
def test_fit_writes_the_run_directory(fit_run):
    v = fit_run.version
    assert v.is_dir()  # the first run of this config in a fresh directory is version_0
    for name in ("config.yaml", "hparams.yaml"):
        assert (v / name).is_file()
    assert len(list(v.glob("events.out.tfevents.*"))) == 1
    assert fit_run.last.is_file()
    best = sorted(p.name for p in (v / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1, best  # save_top_k: 1
    step = int(re.fullmatch(r"best-(\d+)\.ckpt", best[0]).group(1))
    assert step in range(VAL_EVERY, MAX_STEPS + 1, VAL_EVERY)  # saved after a validation

    config = yaml.safe_load(fit_run.config.read_text())
    assert config["model"]["class_path"] == "mendlight.editors.MEND"
    assert config["model"]["init_args"]["rank"] == 8
    # data.init_args.tokenizer is linked from model.init_args.base_model: not saved, re-derived on load
    assert "tokenizer" not in config["data"]["init_args"]
    assert config["trainer"]["logger"]["init_args"]["name"] == "tiny_debug"  # named after the config stem
    assert config["trainer"]["max_steps"] == MAX_STEPS
    hparams = yaml.safe_load((v / "hparams.yaml").read_text())
    assert hparams["rank"] == 8 and hparams["base_model"] == BASE
    assert hparams["tokenizer"] == BASE  # the data module's hyperparameters, with the linked tokenizer


def test_fit_json_says_how_training_ended(fit_run):
    summary = json.loads((fit_run.version / "fit.json").read_text())
    assert summary["finished"] is True and summary["reached_max_steps"] is True
    assert summary["global_step"] == summary["max_steps"] == MAX_STEPS
    best = next((fit_run.version / "checkpoints").glob("best-*.ckpt"))
    assert Path(summary["best_checkpoint"]).name == best.name
    assert math.isfinite(summary["best_score"])
    # the score is named by its monitor; best_val_loss only carries it when that is the validation loss
    assert summary["best_val_loss"] == (summary["best_score"] if summary["monitor"] == "val/loss" else None)
    assert summary["monitor"].startswith("val/")
    assert summary["skipped_steps"] == 0


@pytest.mark.parametrize("which", ["last", "best"])
def test_checkpoint_holds_the_editor_only(fit_run, which):
    path = fit_run.last if which == "last" else next((fit_run.version / "checkpoints").glob("best-*.ckpt"))
    ckpt = _load_ckpt(path)
    state = ckpt["state_dict"]
    assert not [k for k in state if k.startswith("base.")]

    base = load_base_model(BASE)
    edit_params = resolve_edit_params(base)
    info = ckpt["mendlight"]
    assert info["base_model"] == BASE
    assert info["edit_params"] == edit_params
    assert info["edited_weights_sha256"] == state_fingerprint(base, edit_params)

    fresh = _mend_like(ckpt)
    editor_keys = {k for k in fresh.state_dict() if not k.startswith("base.")}
    assert set(state) == editor_keys  # exactly the editor's own weights and buffers
    assert state["alpha"].shape == (len(edit_params),)
    assert int(state["skipped_steps"]) == 0

    welford = _welford(state)
    transforms = {k.split(".")[1] for k in state if k.startswith("transforms.")}
    assert transforms and len(welford) == 6 * len(transforms)  # u_norm/delta_norm x count/mean/m2
    for key in transforms:
        prefix = f"transforms.{key}"
        u_count, d_count = state[f"{prefix}.u_norm.count"], state[f"{prefix}.delta_norm.count"]
        assert u_count.dtype == torch.int64
        assert int(u_count) > 0 and int(u_count) == int(d_count)  # the editor was trained
        for norm in ("u_norm", "delta_norm"):
            assert torch.isfinite(state[f"{prefix}.{norm}.mean"]).all()
            m2 = state[f"{prefix}.{norm}.m2"]
            assert torch.isfinite(m2).all() and (m2 >= 0).all() and m2.sum() > 0
    assert ckpt["hyper_parameters"]["rank"] == 8


def test_last_checkpoint_holds_the_final_training_step(fit_run):
    """``last.ckpt`` must be the state at the end of ``fit`` (what ``test``/``edit``/resume are told to use).

    pytorch-lightning 2.6 writes ``last.ckpt`` only when a top-k checkpoint is written at the same step,
    so with the CLI's default ModelCheckpoint (monitor val/loss, save_top_k 1, save_last True)
    ``last.ckpt`` stays at the best step whenever the final validation does not improve val/loss.
    """
    step = _load_ckpt(fit_run.last)["global_step"]
    assert step == MAX_STEPS


def test_tensorboard_events_hold_real_data(fit_run):
    acc = _events(fit_run.version)
    tags = acc.Tags()
    scalars = set(tags["scalars"])
    assert {"train/loss", "train/loss_edit", "train/loss_loc", "train/alpha_mean"} <= scalars
    assert {"val/loss", "val/es", "val/es_equiv", "val/locality", "val/acc_drawdown"} <= scalars
    train_loss = acc.Scalars("train/loss")
    assert [e.step for e in train_loss] == list(range(MAX_STEPS))  # log_every_n_steps: 1
    assert all(math.isfinite(e.value) and e.value > 0 for e in train_loss)
    val_loss = acc.Scalars("val/loss")
    assert len(val_loss) == MAX_STEPS // VAL_EVERY
    assert all(math.isfinite(e.value) for e in val_loss)
    for e in acc.Scalars("val/es"):
        assert 0.0 <= e.value <= 1.0

    assert {"config/text_summary", "val/sample_edits/text_summary"} <= set(tags["tensors"])
    config_text = _text(acc, "config/text_summary")
    assert "class_path: mendlight.editors.MEND" in config_text and BASE in config_text
    samples = _text(acc, "val/sample_edits/text_summary")
    assert samples.startswith("| prompt | target | pre-edit output | post-edit output | success |")
    n_samples = TINY_CFG["model"]["init_args"]["n_samples"]
    assert len(samples.splitlines()) == 2 + n_samples

    # The HPARAMS tab: Lightning writes the plugin's experiment and session summaries (no tensor payload,
    # so they are listed under the plugin, not under Tags()["tensors"]).
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {"val/es", "val/locality", "val/acc_drawdown"} <= {m.name.tag for m in experiment.metric_infos}
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["editor"].string_value == "MEND"
    assert hparams["base_model"].string_value == BASE
    assert hparams["rank"].number_value == 8


# ---------------------------------------------------------------------------------------------- test
def test_test_writes_results(fit_run, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(fit_run.root)
    before = _before(fit_run)
    main(["test", "-c", str(fit_run.config), "--ckpt_path", str(fit_run.last)])
    out = capsys.readouterr().out
    run = _only_new_test(fit_run, before)
    assert (run / "results.md").is_file()
    results = json.loads((run / "results.json").read_text())

    assert results["editor"] == "MEND"
    assert results["split"] == "test"
    assert results["base_model"] == BASE
    assert results["dataset"] == "facts"
    assert results["skipped_steps"] == 0
    assert results["hparams"]["rank"] == 8
    summary = results["subsets"]["all"]
    assert summary["n_records"] == N_TEST
    for key in ("es", "es_edit", "es_equiv", "locality"):
        assert isinstance(summary[key], float | int) and 0.0 <= summary[key] <= 1.0, key
    assert isinstance(summary["acc_drawdown"], float | int) and -1.0 <= summary["acc_drawdown"] <= 1.0
    assert summary["edit_latency_s"] > 0

    records = results["records"]
    assert len(records) == N_TEST
    assert len({r["id"] for r in records}) == N_TEST
    for record in records:
        assert RECORD_KEYS <= set(record)
        assert record["es_edit"] in (0, 1)
        assert 0 <= record["equiv_success"] <= record["equiv_total"]
    # The summary is computed from the records.
    assert summary["es_edit"] == pytest.approx(sum(r["es_edit"] for r in records) / N_TEST)
    assert summary["locality"] == pytest.approx(
        sum(r["loc_agree_sum"] for r in records) / sum(r["loc_total"] for r in records)
    )

    assert "ES (rephrase)" in out and "# Editing results: MEND" in out
    assert "ES (rephrase)" in (run / "results.md").read_text()
    acc = _events(run)
    assert "test/results/text_summary" in acc.Tags()["tensors"]
    assert acc.Scalars("test/es_edit")[-1].value == pytest.approx(summary["es_edit"], abs=1e-6)


def test_test_keeps_the_protocol_given_with_a_checkpoint(fit_run, monkeypatch, no_argv):
    # Lightning rebuilds the editor from the checkpoint's hyperparameters; the evaluation protocol
    # (sequential chains) is the test run's own choice; what was trained (rank) comes from the checkpoint.
    monkeypatch.chdir(fit_run.root)
    before = _before(fit_run)
    main(
        ["test", "-c", str(fit_run.config), "--ckpt_path", str(fit_run.last)]
        + ["--model.init_args.sequential", "3", "--model.init_args.rank", "4"]
    )
    results = json.loads((_only_new_test(fit_run, before) / "results.json").read_text())
    assert results["protocol"]["sequential"] == 3
    assert results["hparams"]["sequential"] == 3
    assert results["hparams"]["rank"] == 8
    chains = [r["chain"] for r in results["records"]]
    assert [r["chain_length"] for r in results["records"]] == [3] * (N_TEST // 3 * 3) + [N_TEST % 3] * (
        N_TEST % 3
    )
    assert chains == sorted(chains) and len(set(chains)) == -(-N_TEST // 3)


def test_predict_writes_per_record_predictions(fit_run, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(fit_run.root)
    before = _before(fit_run)
    main(["predict", "-c", str(fit_run.config), "--ckpt_path", str(fit_run.last)])
    run = _only_new_test(fit_run, before)
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 8  # tiny_debug keeps 8 test records; predict has no limit_predict_batches
    assert all(isinstance(r["post_output"], str) and r["es_edit"] in (0, 1) for r in rows)
    assert len({r["id"] for r in rows}) == 8
    assert "records edited" in capsys.readouterr().out


def test_test_time_editor_needs_no_checkpoint(tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(tmp_path)
    cfg = _ft_config(tmp_path / "tiny_ft.yaml")
    main(["test", "-c", str(cfg)])
    results = json.loads((tmp_path / "runs" / "tiny_ft" / "version_0" / "results.json").read_text())
    assert results["editor"] == "FT"
    assert results["hparams"]["max_steps"] == 20 and results["hparams"]["ft_optimizer"] == "adam"
    summary = results["subsets"]["all"]
    assert summary["n_records"] == N_TEST
    assert 0.0 <= summary["es_edit"] <= 1.0 and 0.0 <= summary["locality"] <= 1.0
    assert "# Editing results: FT" in capsys.readouterr().out


def test_fit_refuses_a_test_time_editor(tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(tmp_path)
    cfg = _ft_config(tmp_path / "tiny_ft.yaml")
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", str(cfg)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "FT is a test-time editor" in err and "mendlight test -c" in err
    assert not list(tmp_path.rglob("*.ckpt"))


def test_fit_without_checkpointing_writes_no_checkpoint(tmp_path, monkeypatch, no_argv):
    monkeypatch.chdir(tmp_path)
    main(["fit", "-c", str(TINY), "--trainer.max_steps", "2", "--trainer.enable_checkpointing", "false"])
    version = tmp_path / "runs" / "tiny_debug" / "version_0"
    summary = json.loads((version / "fit.json").read_text())
    assert summary["global_step"] == 2 and summary["best_checkpoint"] is None
    assert not list(tmp_path.rglob("*.ckpt"))


def test_no_progress_bar_when_the_output_is_not_a_terminal(tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(tmp_path)
    cfg = yaml.safe_load(TINY.read_text())
    del cfg["trainer"]["enable_progress_bar"]  # the default decides
    cfg["trainer"].update(max_steps=2, val_check_interval=2)
    path = tmp_path / "tiny_default_bar.yaml"
    path.write_text(yaml.safe_dump(cfg))
    main(["fit", "-c", str(path)])  # pytest captures stderr: not a terminal
    saved = yaml.safe_load((tmp_path / "runs" / "tiny_default_bar" / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["enable_progress_bar"] is False
    out = capsys.readouterr().out
    assert "validation at step 2: " in out and "val/es " in out  # TextProgress's plain line instead


# ---------------------------------------------------------------------------------------------- edit
def test_edit_applies_and_saves_a_plain_hf_model(fit_run, tmp_path, monkeypatch, capsys, no_argv):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.chdir(fit_run.root)
    prompt, target, rephrase = "The capital of France is", "Rome", "France's capital city is"
    save = tmp_path / "edited"
    main(
        [
            "edit",
            "-c",
            str(fit_run.config),
            "--ckpt_path",
            str(fit_run.last),
            "--prompt",
            prompt,
            "--target",
            target,
            "--rephrases",
            json.dumps([rephrase]),
            "--save",
            str(save),
        ]
    )
    out = capsys.readouterr().out
    assert "Applied 1 edit(s) with MEND" in out
    assert f"{prompt!r} -> {target!r}: target is the argmax:" in out and "rephrases " in out
    assert f"[edit] {prompt}" in out and f"[rephrase] {rephrase}" in out
    assert out.count("before:") == 2 and out.count("after:") == 2
    assert f"Saved the edited model to {save}" in out

    # Recompute the edit independently: a fresh MEND with the checkpoint loaded, on the same edit.
    ckpt = _load_ckpt(fit_run.last)
    editor = _mend_like(ckpt)
    load_editor_checkpoint(editor, str(fit_run.last))
    editor.eval()
    data = EditDataModule(tokenizer=BASE, max_length=TINY_CFG["data"]["init_args"]["max_length"])
    batch = data.make_batch([EditRecord(prompt=prompt, target_new=target, rephrases=[rephrase])], train=False)
    editor.evaluate_batch(batch)
    deltas = editor._last_deltas
    assert set(deltas) == set(ckpt["mendlight"]["edit_params"])
    assert all(d.abs().sum() > 0 for d in deltas.values())

    saved = AutoModelForCausalLM.from_pretrained(save).eval()
    tok = AutoTokenizer.from_pretrained(save)
    base = load_base_model(BASE)
    for name, param in saved.named_parameters():
        original = base.get_parameter(name)
        if name in deltas:
            torch.testing.assert_close(param, original + deltas[name], atol=1e-6, rtol=0)
        else:
            assert torch.equal(param, original), name  # only the edited weights changed

    ids = torch.tensor([tok(prompt)["input_ids"]])
    with torch.no_grad():
        saved_logits = saved(input_ids=ids).logits
        base_logits = forward_with(base, None, ids)
        edited_logits = forward_with(base, deltas, ids)
    assert (saved_logits - base_logits).abs().max() > 1e-4
    torch.testing.assert_close(saved_logits, edited_logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt", "The capital of France is", "--target", "Rome"], "--ckpt_path"),
        (["--ckpt_path", "missing.ckpt", "--prompt", "p", "--target", "t"], "does not exist"),
        (["--file", "edits.jsonl", "--prompt", "p", "--target", "t"], "not both"),
        ([], "needs --prompt and --target"),
    ],
    ids=["no-ckpt", "missing-ckpt", "file-and-prompt", "nothing-to-edit"],
)
def test_edit_argument_errors(fit_run, monkeypatch, capsys, no_argv, extra, message):
    monkeypatch.chdir(fit_run.root)
    with pytest.raises((EditCommandError, SystemExit)) as exc:
        main(["edit", "-c", str(fit_run.config), *extra])
    assert message in str(exc.value) + capsys.readouterr().err


def test_edit_from_a_jsonl_file(fit_run, tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(fit_run.root)
    records = [
        {"prompt": "The capital of France is", "target_new": "Rome", "target_true": "Paris"},
        {"prompt": "The currency of Japan is the", "target_new": "Euro", "rephrases": ["Japan pays in the"]},
    ]
    path = tmp_path / "edits.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    main(["edit", "-c", str(fit_run.config), "--ckpt_path", str(fit_run.last), "--file", str(path)])
    out = capsys.readouterr().out
    assert "Applied 2 edit(s) with MEND" in out
    assert "'The capital of France is' -> 'Rome'" in out
    assert "'The currency of Japan is the' -> 'Euro'" in out
    assert re.search(r"'Euro': target is the argmax: (yes|no); rephrases [01]/1", out)
    assert out.count("[edit] ") == 2 and out.count("[rephrase] Japan pays in the") == 1
    assert "Saved the edited model" not in out


# ---------------------------------------------------------------------------------------------- resume
def test_resume_continues_with_the_checkpoint_statistics(fit_run, monkeypatch, no_argv):
    monkeypatch.chdir(fit_run.root)
    ckpt = _load_ckpt(fit_run.last)
    start_step, saved = ckpt["global_step"], _welford(ckpt["state_dict"])
    assert 0 < start_step <= MAX_STEPS

    # Loading outside Lightning restores the statistics bit for bit, as the synced base of DDP merging.
    editor = _mend_like(ckpt)
    load_editor_checkpoint(editor, str(fit_run.last))
    loaded = _welford(editor.state_dict())
    assert loaded.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(loaded[key], value), key
    for module in editor.transforms.modules():
        if hasattr(module, "synced_stats"):
            assert int(module.increment.count) == 0
            assert torch.equal(module.synced_stats.count, module.count)
            assert torch.equal(module.synced_stats.m2, module.m2)

    # Inside `fit --ckpt_path`, the statistics the training starts from are the checkpoint's.
    seen: dict[str, torch.Tensor] = {}
    on_fit_start = MEND.on_fit_start

    def spy(self):
        seen.update({k: v.detach().clone() for k, v in _welford(self.state_dict()).items()})
        seen["alpha"] = self.alpha.detach().clone()
        on_fit_start(self)

    monkeypatch.setattr(MEND, "on_fit_start", spy)
    resumed_steps = MAX_STEPS + VAL_EVERY
    before = _versions(fit_run.root)
    main(
        [
            "fit",
            "-c",
            str(TINY),
            "--trainer.max_steps",
            str(resumed_steps),
            "--ckpt_path",
            str(fit_run.last),
            # keep every validation's checkpoint so that last.ckpt follows the final step (see the test above)
            "--checkpoint.save_top_k",
            "-1",
        ]
    )
    run = _only_new_version(fit_run.root, before)
    assert seen.keys() == {*saved, "alpha"}
    for key, value in saved.items():
        assert torch.equal(seen[key], value), key
    assert torch.equal(seen["alpha"], ckpt["state_dict"]["alpha"])

    final = _load_ckpt(run / "checkpoints" / "last.ckpt")
    assert final["global_step"] == resumed_steps
    for key, value in _welford(final["state_dict"]).items():
        if key.endswith(".count"):
            assert int(value) > int(saved[key]), key
    # Only the remaining steps were trained, logged at their global steps.
    train_loss = _events(run).Scalars("train/loss")
    assert [e.step for e in train_loss] == list(range(start_step, resumed_steps))
    # The original run is untouched.
    assert _load_ckpt(fit_run.last)["global_step"] == start_step


def _train_order(n: int) -> list[str]:
    """Record ids of the first ``n`` training batches of tiny_debug, as an uninterrupted run sees them."""
    data = EditDataModule(**{**TINY_CFG["data"]["init_args"], "tokenizer": BASE})
    data.prepare_data()
    data.setup("fit")
    ids = []
    for batch in data.train_dataloader():
        ids.extend(batch["meta"]["ids"])
        if len(ids) >= n:
            return ids[:n]
    raise AssertionError("fewer training batches than requested")


def test_resume_continues_the_data_order(fit_run, monkeypatch, no_argv):
    monkeypatch.chdir(fit_run.root)
    start = _load_ckpt(fit_run.last)["global_step"]
    seen: list[str] = []
    training_step = MEND.training_step

    def spy(self, batch, batch_idx):
        seen.extend(batch["meta"]["ids"])
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(MEND, "training_step", spy)
    stop = start + 2
    main(["fit", "-c", str(TINY), "--trainer.max_steps", str(stop), "--ckpt_path", str(fit_run.last)])
    assert len(seen) == stop - start
    assert seen == _train_order(stop)[start:]


# ------------------------------------------------------------------------------------ help and errors
def test_help_lists_the_subcommands(capsys, no_argv):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "{fit,validate,test,predict,edit,table,download-embedded}" in out
    for command in ("fit", "validate", "test", "predict", "edit", "table", "download-embedded"):
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), command
    assert "apply edits given on the command line or in a JSONL file" in out


def test_edit_help_lists_its_options(capsys, no_argv):
    with pytest.raises(SystemExit) as exc:
        main(["edit", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    options = ("--ckpt_path", "--prompt", "--target", "--rephrases", "--file", "--save", "--max_new_tokens")
    options += ("--check", "--n_check", "--json")
    for option in options:
        assert option in out, option


def test_model_help_shows_the_mend_docstring(capsys, no_argv):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model.help", "MEND"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--model.rank RANK" in out and "rank of the low-rank residual layers" in out
    assert "identity init" in out
    assert "--model.edit_lr" in out and "--model.base_model" in out


BAD_EDIT_PARAMS = ["--model.init_args.edit_params", '["nope.weight"]']


def test_bad_config_value_names_the_problem(tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, SystemExit)) as exc:
        main(["fit", "-c", str(TINY), *BAD_EDIT_PARAMS])
    message = str(exc.value) + capsys.readouterr().err
    assert "'nope.weight'" in message and "matches no weight matrix" in message
    assert "model.layers.3.mlp.down_proj.weight" in message  # candidates are listed
    assert not list(tmp_path.rglob("*.ckpt"))


def test_bad_config_value_exits_without_a_traceback(tmp_path, monkeypatch, capsys, no_argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", str(TINY), *BAD_EDIT_PARAMS])
    assert exc.value.code != 0
    assert "matches no weight matrix" in capsys.readouterr().err
