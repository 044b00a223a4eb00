"""Shared neural networks for opsrl's agents.

- :mod:`opsrl.nn.graph`: batching of padded graph observations into one torch_geometric
  disjoint-union graph, and an edge-type-aware message-passing encoder
  (:class:`DisjunctiveGraphEncoder`) for disjunctive graphs.

Needs torch_geometric; imported on demand only (``import opsrl`` does not load it).
"""

from opsrl.nn.graph import (
    EDGE_TYPES,
    GRAPH_OBSERVATION_KEYS,
    DisjunctiveGraphEncoder,
    EdgeTypeConv,
    GraphBatch,
    batch_graph_observations,
)

__all__ = [
    "EDGE_TYPES",
    "GRAPH_OBSERVATION_KEYS",
    "DisjunctiveGraphEncoder",
    "EdgeTypeConv",
    "GraphBatch",
    "batch_graph_observations",
]
