"""Central registration of every opsrl environment id.

One table, as in ``gymnasium/envs/__init__.py``: each entry gives the id, the entry point and,
where the family has one, a batched ``VecEnv`` that steps many copies in one numpy call.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym


@dataclass(frozen=True)
class EnvEntry:
    """One registered environment id."""

    id: str
    entry_point: str
    description: str
    #: ``module:Class`` of a batched VecEnv taking ``(num_envs, seed=None, **env_kwargs)``.
    batched_entry_point: str | None = None
    #: multi-agent envs: ``module:Class`` of a VecEnv with one slot per agent (one shared
    #: policy), taking ``(n_copies, seed=None, **env_kwargs)``; the registered id is the
    #: single-agent view whose observation and action are the agents' concatenated
    agents_entry_point: str | None = None
    #: skip Gymnasium's passive checker in ``gym.make``: it expects a scalar reward
    #: (multi-objective envs; ``mo_gymnasium.make`` disables it the same way)
    disable_env_checker: bool = False
    max_episode_steps: int | None = None


ENV_TABLE: tuple[EnvEntry, ...] = (
    # The lot-sizing episode ends at its own horizon (an env argument), so no TimeLimit here:
    # a registered max_episode_steps would cut a longer horizon short.
    EnvEntry(
        id="opsrl/LotSizing-v0",
        entry_point="opsrl.envs.lot_sizing.env:LotSizingEnv",
        description="Stochastic multi-item multi-machine lot-sizing with post-decision states",
        batched_entry_point="opsrl.envs.lot_sizing.vec:LotSizingVecEnv",
    ),
    # Episodes end at the end of the chosen data split (or after episode_days).
    EnvEntry(
        id="opsrl/ESGPortfolio-v0",
        entry_point="opsrl.envs.esg_portfolio.env:ESGPortfolioEnv",
        description="Long-only portfolio in a standard or ESG-regulated market (synthetic or "
        "FinRL CSV prices)",
        batched_entry_point="opsrl.envs.esg_portfolio.vec:ESGPortfolioVecEnv",
    ),
    # The simulator truncates itself at a safety horizon (and on deadlock), so no TimeLimit.
    EnvEntry(
        id="opsrl/JobShop-v0",
        entry_point="opsrl.envs.job_shop.env:JobShopEnv",
        description="Job shop dispatching: classic, blocking with/without swaps, random machine "
        "shutdowns (ISBJSSP by default); graph or flat observations, masked actions",
        batched_entry_point="opsrl.envs.job_shop.vec:JobShopVecEnv",
    ),
    # The env truncates itself after episode_minutes (an env argument), so no TimeLimit.
    EnvEntry(
        id="opsrl/RideSharing-v0",
        entry_point="opsrl.envs.ride_sharing.env:RideSharingEnv",
        batched_entry_point="opsrl.envs.ride_sharing.batched:RideSharingVecEnv",
        agents_entry_point="opsrl.envs.ride_sharing.vec:RideSharingAgentVecEnv",
        description="Ride-sharing order dispatch with pooling, platform view of the PettingZoo "
        "env (synthetic city or Manhattan zones + NYC TLC trips); Hungarian matching of scores",
    ),
    # The day ends by itself (no decision after 18:00); decisions per day vary, so no TimeLimit.
    EnvEntry(
        id="opsrl/UAMFleet-v0",
        entry_point="opsrl.envs.uam.env:UAMFleetEnv",
        description="Urban air mobility: eVTOL fleet scheduling between vertiports over a day "
        "(time-varying demand, delays, closures, downtime); graph or flat observations, masked",
        batched_entry_point="opsrl.envs.uam.vec:UAMFleetVecEnv",
    ),
    # Submodular rewards (SubPO): the episode terminates at its own horizon (an env argument),
    # so no TimeLimit.
    EnvEntry(
        id="opsrl/Coverage-v0",
        entry_point="opsrl.envs.submodular.env:SubmodularGridEnv",
        description="Submodular grid walk (SubPO): weighted coverage of a GP-sampled weight "
        "map, 30x30, H=40; marginal-gain or modular rewards",
    ),
    EnvEntry(
        id="opsrl/ItemCollection-v0",
        entry_point="opsrl.envs.submodular.env:ItemCollectionEnv",
        description="Submodular grid walk (SubPO): item collection with quotas, 6 item types, "
        "30x30, H=40",
    ),
    EnvEntry(
        id="opsrl/ExperimentDesign-v0",
        entry_point="opsrl.envs.submodular.env:ExperimentDesignEnv",
        description="Submodular grid walk (SubPO): Bayesian D-optimal design of GP measurements, "
        "30x30, H=40",
    ),
    EnvEntry(
        id="opsrl/InformativePath-v0",
        entry_point="opsrl.envs.submodular.env:InformativePathEnv",
        description="Informative path planning: information gain about a GP field with a "
        "GP-sampled variance map, 60x60, H=100",
    ),
    # Robust-RL test domains (train nominal, test perturbed: failure_prob / up_prob kwargs).
    EnvEntry(
        id="opsrl/SimulatedLinearMDP-v0",
        entry_point="opsrl.envs.robust.env:SimulatedLinearMDPEnv",
        description="Simulated d-rectangular linear MDP (x1..x5, d=4, H=3); failure_prob "
        "perturbs x1's transition to x5 (distributionally robust RL testbed)",
        max_episode_steps=3,
    ),
    # The put terminates itself at maturity (an env argument), so no TimeLimit.
    EnvEntry(
        id="opsrl/AmericanPut-v0",
        entry_point="opsrl.envs.robust.env:AmericanPutEnv",
        description="American put option on a binomial price (H=20, price-bin observation, "
        "hold/exercise); up_prob perturbs the price moves",
    ),
    # Multi-objective variants (MO-Gymnasium API: float32 reward vector, reward_space); they end
    # as their single-objective envs do.
    EnvEntry(
        id="opsrl/mo-lot-sizing-v0",
        entry_point="opsrl.envs.mo:MOLotSizingEnv",
        description="Lot sizing, 2 objectives: -(setup + holding cost), -lost-sales cost",
        disable_env_checker=True,
    ),
    EnvEntry(
        id="opsrl/mo-esg-portfolio-v0",
        entry_point="opsrl.envs.mo:MOESGPortfolioEnv",
        description="ESG portfolio, 2 objectives: log return, ESG score / market mean",
        disable_env_checker=True,
    ),
    EnvEntry(
        id="opsrl/mo-job-shop-v0",
        entry_point="opsrl.envs.mo:MOJobShopEnv",
        description="Job shop dispatching, 2 objectives: -makespan, -blocked machine time",
        disable_env_checker=True,
    ),
    EnvEntry(
        id="opsrl/mo-uam-fleet-v0",
        entry_point="opsrl.envs.mo:MOUAMFleetEnv",
        description="UAM fleet scheduling, 2 objectives: profit, -unserved demand share",
        disable_env_checker=True,
    ),
    # Mario and the side-scroller end by themselves (flag, death, or the clock running out).
    EnvEntry(
        id="opsrl/SideScroller-v0",
        entry_point="opsrl.envs.mario.side_scroller:SideScrollerEnv",
        description="ROM-free side-scrolling platformer (procedural levels) with Mario's "
        "interface: 84x84x4 frames, 7 SIMPLE_MOVEMENT actions",
    ),
    EnvEntry(
        id="opsrl/Mario-v0",
        entry_point="opsrl.envs.mario.env:MarioEnv",
        description="Super Mario Bros. (NES; world/stage kwargs, default 1-1; needs the mario "
        "install): 84x84x4 frames, 7 SIMPLE_MOVEMENT actions",
    ),
    *(
        EnvEntry(
            id=f"opsrl/Mario-{world}-{stage}-v0",
            entry_point=f"opsrl.envs.mario.env:mario_{world}_{stage}",
            description=f"Super Mario Bros. stage {world}-{stage}",
        )
        for world in range(1, 9)
        for stage in range(1, 5)
    ),
)


def _register_all() -> None:
    for entry in ENV_TABLE:
        if entry.id in gym.registry:
            continue
        gym.register(
            id=entry.id,
            entry_point=entry.entry_point,
            max_episode_steps=entry.max_episode_steps,
            disable_env_checker=entry.disable_env_checker,
        )


_register_all()

__all__ = ["ENV_TABLE", "EnvEntry"]
