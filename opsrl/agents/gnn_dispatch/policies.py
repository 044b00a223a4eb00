"""Graph actor-critic policy for dispatching: per-candidate logits over a GNN encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from opsrl.nn.graph import (
    CANDIDATE_NODES,
    CONJUNCTIVE_EDGES,
    DISJUNCTIVE_EDGES,
    GRAPH_OBSERVATION_KEYS,
    NODE_FEATURES,
    NODE_MASK,
    DisjunctiveGraphEncoder,
    GraphBatch,
    batch_graph_observations,
)
from opsrl.nn.masked import VariableActionsMaskedInterface

__all__ = ["GraphDispatchPolicy"]

#: logit of an absent candidate: finite (no NaN in softmax or entropy), never sampled
ABSENT_LOGIT = -1e8


def _mlp(input_dim: int, hidden: list[int], activation_fn: type[nn.Module]) -> nn.Sequential:
    """Hidden layers and a scalar output layer."""
    layers: list[nn.Module] = []
    last = input_dim
    for size in hidden:
        layers += [nn.Linear(last, size), activation_fn()]
        last = size
    layers.append(nn.Linear(last, 1))
    return nn.Sequential(*layers)


class GraphDispatchPolicy(VariableActionsMaskedInterface, MaskableActorCriticPolicy):
    """Masked actor-critic on a disjunctive-graph observation, for any instance size.

    The observation is the graph Dict of ``opsrl/JobShop-v0`` (``observation="graph"``):
    ``node_features`` (N x F, flattened as the env emits it, or as a matrix), ``node_mask
    (N,)``, ``conjunctive_edges`` and ``disjunctive_edges`` (2 x E, flattened or not) and
    ``candidate_nodes (J,)``, node ids stored as floats with ``-1`` padding. The action is a
    job index (``Discrete(J)``).

    - **Encoder** (:class:`~opsrl.nn.graph.DisjunctiveGraphEncoder`): the batch of padded
      graphs becomes one torch_geometric graph over the unfinished ops, then K rounds of
      edge-type-aware message passing (``precedes``, ``follows``, ``shares_machine``) give a
      ``hidden_dim`` embedding per op.
    - **Actor**: an MLP scores ``[h_c, mean(h)]`` for each job's candidate node c (its next
      op, gathered through ``candidate_nodes``); the scores are the logits over jobs. A job
      with no candidate node gets a huge negative logit, and the env's action mask
      (``action_masks``, passed by MaskablePPO and by ``predict``) removes the rest: jobs whose
      next op cannot start now.
    - **Critic**: an MLP on the mean-pooled embedding of the unfinished ops.

    No weight depends on N or J, so a model trained on one size predicts on observations of
    any other size with the same keys and feature count F (``obs_to_tensor`` accepts them).

    Without ``action_masks``, only the absent candidates are excluded: pass the env's mask.

    :param observation_space: the graph Dict observation space
    :param action_space: ``Discrete(n_jobs)``
    :param lr_schedule: learning rate schedule (could be constant)
    :param hidden_dim: node embedding size
    :param n_layers: message-passing rounds K
    :param aggr: neighbourhood aggregation per edge type (``"mean"``, ``"sum"``, ``"max"``)
    :param net_arch: hidden layers of the actor and critic MLPs, a list (both alike) or a dict
        with keys ``pi`` and ``vf``
    :param activation_fn: activation of the encoder and of the MLPs
    :param share_encoder: one encoder for actor and critic (True), or one each
    :param ortho_init: orthogonal initialisation (SB3's gains: sqrt(2) for hidden layers,
        0.01 for the actor's output, 1 for the critic's)
    :param optimizer_class: the optimizer, ``th.optim.Adam`` by default
    :param optimizer_kwargs: its keyword arguments besides the learning rate
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        hidden_dim: int = 64,
        n_layers: int = 3,
        aggr: str = "mean",
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        share_encoder: bool = True,
        ortho_init: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict) or not set(
            GRAPH_OBSERVATION_KEYS
        ).issubset(observation_space.spaces):
            raise ValueError(
                "GraphDispatchPolicy needs a graph Dict observation with keys "
                f"{', '.join(GRAPH_OBSERVATION_KEYS)} (opsrl/JobShop-v0 with "
                f"observation='graph'), got {observation_space}"
            )
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(
                f"GraphDispatchPolicy needs a Discrete action space, got {action_space}"
            )
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
        if net_arch is None:
            net_arch = [64, 64]
        if isinstance(net_arch, dict):
            unknown = set(net_arch) - {"pi", "vf"}
            if unknown:
                raise ValueError(f"net_arch keys must be 'pi' and 'vf', got {sorted(unknown)}")
            pi_layers = list(net_arch.get("pi", []))
            vf_layers = list(net_arch.get("vf", []))
        else:
            pi_layers = vf_layers = list(net_arch)
        n_nodes = int(np.prod(observation_space[NODE_MASK].shape))
        self.n_features = int(np.prod(observation_space[NODE_FEATURES].shape)) // max(n_nodes, 1)
        self.hidden_dim = hidden_dim
        self.n_layers = n_layers
        self.aggr = aggr
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_encoder = share_encoder
        # MaskableActorCriticPolicy attributes other code may read
        self.share_features_extractor = share_encoder
        self.ortho_init = ortho_init

        def encoder() -> DisjunctiveGraphEncoder:
            return DisjunctiveGraphEncoder(
                self.n_features, hidden_dim, n_layers, aggr, activation_fn
            )

        self.actor_encoder = encoder()
        self.critic_encoder = self.actor_encoder if share_encoder else encoder()
        self.actor_head = _mlp(2 * hidden_dim, pi_layers, activation_fn)
        self.critic_head = _mlp(hidden_dim, vf_layers, activation_fn)

        if ortho_init:
            hidden_gain = float(np.sqrt(2))
            for module in (self.actor_encoder, self.critic_encoder):
                module.apply(lambda m: self.init_weights(m, gain=hidden_gain))
            for head, output_gain in ((self.actor_head, 0.01), (self.critic_head, 1.0)):
                head.apply(lambda m: self.init_weights(m, gain=hidden_gain))
                self.init_weights(head[-1], gain=output_gain)

        self.optimizer = self.optimizer_class(
            self.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )

    # ----------------------------------------------------------------------------------------
    # Networks
    # ----------------------------------------------------------------------------------------

    def _actor_logits(self, graph: GraphBatch, h: th.Tensor | None = None) -> th.Tensor:
        """Logits over jobs ``(B, J)``; absent candidates get :data:`ABSENT_LOGIT`. ``h``: the
        actor encoder's node embeddings when already computed."""
        if h is None:
            h = self.actor_encoder(graph)
        pooled = DisjunctiveGraphEncoder.pool(h, graph)
        candidates = DisjunctiveGraphEncoder.gather_candidates(h, graph)
        context = pooled.unsqueeze(1).expand_as(candidates)
        scores = self.actor_head(th.cat([candidates, context], dim=-1)).squeeze(-1)
        return th.where(graph.candidate_valid, scores, th.full_like(scores, ABSENT_LOGIT))

    def _values(self, graph: GraphBatch, h: th.Tensor | None = None) -> th.Tensor:
        """State values ``(B, 1)``. ``h``: the critic encoder's node embeddings when already
        computed."""
        if h is None:
            h = self.critic_encoder(graph)
        return self.critic_head(DisjunctiveGraphEncoder.pool(h, graph))

    def _logits_and_values(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Actor logits and critic values, encoding the graph once when the encoder is
        shared."""
        graph = batch_graph_observations(obs)  # type: ignore[arg-type]
        h_actor = self.actor_encoder(graph)
        h_critic = h_actor if self.share_encoder else self.critic_encoder(graph)
        return self._actor_logits(graph, h_actor), self._values(graph, h_critic)

    # ----------------------------------------------------------------------------------------
    # MaskableActorCriticPolicy interface
    # (forward and evaluate_actions: VariableActionsMaskedInterface)
    # ----------------------------------------------------------------------------------------

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, action_masks: np.ndarray | None = None
    ) -> MaskableCategoricalDistribution:
        """The masked action distribution for a batch of observations."""
        graph = batch_graph_observations(obs)  # type: ignore[arg-type]
        return self._distribution(self._actor_logits(graph), action_masks)

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """State values ``(B, 1)`` for a batch of observations."""
        return self._values(batch_graph_observations(obs))  # type: ignore[arg-type]

    def extract_features(self, obs: PyTorchObs, features_extractor: Any = None) -> GraphBatch:  # type: ignore[override]
        """The merged graph of a batch of observations (what the encoders read)."""
        return batch_graph_observations(obs)  # type: ignore[arg-type]

    def obs_to_tensor(  # type: ignore[override]
        self, observation: dict[str, np.ndarray]
    ) -> tuple[dict[str, th.Tensor], bool]:
        """Tensors on the policy's device from one graph observation or a batch of them.

        Unlike SB3's version, shapes are not checked against the training observation
        space: any graph size with the same keys and node feature count is accepted (size
        transfer). A batch is recognised by a ``node_mask`` of rank 2. The matrices may be
        given flattened (as ``opsrl/JobShop-v0`` emits them) or as ``(N, F)`` / ``(2, E)``;
        they come out as ``(B, N, F)`` and ``(B, 2, E)``. Other keys are ignored.
        """
        if not isinstance(observation, dict):
            raise ValueError(
                f"GraphDispatchPolicy expects a graph Dict observation, got "
                f"{type(observation).__name__}"
            )
        missing = [key for key in GRAPH_OBSERVATION_KEYS if key not in observation]
        if missing:
            raise ValueError(f"graph observation lacks key(s) {', '.join(missing)}")
        node_mask = np.asarray(observation[NODE_MASK])
        if node_mask.ndim not in (1, 2):
            raise ValueError(f"{NODE_MASK} must have shape (N,) or (B, N), got {node_mask.shape}")
        vectorized = node_mask.ndim == 2
        n_samples, n_nodes = node_mask.shape if vectorized else (1, node_mask.shape[0])
        # per key: the sample's shape for the encoder (from its size), or None if it does not fit
        layouts = {
            NODE_FEATURES: lambda size: (
                (n_nodes, self.n_features) if size == n_nodes * self.n_features else None
            ),
            NODE_MASK: lambda size: (n_nodes,) if size == n_nodes else None,
            CONJUNCTIVE_EDGES: lambda size: (2, size // 2) if size % 2 == 0 else None,
            DISJUNCTIVE_EDGES: lambda size: (2, size // 2) if size % 2 == 0 else None,
            CANDIDATE_NODES: lambda size: (size,) if size >= 1 else None,
        }
        tensors = {}
        for key, layout in layouts.items():
            array = np.asarray(observation[key], dtype=np.float32)
            if not vectorized:
                array = array[np.newaxis]
            shape = layout(array[0].size) if array.ndim >= 2 and len(array) == n_samples else None
            if shape is None:
                raise ValueError(
                    f"graph observation key {key} has shape {np.shape(observation[key])}, "
                    f"which does not fit node_mask {node_mask.shape} with "
                    f"F = {self.n_features} node features"
                )
            tensors[key] = th.as_tensor(array.reshape(n_samples, *shape), device=self.device)
        return tensors, vectorized

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
        }
        data.update(
            hidden_dim=self.hidden_dim,
            n_layers=self.n_layers,
            aggr=self.aggr,
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            share_encoder=self.share_encoder,
            ortho_init=self.ortho_init,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data
