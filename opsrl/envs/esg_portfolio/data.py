"""Market data for the ESG portfolio env: prices, technical indicators and ESG scores.

A :class:`MarketData` holds everything an episode reads: daily closing prices of N assets over
T trading days, four technical indicators per asset and day, and an ESG score per asset and
day. It comes from

- :func:`generate_market` -- the default: a reproducible synthetic one-factor market;
- :func:`load_finrl_csv` -- a FinRL long-format price file (``date, tic, close, ...``) with
  ESG scores from a user CSV (``tic, esg``) or synthetic ones.

Nothing is downloaded. Technical indicators missing from a file are computed by
:func:`compute_indicators` with the formulas documented there. :func:`split_bounds` turns a
train/test split into the first and last day of an episode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "ESG_MODELS",
    "INDICATORS",
    "SPLITS",
    "MarketData",
    "compute_indicators",
    "generate_market",
    "load_esg_csv",
    "load_finrl_csv",
    "make_market",
    "split_bounds",
]

#: Technical indicators, in the order of :attr:`MarketData.indicators` (FinRL's names).
INDICATORS: tuple[str, ...] = ("macd", "rsi_30", "cci_30", "dx_30")

#: How synthetic ESG scores evolve.
ESG_MODELS: tuple[str, ...] = ("static", "ar1")

#: Parts of the data an episode can run over.
SPLITS: tuple[str, ...] = ("all", "train", "test")

#: Window of the 30-day indicators (rsi_30, cci_30, dx_30).
INDICATOR_WINDOW = 30


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class MarketData:
    """Daily prices, technical indicators and ESG scores of N assets over T days.

    - ``dates``: (T,) ``datetime64[D]``, strictly increasing trading days.
    - ``tickers``: the N asset names.
    - ``close``: (T, N) closing prices, finite and positive.
    - ``indicators``: (T, 4, N) raw values of ``macd, rsi_30, cci_30, dx_30`` (FinRL's units:
      macd in price units, the others on their usual 0-100 or CCI scales), finite.
    - ``esg``: (T, N) ESG score of each asset on each day (static scores repeat the same row),
      finite, non-negative, with a positive mean every day (the ESG rule divides by it).
    - ``name``: where the data came from.

    Arrays are stored read-only; construction validates shapes and values and raises a
    ValueError naming the first problem.
    """

    dates: np.ndarray
    tickers: tuple[str, ...]
    close: np.ndarray
    indicators: np.ndarray
    esg: np.ndarray
    name: str = "market"

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates).astype("datetime64[D]")
        tickers = tuple(str(tic) for tic in self.tickers)
        close = np.array(self.close, dtype=np.float64)
        indicators = np.array(self.indicators, dtype=np.float64)
        esg = np.array(self.esg, dtype=np.float64)
        n_days, n_assets = dates.shape[0], len(tickers)
        if n_assets == 0:
            raise ValueError("market data has no assets (tickers is empty)")
        if len(set(tickers)) != n_assets:
            raise ValueError("market data tickers must be unique")
        if n_days < 2:
            raise ValueError(f"market data needs at least 2 days, got {n_days}")
        if np.any(np.diff(dates) <= np.timedelta64(0, "D")):
            raise ValueError("market data dates must be strictly increasing")
        for name, array, shape in (
            ("close", close, (n_days, n_assets)),
            ("indicators", indicators, (n_days, len(INDICATORS), n_assets)),
            ("esg", esg, (n_days, n_assets)),
        ):
            if array.shape != shape:
                raise ValueError(f"market data {name} must have shape {shape}, got {array.shape}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"market data {name} must be finite (found NaN or inf)")
        if np.any(close <= 0):
            day, asset = np.argwhere(close <= 0)[0]
            raise ValueError(
                f"non-positive price {close[day, asset]} for ticker '{tickers[asset]}' on "
                f"{dates[day]}: prices must be positive"
            )
        if np.any(esg < 0):
            raise ValueError(f"ESG scores must be non-negative, got minimum {esg.min()}")
        if np.any(esg.mean(axis=1) <= 0):
            raise ValueError("ESG scores must have a positive mean on every day")
        object.__setattr__(self, "dates", _read_only(dates))
        object.__setattr__(self, "tickers", tickers)
        object.__setattr__(self, "close", _read_only(close))
        object.__setattr__(self, "indicators", _read_only(indicators))
        object.__setattr__(self, "esg", _read_only(esg))
        object.__setattr__(self, "name", str(self.name))

    @property
    def n_days(self) -> int:
        """Number of trading days T."""
        return int(self.dates.shape[0])

    @property
    def n_assets(self) -> int:
        """Number of assets N."""
        return len(self.tickers)


# --------------------------------------------------------------------------------------------
# Technical indicators
# --------------------------------------------------------------------------------------------


def _wilder(frame: pd.DataFrame) -> pd.DataFrame:
    """Wilder's smoothing over 30 days: an EMA with alpha = 1/30."""
    return frame.ewm(alpha=1.0 / INDICATOR_WINDOW, adjust=False).mean()


