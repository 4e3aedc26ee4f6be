"""Fail fast on a Hugging Face hub model that cannot be had: offline, or the hub unreachable.

:func:`mendlight.models.loading.resolve_model_dir` treats any reference that is not an embedded alias, a
``.gguf`` file, a local directory or a ``tiny-random-*`` name as a hub name, and ``from_pretrained`` then
retries the hub for about 30-40 s before it fails when there is no network. :func:`check_hub_model` decides
at once, before anything is loaded:

* a model already in the Hugging Face cache is used; if the hub is unreachable, the process switches to
  offline mode (``HF_HUB_OFFLINE``) so that no request is retried;
* with ``HF_HUB_OFFLINE`` set, or the hub unreachable (one TCP connection to ``HF_ENDPOINT``, a few
  seconds at most), a model that is not cached is refused with one message;
* a name that is not a valid hub repository id is refused at once.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from mendlight.models.loading import BUILT_MODELS, EMBEDDED_MODELS, ModelLoadError
from mendlight.models.tiny import is_tiny_ref

#: Seconds to wait for the hub's TCP handshake before calling it unreachable.
PROBE_TIMEOUT_S = 3.0


class HubModelError(ModelLoadError):
    """A hub model that cannot be loaded now: offline, hub unreachable, or not a repository id."""


def is_hub_name(ref: str) -> bool:
    """Whether :func:`~mendlight.models.loading.resolve_model_dir` would look ``ref`` up on the hub.

    The same order of checks, without resolving anything: not an embedded or built alias, not a
    ``tiny-random-*`` name, not a ``.gguf`` file, not an existing directory and not a path.
    """
    if not ref or ref in EMBEDDED_MODELS or ref in BUILT_MODELS or is_tiny_ref(ref):
        return False
    path = Path(ref).expanduser()
    if ref.endswith(".gguf") or path.is_dir():
        return False
    return not (path.suffix or ref.startswith((".", "/", "~")))


def _alternatives() -> str:
    return (
        "pass a local model directory, a .gguf file or an embedded alias "
        f"({', '.join([*EMBEDDED_MODELS, *BUILT_MODELS])})"
    )


def hub_endpoint() -> str:
    """The hub's address (``HF_ENDPOINT``, default https://huggingface.co)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout`` seconds."""
    url = urlparse(endpoint or hub_endpoint())
    if not url.hostname:
        return False
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def is_cached(ref: str) -> bool:
    """Whether the hub model ``ref`` has its ``config.json`` in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(ref, "config.json"), str)


def go_offline() -> None:
    """Switch this process to Hugging Face offline mode (cached files only, no request retried)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def check_hub_model(ref: str | None) -> None:
    """Refuse at once a hub model that cannot be loaded now (see the module doc); other references pass.

    Raises:
        HubModelError: naming the model and why (offline, hub unreachable, invalid name), in one line.

    """
    if not isinstance(ref, str) or not is_hub_name(ref):
        return
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        raise HubModelError(
            f"base model {ref!r} is not a local path, an alias or a valid Hugging Face hub name; "
            + _alternatives()
        ) from None
    cached = is_cached(ref)
    if constants.HF_HUB_OFFLINE:
        if cached:
            return
        raise HubModelError(
            f"base model {ref!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
            "downloaded; unset HF_HUB_OFFLINE to download it, or " + _alternatives()
        )
    if hub_reachable():
        return
    if cached:
        go_offline()
        sys.stderr.write(
            f"mendlight: the Hugging Face hub is unreachable: using the cached copy of {ref!r}\n"
        )
        return
    raise HubModelError(
        f"base model {ref!r} is not in the Hugging Face cache and the hub ({hub_endpoint()}) is unreachable; "
        + _alternatives()
    )
