"""Attention building blocks: a pointer decoder over candidates and a time-series encoder.

- :class:`PointerAttentionDecoder`: one logit per candidate from a query, after a masked
  multi-head *glimpse* over the candidates and a single-head compatibility with tanh clipping
  (the decoder of Kool, van Hoof and Welling, "Attention, learn to solve routing problems!",
  ICLR 2019, https://arxiv.org/abs/1803.08475, as CapTAIN's destination decoder).
- :class:`TimeSeriesEncoder`: a fixed-length series (demand over the day's time points, ...)
  to one embedding, by an MLP or a one-layer transformer over the time points.

Both work on any leading batch shape and on any device; they know nothing of a particular env.
"""

from __future__ import annotations

import math

import torch as th
import torch.nn.functional as F
from torch import nn

__all__ = ["SERIES_ENCODERS", "PointerAttentionDecoder", "TimeSeriesEncoder"]

#: kinds of :class:`TimeSeriesEncoder`
SERIES_ENCODERS: tuple[str, ...] = ("mlp", "transformer")


class PointerAttentionDecoder(nn.Module):
    """Logits over K candidates for one query each.

    ``glimpse = MHA(query, candidates)`` attends over the feasible candidates only (all of
    them where a row has none, so that a terminal observation gives finite numbers), then
    ``logit_k = clip * tanh(<W_q glimpse, W_k candidate_k> / sqrt(d))``. The clipping bounds
    the logits to ``[-clip, clip]`` (exploration never collapses to one candidate by the
    scale of a dot product alone); the mask itself is *not* applied to the returned logits:
    the caller's distribution does that (MaskablePPO's ``apply_masking``).

    :param embed_dim: size d of the query and of the candidate embeddings
    :param n_heads: heads of the glimpse (must divide ``embed_dim``)
    :param clip: the tanh clipping C (10 in Kool et al.)
    :param logit_init_gain: orthogonal-init gain of the compatibility's query projection;
        small values (default 0.01) start PPO from a near-uniform policy
    """

    def __init__(
        self,
        embed_dim: int,
        n_heads: int = 4,
        clip: float = 10.0,
        logit_init_gain: float = 0.01,
    ) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        if n_heads < 1 or embed_dim % n_heads:
            raise ValueError(
                f"n_heads must be >= 1 and divide embed_dim {embed_dim}, got {n_heads}"
            )
        if not clip > 0:
            raise ValueError(f"clip must be positive, got {clip}")
        self.embed_dim, self.n_heads, self.clip = embed_dim, n_heads, float(clip)
        self.glimpse_query = nn.Linear(embed_dim, embed_dim, bias=False)
        self.glimpse_key = nn.Linear(embed_dim, embed_dim, bias=False)
        self.glimpse_value = nn.Linear(embed_dim, embed_dim, bias=False)
        self.glimpse_out = nn.Linear(embed_dim, embed_dim, bias=False)
        self.logit_query = nn.Linear(embed_dim, embed_dim, bias=False)
        self.logit_key = nn.Linear(embed_dim, embed_dim, bias=False)
        nn.init.orthogonal_(self.logit_query.weight, gain=logit_init_gain)

    def forward(
        self, query: th.Tensor, candidates: th.Tensor, mask: th.Tensor | None = None
    ) -> th.Tensor:
        """Logits ``(..., K)`` for ``query (..., d)``, ``candidates (..., K, d)`` and an
        optional feasibility ``mask (..., K)`` (True: feasible)."""
        *lead, n_candidates, dim = candidates.shape
        heads, head_dim = self.n_heads, dim // self.n_heads

        def split(x: th.Tensor) -> th.Tensor:  # (..., L, d) -> (..., heads, L, d / heads)
            return x.view(*x.shape[:-1], heads, head_dim).transpose(-2, -3)

        q = split(self.glimpse_query(query).unsqueeze(-2))
        k = split(self.glimpse_key(candidates))
        v = split(self.glimpse_value(candidates))
        attn_mask = None
        if mask is not None:
            mask = mask.bool()
            # a row with no feasible candidate (terminal observation) attends to all of them
            mask = mask | ~mask.any(dim=-1, keepdim=True)
            attn_mask = mask.unsqueeze(-2).unsqueeze(-2)  # (..., 1, 1, K): every head, one query
        glimpse = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        glimpse = self.glimpse_out(glimpse.transpose(-2, -3).reshape(*lead, dim))
        scores = (self.logit_key(candidates) @ self.logit_query(glimpse).unsqueeze(-1)).squeeze(-1)
        return self.clip * th.tanh(scores / math.sqrt(dim))


class TimeSeriesEncoder(nn.Module):
    """Embedding ``(..., d)`` of a series ``(..., T)`` or ``(..., T, C)`` of T time points.

    - ``"mlp"``: a two-layer MLP on the flattened series (cheap; the default);
    - ``"transformer"``: each time point becomes a token (its C values and a learned
      position embedding), one transformer encoder layer mixes the tokens and their mean is
      the embedding (CapTAIN encodes its demand and fare series with a transformer).

    :param n_points: series length T
    :param embed_dim: output size d
    :param kind: ``"mlp"`` or ``"transformer"``
    :param n_channels: values per time point C (1 for a plain series)
    :param n_heads: attention heads of the transformer (must divide ``embed_dim``)
    :param activation_fn: activation of the MLP
    """

    def __init__(
        self,
        n_points: int,
        embed_dim: int,
        kind: str = "mlp",
        n_channels: int = 1,
        n_heads: int = 4,
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if kind not in SERIES_ENCODERS:
            raise ValueError(f"kind must be one of {', '.join(SERIES_ENCODERS)}, got {kind!r}")
        if n_points < 1 or n_channels < 1 or embed_dim < 1:
            raise ValueError(
                "n_points, n_channels and embed_dim must be >= 1, got "
                f"{n_points}, {n_channels}, {embed_dim}"
            )
        self.n_points = n_points
        self.n_channels = n_channels
        self.embed_dim = embed_dim
        self.kind = kind
        if kind == "mlp":
            self.mlp = nn.Sequential(
                nn.Linear(n_points * n_channels, embed_dim),
                activation_fn(),
                nn.Linear(embed_dim, embed_dim),
            )
        else:
            if embed_dim % n_heads:
                raise ValueError(f"n_heads must divide embed_dim {embed_dim}, got {n_heads}")
            self.token = nn.Linear(n_channels, embed_dim)
            self.position = nn.Parameter(th.randn(n_points, embed_dim) * 0.02)
            self.layer = nn.TransformerEncoderLayer(
                embed_dim,
                n_heads,
                dim_feedforward=2 * embed_dim,
                dropout=0.0,
                batch_first=True,
            )

    def forward(self, series: th.Tensor) -> th.Tensor:
        """The embedding of each series in the batch."""
        if self.n_channels == 1 and series.shape[-1] == self.n_points:
            series = series.unsqueeze(-1)
        if tuple(series.shape[-2:]) != (self.n_points, self.n_channels):
            raise ValueError(
                f"series must end in ({self.n_points}, {self.n_channels}), "
                f"got shape {tuple(series.shape)}"
            )
        lead = series.shape[:-2]
        if self.kind == "mlp":
            return self.mlp(series.reshape(*lead, self.n_points * self.n_channels))
        tokens = self.token(series.reshape(-1, self.n_points, self.n_channels)) + self.position
        return self.layer(tokens).mean(dim=-2).reshape(*lead, self.embed_dim)