def _rolling_mean_deviation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trailing 30-day mean and mean absolute deviation around it, (T, N) each.

    The first days use the days available so far (min_periods = 1).
    """
    n_days = values.shape[0]
    padded = np.full((n_days + INDICATOR_WINDOW - 1, values.shape[1]), np.nan)
    padded[INDICATOR_WINDOW - 1 :] = values
    windows = np.lib.stride_tricks.sliding_window_view(padded, INDICATOR_WINDOW, axis=0)
    mean = np.nanmean(windows, axis=-1)
    deviation = np.nanmean(np.abs(windows - mean[..., None]), axis=-1)
    return mean, deviation


def compute_indicators(
    close: np.ndarray, high: np.ndarray | None = None, low: np.ndarray | None = None
) -> np.ndarray:
    """FinRL's four technical indicators from daily prices, (T, 4, N) float64.

    Each is computed per asset from the past and the current day only (no look-ahead);
    warm-up days use what is available, so every value is finite.

    - ``macd`` = EMA12(close) - EMA26(close) (``ewm(span, adjust=False)``), in price units.
    - ``rsi_30``: Wilder's RSI, ``100 * G / (G + L)`` with G, L the Wilder averages
      (alpha = 1/30) of daily gains and losses of the close; 50 while both are 0.
    - ``cci_30``: ``(tp - SMA30(tp)) / (0.015 * MD30(tp))`` with the typical price
      ``tp = (high + low + close) / 3`` and MD the mean absolute deviation around the 30-day
      mean; 0 when MD is 0.
    - ``dx_30``: ``100 * |DM+ - DM-| / (DM+ + DM-)``, DM+ and DM- being the 30-day EMAs
      (``ewm(span=30, adjust=False)``, as stockstats in FinRL) of the directional movements:
      the up move ``high_t - high_{t-1}`` counts when it is positive and larger than the down
      move ``low_{t-1} - low_t``, and vice versa; 0 when both are 0. (The true range divides
      both directional indices and cancels in DX.)

    ``high`` and ``low`` are used when given; without them the close-to-close range stands in:
    ``high_t = max(close_{t-1}, close_t)``, ``low_t = min(close_{t-1}, close_t)`` (the first
    day: the close). After a warm-up of about 60 days these agree closely with the values in
    FinRL's processed files (stockstats; correlation above 0.99 on the DJIA test file); the
    first days differ.
    """
    close = np.asarray(close, dtype=np.float64)
    if (high is None) != (low is None):
        raise ValueError("compute_indicators needs both high and low, or neither")
    if high is None or low is None:
        previous = np.vstack([close[:1], close[:-1]])
        high, low = np.maximum(previous, close), np.minimum(previous, close)
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    frame = pd.DataFrame(close)

    macd = (
        frame.ewm(span=12, adjust=False).mean() - frame.ewm(span=26, adjust=False).mean()
    ).to_numpy()

    change = frame.diff().fillna(0.0)
    gains = _wilder(change.clip(lower=0.0)).to_numpy()
    losses = _wilder((-change).clip(lower=0.0)).to_numpy()
    movement = gains + losses
    rsi = np.full_like(close, 50.0)
    np.divide(100.0 * gains, movement, out=rsi, where=movement > 0)

    typical = (high + low + close) / 3.0
    mean, deviation = _rolling_mean_deviation(typical)
    cci = np.zeros_like(close)
    np.divide(typical - mean, 0.015 * deviation, out=cci, where=deviation > 1e-12 * mean)

    up = np.diff(high, axis=0, prepend=high[:1])
    down = -np.diff(low, axis=0, prepend=low[:1])
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    plus = pd.DataFrame(plus_dm).ewm(span=INDICATOR_WINDOW, adjust=False).mean().to_numpy()
    minus = pd.DataFrame(minus_dm).ewm(span=INDICATOR_WINDOW, adjust=False).mean().to_numpy()
    total = plus + minus
    dx = np.zeros_like(close)
    np.divide(100.0 * np.abs(plus - minus), total, out=dx, where=total > 0)

    return np.stack([macd, rsi, cci, dx], axis=1)


# --------------------------------------------------------------------------------------------
# Synthetic market
# --------------------------------------------------------------------------------------------


def _check_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and low <= lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} <= low <= high <= {high}, got {value!r}")
    return lo, hi


def generate_market(
    n_assets: int = 30,
    n_days: int = 1000,
    seed: int = 0,
    esg_model: str = "static",
    esg_return_correlation: float = 0.0,
    market_drift: float = 3e-4,
    market_volatility: float = 0.01,
    beta_range: tuple[float, float] = (0.5, 1.5),
    idiosyncratic_volatility_range: tuple[float, float] = (0.01, 0.02),
    drift_dispersion: float = 2e-4,
    esg_range: tuple[float, float] = (10.0, 90.0),
    esg_persistence: float = 0.995,
    esg_volatility: float = 0.5,
    start_date: str = "2010-01-04",
) -> MarketData:
    """A reproducible synthetic one-factor lognormal market with ESG scores.

    Daily log returns are ``r[t, i] = alpha_i + beta_i * m_t + eps[t, i]`` with the market
    factor ``m_t ~ N(market_drift, market_volatility^2)`` (default 0.03 %/day, 1 %/day),
    ``beta_i ~ U(beta_range)`` (default [0.5, 1.5]) and idiosyncratic noise
    ``eps ~ N(0, s_i^2)``, ``s_i ~ U(idiosyncratic_volatility_range)`` (1-2 %/day). Prices
    start at 100 on business days from ``start_date``.

    ESG scores: a level ``e_i ~ U(esg_range)`` (default [10, 90]) per asset, held constant
    (``esg_model="static"``) or moving as a slow AR(1) around it (``"ar1"``:
    ``e_t = e + esg_persistence * (e_{t-1} - e) + esg_volatility * N(0, 1)``, clipped to
    [0, 100]; defaults 0.995 and 0.5 give a stationary spread of about 5 points).

    ``esg_return_correlation`` (rho in [-1, 1]) ties the asset drifts to ESG:
    ``alpha_i = drift_dispersion * (rho * z_i + sqrt(1 - rho^2) * u_i)`` with ``z`` the
    standardised ESG levels and ``u ~ N(0, 1)``; rho = 0 (default) makes ESG irrelevant to
    returns, rho > 0 rewards high-ESG assets.

    Indicators are computed with :func:`compute_indicators` from the closes (close-to-close
    range for high/low). The same arguments always give the same market: the random draws
    are, in order, ESG levels, betas, idiosyncratic volatilities, drift noise, market factor,
    idiosyncratic noise and, last, the ESG AR(1) noise (so ``esg_model`` leaves prices
    unchanged).
    """
    if isinstance(n_assets, bool) or not isinstance(n_assets, (int, np.integer)) or n_assets < 1:
        raise ValueError(f"n_assets must be a positive integer, got {n_assets!r}")
    if isinstance(n_days, bool) or not isinstance(n_days, (int, np.integer)) or n_days < 2:
        raise ValueError(f"n_days must be an integer of at least 2, got {n_days!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"market seed must be a non-negative integer, got {seed!r}")
    if esg_model not in ESG_MODELS:
        raise ValueError(f"esg_model must be one of {', '.join(ESG_MODELS)}, got {esg_model!r}")
    rho = float(esg_return_correlation)
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"esg_return_correlation must lie in [-1, 1], got {rho!r}")
    for name, value in (
        ("market_volatility", market_volatility),
        ("drift_dispersion", drift_dispersion),
        ("esg_volatility", esg_volatility),
    ):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not np.isfinite(market_drift):
        raise ValueError(f"market_drift must be finite, got {market_drift!r}")
    if not 0.0 <= esg_persistence < 1.0:
        raise ValueError(f"esg_persistence must lie in [0, 1), got {esg_persistence!r}")
    beta_low, beta_high = _check_range("beta_range", beta_range, -10.0, 10.0)
    idio_low, idio_high = _check_range(
        "idiosyncratic_volatility_range", idiosyncratic_volatility_range, 0.0, 1.0
    )
    esg_low, esg_high = _check_range("esg_range", esg_range, 0.0, 100.0)
    if esg_high <= 0:
        raise ValueError(f"esg_range must allow positive scores, got {esg_range!r}")

    n_assets, n_days = int(n_assets), int(n_days)
    rng = np.random.default_rng(int(seed))
    esg_level = rng.uniform(esg_low, esg_high, n_assets)
    beta = rng.uniform(beta_low, beta_high, n_assets)
    idio = rng.uniform(idio_low, idio_high, n_assets)
    drift_noise = rng.standard_normal(n_assets)
    market = rng.normal(market_drift, market_volatility, n_days - 1)
    noise = rng.standard_normal((n_days - 1, n_assets)) * idio

    spread = esg_level.std()
    esg_z = (esg_level - esg_level.mean()) / spread if spread > 0 else np.zeros(n_assets)
    alpha = drift_dispersion * (rho * esg_z + np.sqrt(1.0 - rho**2) * drift_noise)
    log_returns = alpha + market[:, None] * beta + noise
    log_prices = np.vstack([np.zeros((1, n_assets)), np.cumsum(log_returns, axis=0)])
    close = 100.0 * np.exp(log_prices)

    if esg_model == "static":
        esg = np.broadcast_to(esg_level, (n_days, n_assets)).copy()
    else:
        shocks = rng.standard_normal((n_days - 1, n_assets)) * esg_volatility
        esg = np.empty((n_days, n_assets))
        esg[0] = esg_level
        for day in range(1, n_days):
            moved = esg_level + esg_persistence * (esg[day - 1] - esg_level) + shocks[day - 1]
            esg[day] = np.clip(moved, 0.0, 100.0)

    width = len(str(n_assets - 1))
    return MarketData(
        dates=pd.bdate_range(start_date, periods=n_days).to_numpy().astype("datetime64[D]"),
        tickers=tuple(f"S{i:0{width}d}" for i in range(n_assets)),
        close=close,
        indicators=compute_indicators(close),
        esg=esg,
        name=f"synthetic(n_assets={n_assets}, n_days={n_days}, seed={int(seed)})",
    )


# --------------------------------------------------------------------------------------------
# FinRL CSV and ESG files
# --------------------------------------------------------------------------------------------


def _read_csv(path: str | os.PathLike[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file '{path}' does not exist")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file '{path}' is not a readable CSV: {error}") from None


def _numeric_column(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
    if bad.any():
        row = frame.loc[bad].iloc[0]
        raise ValueError(
            f"{where}: column '{column}' has {int(bad.sum())} missing or non-numeric values "
            f"(first: {row[column]!r}"
            + (f" for ticker '{row['tic']}'" if "tic" in row else "")
            + ")"
        )
    return values.astype(np.float64)


def load_esg_csv(
    path: str | os.PathLike[str] | Mapping[str, float], tickers: tuple[str, ...]
) -> np.ndarray:
    """Static ESG scores (N,) for ``tickers`` from a CSV with columns ``tic, esg`` (others are
    ignored) or from a ``{ticker: score}`` mapping.

    Raises a ValueError for missing columns, duplicate, unknown (not among ``tickers``) or
    missing tickers, and missing, non-numeric or negative scores.
    """
    if isinstance(path, Mapping):
        frame = pd.DataFrame({"tic": list(path.keys()), "esg": list(path.values())})
        where = "ESG scores"
    else:
        frame = _read_csv(path, "ESG")
        where = f"ESG file '{path}'"
        missing = [column for column in ("tic", "esg") if column not in frame.columns]
        if missing:
            raise ValueError(
                f"{where} is missing column(s) {', '.join(missing)}; expected columns tic, esg"
            )
    frame = frame.assign(tic=frame["tic"].astype(str))
    duplicated = frame["tic"][frame["tic"].duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(f"{where} lists ticker(s) more than once: {', '.join(duplicated)}")
    unknown = sorted(set(frame["tic"]) - set(tickers))
    if unknown:
        raise ValueError(
            f"{where} has unknown ticker(s) not in the price data: {', '.join(unknown)}"
        )
    absent = [tic for tic in tickers if tic not in set(frame["tic"])]
    if absent:
        raise ValueError(f"{where} has no score for ticker(s): {', '.join(absent)}")
    scores = _numeric_column(frame, "esg", where)
    if (scores < 0).any():
        raise ValueError(f"{where}: ESG scores must be non-negative, got minimum {scores.min()}")
    by_ticker = dict(zip(frame["tic"], scores, strict=True))
    return np.array([by_ticker[tic] for tic in tickers], dtype=np.float64)


def load_finrl_csv(
    path: str | os.PathLike[str],
    esg: str | os.PathLike[str] | Mapping[str, float] | None = None,
    seed: int = 0,
    esg_range: tuple[float, float] = (10.0, 90.0),
) -> MarketData:
    """Load a FinRL long-format price file: one row per (date, ticker).

    Required columns: ``date``, ``tic``, ``close``; ``high`` and ``low`` are used for the
    indicators when both are present; ``macd, rsi_30, cci_30, dx_30`` are taken from the file
    when present and computed with :func:`compute_indicators` otherwise. Other columns (an
    unnamed index, open, volume, vix, ...) are ignored.

    ESG scores: ``esg`` is a CSV path (``tic, esg``), a ``{ticker: score}`` mapping, or None
    for synthetic static scores ``U(esg_range)`` drawn in ticker order from ``seed``.

    Every ticker must have one row on every date. Missing columns, unparsable dates,
    duplicate rows, date gaps, missing or non-positive prices and bad ESG files raise a
    ValueError naming the problem.
    """
    frame = _read_csv(path, "price")
    where = f"price file '{path}'"
    missing = [column for column in ("date", "tic", "close") if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{where} is missing required column(s) {', '.join(missing)} "
            "(FinRL long format: date, tic, close, ...)"
        )
    if frame.empty:
        raise ValueError(f"{where} has no rows")
    try:
        dates = pd.to_datetime(frame["date"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: column 'date' has unparsable dates: {error}") from None
    frame = frame.assign(date=dates.dt.normalize(), tic=frame["tic"].astype(str))
    duplicated = frame.duplicated(["date", "tic"])
    if duplicated.any():
        row = frame.loc[duplicated].iloc[0]
        raise ValueError(
            f"{where} has {int(duplicated.sum())} duplicate (date, tic) rows, first: ticker "
            f"'{row['tic']}' on {row['date'].date()}"
        )

    def table(column: str) -> np.ndarray:
        values = _numeric_column(frame, column, where)
        return frame.assign(**{column: values}).pivot(index="date", columns="tic", values=column)

    close = table("close")
    gaps = close.isna()
    if gaps.to_numpy().any():
        tic = gaps.columns[gaps.any(axis=0).to_numpy()][0]
        missing_dates = close.index[gaps[tic].to_numpy()]
        raise ValueError(
            f"{where} has date gaps: ticker '{tic}' has no row on {missing_dates[0].date()}"
            + (f" and {len(missing_dates) - 1} other date(s)" if len(missing_dates) > 1 else "")
            + "; every ticker needs a price on every date"
        )
    tickers = tuple(str(tic) for tic in close.columns)
    close_values = close.to_numpy(dtype=np.float64)
    if np.any(close_values <= 0):
        day, asset = np.argwhere(close_values <= 0)[0]
        raise ValueError(
            f"{where} has a non-positive close {close_values[day, asset]} for ticker "
            f"'{tickers[asset]}' on {close.index[day].date()}: prices must be positive"
        )
    if close_values.shape[0] < 2:
        raise ValueError(f"{where} has {close_values.shape[0]} date(s); at least 2 are needed")

    if all(column in frame.columns for column in INDICATORS):
        indicators = np.stack([table(column).to_numpy() for column in INDICATORS], axis=1)
    else:
        high = low = None
        if "high" in frame.columns and "low" in frame.columns:
            high, low = table("high").to_numpy(), table("low").to_numpy()
            if np.any(high <= 0) or np.any(low <= 0) or np.any(high < low):
                raise ValueError(
                    f"{where}: high and low must be positive with high >= low on every row"
                )
        computed = compute_indicators(close_values, high, low)
        columns = [
            table(column).to_numpy() if column in frame.columns else computed[:, k]
            for k, column in enumerate(INDICATORS)
        ]
        indicators = np.stack(columns, axis=1)

    if esg is None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"market seed must be a non-negative integer, got {seed!r}")
        low_esg, high_esg = _check_range("esg_range", esg_range, 0.0, 100.0)
        scores = np.random.default_rng(int(seed)).uniform(low_esg, high_esg, len(tickers))
        esg_name = f"synthetic ESG seed {int(seed)}"
    else:
        scores = load_esg_csv(esg, tickers)
        esg_name = "ESG from mapping" if isinstance(esg, Mapping) else f"ESG from '{esg}'"
    n_days = close_values.shape[0]
    return MarketData(
        dates=close.index.to_numpy().astype("datetime64[D]"),
        tickers=tickers,
        close=close_values,
        indicators=indicators,
        esg=np.broadcast_to(scores, (n_days, len(tickers))).copy(),
        name=f"{Path(path).name} ({esg_name})",
    )


def make_market(
    data: str | os.PathLike[str] | MarketData = "synthetic",
    *,
    market_seed: int = 0,
    esg: str | os.PathLike[str] | Mapping[str, float] | None = None,
    n_assets: int | None = None,
    n_days: int | None = None,
    esg_model: str | None = None,
    esg_return_correlation: float | None = None,
) -> MarketData:
    """The env's ``data`` argument as a :class:`MarketData`.

    ``"synthetic"`` calls :func:`generate_market` (``n_assets``, ``n_days``, ``esg_model``,
    ``esg_return_correlation`` apply; None means its default); a path loads a FinRL CSV with
    :func:`load_finrl_csv` (``esg`` applies; ``market_seed`` seeds synthetic ESG scores); a
    MarketData is used as is. Arguments that do not apply to the chosen data raise a
    ValueError rather than being silently ignored.
    """
    synthetic_only = {
        "n_assets": n_assets,
        "n_days": n_days,
        "esg_model": esg_model,
        "esg_return_correlation": esg_return_correlation,
    }
    given = [name for name, value in synthetic_only.items() if value is not None]
    if isinstance(data, MarketData):
        if given or esg is not None:
            raise ValueError(
                f"{', '.join(given + (['esg'] if esg is not None else []))} cannot be combined "
                "with a MarketData object (they apply to data='synthetic' or a CSV path)"
            )
        return data
    if isinstance(data, str) and data == "synthetic":
        if esg is not None:
            raise ValueError(
                "esg applies to a FinRL CSV; the synthetic market makes its own ESG scores "
                "(see esg_model and esg_return_correlation)"
            )
        kwargs = {name: value for name, value in synthetic_only.items() if value is not None}
        return generate_market(seed=market_seed, **kwargs)
    if isinstance(data, (str, os.PathLike)):
        if given:
            raise ValueError(
                f"{', '.join(given)} only apply to data='synthetic', not to the CSV '{data}'"
            )
        return load_finrl_csv(data, esg=esg, seed=market_seed)
    raise ValueError(
        "data must be 'synthetic', the path of a FinRL CSV or a MarketData, "
        f"got {type(data).__name__}"
    )


# --------------------------------------------------------------------------------------------
# Train / test split
# --------------------------------------------------------------------------------------------


def split_bounds(
    dates: np.ndarray,
    lookback: int,
    split: str = "all",
    split_date: str | None = None,
    train_fraction: float = 0.8,
) -> tuple[int, int]:
    """First decision day and last day ``(first, last)`` of the chosen split.

    An episode decides on days ``first .. last - 1`` and ends at the close of day ``last``;
    each step earns the return from one close to the next. A decision needs ``lookback``
    daily returns up to that day, so ``first >= lookback``.

    The test period starts on day ``b``: the first date on or after ``split_date`` when
    given, else ``b = round(T * train_fraction)``.

    - ``"all"``: ``(lookback, T - 1)`` (``split_date`` must then be None);
    - ``"train"``: ``(lookback, b - 1)``: returns of days up to ``b - 1``;
    - ``"test"``: ``(b - 1, T - 1)``: the first decision is taken at the last train close, so
      the test episode earns exactly the returns of the test days; its lookback window may
      reach into the train period (past data, not look-ahead).

    Raises a ValueError when the split is empty or too short for the lookback.
    """
    n_days = int(len(dates))
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if n_days < lookback + 2:
        raise ValueError(
            f"the market has {n_days} days, fewer than lookback + 2 = {lookback + 2}: too short "
            "a window for one step (lower lookback or give more data)"
        )
    if split == "all":
        if split_date is not None:
            raise ValueError("split_date applies to split='train' or 'test', not to split='all'")
        return lookback, n_days - 1
    if split_date is not None:
        try:
            boundary_date = np.datetime64(pd.Timestamp(split_date).date(), "D")
        except (ValueError, TypeError):
            raise ValueError(
                f"split_date must be a date like '2021-01-04', got {split_date!r}"
            ) from None
        boundary = int(np.searchsorted(dates, boundary_date))
        described = f"split_date={split_date!r}"
    else:
        fraction = float(train_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction!r}")
        boundary = int(round(n_days * fraction))
        described = f"train_fraction={fraction}"
    if split == "train":
        first, last = lookback, boundary - 1
    else:
        first, last = boundary - 1, n_days - 1
    if first < lookback:
        raise ValueError(
            f"split='test' with {described} starts on day {first} but lookback={lookback} needs "
            f"{lookback} days of returns before it; move the split later or lower lookback"
        )
    if last - first < 1:
        raise ValueError(
            f"split={split!r} with {described} leaves no step ({n_days} days, lookback "
            f"{lookback}); move the split or give more data"
        )
    return first, last
