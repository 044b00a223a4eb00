"""Graph encoder for padded disjunctive-graph observations (job shop and alike).

An env with a graph observation hands out fixed-shape arrays so that SB3 can batch and store
them: a node feature matrix, a node mask, and one padded edge list per edge type (``-1``
columns are padding). :func:`batch_graph_observations` turns a batch of such observations into
one disjoint-union graph -- masked nodes dropped, padded and dangling edges dropped, node ids
offset per sample -- with fully vectorised index arithmetic (no Python loop over samples or
nodes); its ``batch`` vector and edge lists follow torch_geometric's conventions.
:class:`DisjunctiveGraphEncoder` runs edge-type-aware message passing on it (per-relation
sparse products, torch_geometric's ``scatter`` and pooling).

Edge types of the job shop's disjunctive graph (observation keys of ``opsrl/JobShop-v0``):

- ``precedes``: conjunctive edge op k -> op k+1 of a job (the successor hears its predecessor);
- ``follows``: the same edges reversed (an op hears what its job still has to do after it);
- ``shares_machine``: disjunctive pairs of ops on the same machine, both directions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch as th
from torch import nn
from torch_geometric.nn import global_mean_pool
from torch_geometric.utils import scatter

__all__ = [
    "CANDIDATE_NODES",
    "CONJUNCTIVE_EDGES",
    "DISJUNCTIVE_EDGES",
    "EDGE_TYPES",
    "GRAPH_OBSERVATION_KEYS",
    "NODE_FEATURES",
    "NODE_MASK",
    "DisjunctiveGraphEncoder",
    "EdgeTypeConv",
    "GraphBatch",
    "RelationAggregator",
    "batch_graph_observations",
]

NODE_FEATURES = "node_features"
NODE_MASK = "node_mask"
CONJUNCTIVE_EDGES = "conjunctive_edges"
DISJUNCTIVE_EDGES = "disjunctive_edges"
CANDIDATE_NODES = "candidate_nodes"

#: observation key -> rank of one sample's array (the batch adds a leading axis)
GRAPH_OBSERVATION_KEYS: dict[str, int] = {
    NODE_FEATURES: 2,
    NODE_MASK: 1,
    CONJUNCTIVE_EDGES: 2,
    DISJUNCTIVE_EDGES: 2,
    CANDIDATE_NODES: 1,
}

#: message-passing relations built from the observation's edge lists
EDGE_TYPES: tuple[str, ...] = ("precedes", "follows", "shares_machine")
#: neighbourhood aggregations of :class:`EdgeTypeConv`
AGGREGATIONS: tuple[str, ...] = ("mean", "sum", "max")


@dataclass
class GraphBatch:
    """A batch of graph observations as one disjoint-union graph.

    Attributes:
        x: ``(n_nodes, n_features)`` features of the kept (unmasked) nodes of every sample.
        batch: ``(n_nodes,)`` sample index of each node (torch_geometric's ``batch`` vector).
        edge_index: per edge type (:data:`EDGE_TYPES`), a ``(2, n_edges)`` long tensor of
            ``(source, target)`` rows of ``x``.
        num_graphs: number of samples.
        candidate_rows: ``(num_graphs, n_candidates)`` row of ``x`` of each candidate node;
            ``n_nodes`` (one past the last row) where the candidate is absent.
        candidate_valid: ``(num_graphs, n_candidates)`` bool, the candidate exists and is an
            unmasked node.
    """

    x: th.Tensor
    batch: th.Tensor
    edge_index: dict[str, th.Tensor]
    num_graphs: int
    candidate_rows: th.Tensor
    candidate_valid: th.Tensor

    @property
    def num_nodes(self) -> int:
        """Number of kept nodes over the whole batch."""
        return int(self.x.shape[0])


def batch_graph_observations(observations: Mapping[str, th.Tensor]) -> GraphBatch:
    """Merge a batch of padded graph observations into one :class:`GraphBatch`.

    ``observations`` maps the keys of :data:`GRAPH_OBSERVATION_KEYS` to tensors with a leading
    batch axis: ``node_features (B, N, F)``, ``node_mask (B, N)`` (> 0.5 keeps a node),
    ``conjunctive_edges (B, 2, Ec)`` (directed, op k -> op k+1), ``disjunctive_edges
    (B, 2, Ed)`` (undirected pairs) and ``candidate_nodes (B, J)``. The matrices may also come
    row-major flattened, ``(B, N * F)`` and ``(B, 2 * E)``, as ``opsrl/JobShop-v0`` emits
    them. Node ids are per sample, stored as floats (SB3 buffers are float32), and ``-1``
    marks padding. Edges with a padded, out-of-range or masked end are dropped, so are
    candidates on masked nodes. Everything stays on the input's device.
    """
    node_mask = observations[NODE_MASK]
    if node_mask.dim() != 2:
        raise ValueError(f"{NODE_MASK} must be batched (B, N), got shape {tuple(node_mask.shape)}")
    n_graphs, n_nodes = node_mask.shape
    features = observations[NODE_FEATURES]
    features = features.reshape(n_graphs, n_nodes, features.numel() // max(n_graphs * n_nodes, 1))
    n_features = features.shape[-1]
    device = features.device

    keep = node_mask.reshape(n_graphs * n_nodes) > 0.5
    # row of each kept node in the merged graph; dropped nodes point one past the end, where
    # candidate lookups find a zero embedding
    kept_rows = th.cumsum(keep.long(), 0) - 1
    n_kept = keep.sum()
    rows = th.where(keep, kept_rows, n_kept)
    x = features.reshape(n_graphs * n_nodes, n_features)[keep]
    batch = th.arange(n_graphs, device=device).repeat_interleave(n_nodes)[keep]
    offsets = th.arange(n_graphs, device=device) * n_nodes

    def merged_rows(node_ids: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """Rows in the merged graph of per-sample node ids, and whether each one is kept."""
        ids = node_ids.round().long()
        in_range = (ids >= 0) & (ids < n_nodes)
        shape = (n_graphs,) + (1,) * (ids.dim() - 1)
        flat = ids.clamp(0, max(n_nodes - 1, 0)) + offsets.view(shape)
        return rows[flat], in_range & keep[flat]

    def edge_list(key: str) -> tuple[th.Tensor, th.Tensor]:
        edges = observations[key]
        # explicit width: reshape(..., -1) is ambiguous for an empty edge list
        edges = edges.reshape(n_graphs, 2, edges.numel() // max(2 * n_graphs, 1))
        if edges.shape[-1] == 0:
            empty = th.zeros(0, dtype=th.long, device=device)
            return empty, empty
        edge_rows, edge_valid = merged_rows(edges)
        valid = edge_valid.all(dim=1)  # (B, E): both ends kept
        return edge_rows[:, 0][valid], edge_rows[:, 1][valid]

    conj_source, conj_target = edge_list(CONJUNCTIVE_EDGES)
    disj_a, disj_b = edge_list(DISJUNCTIVE_EDGES)
    edge_index = {
        "precedes": th.stack([conj_source, conj_target]),
        "follows": th.stack([conj_target, conj_source]),
        "shares_machine": th.stack([th.cat([disj_a, disj_b]), th.cat([disj_b, disj_a])]),
    }
    candidate_rows, candidate_valid = merged_rows(observations[CANDIDATE_NODES])
    candidate_rows = th.where(candidate_valid, candidate_rows, n_kept)
    return GraphBatch(
        x=x,
        batch=batch,
        edge_index=edge_index,
        num_graphs=n_graphs,
        candidate_rows=candidate_rows,
        candidate_valid=candidate_valid,
    )


class RelationAggregator:
    """Per-relation neighbourhood aggregation over one :class:`GraphBatch`'s edges.

    Called on node embeddings ``h (n_nodes, d)``, returns ``(n_nodes, R * d)``: block r of
    the columns aggregates ``h`` over each node's in-neighbours along relation r of
    :data:`EDGE_TYPES` (zeros where it has none). Built once per batch and reused by every
    message-passing round: ``"sum"`` and ``"mean"`` are one sparse matrix product with a
    ``(R * n_nodes, n_nodes)`` COO matrix (entries 1, or 1 / in-degree for the mean), much
    faster than gather-scatter and differentiable in ``h``; ``"max"`` uses torch_geometric's
    ``scatter``.

    :param graph: the merged graph
    :param aggr: ``"mean"``, ``"sum"`` or ``"max"``
    """

    def __init__(self, graph: GraphBatch, aggr: str = "mean") -> None:
        if aggr not in AGGREGATIONS:
            raise ValueError(f"aggr must be one of {', '.join(AGGREGATIONS)}, got {aggr!r}")
        self.aggr = aggr
        self.n_nodes = graph.num_nodes
        self.n_relations = len(EDGE_TYPES)
        sources, targets = [], []
        for relation, edge_type in enumerate(EDGE_TYPES):
            sources.append(graph.edge_index[edge_type][0])
            # relation r's aggregate of node v lands in row r * n_nodes + v
            targets.append(graph.edge_index[edge_type][1] + relation * self.n_nodes)
        self.source = th.cat(sources)
        self.typed_target = th.cat(targets)
        self.adjacency: th.Tensor | None = None
        if aggr != "max":
            n_rows = self.n_relations * self.n_nodes
            weights = th.ones(self.source.shape[0], dtype=graph.x.dtype, device=graph.x.device)
            if aggr == "mean":
                in_degree = th.zeros(n_rows, dtype=weights.dtype, device=weights.device)
                in_degree.index_add_(0, self.typed_target, weights)
                weights = weights / in_degree[self.typed_target]
            self.adjacency = th.sparse_coo_tensor(
                th.stack([self.typed_target, self.source]),
                weights,
                (n_rows, self.n_nodes),
                check_invariants=False,  # indices are in range by construction
            ).coalesce()

    def __call__(self, h: th.Tensor) -> th.Tensor:
        hidden_dim = h.shape[-1]
        if self.adjacency is not None:
            messages = th.sparse.mm(self.adjacency, h)
        else:
            messages = scatter(
                h.index_select(0, self.source),
                self.typed_target,
                dim=0,
                dim_size=self.n_relations * self.n_nodes,
                reduce="max",
            )
        # (R * n, d) -> (n, R * d): relation r's aggregate in the r-th block of columns
        messages = messages.view(self.n_relations, self.n_nodes, hidden_dim).transpose(0, 1)
        return messages.reshape(self.n_nodes, self.n_relations * hidden_dim)


class EdgeTypeConv(nn.Module):
    """One round of edge-type-aware message passing with a residual update.

    Each edge type is aggregated separately (:class:`RelationAggregator`), and a two-layer
    MLP reads the node's own embedding next to the per-type aggregates:
    ``h' = h + MLP([h, agg_1(h), ..., agg_R(h)])``. The first linear layer thus has one
    weight block per relation, as in R-GCN; ``mean`` aggregation keeps the scale of a machine
    clique's message independent of the number of jobs, so weights transfer across instance
    sizes.

    :param hidden_dim: embedding size (input and output)
    :param n_edge_types: number of relations R
    :param activation_fn: activation of the MLP
    """

    def __init__(
        self,
        hidden_dim: int,
        n_edge_types: int = len(EDGE_TYPES),
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.update = nn.Sequential(
            nn.Linear(hidden_dim * (1 + n_edge_types), hidden_dim),
            activation_fn(),
            nn.Linear(hidden_dim, hidden_dim),
        )

    def forward(self, h: th.Tensor, aggregate: RelationAggregator) -> th.Tensor:
        """New node embeddings ``(n_nodes, hidden_dim)``."""
        return h + self.update(th.cat([h, aggregate(h)], dim=-1))


class DisjunctiveGraphEncoder(nn.Module):
    """Node embeddings of a :class:`GraphBatch`: a linear input layer, then K rounds of
    :class:`EdgeTypeConv`.

    Its weights do not depend on the graph's size (only on the feature count), so a model
    trained on one instance size encodes any other.

    :param n_features: node feature count F
    :param hidden_dim: embedding size (64 in the spec)
    :param n_layers: message-passing rounds K (3 in the spec)
    :param aggr: neighbourhood aggregation of every round (see :class:`RelationAggregator`)
    :param activation_fn: activation of the input layer and of the update MLPs
    """

    def __init__(
        self,
        n_features: int,
        hidden_dim: int = 64,
        n_layers: int = 3,
        aggr: str = "mean",
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {hidden_dim}")
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.n_features = n_features
        self.hidden_dim = hidden_dim
        self.embed = nn.Sequential(nn.Linear(n_features, hidden_dim), activation_fn())
        if aggr not in AGGREGATIONS:
            raise ValueError(f"aggr must be one of {', '.join(AGGREGATIONS)}, got {aggr!r}")
        self.aggr = aggr
        self.layers = nn.ModuleList(
            EdgeTypeConv(hidden_dim, len(EDGE_TYPES), activation_fn) for _ in range(n_layers)
        )

    def forward(self, graph: GraphBatch) -> th.Tensor:
        """Embeddings ``(graph.num_nodes, hidden_dim)`` of the kept nodes."""
        h = self.embed(graph.x)
        if self.layers:
            aggregate = RelationAggregator(graph, self.aggr)
            for layer in self.layers:
                h = layer(h, aggregate)
        return h

    @staticmethod
    def pool(h: th.Tensor, graph: GraphBatch) -> th.Tensor:
        """Mean embedding of each sample's nodes ``(num_graphs, hidden_dim)`` (zeros for a
        sample with no node left)."""
        return global_mean_pool(h, graph.batch, size=graph.num_graphs)

    @staticmethod
    def gather_candidates(h: th.Tensor, graph: GraphBatch) -> th.Tensor:
        """Embeddings of the candidate nodes ``(num_graphs, n_candidates, hidden_dim)``,
        zeros where a candidate is absent."""
        padded = th.cat([h, h.new_zeros(1, h.shape[-1])])
        return padded[graph.candidate_rows]
