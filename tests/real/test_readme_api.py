"""The README's Python API example, run as written on the real SmolLM2 (in a temporary directory)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    match = re.search(r"<!-- api-example -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md has no <!-- api-example --> python block"
    return match.group(1)


@pytest.mark.real
def test_the_readme_api_example_runs_and_does_what_it_says(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example(), "README.md:api-example", "exec"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("1.0 ' Rome")  # the edit worked, as the comment says
    model, path = namespace["model"], namespace["path"]
    original = AutoModelForCausalLM.from_pretrained(path)
    for name, p in model.named_parameters():  # undo() restored the in-place edit exactly
        assert torch.equal(p, dict(original.named_parameters())[name]), name
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "smollm2-rome")
    edited = {
        n for n, p in saved.named_parameters() if not torch.equal(p, dict(original.named_parameters())[n])
    }
    assert edited == set(namespace["editor"].editor.edit_names)
