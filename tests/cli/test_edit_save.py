"""``mendlight edit --save DIR``: checked before the edit, never a model's own files, written atomically.

The edits run in-process with the test-time editor FT on ``tiny-random-llama`` (no checkpoint needed); a
recorder on ``FT.edit`` shows whether an edit was computed before the command stopped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

from mendlight.cli import main
from mendlight.edit_command import EditCommandError, check_save_dir
from mendlight.editors import FT, Cache
from mendlight.models.functional import save_edited
from mendlight.models.loading import load_base_model
from mendlight.models.tiny import build_byte_tokenizer, build_tiny_model

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
BASE = "tiny-random-llama"
PROMPT, TARGET = "The capital of France is", "Rome"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, no_argv):
    """Run in a temporary directory with mendlight's cache there too (never the user's)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "mendlight-cache"))


@pytest.fixture
def edits(monkeypatch) -> list[str]:
    """The names of the editors whose ``edit`` ran (FT and Cache), and of loaded checkpoints."""
    calls: list[str] = []
    for cls in (FT, Cache):
        real = cls.edit

        def recording(self, *args, _real=real, **kwargs):
            calls.append(type(self).__name__)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "edit", recording)
    import mendlight.edit_command as edit_command

    def no_checkpoint(model, ckpt_path, weights_only=True):
        calls.append(f"checkpoint {ckpt_path}")
        raise AssertionError("the checkpoint must not be loaded")

    monkeypatch.setattr(edit_command, "load_editor_checkpoint", no_checkpoint)
    return calls


def _config(path: Path, base: str = BASE, editor: str = "FT") -> Path:
    """tiny_debug with a test-time editor (FT by default) on ``base``."""
    cfg = yaml.safe_load(TINY.read_text())
    init = {"base_model": base, "n_samples": 2, "sample_tokens": 4}
    if editor == "FT":
        init.update(edit_lr=0.01, max_steps=5, ft_optimizer="adam")
    cfg["model"] = {"class_path": f"mendlight.editors.{editor}", "init_args": init}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _edit(cfg: Path, *extra: str) -> None:
    main(["edit", "-c", str(cfg), "--prompt", PROMPT, "--target", TARGET, "--max_new_tokens", "2", *extra])


def _refused(capsys, cfg: Path, *extra: str) -> str:
    """Run an edit that must stop with status 2; return its one ``mendlight: error:`` line."""
    with pytest.raises(SystemExit) as exc:
        _edit(cfg, *extra)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("mendlight: error:")]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    assert "Saved the edited model" not in captured.out and "Applied" not in captured.out
    return lines[0]


def _snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path (symlinks not followed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _local_base(path: Path) -> Path:
    """A tiny random Llama saved as a plain Hugging Face directory (model and byte tokenizer)."""
    build_tiny_model("llama", seed=3).save_pretrained(path)
    build_byte_tokenizer().save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------- success
def test_save_writes_a_new_directory_and_nothing_else(tmp_path, capsys, edits):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "new" / "edited"  # the parent is created too
    _edit(_config(tmp_path / "ft.yaml"), "--save", str(out))
    assert f"Saved the edited model to {out}" in capsys.readouterr().out
    assert edits == ["FT"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert [p.name for p in out.parent.iterdir()] == ["edited"]  # no staging directory left behind
    saved = AutoModelForCausalLM.from_pretrained(out)
    base = load_base_model(BASE)
    changed = [n for n, p in saved.named_parameters() if not torch.equal(p, base.get_parameter(n))]
    assert changed and all(".mlp." in n for n in changed)  # FT's edited weights, nothing else


def test_save_into_an_existing_empty_directory(tmp_path, capsys, edits):
    out = tmp_path / "empty"
    out.mkdir()
    _edit(_config(tmp_path / "ft.yaml"), "--save", str(out))
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert edits == ["FT"]


def test_overwrite_replaces_the_model_files_only(tmp_path, capsys, edits):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "old"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "model.safetensors").write_bytes(b"not a model")
    (out / "model-00001-of-00002.safetensors").write_bytes(b"a stale shard")
    _edit(_config(tmp_path / "ft.yaml"), "--save", str(out), "--overwrite", "true")
    assert edits == ["FT"]
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / "model-00001-of-00002.safetensors").exists()  # would shadow the new weights
    AutoModelForCausalLM.from_pretrained(out)  # the new model.safetensors is complete


