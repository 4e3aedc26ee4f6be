import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "formats"


@pytest.fixture
def fx():
    """The directory of the format fixtures (hand-written files in each public layout)."""
    return FIXTURES


@pytest.fixture
def write_jsonl():
    """Write objects (or raw strings, as they are) one per line; return the path."""

    def write(path, objects):
        lines = [obj if isinstance(obj, str) else json.dumps(obj) for obj in objects]
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return path

    return write


@pytest.fixture
def fixture_lines():
    """The parsed objects of a JSONL fixture."""

    def read(name):
        text = (FIXTURES / name).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    return read


@pytest.fixture
def no_hub_env(monkeypatch):
    """Online mode for the converters (tests never reach the network: load_dataset is faked)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
