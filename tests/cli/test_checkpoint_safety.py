"""``--ckpt_path`` is checked before anything runs: local only, loaded safely, and made for this config.

A crafted checkpoint served by a local HTTP server would run code when unpickled with ``weights_only=False``
(its payload creates a marker file): it must be refused as a URL, and, with the scheme allowed, refused by
``weights_only=True``. Checkpoints of another editor class, base model or architecture, and files that are
not checkpoints, are one message with status 2.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import threading
from pathlib import Path

import pytest
import torch
import yaml

from tests.cli.conftest import one_error_line

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny_debug.yaml"
QUICK = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]


class Payload:
    """Unpickling this runs ``Path(marker).touch()``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained editors: MEND on a Llama and MEND on a GPT-2, each with its run config."""
    import os
    import sys

    from mendlight.cli import main

    root = tmp_path_factory.mktemp("ckpts")
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(root)
    sys.argv = ["mendlight"]
    try:
        main(["fit", "-c", str(TINY), *QUICK])
        main(["fit", "-c", str(TINY), *QUICK, "--model.init_args.base_model", "tiny-random-gpt2"])
    finally:
        os.chdir(cwd)
        sys.argv = argv
    llama, gpt2 = (root / "runs" / "tiny_debug" / f"version_{i}" for i in (0, 1))
    return {"root": root, "llama": llama, "gpt2": gpt2}


@pytest.fixture
def serve(tmp_path):
    """Serve ``tmp_path/www`` over HTTP on localhost; yields the base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _crafted(trained, path: Path, marker: Path) -> None:
    """A real editor checkpoint with a payload among its entries."""
    ckpt = torch.load(trained["llama"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ckpt["payload"] = Payload(marker)
    torch.save(ckpt, path)


@pytest.mark.parametrize("subcommand", ["test", "fit"])
def test_a_url_is_refused_and_its_payload_never_runs(
    trained, serve, tmp_path, monkeypatch, run_mendlight, subcommand
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "cache"))
    www, url = serve
    marker = tmp_path / "payload-ran"
    _crafted(trained, www / "x.ckpt", marker)
    config = trained["llama"] / "config.yaml"
    code, _, err = run_mendlight([subcommand, "-c", str(config), "--ckpt_path", f"{url}/x.ckpt"])
    assert code == 2
    line = one_error_line(err)
    assert "remote URL" in line and "--allow_remote_ckpt" in line
    assert not marker.exists()
    # Allowed explicitly, the download is loaded with weights_only=True: refused, and nothing runs.
    code, _, err = run_mendlight(
        [subcommand, "-c", str(config), "--ckpt_path", f"{url}/x.ckpt", "--allow_remote_ckpt", "[http]"]
    )
    assert code == 2
    assert "pickled objects other than tensors" in one_error_line(err)
    assert not marker.exists()
    assert not list(tmp_path.glob("runs/*/version_*"))  # no run was started


def test_an_allowed_remote_checkpoint_is_used(trained, serve, tmp_path, monkeypatch, run_mendlight):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MENDLIGHT_CACHE", str(tmp_path / "cache"))
    www, url = serve
    (www / "good.ckpt").write_bytes((trained["llama"] / "checkpoints" / "last.ckpt").read_bytes())
    config = trained["llama"] / "config.yaml"
    args = ["test", "-c", str(config), "--ckpt_path", f"{url}/good.ckpt", "--allow_remote_ckpt", "[http]"]
    code, out, err = run_mendlight(args)
    assert code == 0, err[-3000:]
    assert "# Editing results: MEND" in out
    (cached,) = (tmp_path / "cache" / "checkpoints").glob("*.ckpt")
    assert cached.read_bytes() == (www / "good.ckpt").read_bytes()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty file"),
        (b"not a checkpoint at all\n" * 10, "truncated or not a PyTorch checkpoint"),
        ("truncated", "truncated or not a PyTorch checkpoint"),
        ("plain", "not a mendlight editor checkpoint"),
        ("missing", "does not exist"),
    ],
    ids=["empty", "garbage", "truncated", "not-an-editor", "missing"],
)
def test_an_unusable_file_is_one_message(trained, tmp_path, monkeypatch, run_mendlight, content, words):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.ckpt"
    real = (trained["llama"] / "checkpoints" / "last.ckpt").read_bytes()
    if content == "truncated":
        path.write_bytes(real[: len(real) // 2])
    elif content == "plain":
        torch.save({"weights": torch.zeros(3)}, path)
    elif content != "missing":
        path.write_bytes(content)
    for subcommand in ("test", "fit", "edit"):
        extra = ["--prompt", "p", "--target", "t"] if subcommand == "edit" else []
        code, _, err = run_mendlight([subcommand, "-c", str(TINY), "--ckpt_path", str(path), *extra])
        assert code == 2, (subcommand, err[-2000:])
        line = one_error_line(err)
        assert words in line and "bad.ckpt" in line, line
    assert not list(tmp_path.glob("runs/*/version_*"))


def _config_with(tmp_path: Path, **model) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["model"] = {**cfg["model"], **model}
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_another_editor_class_is_refused(trained, tmp_path, monkeypatch, run_mendlight):
    # `-c configs/editor/enn.yaml` with a MEND checkpoint used to run MEND in a run named `+enn`
    monkeypatch.chdir(tmp_path)
    enn = ROOT / "configs" / "editor" / "enn.yaml"
    ckpt = trained["llama"] / "checkpoints" / "last.ckpt"
    code, _, err = run_mendlight(["test", "-c", str(TINY), "-c", str(enn), "--ckpt_path", str(ckpt)])
    assert code == 2
    line = one_error_line(err)
    assert "holds a MEND editor" in line and "asks for ENN" in line
    assert not list(tmp_path.glob("runs/*/version_*"))


def test_another_base_model_is_refused_naming_both(trained, tmp_path, monkeypatch, run_mendlight):
    # a GPT-2 editor tested with the Llama config used to test GPT-2 silently
    monkeypatch.chdir(tmp_path)
    ckpt = trained["gpt2"] / "checkpoints" / "last.ckpt"
    code, _, err = run_mendlight(["test", "-c", str(TINY), "--ckpt_path", str(ckpt)])
    assert code == 2
    line = one_error_line(err)
    assert "'tiny-random-gpt2'" in line and "'tiny-random-llama'" in line and "--allow_other_base" in line
    # Allowed deliberately, the shapes still have to fit: another architecture is one message too.
    code, _, err = run_mendlight(
        ["test", "-c", str(TINY), "--ckpt_path", str(ckpt), "--allow_other_base", "true"]
    )
    assert code == 2
    line = one_error_line(err)
    assert "does not fit this MEND editor" in line
    assert not list(tmp_path.glob("runs/*/version_*"))  # the run it had started is removed


def test_other_weights_of_the_same_shapes_need_allow_other_base(
    trained, tmp_path, monkeypatch, run_mendlight
):
    # The same architecture with other weights (another seed of the tiny model is not available, so the
    # edited weights are changed in a saved copy of the base): refused, then allowed with a warning.
    from mendlight.models.loading import load_base_model, load_tokenizer

    monkeypatch.chdir(tmp_path)
    base = load_base_model("tiny-random-llama")
    with torch.no_grad():
        base.model.layers[3].mlp.down_proj.weight.add_(0.01)
    base.save_pretrained(tmp_path / "other-llama")
    load_tokenizer("tiny-random-llama").save_pretrained(tmp_path / "other-llama")
    config = _config_with(tmp_path, init_args={**yaml.safe_load(TINY.read_text())["model"]["init_args"]})
    ckpt = trained["llama"] / "checkpoints" / "last.ckpt"
    other = ["--model.init_args.base_model", str(tmp_path / "other-llama")]
    code, _, err = run_mendlight(["test", "-c", str(config), "--ckpt_path", str(ckpt), *other])
    assert code == 2 and "--allow_other_base" in one_error_line(err)
    code, out, err = run_mendlight(
        ["test", "-c", str(config), "--ckpt_path", str(ckpt), *other, "--allow_other_base", "true"]
    )
    assert code == 0, err[-3000:]
    assert "# Editing results: MEND" in out
    run = Path(out.strip().splitlines()[-1].removeprefix("run: "))  # inside the trained run: its tests/
    assert run.parent == (trained["llama"] / "tests").resolve()
    assert not list(tmp_path.glob("runs/*/version_*"))
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["init_args"]["base_model"] == other[1]