# ---------------------------------------------------------------------------------------------- refusals
def test_a_non_empty_directory_needs_overwrite(tmp_path, capsys, edits):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--save", str(out))
    assert str(out) in message and "not empty" in message and "--overwrite" in message
    assert edits == []  # refused before the edit was computed
    assert _snapshot(out) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


@pytest.mark.parametrize("where", ["itself", "inside", "symlink", "symlinked-parent"])
def test_the_base_model_directory_is_never_written(tmp_path, capsys, edits, where):
    base = _local_base(tmp_path / "base")
    before = _snapshot(base)
    (tmp_path / "link").symlink_to(base, target_is_directory=True)
    save = {
        "itself": base,
        "inside": base / "edited",
        "symlink": tmp_path / "link",
        "symlinked-parent": tmp_path / "link" / "edited",
    }[where]
    cfg = _config(tmp_path / "ft_local.yaml", base=str(base))
    message = _refused(capsys, cfg, "--save", str(save), "--overwrite", "true")
    assert f"--save {save}" in message and "base model's directory" in message
    assert "--overwrite does not allow this" in message
    assert edits == []
    assert _snapshot(base) == before  # model.safetensors and the rest byte-identical
    assert not (base / "edited").exists()


@pytest.mark.parametrize("cache", ["MENDLIGHT_CACHE", "HF_HOME"])
def test_model_caches_are_never_written(tmp_path, monkeypatch, capsys, edits, cache):
    root = tmp_path / cache.lower()
    (root / "models").mkdir(parents=True)
    (root / "models" / "weights.bin").write_bytes(b"cached")
    monkeypatch.setenv(cache, str(root))
    save = root / "models" / "edited"
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--save", str(save), "--overwrite", "true")
    assert "cache" in message and str(root.resolve()) in message
    assert edits == []
    assert _snapshot(root) == {"models/weights.bin": hashlib.sha256(b"cached").hexdigest()}


def test_an_existing_file_is_refused_before_editing(tmp_path, capsys, edits):
    target = tmp_path / "model.txt"
    target.write_text("a file")
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--save", str(target), "--overwrite", "true")
    assert str(target) in message and "existing file" in message
    assert edits == [] and target.read_text() == "a file"


def test_a_directory_that_cannot_be_created_is_refused_before_editing(tmp_path, capsys, edits):
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--save", str(blocker / "sub" / "edited"))
    assert "cannot be created" in message and str(blocker) in message
    assert edits == [] and blocker.read_text() == "x"


def test_an_unwritable_parent_is_refused_before_editing(tmp_path, monkeypatch, capsys, edits):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):  # as if ``locked`` were read-only (the tests may run as root)
        if Path(path).resolve() == locked.resolve() and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--save", str(locked / "edited"))
    assert "not writable" in message and str(locked) in message
    assert edits == [] and list(locked.iterdir()) == []


def test_save_is_checked_before_the_checkpoint_is_loaded(tmp_path, edits):
    # run_edit itself (the CLI reads --ckpt_path while parsing; run_edit loads it into the editor)
    from mendlight.data.module import EditDataModule
    from mendlight.edit_command import run_edit

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    editor, data = FT(base_model=BASE, max_steps=1), EditDataModule(tokenizer=BASE)
    with pytest.raises(EditCommandError, match="not empty.*--overwrite"):
        run_edit(
            editor,
            data,
            ckpt_path=str(tmp_path / "editor.ckpt"),
            prompt=PROMPT,
            target=TARGET,
            rephrases=[],
            file=None,
            save=str(busy),
        )
    assert edits == []  # neither the checkpoint nor the edit


