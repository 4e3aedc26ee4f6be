"""The builder options a user may give an embedded dataset (``EditDataModule(dataset_options=...)``).

On the command line they are ``--data.init_args.dataset_options '{"split_by": "relation"}'``. Each embedded
dataset accepts the fields of its builder's options dataclass, less those its name fixes (``facts`` and
``facts-qa`` differ only in ``prompt_style``). :func:`check_dataset_options` validates names and values
when the data module is constructed, so that a typo fails at once, naming the option and the accepted ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mendlight.errors import ConfigError

#: Options fixed by the dataset's name, not given by the user.
_FIXED = {"facts": ("prompt_style",), "facts-qa": ("prompt_style",), "claims": ("prompt_style",)}


def _options_class(dataset: str) -> type | None:
    """The options dataclass of an embedded dataset's builder (None for a records directory)."""
    if dataset in ("facts", "facts-qa"):
        from mendlight.data.builders.facts import FactOptions

        return FactOptions
    if dataset == "claims":
        from mendlight.data.builders.claims import ClaimOptions

        return ClaimOptions
    if dataset == "generation":
        from mendlight.data.builders.generation import GenerationOptions

        return GenerationOptions
    return None


def accepted_options(dataset: str) -> tuple[str, ...]:
    """The option names the embedded ``dataset`` accepts (empty for a records directory)."""
    cls = _options_class(dataset)
    if cls is None:
        return ()
    fixed = _FIXED.get(dataset, ())
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in fixed)


def check_dataset_options(dataset: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate the builder options given for ``dataset`` and return them as a plain dict.

    Args:
        dataset: an embedded dataset name (``facts``, ``facts-qa``, ``claims``, ``generation``) or a
            records directory.
        options: option name -> value, or None for none.

    Returns:
        The options (an empty dict for None).

    Raises:
        ConfigError: for options that are not a mapping, an unknown option name (the message names it and
            the accepted ones), options given for a records directory, or a value the builder refuses.

    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"EditDataModule: dataset_options must be a mapping of option names to values, got "
            f'{type(options).__name__}; e.g. {{"split_by": "relation"}}'
        )
    options = dict(options)
    if not options:
        return options
    cls = _options_class(dataset)
    if cls is None:
        raise ConfigError(
            f"EditDataModule: dataset_options {sorted(options)} apply to the embedded datasets only "
            "(facts, facts-qa, claims, generation), not to a records directory; leave them out"
        )
    accepted = accepted_options(dataset)
    unknown = sorted(name for name in options if name not in accepted)
    if unknown:
        raise ConfigError(
            f"EditDataModule: unknown dataset option(s) {', '.join(map(repr, unknown))} for dataset "
            f"{dataset!r}; accepted options: {', '.join(accepted)}"
        )
    try:
        cls(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"EditDataModule: dataset_options for dataset {dataset!r}: {err}") from err
    return options
