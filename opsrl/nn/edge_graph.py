"""Message passing with edge features on batches of fixed-node-count graphs.

Observations of a network (vertiports and routes, ...) come as ``B`` samples of ``N`` nodes
each, with a per-sample edge list ``(B, 2, E)`` of node ids stored as floats (SB3 buffers are
float32) and an edge feature tensor ``(B, E, F)``. :func:`merge_edge_lists` turns the edge
lists into one torch_geometric ``edge_index`` over the ``B * N`` nodes of the disjoint union
(node ``v`` of sample ``b`` is row ``b * N + v``) with vectorised index arithmetic, dropping
edges with an out-of-range end. :class:`EdgeTransformerEncoder` then runs K rounds of
torch_geometric's ``TransformerConv`` (multi-head attention over in-neighbours, edge features
in the keys and the messages; Shi et al. 2021, https://arxiv.org/abs/2009.03509) with a
residual update and layer norm.

Nothing here depends on the graph's size: the same weights encode any N and E.
"""

from __future__ import annotations

import torch as th
from torch import nn
from torch_geometric.nn import TransformerConv

__all__ = ["EdgeTransformerEncoder", "merge_edge_lists"]


def merge_edge_lists(edges: th.Tensor, n_nodes: int) -> tuple[th.Tensor, th.Tensor]:
    """One disjoint-union ``edge_index`` from per-sample edge lists.

    :param edges: ``(B, 2, E)`` (or row-major flattened ``(B, 2 * E)``) source and target
        node ids per sample, as floats or integers
    :param n_nodes: nodes per sample N
    :return: ``edge_index (2, E_kept)`` (long, rows ``b * N + v``, in sample then edge order)
        and ``keep (B, E)`` bool, the edges kept (both ends in ``0..N-1``)
    """
    n_graphs = edges.shape[0]
    edges = edges.reshape(n_graphs, 2, edges[0].numel() // 2)
    ids = edges.round().long()
    keep = ((ids >= 0) & (ids < n_nodes)).all(dim=1)
    offsets = (th.arange(n_graphs, device=edges.device) * n_nodes).view(n_graphs, 1, 1)
    merged = (ids + offsets).transpose(0, 1)  # (2, B, E)
    return merged[:, keep], keep


class EdgeTransformerEncoder(nn.Module):
    """K rounds of ``h <- LayerNorm(h + act(TransformerConv(h, edges, edge_attr)))``.

    :param hidden_dim: node embedding size (input and output)
    :param edge_dim: edge feature size
    :param n_layers: message-passing rounds K
    :param n_heads: attention heads per round (must divide ``hidden_dim``)
    :param activation_fn: activation after each round
    """

    def __init__(
        self,
        hidden_dim: int,
        edge_dim: int,
        n_layers: int = 2,
        n_heads: int = 4,
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if hidden_dim < 1 or edge_dim < 1:
            raise ValueError(
                f"hidden_dim and edge_dim must be >= 1, got {hidden_dim} and {edge_dim}"
            )
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        if n_heads < 1 or hidden_dim % n_heads:
            raise ValueError(
                f"n_heads must be >= 1 and divide hidden_dim {hidden_dim}, got {n_heads}"
            )
        self.hidden_dim = hidden_dim
        self.edge_dim = edge_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.convs = nn.ModuleList(
            TransformerConv(
                hidden_dim, hidden_dim // n_heads, heads=n_heads, edge_dim=edge_dim, concat=True
            )
            for _ in range(n_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(n_layers))
        self.activation = activation_fn()

    def forward(self, h: th.Tensor, edge_index: th.Tensor, edge_attr: th.Tensor) -> th.Tensor:
        """Node embeddings ``(n_nodes, hidden_dim)`` after K rounds."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = norm(h + self.activation(conv(h, edge_index, edge_attr)))
        return h
