"""One table of everything a spec can name: env ids, agents and baselines.

Agents and baselines are looked up by a short lower-case name (``ppo``, ``maskable_ppo``,
``random``); classes are imported lazily so that ``opsrl list`` stays fast and optional
dependencies are only needed when used.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from opsrl.envs import ENV_TABLE, EnvEntry


class RegistryError(ValueError):
    """A spec or flag names something the registry cannot provide (one line)."""


class UnknownNameError(RegistryError):
    """A spec or flag names an env, agent or baseline that is not registered."""


def load_object(path: str) -> Any:
    """Import ``module:attribute`` and return the attribute."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(known)}"
    return UnknownNameError(f"unknown {kind} '{name}'{hint} (see `opsrl list`)")


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------


def env_ids() -> list[str]:
    """The opsrl env ids, in registration order."""
    return [entry.id for entry in ENV_TABLE]


def env_entry(env_id: str) -> EnvEntry | None:
    """The opsrl table entry of ``env_id``, or None for an env registered elsewhere."""
    return next((entry for entry in ENV_TABLE if entry.id == env_id), None)


#: packages whose import registers more env ids (MO-Gymnasium: the ``mo`` extra)
ENV_ID_PROVIDERS = ("mo_gymnasium",)


def ensure_env_registered(env_id: str) -> bool:
    """Whether Gymnasium knows ``env_id``, importing the packages that register ids
    (:data:`ENV_ID_PROVIDERS`, or the ``module`` of ``module:EnvId``) until it does."""
    module, _, name = env_id.rpartition(":")
    if name in gym.registry:
        return True
    for package in (module,) if module else ENV_ID_PROVIDERS:
        try:
            importlib.import_module(package)
        except ImportError:
            continue
        if name in gym.registry:
            return True
    return False


def check_env_id(env_id: str) -> str:
    """Return ``env_id`` if Gymnasium knows it (opsrl ids, MO-Gymnasium ids with the ``mo``
    extra, ``module:EnvId``, any other registered id)."""
    if ensure_env_registered(env_id):
        return env_id
    raise _unknown("env id", env_id, env_ids())


# --------------------------------------------------------------------------------------------
# Agents
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentEntry:
    """A learning algorithm with the SB3 ``BaseAlgorithm`` interface."""

    name: str
    class_path: str
    description: str
    source: str
    #: the algorithm's ``predict`` takes ``action_masks`` (sb3-contrib MaskablePPO contract)
    uses_action_masks: bool = False
    #: policy used when a spec names none (``MultiInputPolicy`` replaces ``MlpPolicy`` for
    #: Dict observations)
    default_policy: str = "MlpPolicy"
    #: trains on the env's per-agent VecEnv (one slot per agent, one shared policy) and acts
    #: on the registered single-agent view agent by agent (:class:`opsrl.evaluation.PerAgentPolicy`)
    per_agent: bool = False
    #: ``learn`` yields a Pareto set of policies on a multi-objective env (C-MORL): the runner
    #: builds it from the env id and scores its front (hypervolume, expected utility, sparsity)
    multi_policy: bool = False


