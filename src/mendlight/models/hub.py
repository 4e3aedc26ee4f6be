"""Whether a Hugging Face hub model can be had now, decided at once instead of after retries.

:func:`mendlight.models.loading.resolve_model_dir` treats any reference that is not an embedded alias, a
``.gguf`` file, a local directory or a path as a hub name; without a network, ``from_pretrained`` then
retries the hub for some 20 s before it fails (a ``mendlight fit`` on a made-up name took 30 s to fail).
The loader asks :func:`hub_model_problem` first, for every hub name, so every entry point (the
``mendlight`` subcommands, ``mendlight table``, the Python API) fails fast:

* a name that is not a valid hub repository id is refused at once;
* with ``HF_HUB_OFFLINE`` set, a model that is not in the Hugging Face cache is refused at once;
* otherwise one TCP connection to the hub (``HF_ENDPOINT``, :data:`PROBE_TIMEOUT_S` at most) tells whether
  it is reachable; if it is not, a model that is not cached is refused, and for a cached one the process
  switches to offline mode (:func:`go_offline`) so that ``from_pretrained`` reads the cache without retries.

A reachable hub decides nothing: ``from_pretrained`` downloads the model or says it does not exist.
"""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Seconds to wait for the hub's TCP handshake before calling it unreachable (name resolution not included).
PROBE_TIMEOUT_S = 3.0


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


def is_cached(repo_id: str) -> bool:
    """Whether the hub model ``repo_id`` has its ``config.json`` in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def go_offline() -> None:
    """Switch this process to Hugging Face offline mode (cached files only, no request retried)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True


def hub_model_problem(repo_id: str) -> str | None:
    """Why the hub model ``repo_id`` cannot be loaded now (see the module doc), or None if it may be.

    Returns:
        None, or the reason as the end of a sentence about the model (``"is not in the Hugging Face cache
        and HF_HUB_OFFLINE is set"``).

    """
    from huggingface_hub import constants
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return "is not a local path, an alias or a valid Hugging Face hub name"
    cached = is_cached(repo_id)
    if constants.HF_HUB_OFFLINE:
        return None if cached else "is not in the Hugging Face cache and HF_HUB_OFFLINE is set"
    if hub_reachable():
        return None
    if not cached:
        return f"is not in the Hugging Face cache and the hub ({hub_endpoint()}) is unreachable"
    go_offline()
    log.warning("the Hugging Face hub is unreachable: using the cached copy of %r", repo_id)
    return None
