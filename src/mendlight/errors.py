"""The one base class of every error in a user's input that mendlight reports as one message.

``mendlight`` prints such an error as ``mendlight: error: <message>`` and exits with status 2, without a
traceback (:func:`mendlight.cli.main`). Every error in a config, an option, a records file, a model reference
or a checkpoint derives from :class:`UserInputError`, usually together with the built-in exception a caller
would expect (``ValueError``, ``FileNotFoundError``...), so code that catches those keeps working. Anything
else that escapes is a bug in mendlight and keeps its traceback.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input from the user: the message names the file, line, option or value and says what to do."""


class ConfigError(UserInputError, ValueError):
    """An option or config value is out of range; the message names the option and the accepted values."""


class CheckpointError(UserInputError, ValueError):
    """A checkpoint cannot be used: missing, unreadable, remote, or made for another editor or base model."""


def user_error_behind(exc: BaseException) -> UserInputError | None:
    """The :class:`UserInputError` behind ``exc``: itself, or one of its causes or contexts, else None.

    jsonargparse and Lightning wrap errors raised while a config is instantiated or a run starts, so the
    user's error is looked for along ``__cause__`` and ``__context__`` too.
    """
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        err = stack.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, UserInputError):
            return err
        stack += [err.__cause__, err.__context__]
    return None


def check_at_least(owner: str, name: str, value: int | float | None, low: int | float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is None or at least ``low``.

    Args:
        owner: the class whose option it is (``MEND``, ``EditDataModule``), named in the message.
        name: the option name as the config spells it (``rank``).
        value: the value given.
        low: the smallest accepted value.

    """
    if value is not None and not value >= low:  # NaN is refused too
        raise ConfigError(f"{owner}: {name} must be at least {low}, got {value}")


class TrainingStopped(Exception):
    """Training stopped before its end for a reason the message explains (not a bug: no traceback).

    Args:
        message: what happened and what to do.
        reason: a short tag written to ``fit.json`` (``non-finite``, ``SIGTERM``, ``SIGINT``).
        exit_code: the process exit status ``mendlight`` ends with.

    """

    def __init__(self, message: str, reason: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = exit_code


class ModelLoadError(UserInputError, RuntimeError):
    """A base model or tokenizer reference could not be resolved; the message says what to do.

    Also importable from :mod:`mendlight.models.loading`, where the references are resolved.
    """


class UnknownModelError(ModelLoadError, ValueError):
    """A reference names no model mendlight knows (``tiny-random-<name>`` with an unknown name).

    Also importable from :mod:`mendlight.models.loading`.
    """
