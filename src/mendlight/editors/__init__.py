"""Editors: each a LightningModule selectable by class name (``--model MEND``)."""

from mendlight.editors.base import Editor
from mendlight.editors.cache import Cache
from mendlight.editors.enn import ENN
from mendlight.editors.ft import FT
from mendlight.editors.ft_kl import FTKL
from mendlight.editors.ke import KE
from mendlight.editors.malmen import MALMEN
from mendlight.editors.mend import MEND

__all__ = ["Cache", "ENN", "Editor", "FT", "FTKL", "KE", "MALMEN", "MEND"]