AGENT_TABLE: tuple[AgentEntry, ...] = (
    AgentEntry("ppo", "stable_baselines3:PPO", "Proximal Policy Optimization", "SB3"),
    AgentEntry("a2c", "stable_baselines3:A2C", "Advantage Actor-Critic", "SB3"),
    AgentEntry(
        "shared_ppo",
        "stable_baselines3:PPO",
        "PPO with parameter sharing: one policy for every agent of a multi-agent env "
        "(trained on its per-agent VecEnv)",
        "SB3",
        per_agent=True,
    ),
    AgentEntry("dqn", "stable_baselines3:DQN", "Deep Q-Network (Discrete actions)", "SB3"),
    AgentEntry("sac", "stable_baselines3:SAC", "Soft Actor-Critic (Box actions)", "SB3"),
    AgentEntry("td3", "stable_baselines3:TD3", "Twin Delayed DDPG (Box actions)", "SB3"),
    AgentEntry(
        "maskable_ppo",
        "sb3_contrib:MaskablePPO",
        "PPO with invalid-action masking (env.action_masks())",
        "sb3-contrib",
        uses_action_masks=True,
    ),
    AgentEntry("trpo", "sb3_contrib:TRPO", "Trust Region Policy Optimization", "sb3-contrib"),
    AgentEntry("qrdqn", "sb3_contrib:QRDQN", "Quantile Regression DQN", "sb3-contrib"),
    AgentEntry("tqc", "sb3_contrib:TQC", "Truncated Quantile Critics (Box)", "sb3-contrib"),
    AgentEntry(
        "recurrent_ppo",
        "sb3_contrib:RecurrentPPO",
        "PPO with an LSTM policy",
        "sb3-contrib",
        default_policy="MlpLstmPolicy",
    ),
    AgentEntry(
        "pdppo",
        "opsrl.agents.pdppo:PDPPO",
        "Post-decision PPO: dual critic over pre- and post-decision states (env.post_decision)",
        "opsrl",
    ),
    AgentEntry(
        "pmoe_sac",
        "opsrl.agents.pmoe:PMOESAC",
        "SAC with a Gaussian mixture of K experts, Q-best-expert gradient and routing loss (Box)",
        "opsrl",
    ),
    AgentEntry(
        "pmoe_ppo",
        "opsrl.agents.pmoe:PMOEPPO",
        "PPO with a Gaussian-mixture policy, auxiliary Q head and routing loss (Box)",
        "opsrl",
    ),
    AgentEntry(
        "props",
        "opsrl.agents.props:PROPS",
        "PPO on the last b batches, collected by a behaviour policy that cuts sampling error",
        "opsrl",
    ),
    AgentEntry(
        "mdpo",
        "opsrl.agents.mdpo:MDPO",
        "On-policy Mirror Descent Policy Optimization: full-batch steps with a KL(new||old) term",
        "opsrl",
    ),
    AgentEntry(
        "mdpo_off",
        "opsrl.agents.mdpo:OffPolicyMDPO",
        "Off-policy MDPO: SAC-like actor with a KL to a periodically copied old policy (Box)",
        "opsrl",
    ),
    AgentEntry(
        "graph_fleet_ppo",
        "opsrl.agents.uam_graph:GraphFleetPPO",
        "Masked PPO with a graph attention policy over vertiports and routes (UAM fleet "
        "scheduling; any fleet size)",
        "opsrl",
        uses_action_masks=True,
        default_policy="GraphFleetPolicy",
    ),
    AgentEntry(
        "ospo",
        "opsrl.agents.ospo:OSPO",
        "One-Step Policy Optimization: critic-free, group-normalised one-step rewards plus a "
        "fairness term; one policy shared by all vehicles (ride-sharing dispatch)",
        "opsrl",
        default_policy="ScorePolicy",
        per_agent=True,
    ),
    AgentEntry(
        "grpo",
        "opsrl.agents.ospo:GRPO",
        "Multi-agent GRPO: semi-MDP reward-to-go minus the group mean, no critic; one policy "
        "shared by all vehicles (ride-sharing dispatch)",
        "opsrl",
        default_policy="ScorePolicy",
        per_agent=True,
    ),
    AgentEntry(
        "reptile",
        "opsrl.agents.reptile:Reptile",
        "Reptile meta-learning around any SB3 algorithm over task envs; evaluated after "
        "adapting to the eval env (eval_adapt_timesteps)",
        "opsrl",
    ),
    AgentEntry(
        "cmorl",
        "opsrl.agents.cmorl:CMORL",
        "C-MORL: Pareto set of multi-objective PPO policies, crowding selection, "
        "IPO-constrained extension (opsrl/mo-* and MO-Gymnasium envs)",
        "opsrl",
        multi_policy=True,
    ),
    AgentEntry(
        "ppo_grid",
        "opsrl.agents.cmorl:LinearScalarizationGrid",
        "Linear-scalarisation PPO grid: one multi-objective PPO per preference on a simplex "
        "grid, the whole budget split among them (C-MORL's stage 1 alone)",
        "opsrl",
        multi_policy=True,
    ),
    AgentEntry(
        "pgmorl",
        "opsrl.agents.pgmorl:PGMORLAgent",
        "PGMORL (morl-baselines, the morl extra): evolved population of multi-objective PPO "
        "policies with prediction-guided task selection (Box actions)",
        "morl-baselines",
        multi_policy=True,
    ),
    AgentEntry(
        "gnn_ppo",
        "opsrl.agents.gnn_dispatch:GnnPPO",
        "Masked PPO with a graph policy over the disjunctive graph (job shop dispatching; "
        "any instance size)",
        "opsrl",
        uses_action_masks=True,
        default_policy="GraphDispatchPolicy",
    ),
    AgentEntry(
        "subpo",
        "opsrl.agents.subpo:SubPO",
        "SubPO: policy gradient on marginal gains of a submodular objective (reward-to-go or "
        "one-step, per-step baseline, optional natural gradient); no critic",
        "opsrl",
    ),
    AgentEntry(
        "drrpo",
        "opsrl.agents.drrpo:DRRPO",
        "DR-RPO: robust (TV/KL d-rectangular) regularised softmax policy optimisation on a "
        "linear MDP, Discrete finite-horizon envs (radius 0: non-robust)",
        "opsrl",
        default_policy="SoftmaxPolicy",
    ),
)


