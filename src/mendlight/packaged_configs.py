"""The configs shipped inside the package, found by name: ``-c smollm2_facts`` as well as ``-c path.yaml``.

The settings, editor fragments and training fragments live in ``mendlight/configs/`` (the repository's
``configs/`` is a link to it), so an installed mendlight has them too. A ``-c``/``--config`` value that is not
an existing file is looked up there: ``smollm2_facts``, ``smollm2_facts.yaml``, ``editor/enn`` and
``configs/editor/enn.yaml`` all name packaged files. An existing file always wins, and a name found nowhere is
left as it is, for the parser's "no such file" error.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_OPTIONS = ("-c", "--config")


def packaged_config_dir() -> Path:
    """The directory of the packaged configs (``mendlight/configs``)."""
    return Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """The names of every packaged config, as ``-c`` takes them (``smollm2_qa``, ``editor/enn``)."""
    root = packaged_config_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def resolve_config(value: str) -> str:
    """``value`` if it is an existing file, else the packaged config it names, else ``value`` unchanged."""
    if not value or Path(value).expanduser().exists():
        return value
    name = value[len("configs/") :] if value.startswith("configs/") else value
    root = packaged_config_dir()
    for candidate in (name, f"{name}.yaml", f"{name}.yml"):
        path = root / candidate
        if path.is_file():
            return str(path)
    return value


def resolve_config_args(argv: list[str]) -> list[str]:
    """``argv`` with every ``-c``/``--config`` value resolved by :func:`resolve_config`."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in CONFIG_OPTIONS and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
        elif arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
    return out
