"""mendlight: learned model editing (MEND and its baselines) as a PyTorch Lightning framework.

The Python API (:mod:`mendlight.api`): ``editor = mendlight.load_editor(checkpoint_or_name, model=...)``, then
``result = editor.edit(prompts=[...], targets=[...])``; ``result.model``, ``result.summary``,
``result.save_pretrained(dir)``, ``result.undo()``. Imported on first use: ``import mendlight`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mendlight._version import __version__

__all__ = ["EditResult", "ModelEditor", "load_editor", "__version__"]

if TYPE_CHECKING:
    from mendlight.api import EditResult, ModelEditor, load_editor


def __getattr__(name: str) -> Any:
    if name in ("EditResult", "ModelEditor", "load_editor"):
        from mendlight import api

        return getattr(api, name)
    raise AttributeError(f"module 'mendlight' has no attribute {name!r}")
