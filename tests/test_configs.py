"""Every config in configs/ parses, and each runs one training step with its model swapped for a tiny one.

The paper configs name hub models (unreachable offline); the offline ones name embedded models. Each is
instantiated by the real CLI with ``base_model`` replaced by a tiny random model of the same architecture
and ``dataset`` by a small records directory of the config's task, then trained for one step (test-time
editors are tested instead).
"""

from pathlib import Path

import pytest
import torch
import yaml

from mendlight.cli import main
from mendlight.data.records import EditRecord, LocalityItem, write_records

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: config stem -> (the tiny model of the same architecture, the records' task)
STAND_INS = {
    "gptneo_wikitext": ("tiny-random-gpt_neo", "generation"),
    "gptj_wikitext": ("tiny-random-gptj", "generation"),
    "distilgpt2_wikitext": ("tiny-random-gpt2", "generation"),
    "t5xl_zsre": ("tiny-random-t5-v1_1", "completion"),
    "t5xxl_zsre": ("tiny-random-t5-v1_1", "completion"),
    "bartbase_zsre": ("tiny-random-bart", "completion"),
    "bertbase_fever": ("tiny-random-bert", "classification"),
    "smollm2_facts": ("tiny-random-llama", "completion"),
    "smollm2_facts_ft": ("tiny-random-llama", "completion"),
    "smollm2_gen": ("tiny-random-llama", "generation"),
    "smollm2_qa": ("tiny-random-llama", "completion"),
    "smollm2_qa_ft": ("tiny-random-llama", "completion"),
    "smollm2_qa_long": ("tiny-random-llama", "completion"),
    "smollm2_gen_ft": ("tiny-random-llama", "generation"),
    "minilm_factcheck": ("tiny-random-bert", "classification"),
    "minilm_factcheck_ft": ("tiny-random-bert", "classification"),
    "tiny_debug": ("tiny-random-llama", "completion"),
}
#: the paper's hub models, one per experiment config (docs/algorithm.md §4.1)
PAPER_MODELS = {
    "gptneo_wikitext": "EleutherAI/gpt-neo-2.7B",
    "gptj_wikitext": "EleutherAI/gpt-j-6B",
    "distilgpt2_wikitext": "MYX4567/distilgpt2-finetuned-wikitext2",
    "t5xl_zsre": "google/t5-xl-ssm-nq",
    "t5xxl_zsre": "google/t5-xxl-ssm-nq",
    "bartbase_zsre": "facebook/bart-base",
    "bertbase_fever": "bert-base-uncased",
}


def _record(i: int, task: str) -> EditRecord:
    if task == "classification":
        return EditRecord(
            prompt=f"Claim {i} is right.",
            target_new="true" if i % 2 else "false",
            target_true="false" if i % 2 else "true",
            rephrases=[f"It holds that claim {i} is right."],
            locality=[LocalityItem(f"Other claim {i}.", "true")],
            id=f"c{i}",
            task=task,
        )
    if task == "generation":
        return EditRecord(
            prompt=f"Passage {i} tells how the river runs down the hill",
            target_new=" and into the sea",
            locality=[LocalityItem("", f"An unrelated passage number {i} about hills.")],
            id=f"g{i}",
            task=task,
        )
    return EditRecord(
        prompt=f"The capital of C{i} is",
        target_new=f"X{i}",
        target_true=f"Y{i}",
        rephrases=[f"C{i}'s capital city is"],
        locality=[LocalityItem(f"The sky of {i} is", "blue")],
        id=f"r{i}",
    )


def _dataset(tmp_path: Path, task: str) -> Path:
    root = tmp_path / f"data-{task}"
    for split in ("train", "val", "test"):
        write_records(root / f"{split}.jsonl", [_record(i, task) for i in range(4)])
    return root


def test_every_config_has_a_stand_in_and_starts_with_its_command():
    stems = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert stems == set(STAND_INS)
    for path in CONFIGS.glob("*.yaml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# mendlight ") and f"configs/{path.name}" in first, path.name


@pytest.mark.parametrize("stem", sorted(PAPER_MODELS))
def test_paper_configs_hold_the_paper_settings(stem):
    cfg = yaml.safe_load((CONFIGS / f"{stem}.yaml").read_text())
    args = cfg["model"]["init_args"]
    assert args["base_model"] == PAPER_MODELS[stem]
    assert (args["rank"], args["edit_lr"], args["c_edit"], args["c_loc"]) == (1920, 1e-4, 0.1, 1.0)
    assert args["optimizer"]["init_args"]["lr"] == 1e-6  # the paper's MEND outer learning rate
    assert cfg["trainer"]["accumulate_grad_batches"] == 10 and cfg["trainer"]["gradient_clip_val"] == 100.0
    assert args.get("dtype", "float32") == ("bfloat16" if stem == "t5xxl_zsre" else "float32")
    assert "Paper numbers" in (CONFIGS / f"{stem}.yaml").read_text()


@pytest.mark.parametrize("stem", sorted(STAND_INS))
def test_config_runs_one_step_on_a_tiny_stand_in(stem, tmp_path, no_argv):
    tiny, task = STAND_INS[stem]
    cfg = yaml.safe_load((CONFIGS / f"{stem}.yaml").read_text())
    test_time = cfg["model"]["class_path"].endswith(".FT")
    overrides = [
        "-c",
        str(CONFIGS / f"{stem}.yaml"),
        f"--model.init_args.base_model={tiny}",
        "--model.init_args.dtype=float32",
        f"--data.init_args.dataset={_dataset(tmp_path, task)}",
        "--data.init_args.dataset_options=null",  # the embedded dataset's builder options
        "--trainer.accelerator=cpu",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if "rank" in cfg["model"]["init_args"]:
        overrides.append("--model.init_args.rank=4")
    if test_time:
        main(["test", *overrides, "--trainer.limit_test_batches=2"])
    else:
        main(
            [
                "fit",
                *overrides,
                "--trainer.max_steps=1",
                "--trainer.max_time=null",
                "--trainer.accumulate_grad_batches=1",
                "--trainer.val_check_interval=1",
                "--trainer.limit_val_batches=1",
            ]
        )
    run = next((tmp_path / "runs" / stem).glob("version_*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["init_args"]["base_model"] == tiny
    if test_time:
        assert (run / "results.json").is_file()
    else:
        ckpt = run / "checkpoints" / "last.ckpt"
        assert ckpt.is_file()
        import torch

        state = torch.load(ckpt, weights_only=True, map_location="cpu")
        assert state["global_step"] == 1 and not any(k.startswith("base.") for k in state["state_dict"])


FRAGMENTS = sorted((CONFIGS / "editor").glob("mend_*.yaml"))
BASELINES = {"ft": "FT", "ft_kl": "FTKL", "enn": "ENN", "ke": "KE", "cache": "Cache", "malmen": "MALMEN"}
#: fragment stem -> the MEND init args it sets (docs/algorithm.md §9, Table 6 mapping)
ABLATIONS = {
    "mend_no_sharing": {"shared": False},
    "mend_no_norm": {"norm": False},
    "mend_no_id_init": {"init": "xavier"},
    "mend_only_u": {"combine": False, "x_only": True},
    "mend_only_delta": {"combine": False, "delta_only": True},
    "mend_only_smaller": {"combine": False, "one_sided": True},
}


def test_table6_fragments_are_the_paper_ablations():
    assert {p.stem for p in FRAGMENTS} == set(ABLATIONS)
    for path in FRAGMENTS:
        cfg = yaml.safe_load(path.read_text())
        assert cfg == {"model": {"init_args": ABLATIONS[path.stem]}}
        assert path.read_text().startswith(
            f"# mendlight fit -c configs/smollm2_qa.yaml -c configs/editor/{path.name}"
        )


def _fit_qa_with_fragment(
    fragment: Path, dataset: Path, tmp_path: Path, *more: Path, extra: tuple[str, ...] = ()
) -> None:
    """One training step of the QA setting composed with ``fragment`` (then ``more``), on a tiny Llama.

    ``extra`` command-line arguments come last, so they override the defaults here.
    """
    main(
        [
            "fit",
            "-c",
            str(CONFIGS / "smollm2_qa.yaml"),
            *[arg for path in (fragment, *more) for arg in ("-c", str(path))],
            "--model.init_args.base_model=tiny-random-llama",
            "--model.init_args.rank=4",
            f"--data.init_args.dataset={dataset}",
            f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
            "--trainer.max_steps=1",
            "--trainer.max_time=null",
            "--trainer.val_check_interval=1",
            "--trainer.limit_val_batches=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *extra,
        ]
    )


@pytest.mark.parametrize("fragment", [p.stem for p in FRAGMENTS])
def test_fragment_composes_with_a_setting_and_trains_one_step(fragment, tmp_path, no_argv):
    _fit_qa_with_fragment(CONFIGS / "editor" / f"{fragment}.yaml", _dataset(tmp_path, "completion"), tmp_path)
    run = next((tmp_path / "runs" / f"smollm2_qa+{fragment}").glob("version_*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]
    assert all(saved[k] == v for k, v in ABLATIONS[fragment].items())
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_every_editor_fragment_is_known():
    stems = {p.stem for p in (CONFIGS / "editor").glob("*.yaml")}
    assert stems == set(ABLATIONS) | set(BASELINES) | {"mend"}


def test_mend_reference_fragment_changes_nothing():
    cfg = yaml.safe_load((CONFIGS / "editor" / "mend.yaml").read_text())
    assert cfg == {"model": {"init_args": {}}}


@pytest.mark.parametrize("fragment", sorted(BASELINES))
def test_baseline_fragment_swaps_the_editor_and_keeps_the_setting(fragment, tmp_path, no_argv):
    cfg = yaml.safe_load((CONFIGS / "editor" / f"{fragment}.yaml").read_text())
    assert cfg["model"]["class_path"] == f"mendlight.editors.{BASELINES[fragment]}"
    test_time = BASELINES[fragment] in ("FT", "FTKL", "Cache")
    args = [
        "-c",
        str(CONFIGS / "smollm2_qa.yaml"),
        "-c",
        str(CONFIGS / "editor" / f"{fragment}.yaml"),
        "--model.init_args.base_model=tiny-random-llama",
        f"--data.init_args.dataset={_dataset(tmp_path, 'completion')}",
        f"--trainer.logger.init_args.save_dir={tmp_path / 'runs'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if test_time:
        main(["test", *args, "--trainer.limit_test_batches=2"])
    else:
        main(
            [
                "fit",
                *args,
                "--trainer.max_steps=1",
                "--trainer.max_time=null",
                "--trainer.val_check_interval=1",
            ]
            + ["--trainer.limit_val_batches=1"]
        )
    run = next((tmp_path / "runs" / f"smollm2_qa+{fragment}").glob("version_*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["class_path"] == f"mendlight.editors.{BASELINES[fragment]}"
    assert saved["data"]["init_args"]["max_length"] == 64  # the setting's data section is kept
    assert (run / ("results.json" if test_time else "checkpoints/last.ckpt")).is_file()


def test_batched_training_fragment_makes_five_edits_per_step(tmp_path, no_argv):
    root = tmp_path / "data-completion"
    for split in ("train", "val", "test"):
        write_records(root / f"{split}.jsonl", [_record(i, "completion") for i in range(16)])
    path = CONFIGS / "train" / "batched5.yaml"
    command = "# mendlight fit -c configs/smollm2_qa.yaml -c configs/train/batched5.yaml"
    assert path.read_text().startswith(command)
    _fit_qa_with_fragment(path, root, tmp_path)
    run = next((tmp_path / "runs" / "smollm2_qa+batched5").glob("version_*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["init_args"]["n_edits"] == 5
    assert saved["trainer"]["max_steps"] == 1  # the command line still overrides the fragment
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_learning_rate_fragment_sets_adam_for_the_editor_networks_and_keeps_the_step_size_rate(
    tmp_path, no_argv
):
    path = CONFIGS / "train" / "lr1e-4.yaml"
    assert path.read_text().startswith(
        "# mendlight fit -c configs/smollm2_qa.yaml -c configs/editor/malmen.yaml "
    )
    malmen = CONFIGS / "editor" / "malmen.yaml"
    _fit_qa_with_fragment(malmen, _dataset(tmp_path, "completion"), tmp_path, path)
    run = next((tmp_path / "runs" / "smollm2_qa+malmen+lr1e-4").glob("version_*"))
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["class_path"] == "mendlight.editors.MALMEN"  # the editor fragment's class is kept
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert [group["lr"] for group in groups] == [1e-4, 1e-5]  # networks and λ at 1e-4; η at MALMEN's lr_lr


def test_long_run_config_stops_early_on_validation_es_within_two_and_a_half_hours():
    cfg = yaml.safe_load((CONFIGS / "smollm2_qa_long.yaml").read_text())
    assert cfg["trainer"]["max_time"] == "00:02:30:00"
    assert cfg["early_stopping"]["monitor"] == cfg["checkpoint"]["monitor"] == "val/es"
    assert cfg["early_stopping"]["mode"] == cfg["checkpoint"]["mode"] == "max"
    assert cfg["early_stopping"]["patience_steps"] >= 5 * cfg["trainer"]["val_check_interval"]
    assert cfg["data"]["init_args"]["dataset_options"] == {"split_by": "relation"}  # unseen relations in test
    # every editor composed with the setting (FT, the cache) edits one record at a time in evaluation, as MEND
    # with independent edits does: the long run's table compares single edits
    assert cfg["data"]["init_args"]["eval_n_edits"] == 1


MALMEN_COMMAND = "# mendlight fit -c configs/smollm2_qa.yaml -c configs/editor/malmen.yaml "


def test_last_six_blocks_fragment_edits_the_mlps_of_smollm2s_last_six_blocks():
    from mendlight.models.arch import resolve_edit_params
    from mendlight.models.tiny import build_tiny_model

    path = CONFIGS / "train" / "last6blocks.yaml"
    assert path.read_text().startswith(MALMEN_COMMAND)
    patterns = yaml.safe_load(path.read_text())["model"]["init_args"]["edit_params"]
    model = build_tiny_model("llama", num_hidden_layers=30)  # SmolLM2-135M's depth, Llama names
    weights = ("gate", "up", "down")
    expected = [f"model.layers.{i}.mlp.{w}_proj.weight" for i in range(24, 30) for w in weights]
    assert resolve_edit_params(model, patterns) == expected
    assert resolve_edit_params(model)[0] == "model.layers.27.mlp.gate_proj.weight"  # the table's default: 3


def test_batched125_fragment_continues_a_k25_editor_at_a_larger_k(tmp_path, no_argv):
    """batched125.yaml is used with --ckpt_path of a k = 25 run: resuming at another n_edits must work."""
    path = CONFIGS / "train" / "batched125.yaml"
    assert path.read_text().startswith(MALMEN_COMMAND)
    cfg = yaml.safe_load(path.read_text())
    assert cfg["data"]["init_args"]["n_edits"] == 125
    assert cfg["trainer"]["max_time"] == "00:02:30:00"  # counts the k = 25 run's time too
    root = tmp_path / "data-completion"
    for split in ("train", "val", "test"):
        write_records(root / f"{split}.jsonl", [_record(i, "completion") for i in range(16)])
    malmen = CONFIGS / "editor" / "malmen.yaml"
    _fit_qa_with_fragment(malmen, root, tmp_path, CONFIGS / "train" / "batched5.yaml")
    first = next((tmp_path / "runs" / "smollm2_qa+malmen+batched5").glob("version_*"))
    extra = (
        "--data.init_args.n_edits=8",
        "--trainer.max_steps=3",
        f"--ckpt_path={first / 'checkpoints' / 'last.ckpt'}",
    )
    _fit_qa_with_fragment(malmen, root, tmp_path, path, extra=extra)  # 16 records hold no 125-edit batch: 8
    second = next((tmp_path / "runs" / "smollm2_qa+malmen+batched125").glob("version_*"))
    assert yaml.safe_load((second / "config.yaml").read_text())["data"]["init_args"]["n_edits"] == 8
    before = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)
    after = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert (before["global_step"], after["global_step"]) == (1, 3)  # went on from the first run's step
    changed = [k for k, v in after["state_dict"].items() if not torch.equal(v, before["state_dict"][k])]
    assert any(k.startswith("transforms.") for k in changed)  # the networks trained on from the first run's
