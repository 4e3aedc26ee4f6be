"""Editor building blocks in plain ``torch.nn``: low-rank identity MLPs, Welford stats, MEND's transform."""

from mendlight.nn.gradient_transform import GradientTransform, pseudo_gradient
from mendlight.nn.lowrank import INITS, LowRankIdentityMLP, LowRankLinear
from mendlight.nn.normalization import (
    WelfordNormalizer,
    WelfordStats,
    batch_stats,
    merge_rank_increments,
    merge_stats,
)

__all__ = [
    "INITS",
    "GradientTransform",
    "LowRankIdentityMLP",
    "LowRankLinear",
    "WelfordNormalizer",
    "WelfordStats",
    "batch_stats",
    "merge_rank_increments",
    "merge_stats",
    "pseudo_gradient",
]
