"""The installable package: packaged configs found by name, the runs root, the wheel's contents, and an
installed wheel editing SmolLM2 from a directory outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mendlight.embedded import EMBEDDED_PACKAGES, install_command
from mendlight.embedded import main as embedded_main
from mendlight.packaged_configs import (
    packaged_config_dir,
    packaged_configs,
    resolve_config,
    resolve_config_args,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_repository_configs_are_the_packaged_ones():
    assert (ROOT / "configs").resolve() == packaged_config_dir()
    names = packaged_configs()
    assert {"smollm2_facts", "smollm2_facts_ft", "tiny_debug", "editor/enn", "train/batched25"} <= set(names)


def test_a_config_name_resolves_to_the_packaged_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here
    packaged = packaged_config_dir()
    for value in ("smollm2_qa", "smollm2_qa.yaml", "configs/smollm2_qa.yaml"):
        assert resolve_config(value) == str(packaged / "smollm2_qa.yaml")
    assert resolve_config("editor/enn") == str(packaged / "editor" / "enn.yaml")
    assert resolve_config("no_such_setting") == "no_such_setting"  # left for the parser's error
    (tmp_path / "smollm2_qa").write_text("seed_everything: 1\n")
    assert resolve_config("smollm2_qa") == "smollm2_qa"  # an existing file always wins
    argv = ["fit", "-c", "tiny_debug", "--config=editor/enn", "--model.rank", "4"]
    assert resolve_config_args(argv) == [
        "fit",
        "-c",
        str(packaged / "tiny_debug.yaml"),
        f"--config={packaged / 'editor' / 'enn.yaml'}",
        "--model.rank",
        "4",
    ]


def test_fit_by_config_name_lands_under_mendlight_runs(tmp_path, monkeypatch, no_argv):
    from mendlight.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MENDLIGHT_RUNS", str(tmp_path / "elsewhere"))
    main(["fit", "-c", "tiny_debug", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0"])
    assert (tmp_path / "elsewhere" / "tiny_debug" / "version_0" / "fit.json").is_file()
    assert not (tmp_path / "runs").exists()


def test_download_embedded_names_every_package_and_installs_only_the_missing(capsys):
    assert embedded_main(["--dry-run"]) == 0  # both are installed by make install
    out = capsys.readouterr().out
    assert all(f"{p}" in out and "installed" in out for p in EMBEDDED_PACKAGES)
    assert "pip install" not in out
    assert embedded_main(["--dry-run", "--force"]) == 0
    assert " ".join(install_command(list(EMBEDDED_PACKAGES))) in capsys.readouterr().out
    assert install_command(["x"])[-2:] == ["--no-deps", "x"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-qw", str(out)]
    subprocess.run([*command, str(source)], check=True, capture_output=True)
    (path,) = out.glob("mendlight-*.whl")
    return path


def test_the_wheel_ships_the_configs_and_the_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {n for n in names if n.startswith("mendlight/configs/")}
    expected = {f"mendlight/configs/{name}.yaml" for name in packaged_configs()}
    assert configs == expected
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


@pytest.mark.real
def test_an_installed_wheel_edits_by_config_name_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import mendlight; print(mendlight.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(site))  # the installed copy, not the repository's
    args = ["edit", "-c", "smollm2_facts_ft", "--prompt", "The capital of France is", "--target", "Rome"]
    done = subprocess.run(
        [sys.executable, "-m", "mendlight", *args, "--n_check", "0"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "target is the argmax: yes" in done.stdout
    assert (work / "runs" / "smollm2_facts_ft").is_dir()
