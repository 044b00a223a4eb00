"""Graph actor-critic policy for UAM fleet scheduling: attention over destination vertiports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from torch_geometric.utils import scatter

from opsrl.envs.uam.env import (
    AIRCRAFT_FEATURES,
    EDGE_FEATURES,
    GRAPH_KEYS,
    VERTIPORT_FEATURES,
    unflatten_graph_observation,
)
from opsrl.nn.attention import SERIES_ENCODERS, PointerAttentionDecoder, TimeSeriesEncoder
from opsrl.nn.edge_graph import EdgeTransformerEncoder, merge_edge_lists
from opsrl.nn.masked import VariableActionsMaskedInterface

__all__ = ["FleetGraphBatch", "FleetGraphEncoder", "GraphFleetPolicy", "fleet_graph_batch"]

#: vertiport columns the encoder reads: the named ones; the env's demand profiles and fare
#: row are replaced by profiles aligned on the current demand bin (below), and a fare row
#: indexed by vertiport number would tie the weights to the vertiport order
N_VERTIPORT_INPUTS = len(VERTIPORT_FEATURES)


@dataclass
class FleetGraphBatch:
    """A batch of UAM graph observations, unflattened and indexed for the encoder.

    Attributes (B samples, N vertiports, E edges per sample, A aircraft, P demand points):
        vertiports: ``(B, N, 10)`` the named vertiport features (:data:`VERTIPORT_FEATURES`).
        outflow, inflow: ``(B, N, P)`` remaining demand from / to each vertiport (mean over
            the other vertiports) in the current demand bin and the P - 1 after it (zeros past
            the end of the day): point 0 is *now*, whatever the clock.
        edge_features: ``(B, E, 8)`` (:data:`EDGE_FEATURES`).
        edge_series: ``(B, E, P)`` remaining demand of each edge's pair, aligned as above.
        edge_index: ``(2, E_kept)`` the kept edges in the disjoint union of the samples'
            vertiport graphs (row ``b * N + v``); ``edge_keep (B, E)`` says which.
        edge_source, edge_target: ``(B, E)`` the edge ends (clamped to ``0..N-1``).
        aircraft: ``(B, A, 12)`` (:data:`AIRCRAFT_FEATURES`); ``aircraft_vertiport (B, A)``
            the vertiport each is at or flying to.
        deciding_aircraft, origin: ``(B,)`` the deciding aircraft and its vertiport (clamped);
            ``deciding_valid (B,)`` False once the day is over.
        action_mask: ``(B, N)`` bool feasible destinations.
        time: ``(B, 1)`` fraction of the day elapsed.
    """

    vertiports: th.Tensor
    outflow: th.Tensor
    inflow: th.Tensor
    edge_features: th.Tensor
    edge_series: th.Tensor
    edge_index: th.Tensor
    edge_keep: th.Tensor
    edge_source: th.Tensor
    edge_target: th.Tensor
    aircraft: th.Tensor
    aircraft_vertiport: th.Tensor
    deciding_aircraft: th.Tensor
    origin: th.Tensor
    deciding_valid: th.Tensor
    action_mask: th.Tensor
    time: th.Tensor

    @property
    def num_graphs(self) -> int:
        """Samples B."""
        return int(self.vertiports.shape[0])

    @property
    def n_vertiports(self) -> int:
        """Vertiports per sample N."""
        return int(self.vertiports.shape[1])


def fleet_graph_batch(observations: Mapping[str, th.Tensor]) -> FleetGraphBatch:
    """Index a batch of ``opsrl/UAMFleet-v0`` graph observations for :class:`FleetGraphEncoder`.

    ``observations`` maps :data:`~opsrl.envs.uam.env.GRAPH_KEYS` to tensors with a leading
    batch axis, flattened per sample as the env emits them or as matrices. Ids are rounded
    and clamped into range, so any point of the observation space is accepted (an edge with
    an end out of range is dropped). Everything stays on the input's device, with no Python
    loop over samples.
    """
    graph = unflatten_graph_observation(observations)
    mask = graph["action_mask"]
    n_graphs, n = mask.shape
    device = mask.device

    demand = graph["demand"]  # (B, P, N, N)
    n_points = demand.shape[1]
    time = graph["time"].reshape(n_graphs, 1)
    # the env's demand_bin: point k holds [t_k - interval / 2, t_k + interval / 2), and the
    # day spans P - 1 intervals; the float32 time can fall a hair short of a boundary that
    # the env's float64 clock reaches exactly (stays are 15 minutes), hence the 1e-4 bin
    now = th.floor(time[:, 0] * (n_points - 1) + 0.5 + 1e-4).long().clamp(0, n_points - 1)
    points = now.unsqueeze(1) + th.arange(n_points, device=device)  # (B, P)
    ahead = (points < n_points).to(demand.dtype)
    index = points.clamp(max=n_points - 1).view(n_graphs, n_points, 1, 1).expand_as(demand)
    aligned = demand.gather(1, index) * ahead.view(n_graphs, n_points, 1, 1)
    others = max(n - 1, 1)
    outflow = aligned.sum(dim=3).transpose(1, 2) / others
    inflow = aligned.sum(dim=2).transpose(1, 2) / others

    edges = graph["vertiport_edges"]
    edge_index, keep = merge_edge_lists(edges, n)
    ends = edges.round().long().clamp(0, n - 1)
    source, target = ends[:, 0], ends[:, 1]
    pair_series = aligned.permute(0, 2, 3, 1).reshape(n_graphs, n * n, n_points)
    pair = (source * n + target).unsqueeze(-1).expand(-1, -1, n_points)
    edge_series = pair_series.gather(1, pair)

    aircraft = graph["aircraft_features"]
    n_aircraft = aircraft.shape[1]
    deciding = graph["deciding"].reshape(n_graphs, 2).round().long()
    decider, origin = deciding[:, 0], deciding[:, 1]
    valid = (decider >= 0) & (decider < n_aircraft) & (origin >= 0) & (origin < n)
    return FleetGraphBatch(
        vertiports=graph["vertiport_features"][..., :N_VERTIPORT_INPUTS],
        outflow=outflow,
        inflow=inflow,
        edge_features=graph["vertiport_edge_features"],
        edge_series=edge_series,
        edge_index=edge_index,
        edge_keep=keep,
        edge_source=source,
        edge_target=target,
        aircraft=aircraft,
        aircraft_vertiport=graph["aircraft_vertiport"].round().long().clamp(0, n - 1),
        deciding_aircraft=decider.clamp(0, n_aircraft - 1),
        origin=origin.clamp(0, n - 1),
        deciding_valid=valid,
        action_mask=mask > 0.5,
        time=time,
    )


@dataclass
class FleetEncoding:
    """What :class:`FleetGraphEncoder` hands to the actor and the critic.

    Attributes:
        vertiports: ``(B, N, d)`` vertiport embeddings after message passing.
        origin_edges: ``(B, N, edge_dim)`` embedding of the edge from the deciding aircraft's
            vertiport to each vertiport (zeros for the origin itself and absent edges).
        context: ``(B, d)`` the decision's context: origin, deciding aircraft, whole graph,
            time.
        pooled: ``(B, 3 d)`` mean and max of the vertiport embeddings, mean of the aircraft
            embeddings.
    """

    vertiports: th.Tensor
    origin_edges: th.Tensor
    context: th.Tensor
    pooled: th.Tensor


def _mlp(
    input_dim: int, hidden: list[int], output_dim: int, activation_fn: type[nn.Module]
) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = input_dim
    for size in hidden:
        layers += [nn.Linear(last, size), activation_fn()]
        last = size
    layers.append(nn.Linear(last, output_dim))
    return nn.Sequential(*layers)


class FleetGraphEncoder(nn.Module):
    """Embeddings of the vertiport graph, the fleet and the demand series.

    - **Demand series**: each route's remaining demand over the next P demand points
      (aligned on now) goes through a :class:`~opsrl.nn.attention.TimeSeriesEncoder`; with
      the route's features (distance, fare, in range, open, corridor load, ...) an MLP makes
      the edge embedding (``edge_dim``: routes outnumber vertiports N - 1 to 1, so a smaller
      edge embedding saves most of the compute).
    - **Aircraft**: an MLP embeds each aircraft's features; their mean per vertiport (where
      each is parked, charging or flying to) joins that vertiport's input.
    - **Vertiports**: an MLP on the named features, the aligned out- and inflow profiles and
      the pooled aircraft, then K rounds of
      :class:`~opsrl.nn.edge_graph.EdgeTransformerEncoder` (TransformerConv over the
      directed route graph with the edge embeddings).
    - **Context** of the decision: an MLP on the origin's embedding, the deciding aircraft's
      embedding, the mean vertiport embedding and the time.

    Every operation acts per vertiport, route or aircraft or pools over them, so relabelling
    the vertiports relabels the outputs (permutation equivariance), and no weight depends on
    N, E or A (only on P).

    :param n_demand_points: P
    :param hidden_dim: vertiport, aircraft and context embedding size d
    :param edge_dim: route embedding size
    :param n_layers: message-passing rounds K
    :param n_heads: attention heads of the message passing and the series transformer
    :param series_encoder: ``"mlp"`` or ``"transformer"``
    :param activation_fn: activation of the MLPs
    """

    def __init__(
        self,
        n_demand_points: int,
        hidden_dim: int = 64,
        edge_dim: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        series_encoder: str = "mlp",
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        d, d_edge = hidden_dim, edge_dim
        self.n_demand_points, self.hidden_dim, self.edge_dim = n_demand_points, d, d_edge
        self.series = TimeSeriesEncoder(
            n_demand_points, d_edge, series_encoder, n_heads=n_heads, activation_fn=activation_fn
        )
        self.edge_mlp = _mlp(len(EDGE_FEATURES) + d_edge, [d_edge], d_edge, activation_fn)
        self.aircraft_mlp = _mlp(len(AIRCRAFT_FEATURES), [d], d, activation_fn)
        self.vertiport_mlp = _mlp(
            N_VERTIPORT_INPUTS + 2 * n_demand_points + d, [d], d, activation_fn
        )
        self.message_passing = EdgeTransformerEncoder(d, d_edge, n_layers, n_heads, activation_fn)
        self.context_mlp = _mlp(3 * d + 1, [d], d, activation_fn)

    def forward(self, graph: FleetGraphBatch) -> FleetEncoding:
        """Encode a batch."""
        n_graphs, n, d = graph.num_graphs, graph.n_vertiports, self.hidden_dim
        rows = th.arange(n_graphs, device=graph.time.device)

        edge_embedding = self.edge_mlp(
            th.cat([graph.edge_features, self.series(graph.edge_series)], dim=-1)
        )  # (B, E, edge_dim)
        aircraft = self.aircraft_mlp(graph.aircraft)  # (B, A, d)
        at_vertiport = graph.aircraft_vertiport + (rows * n).unsqueeze(1)
        fleet_here = scatter(
            aircraft.reshape(-1, d),
            at_vertiport.reshape(-1),
            0,
            dim_size=n_graphs * n,
            reduce="mean",
        )
        x = self.vertiport_mlp(
            th.cat(
                [graph.vertiports, graph.outflow, graph.inflow, fleet_here.view(n_graphs, n, d)],
                dim=-1,
            )
        )
        h = self.message_passing(
            x.reshape(n_graphs * n, d), graph.edge_index, edge_embedding[graph.edge_keep]
        ).view(n_graphs, n, d)

        from_origin = graph.edge_keep & (graph.edge_source == graph.origin.unsqueeze(1))
        target_rows = (graph.edge_target + (rows * n).unsqueeze(1))[from_origin]
        origin_edges = scatter(
            edge_embedding[from_origin], target_rows, dim=0, dim_size=n_graphs * n, reduce="mean"
        ).view(n_graphs, n, self.edge_dim)
        is_origin = th.arange(n, device=h.device).unsqueeze(0) == graph.origin.unsqueeze(1)
        origin_edges = origin_edges.masked_fill(is_origin.unsqueeze(-1), 0.0)

        valid = graph.deciding_valid.unsqueeze(1).to(h.dtype)
        decider = aircraft[rows, graph.deciding_aircraft] * valid
        mean_h = h.mean(dim=1)
        context = self.context_mlp(th.cat([h[rows, graph.origin], decider, mean_h, graph.time], -1))
        pooled = th.cat([mean_h, h.amax(dim=1), aircraft.mean(dim=1)], dim=-1)
        return FleetEncoding(h, origin_edges, context, pooled)


class GraphFleetPolicy(VariableActionsMaskedInterface, MaskableActorCriticPolicy):
    """Masked actor-critic for ``opsrl/UAMFleet-v0``'s graph observation: one logit per
    destination vertiport from attention.

    After CapTAIN (Paul, Witter and Chowdhury, arXiv 2401.04851: graph encoders of the
    vertiport and aircraft graphs, a transformer over demand and fare series, a multi-head
    attention decoder giving P(destination)); ours uses torch_geometric's TransformerConv
    where CapTAIN uses graph capsule convolutions.

    - **Encoder** (:class:`FleetGraphEncoder`): route embeddings from the route features and
      the remaining demand series, aircraft embeddings pooled per vertiport, K rounds of
      edge-feature attention over the vertiport graph, and a decision context.
    - **Actor**: each vertiport is a candidate destination, embedded from its vertiport
      embedding and the embedding of the route to it from the deciding aircraft's vertiport
      (a learned *stay* vector for the origin itself); a
      :class:`~opsrl.nn.attention.PointerAttentionDecoder` with the context as query gives
      the logits. The env's action mask (``action_masks``, passed by MaskablePPO and
      ``predict``) gives infeasible destinations zero probability; the observation's
      ``action_mask`` also keeps them out of the decoder's glimpse.
    - **Critic**: an MLP on the pooled embeddings and the context.

    Relabelling the vertiports permutes the logits alike; no weight depends on the number
    of vertiports or aircraft, so a model trained on one fleet predicts for another with the
    same number of demand points (``obs_to_tensor`` accepts any size).

    :param observation_space: the graph Dict observation space of ``opsrl/UAMFleet-v0``
    :param action_space: ``Discrete(n_vertiports)``
    :param lr_schedule: learning rate schedule (could be constant)
    :param hidden_dim: vertiport, aircraft and context embedding size d
    :param edge_dim: route embedding size
    :param n_layers: message-passing rounds K over the vertiport graph
    :param n_heads: attention heads (message passing, decoder glimpse, series transformer)
    :param series_encoder: encoder of the demand series, ``"mlp"`` or ``"transformer"``
    :param value_net_arch: hidden layers of the critic's MLP
    :param logit_clip: tanh clipping C of the decoder's logits
    :param activation_fn: activation of the MLPs and message passing
    :param share_encoder: one encoder for actor and critic (True), or one each
    :param optimizer_class: the optimizer, ``th.optim.Adam`` by default
    :param optimizer_kwargs: its keyword arguments besides the learning rate
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        hidden_dim: int = 64,
        edge_dim: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
        series_encoder: str = "mlp",
        value_net_arch: list[int] | None = None,
        logit_clip: float = 10.0,
        activation_fn: type[nn.Module] = nn.ReLU,
        share_encoder: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict) or not set(GRAPH_KEYS).issubset(
            observation_space.spaces
        ):
            raise ValueError(
                "GraphFleetPolicy needs the graph Dict observation of opsrl/UAMFleet-v0 "
                f"(observation='graph') with keys {', '.join(GRAPH_KEYS)}, got {observation_space}"
            )
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"GraphFleetPolicy needs a Discrete action space, got {action_space}")
        if series_encoder not in SERIES_ENCODERS:
            raise ValueError(
                f"series_encoder must be one of {', '.join(SERIES_ENCODERS)}, "
                f"got {series_encoder!r}"
            )
        for name, value, minimum in (
            ("hidden_dim", hidden_dim, 1),
            ("edge_dim", edge_dim, 1),
            ("n_layers", n_layers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if isinstance(n_heads, bool) or not isinstance(n_heads, int) or n_heads < 1:
            raise ValueError(f"n_heads must be a positive integer, got {n_heads!r}")
        if hidden_dim % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide hidden_dim ({hidden_dim})")
        if optimizer_kwargs is None:
            optimizer_kwargs = {"eps": 1e-5} if optimizer_class is th.optim.Adam else {}
        # MaskableActorCriticPolicy.__init__ builds SB3's flatten extractor and MLP heads,
        # which a graph policy replaces; initialise the common base and build our own.
        BasePolicy.__init__(
            self,
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=False,
            squash_output=False,
        )
        n = int(action_space.n)
        sizes = {key: int(np.prod(box.shape)) for key, box in observation_space.spaces.items()}
        self.n_demand_points = sizes["demand"] // (n * n)
        expected = {
            "vertiport_edge_features": len(EDGE_FEATURES) * (sizes["vertiport_edges"] // 2),
            "aircraft_features": len(AIRCRAFT_FEATURES) * sizes["aircraft_vertiport"],
            "action_mask": n,
            "demand": self.n_demand_points * n * n,
        }
        for key, size in expected.items():
            if sizes[key] != size or self.n_demand_points < 1:
                raise ValueError(
                    f"observation key {key} has {sizes[key]} values, expected {size} for "
                    f"{n} vertiports (the action space) and the env's feature counts"
                )
        self.hidden_dim = hidden_dim
        self.edge_dim = edge_dim
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.series_encoder = series_encoder
        self.value_net_arch = [64, 64] if value_net_arch is None else list(value_net_arch)
        self.logit_clip = logit_clip
        self.activation_fn = activation_fn
        self.share_encoder = share_encoder
        # MaskableActorCriticPolicy attributes other code may read
        self.share_features_extractor = share_encoder

        def encoder() -> FleetGraphEncoder:
            return FleetGraphEncoder(
                self.n_demand_points,
                hidden_dim,
                edge_dim,
                n_layers,
                n_heads,
                series_encoder,
                activation_fn,
            )

        self.actor_encoder = encoder()
        self.critic_encoder = self.actor_encoder if share_encoder else encoder()
        d = hidden_dim
        self.stay_embedding = nn.Parameter(th.zeros(edge_dim))
        self.candidate_mlp = _mlp(d + edge_dim, [d], d, activation_fn)
        self.decoder = PointerAttentionDecoder(d, n_heads, clip=logit_clip)
        self.value_net = _mlp(4 * d, self.value_net_arch, 1, activation_fn)
        self.init_weights(self.value_net[-1], gain=1.0)

        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    # ----------------------------------------------------------------------------------------
    # Networks
    # ----------------------------------------------------------------------------------------

    def _logits(self, graph: FleetGraphBatch, encoding: FleetEncoding) -> th.Tensor:
        """Logits over destinations ``(B, N)`` (before the action mask)."""
        n = graph.n_vertiports
        is_origin = th.arange(n, device=graph.time.device).unsqueeze(0) == graph.origin.unsqueeze(1)
        stay = self.stay_embedding.expand_as(encoding.origin_edges)
        route = th.where(is_origin.unsqueeze(-1), stay, encoding.origin_edges)
        candidates = self.candidate_mlp(th.cat([encoding.vertiports, route], dim=-1))
        return self.decoder(encoding.context, candidates, graph.action_mask)

    def _values(self, encoding: FleetEncoding) -> th.Tensor:
        """State values ``(B, 1)``."""
        return self.value_net(th.cat([encoding.pooled, encoding.context], dim=-1))

    def _logits_and_values(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Actor logits and critic values, encoding once when the encoder is shared."""
        graph = fleet_graph_batch(obs)  # type: ignore[arg-type]
        actor = self.actor_encoder(graph)
        critic = actor if self.share_encoder else self.critic_encoder(graph)
        return self._logits(graph, actor), self._values(critic)

    # ----------------------------------------------------------------------------------------
    # MaskableActorCriticPolicy interface
    # (forward and evaluate_actions: VariableActionsMaskedInterface)
    # ----------------------------------------------------------------------------------------

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, action_masks: np.ndarray | None = None
    ) -> MaskableCategoricalDistribution:
        """The masked action distribution for a batch of observations."""
        graph = fleet_graph_batch(obs)  # type: ignore[arg-type]
        return self._distribution(self._logits(graph, self.actor_encoder(graph)), action_masks)

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """State values ``(B, 1)`` for a batch of observations."""
        return self._values(self.critic_encoder(fleet_graph_batch(obs)))  # type: ignore[arg-type]

    def extract_features(  # type: ignore[override]
        self, obs: PyTorchObs, features_extractor: Any = None
    ) -> FleetGraphBatch:
        """The indexed batch of observations (what the encoders read)."""
        return fleet_graph_batch(obs)  # type: ignore[arg-type]

    def obs_to_tensor(  # type: ignore[override]
        self, observation: dict[str, np.ndarray]
    ) -> tuple[dict[str, th.Tensor], bool]:
        """Tensors on the policy's device from one graph observation or a batch of them.

        Unlike SB3's version, shapes are not checked against the training observation
        space: any number of vertiports and aircraft is accepted (size transfer), with the
        env's feature counts and the policy's number of demand points. A batch is recognised
        by an ``action_mask`` of rank 2. Matrices may come flattened (as the env emits them)
        or as matrices. Other keys are ignored.
        """
        if not isinstance(observation, dict):
            raise ValueError(
                "GraphFleetPolicy expects the graph Dict observation of opsrl/UAMFleet-v0, "
                f"got {type(observation).__name__}"
            )
        missing = [key for key in GRAPH_KEYS if key not in observation]
        if missing:
            raise ValueError(f"graph observation lacks key(s) {', '.join(missing)}")
        mask = np.asarray(observation["action_mask"])
        if mask.ndim not in (1, 2):
            raise ValueError(f"action_mask must have shape (N,) or (B, N), got {mask.shape}")
        vectorized = mask.ndim == 2
        n_samples, n = mask.shape if vectorized else (1, mask.shape[0])
        arrays = {}
        for key in GRAPH_KEYS:
            array = np.asarray(observation[key], dtype=np.float32)
            if not vectorized:
                array = array[np.newaxis]
            if array.ndim < 1 or len(array) != n_samples:
                raise ValueError(
                    f"graph observation key {key} has shape {np.shape(observation[key])}, "
                    f"which does not fit action_mask {mask.shape}"
                )
            arrays[key] = array.reshape(n_samples, -1)
        n_edges = arrays["vertiport_edges"].shape[1] // 2
        n_aircraft = arrays["aircraft_vertiport"].shape[1]
        expected = {
            "vertiport_edges": 2 * n_edges,
            "vertiport_edge_features": len(EDGE_FEATURES) * n_edges,
            "aircraft_features": len(AIRCRAFT_FEATURES) * n_aircraft,
            "deciding": 2,
            "demand": self.n_demand_points * n * n,
            "time": 1,
        }
        for key, size in expected.items():
            if arrays[key].shape[1] != size:
                raise ValueError(
                    f"graph observation key {key} has {arrays[key].shape[1]} values per "
                    f"sample, expected {size} for {n} vertiports, {n_aircraft} aircraft and "
                    f"{self.n_demand_points} demand points"
                )
        width = arrays["vertiport_features"].shape[1]
        if width % n or width // n < N_VERTIPORT_INPUTS:
            raise ValueError(
                f"graph observation key vertiport_features has {width} values per sample, "
                f"not {n} rows of at least {N_VERTIPORT_INPUTS} features"
            )
        tensors = {key: th.as_tensor(array, device=self.device) for key, array in arrays.items()}
        return tensors, vectorized

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
        }
        data.update(
            hidden_dim=self.hidden_dim,
            edge_dim=self.edge_dim,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            series_encoder=self.series_encoder,
            value_net_arch=self.value_net_arch,
            logit_clip=self.logit_clip,
            activation_fn=self.activation_fn,
            share_encoder=self.share_encoder,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data