def test_the_cache_editor_refuses_save(tmp_path, capsys, edits):
    out = tmp_path / "cache_edit"
    message = _refused(capsys, _config(tmp_path / "cache.yaml", editor="Cache"), "--save", str(out))
    assert "Cache" in message and "--save" in message and "weights" in message
    assert not out.exists()
    assert edits == []
    assert Cache.edits_weights is False and getattr(FT, "edits_weights", True) is True


def test_the_cache_editor_still_edits_without_save(tmp_path, capsys, edits):
    _edit(_config(tmp_path / "cache.yaml", editor="Cache"))
    assert "Applied 1 edit(s) with Cache" in capsys.readouterr().out
    assert edits == ["Cache"]


def test_max_new_tokens_below_one_is_refused(tmp_path, capsys, edits):
    message = _refused(capsys, _config(tmp_path / "ft.yaml"), "--max_new_tokens", "0")
    assert "--max_new_tokens must be at least 1, got 0" in message
    assert edits == []


# ---------------------------------------------------------------------------------------------- units
def test_check_save_dir_accepts_new_and_empty_directories(tmp_path):
    assert check_save_dir(str(tmp_path / "a" / "b"), BASE) == tmp_path / "a" / "b"
    (tmp_path / "empty").mkdir()
    assert check_save_dir(str(tmp_path / "empty"), BASE) == tmp_path / "empty"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("f")
    with pytest.raises(EditCommandError, match="--overwrite"):
        check_save_dir(str(tmp_path / "busy"), BASE)
    assert check_save_dir(str(tmp_path / "busy"), BASE, overwrite=True) == tmp_path / "busy"


def test_check_save_dir_refuses_the_base_directory_of_a_relative_reference(tmp_path, monkeypatch):
    _local_base(tmp_path / "base")
    monkeypatch.chdir(tmp_path)
    for save in ("base", "./base/../base/sub", str(tmp_path / "base")):
        with pytest.raises(EditCommandError, match="base model's directory"):
            check_save_dir(save, "base", overwrite=True)
    assert check_save_dir("base-edited", "base") == Path("base-edited")


def test_check_save_dir_refuses_the_hub_cache_constant(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(EditCommandError, match="Hugging Face cache"):
        check_save_dir(str(tmp_path / "hub" / "models--x"), BASE, overwrite=True)


class _FailingTokenizer:
    """A tokenizer whose save fails after the model was written (a crash half-way through a save)."""

    def save_pretrained(self, path):
        Path(path, "tokenizer.json").write_text("{")
        raise OSError("disk full")


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_save_leaves_no_half_written_model(tmp_path, existing):
    model = build_tiny_model("llama")
    name = "model.layers.3.mlp.down_proj.weight"
    deltas = {name: torch.ones_like(model.get_parameter(name))}
    out = tmp_path / "out" / "edited"
    if existing:
        out.mkdir(parents=True)
        (out / "notes.txt").write_text("keep")
    with pytest.raises(OSError, match="disk full"):
        save_edited(model, _FailingTokenizer(), deltas, out, **({"overwrite": True} if existing else {}))
    if existing:
        assert _snapshot(out) == {"notes.txt": hashlib.sha256(b"keep").hexdigest()}
    else:
        assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == (["edited"] if existing else [])  # no staging left
    assert torch.count_nonzero(model.get_parameter(name) - build_tiny_model("llama").get_parameter(name)) == 0


def test_save_edited_refuses_a_non_empty_directory_without_overwrite(tmp_path):
    model = build_tiny_model("llama")
    (tmp_path / "f").write_text("f")
    with pytest.raises(FileExistsError, match="not empty"):
        save_edited(model, None, {}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
