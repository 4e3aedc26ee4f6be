"""Low-rank, identity-initialised MLP blocks: MEND's editor network (paper Eq. 3, App. A).

:class:`LowRankLinear` is the paper's ``LRLinear`` and :class:`LowRankIdentityMLP` its ``IDMLP``
(``docs/algorithm.md`` §1.5). Each block computes ``z + clamp(s ⊙ (U V z + b) + o, min=0)`` with ``U = 0`` at
init, so the stack starts as the exact identity and the first pseudo-gradient is the (normalised) true one.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mendlight.errors import ConfigError, check_at_least

#: The accepted values of ``init``.
INITS: tuple[str, ...] = ("id", "xavier")


def _check_init(owner: str, init: str) -> None:
    if init not in INITS:
        raise ConfigError(
            f"{owner}: unknown init {init!r}: choose one of {', '.join(repr(i) for i in INITS)}"
        )


class LowRankLinear(nn.Module):
    """A square low-rank residual layer with optional per-mode FiLM scale and shift (MEND's ``LRLinear``).

    For rows ``z`` it computes ``a = z Vᵀ Uᵀ + b``; with a ``mode`` it applies the FiLM transform
    ``a ← a ⊙ scale[mode] + shift[mode]``; then ``h = clamp(a, min=0)`` and returns ``z + h``
    (``init="id"``) or ``h`` (``init="xavier"``).

    ``clamp(min=0)`` is used rather than ``relu`` on purpose: with ``U = 0`` every pre-activation is exactly
    0 at init, where ``relu`` has zero gradient, so ``U`` would never train; ``clamp`` passes the gradient at
    the boundary.

    Initialisation:

    * ``"id"`` (default): ``U = 0`` and ``V`` Xavier-uniform, as in the paper's App. A (the official code
      drew ``V`` from ``randn``, i.e. std 1). The layer is then exactly the identity.
    * ``"xavier"`` (the "No ID init" ablation): ``U`` Xavier-uniform with gain ``sqrt(2)``, ``V``
      Xavier-uniform with gain 1, and no residual connection.

    The bias ``b`` starts at zero; FiLM ``scale`` starts at one and ``shift`` at zero.
    """

    def __init__(self, dim: int, rank: int, n_modes: int | None = None, init: str = "id") -> None:
        """Build the layer.

        Args:
            dim: Input and output width ``D`` (the layer is square).
            rank: Rank of the factorisation ``U V``; clipped to ``dim``.
            n_modes: Number of per-layer FiLM modes (rows of the ``scale``/``shift`` tables); ``None`` for no
                FiLM.
            init: ``"id"`` (zero ``U``, residual, exact identity at init) or ``"xavier"`` (no residual).

        """
        super().__init__()
        _check_init("LowRankLinear", init)
        if dim < 1:
            raise ValueError(f"dim must be positive, got dim={dim}")
        check_at_least("LowRankLinear", "rank", rank, 1)
        check_at_least("LowRankLinear", "n_modes", n_modes, 1)
        self.dim = dim
        self.rank = min(rank, dim)
        self.n_modes = n_modes
        self.init = init
        self.U = nn.Parameter(torch.empty(dim, self.rank))
        self.V = nn.Parameter(torch.empty(self.rank, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        if n_modes is not None:
            self.scale: nn.Embedding | None = nn.Embedding(n_modes, dim)
            self.shift: nn.Embedding | None = nn.Embedding(n_modes, dim)
        else:
            self.scale = None
            self.shift = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every parameter according to ``self.init``."""
        with torch.no_grad():
            if self.init == "id":
                self.U.zero_()
                nn.init.xavier_uniform_(self.V)
            else:
                nn.init.xavier_uniform_(self.U, gain=math.sqrt(2.0))
                nn.init.xavier_uniform_(self.V, gain=1.0)
            self.b.zero_()
            if self.scale is not None and self.shift is not None:
                self.scale.weight.fill_(1.0)
                self.shift.weight.zero_()

    def forward(self, z: Tensor, mode: int | None = None) -> Tensor:
        """Apply the layer to rows ``z``.

        Args:
            z: Input rows, shape ``[N, dim]``.
            mode: FiLM mode (row of ``scale``/``shift``), or ``None`` to skip the FiLM transform.

        Returns:
            The output rows, shape ``[N, dim]``.

        """
        a = z @ self.V.T @ self.U.T + self.b
        if mode is not None:
            if self.scale is None or self.shift is None:
                raise ValueError("a mode was given but this layer was built without n_modes")
            if not 0 <= mode < self.scale.num_embeddings:
                raise IndexError(f"mode {mode} out of range for n_modes={self.scale.num_embeddings}")
            a = a * self.scale.weight[mode] + self.shift.weight[mode]
        h = a.clamp(min=0)
        return z + h if self.init == "id" else h

    def extra_repr(self) -> str:
        """Summarise the shape and init for ``repr``."""
        return f"dim={self.dim}, rank={self.rank}, n_modes={self.n_modes}, init={self.init!r}"


class LowRankIdentityMLP(nn.Module):
    """A stack of ``n_hidden + 1`` square :class:`LowRankLinear` layers (MEND's ``IDMLP``).

    As in the official code every layer, the last included, applies the ``clamp(min=0)`` non-linearity
    before its residual add, and every layer has a bias (the paper's Eq. 3b has none on the second layer).
    With ``init="id"`` the whole stack is exactly the identity at initialisation.
    """

    def __init__(
        self, dim: int, rank: int, n_hidden: int = 1, n_modes: int | None = None, init: str = "id"
    ) -> None:
        """Build the stack.

        Args:
            dim: Input and output width of every layer.
            rank: Rank of every layer's ``U V`` factorisation (clipped to ``dim``).
            n_hidden: Number of hidden layers; the stack has ``n_hidden + 1`` layers.
            n_modes: Number of per-layer FiLM modes shared by every layer's tables; ``None`` for no FiLM.
            init: ``"id"`` (identity at init) or ``"xavier"`` (the "No ID init" ablation).

        """
        super().__init__()
        _check_init("LowRankIdentityMLP", init)
        check_at_least("LowRankIdentityMLP", "n_hidden", n_hidden, 0)
        self.dim = dim
        self.layers = nn.ModuleList(
            LowRankLinear(dim, rank, n_modes=n_modes, init=init) for _ in range(n_hidden + 1)
        )

    def forward(self, z: Tensor, mode: int | None = None) -> Tensor:
        """Apply every layer in turn.

        Args:
            z: Input rows, shape ``[N, dim]``.
            mode: FiLM mode passed to every layer, or ``None``.

        Returns:
            The output rows, shape ``[N, dim]``.

        """
        for layer in self.layers:
            z = layer(z, mode)
        return z
