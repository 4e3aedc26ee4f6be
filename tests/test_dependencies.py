"""The declared dependencies: installed versions satisfy them, lower bounds cover the features the code uses,
and the private Lightning methods mendlight overrides still exist with the signatures it calls."""

from __future__ import annotations

import configparser
import importlib.metadata
import inspect
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

#: The least version of a dependency that has what mendlight uses (and what it uses from it).
FEATURE_MINIMUMS = {
    "transformers": ("4.56", "from_pretrained(dtype=...), the keyword the loaders pass"),
    "pytorch-lightning": ("2.6", "callbacks.early_stopping.EarlyStoppingReason"),
    "jsonargparse": ("4.27.7", "LightningCLI's subclass_mode and docstring help"),
    "torch": ("2.4", "torch.load(weights_only=True) of Lightning checkpoints, torch.func.functional_call"),
}


def _requirements() -> dict[str, Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in config["options"]["install_requires"].splitlines() if line.strip()]
    return {Requirement(line).name.lower(): Requirement(line) for line in lines}


def _lower_bound(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


@pytest.mark.parametrize("name", sorted(_requirements()))
def test_the_installed_version_satisfies_the_declared_requirement(name):
    requirement = _requirements()[name]
    installed = importlib.metadata.version(name)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{name} {installed} is installed but setup.cfg declares {requirement}"
    )
    assert _lower_bound(requirement) is not None, f"{name} has no lower bound in setup.cfg"


@pytest.mark.parametrize("name", sorted(FEATURE_MINIMUMS))
def test_the_lower_bound_covers_what_the_code_uses(name):
    least, why = FEATURE_MINIMUMS[name]
    bound = _lower_bound(_requirements()[name])
    assert bound is not None and bound >= Version(least), f"{name}: the code needs >= {least} for {why}"


def test_transformers_takes_the_dtype_keyword():
    import torch
    from transformers import AutoModelForCausalLM

    from mendlight.models.tiny import tiny_config

    config = tiny_config("gpt2")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16


# The private Lightning methods mendlight overrides or calls (the upper pin <2.7 is the other guard): each
# must exist with these parameters, or the override silently stops being called.
PRIVATE_LIGHTNING = [
    ("pytorch_lightning.callbacks.EarlyStopping", "_run_early_stopping_check", ["self", "trainer"]),
    ("pytorch_lightning.callbacks.EarlyStopping", "_evaluate_stopping_criteria", ["self", "current"]),
    ("pytorch_lightning.cli.LightningCLI", "_instantiate_trainer", ["self", "config", "callbacks"]),
    ("pytorch_lightning.cli.LightningCLI", "_parse_ckpt_path", ["self"]),
    ("pytorch_lightning.loggers.TensorBoardLogger", "_get_next_version", ["self"]),
    (
        "pytorch_lightning.loops.training_epoch_loop._TrainingEpochLoop",
        "_should_check_val_fx",
        ["self", "data_fetcher"],
    ),
]


@pytest.mark.parametrize(("owner", "method", "params"), PRIVATE_LIGHTNING)
def test_the_private_lightning_methods_used_still_exist(owner, method, params):
    module_name, cls_name = owner.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), cls_name)
    assert hasattr(cls, method), f"{owner}.{method} is gone: mendlight's override no longer runs"
    assert list(inspect.signature(getattr(cls, method)).parameters) == params


def test_the_license_is_shipped():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0" in text
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["metadata"]["license_files"].strip() == "LICENSE"
