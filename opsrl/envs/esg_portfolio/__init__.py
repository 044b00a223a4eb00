"""Long-only portfolio allocation in a standard or an ESG-regulated market.

- :mod:`~opsrl.envs.esg_portfolio.data`: :class:`MarketData`, the synthetic market generator,
  the FinRL CSV and ESG loaders, indicators and the train/test split;
- :mod:`~opsrl.envs.esg_portfolio.sim`: the numpy simulator of one portfolio day (no
  Gymnasium);
- :mod:`~opsrl.envs.esg_portfolio.env`: :class:`ESGPortfolioEnv`, the Gymnasium env.
"""

from __future__ import annotations

from opsrl.envs.esg_portfolio.data import (
    INDICATORS,
    MarketData,
    compute_indicators,
    generate_market,
    load_esg_csv,
    load_finrl_csv,
    make_market,
    split_bounds,
)
from opsrl.envs.esg_portfolio.env import ESGPortfolioEnv

__all__ = [
    "INDICATORS",
    "ESGPortfolioEnv",
    "MarketData",
    "compute_indicators",
    "generate_market",
    "load_esg_csv",
    "load_finrl_csv",
    "make_market",
    "split_bounds",
]