def agent_names() -> list[str]:
    """Registered agent names."""
    return [entry.name for entry in AGENT_TABLE]


def agent_entry(name: str) -> AgentEntry:
    """The table entry of agent ``name`` (case-insensitive)."""
    key = name.lower()
    for entry in AGENT_TABLE:
        if entry.name == key:
            return entry
    raise _unknown("agent", name, agent_names())


def agent_class(name: str) -> type:
    """The algorithm class of agent ``name``."""
    return load_object(agent_entry(name).class_path)


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineEntry:
    """A non-learning policy (heuristic or OR model) evaluated like an agent."""

    name: str
    class_path: str
    description: str
    #: env ids it applies to; empty means any env
    env_ids: tuple[str, ...] = ()
    #: its actions depend on its seed; a deterministic baseline is evaluated once per
    #: experiment (with the first seed), since every seed would give the same episodes
    stochastic: bool = False


BASELINE_TABLE: tuple[BaselineEntry, ...] = (
    BaselineEntry(
        "random",
        "opsrl.baselines.common:RandomPolicy",
        "Uniformly random action, restricted to action_masks() where the env has them",
        stochastic=True,
    ),
    BaselineEntry(
        "base_stock",
        "opsrl.baselines.lot_sizing:BaseStockPolicy",
        "Per-item base-stock levels with greedy machine assignment",
        env_ids=("opsrl/LotSizing-v0",),
    ),
    BaselineEntry(
        "rolling_mip",
        "opsrl.baselines.lot_sizing:RollingHorizonMIPPolicy",
        "Rolling-horizon MIP on expected demand (OR-Tools), re-solved every period",
        env_ids=("opsrl/LotSizing-v0",),
    ),
    BaselineEntry(
        "pi_mip",
        "opsrl.baselines.lot_sizing:PerfectInformationPolicy",
        "Perfect-information MIP on the realised demand (clairvoyant); its bound is the "
        "reported bound",
        env_ids=("opsrl/LotSizing-v0",),
    ),
    BaselineEntry(
        "equal_weight",
        "opsrl.baselines.portfolio:EqualWeightPolicy",
        "Rebalance to equal weights every day",
        env_ids=("opsrl/ESGPortfolio-v0",),
    ),
    BaselineEntry(
        "buy_and_hold",
        "opsrl.baselines.portfolio:BuyAndHoldPolicy",
        "Equal weights at the start, then hold (no turnover)",
        env_ids=("opsrl/ESGPortfolio-v0",),
    ),
    BaselineEntry(
        "min_variance",
        "opsrl.baselines.portfolio:MinVariancePolicy",
        "Long-only minimum variance on the lookback covariance, rebalanced periodically",
        env_ids=("opsrl/ESGPortfolio-v0",),
    ),
    BaselineEntry(
        "esg_lp",
        "opsrl.baselines.portfolio:ESGLPPolicy",
        "OR-Tools GLOP LP: return minus MAD risk, ESG floor, turnover limit, rolling window",
        env_ids=("opsrl/ESGPortfolio-v0",),
    ),
    BaselineEntry(
        "spt",
        "opsrl.baselines.job_shop:SPTPolicy",
        "Dispatching rule: shortest processing time of the candidate operation",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "lpt",
        "opsrl.baselines.job_shop:LPTPolicy",
        "Dispatching rule: longest processing time of the candidate operation",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "fifo",
        "opsrl.baselines.job_shop:FIFOPolicy",
        "Dispatching rule: first in, first out (longest-waiting job)",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "mor",
        "opsrl.baselines.job_shop:MORPolicy",
        "Dispatching rule: most operations remaining",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "lor",
        "opsrl.baselines.job_shop:LORPolicy",
        "Dispatching rule: least operations remaining",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "mwkr",
        "opsrl.baselines.job_shop:MWKRPolicy",
        "Dispatching rule: most work remaining",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "lwkr",
        "opsrl.baselines.job_shop:LWKRPolicy",
        "Dispatching rule: least work remaining",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "cpsat",
        "opsrl.baselines.job_shop:CPSATPolicy",
        "CP-SAT schedule (classic or blocking with swap) replayed; its bound is the reported "
        "bound without shutdowns",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "cpsat_clairvoyant",
        "opsrl.baselines.job_shop:ClairvoyantCPSATPolicy",
        "CP-SAT knowing the episode's downtime windows (the env's pause rules), replayed; "
        "a clairvoyant reference whose bound is valid for that episode",
        env_ids=("opsrl/JobShop-v0",),
    ),
    BaselineEntry(
        "random_feasible",
        "opsrl.baselines.uam:RandomFeasiblePolicy",
        "Uniformly random feasible destination (the CapTAIN precursor's Feas_RND)",
        env_ids=("opsrl/UAMFleet-v0",),
        stochastic=True,
    ),
    BaselineEntry(
        "greedy_profit",
        "opsrl.baselines.uam:GreedyProfitPolicy",
        "Feasible destination of largest immediate profit (fares of the passengers waiting now "
        "minus energy cost); stays when no flight pays",
        env_ids=("opsrl/UAMFleet-v0",),
    ),
    BaselineEntry(
        "ga",
        "opsrl.baselines.uam:GeneticAlgorithmPolicy",
        "Genetic algorithm over the day's destination choices, planned at 06:00 on the expected "
        "day (clairvoyant=True: the realised day), then decoded against the realised state",
        env_ids=("opsrl/UAMFleet-v0",),
        stochastic=True,
    ),
    BaselineEntry(
        "milp",
        "opsrl.baselines.uam:MILPPolicy",
        "Time-expanded flow model of the realised day (OR-Tools model builder, HiGHS), plan "
        "followed; a clairvoyant reference whose bound is valid for the episode",
        env_ids=("opsrl/UAMFleet-v0",),
    ),
    BaselineEntry(
        "random_dispatch",
        "opsrl.baselines.ride_sharing:RandomDispatchPolicy",
        "Uniformly random scores in [-1, 1] (an untrained agent); the platform's matching "
        "resolves them",
        env_ids=("opsrl/RideSharing-v0",),
        stochastic=True,
    ),
    BaselineEntry(
        "greedy_nearest",
        "opsrl.baselines.ride_sharing:GreedyNearestPolicy",
        "First come, first served: each pending order to its nearest free vehicle offering it",
        env_ids=("opsrl/RideSharing-v0",),
    ),
    BaselineEntry(
        "min_cost_flow",
        "opsrl.baselines.ride_sharing:MinCostFlowPolicy",
        "OR-Tools min-cost flow each minute over the candidate slots: most matches, then "
        "least pickup and added time net of distance",
        env_ids=("opsrl/RideSharing-v0",),
    ),
)


def baseline_names() -> list[str]:
    """Registered baseline names."""
    return [entry.name for entry in BASELINE_TABLE]


def baseline_entry(name: str) -> BaselineEntry:
    """The table entry of baseline ``name`` (case-insensitive)."""
    key = name.lower()
    for entry in BASELINE_TABLE:
        if entry.name == key:
            return entry
    raise _unknown("baseline", name, baseline_names())


def check_baseline_env(name: str, env_id: str) -> None:
    """Raise a one-line error when baseline ``name`` does not apply to ``env_id``."""
    entry = baseline_entry(name)
    if entry.env_ids and env_id not in entry.env_ids:
        raise RegistryError(
            f"baseline '{name}' does not apply to {env_id}; it supports {', '.join(entry.env_ids)}"
        )
