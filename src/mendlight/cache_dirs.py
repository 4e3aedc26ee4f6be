"""Where mendlight keeps what it builds once and reuses: dequantised models, built datasets, classifiers.

One root, :func:`cache_root` — ``$MENDLIGHT_CACHE`` if set, else the user cache directory
(``~/.cache/mendlight`` on Linux). Under it, ``models/`` holds dequantised GGUF models and the fine-tuned
fact-checking classifier, ``data/`` the content-hashed dataset builds. This module imports nothing heavy
(no torch), so the data builders can ask for the root without loading a model stack.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable naming the cache root.
CACHE_ENV = "MENDLIGHT_CACHE"


def cache_root() -> Path:
    """Directory for mendlight's caches: ``$MENDLIGHT_CACHE`` or the user cache dir (~/.cache/mendlight)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mendlight", appauthor=False))
