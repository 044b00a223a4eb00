"""City data for the ride-sharing env: zone layouts, orders and demand models.

A city is a :class:`ZoneLayout` (zone ids, names and centroid latitude/longitude); vehicles and
orders live on the zone centroids, as in the OSPO simulator (Zhao & Li, arXiv 2507.15351).
Orders of one episode are a :class:`TripOrders` table (appear minute, origin zone, destination
zone). They come from

- :func:`synthetic_zones` -- the default layout: zones on a jittered grid in a small box;
- :func:`load_zones` -- a zones CSV ``location_id,zone,centroid_lat,centroid_lon`` (e.g. the 69
  Manhattan taxi zones);
- :class:`GravityDemand` -- the default demand on any layout: Poisson arrivals per minute with
  a peak profile over the hour and a gravity-style origin-destination matrix that turns from
  inbound (towards the centre) to outbound during the hour;
- :func:`load_tlc_trips` -- NYC TLC trip records (CSV or parquet with
  ``tpep_pickup_datetime, PULocationID, DOLocationID``) of one day and hour.

Nothing is downloaded. Malformed files raise a one-line ``ValueError`` naming the problem.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EARTH_RADIUS_KM",
    "ZONE_COLUMNS",
    "TLC_COLUMNS",
    "GravityDemand",
    "TripOrders",
    "ZoneLayout",
    "haversine_km",
    "load_tlc_trips",
    "load_zones",
    "synthetic_zones",
]

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088

#: Columns of a zones CSV.
ZONE_COLUMNS: tuple[str, ...] = ("location_id", "zone", "centroid_lat", "centroid_lon")

#: Columns read from NYC TLC trip records.
TLC_COLUMNS: tuple[str, ...] = ("tpep_pickup_datetime", "PULocationID", "DOLocationID")

#: Centre of the synthetic city (midtown Manhattan), so that synthetic coordinates look real.
SYNTHETIC_CENTRE = (40.754, -73.984)


def haversine_km(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasting)."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    half_dphi = 0.5 * (phi2 - phi1)
    half_dlambda = 0.5 * np.radians(np.subtract(lon2, lon1))
    a = np.sin(half_dphi) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(half_dlambda) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------------------------
# Zone layouts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ZoneLayout:
    """Zones of a city: ids, names and centroids (degrees). Arrays are read-only.

    ``location_ids`` are the ids trip records use (TLC ``LocationID``); zones are otherwise
    addressed by their index 0..Z-1 in this layout.
    """

    location_ids: np.ndarray  # (Z,) int64
    names: tuple[str, ...]
    lat: np.ndarray  # (Z,) float64
    lon: np.ndarray  # (Z,) float64
    name: str = "zones"

    def __post_init__(self) -> None:
        ids = np.asarray(self.location_ids, dtype=np.int64)
        lat = np.asarray(self.lat, dtype=np.float64)
        lon = np.asarray(self.lon, dtype=np.float64)
        if ids.ndim != 1 or ids.size < 2:
            raise ValueError(f"a zone layout needs at least 2 zones, got {ids.size}")
        if lat.shape != ids.shape or lon.shape != ids.shape or len(self.names) != ids.size:
            raise ValueError("zone layout arrays (ids, names, lat, lon) must have one entry a zone")
        if np.unique(ids).size != ids.size:
            raise ValueError("zone location ids must be unique")
        if not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90.0)):
            raise ValueError("zone centroid latitudes must be finite and within [-90, 90]")
        if not (np.all(np.isfinite(lon)) and np.all(np.abs(lon) <= 180.0)):
            raise ValueError("zone centroid longitudes must be finite and within [-180, 180]")
        if np.ptp(lat) == 0.0 and np.ptp(lon) == 0.0:
            raise ValueError("zone centroids must not all coincide")
        object.__setattr__(self, "location_ids", _read_only(ids.copy()))
        object.__setattr__(self, "lat", _read_only(lat.copy()))
        object.__setattr__(self, "lon", _read_only(lon.copy()))
        object.__setattr__(self, "names", tuple(str(name) for name in self.names))

    @property
    def num_zones(self) -> int:
        """Number of zones Z."""
        return int(self.location_ids.size)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Bounding box ``(lat_min, lat_max, lon_min, lon_max)`` of the centroids.

        A degenerate side (all zones on one parallel or meridian) is widened to 1e-3 degrees
        so that normalised coordinates stay defined.
        """
        lat_min, lat_max = float(self.lat.min()), float(self.lat.max())
        lon_min, lon_max = float(self.lon.min()), float(self.lon.max())
        if lat_max - lat_min < 1e-3:
            lat_min, lat_max = lat_min - 5e-4, lat_max + 5e-4
        if lon_max - lon_min < 1e-3:
            lon_min, lon_max = lon_min - 5e-4, lon_max + 5e-4
        return lat_min, lat_max, lon_min, lon_max

    @property
    def diagonal_km(self) -> float:
        """Great-circle length of the bounding box diagonal: no two points in it are farther."""
        lat_min, lat_max, lon_min, lon_max = self.bounds
        return float(haversine_km(lat_min, lon_min, lat_max, lon_max))

    def distances_km(self) -> np.ndarray:
        """Great-circle distances between zone centroids, (Z, Z)."""
        return haversine_km(self.lat[:, None], self.lon[:, None], self.lat[None], self.lon[None])

    def zone_index(self, location_ids: Any) -> np.ndarray:
        """Index of each location id in this layout, -1 where the id is not a zone here."""
        ids = np.asarray(location_ids, dtype=np.int64)
        order = np.argsort(self.location_ids)
        sorted_ids = self.location_ids[order]
        position = np.clip(np.searchsorted(sorted_ids, ids), 0, sorted_ids.size - 1)
        found = sorted_ids[position] == ids
        return np.where(found, order[position], -1).astype(np.int64)


def synthetic_zones(num_zones: int = 20, size_km: float = 5.0, seed: int = 0) -> ZoneLayout:
    """A synthetic city: ``num_zones`` centroids on a jittered grid in a square box.

    The grid has ``ceil(sqrt(Z))`` columns and is filled row by row; each centroid moves by up
    to a quarter of the grid spacing in each direction. With the defaults (20 zones in
    5 km x 5 km) the zone spacing is about 1.1 km, close to that of Manhattan's 69 taxi zones,
    so a 10-minute pickup radius reaches the neighbouring zones. Location ids are 1..Z.
    """
    if isinstance(num_zones, bool) or not isinstance(num_zones, (int, np.integer)):
        raise ValueError(f"num_zones must be an integer >= 2, got {num_zones!r}")
    if num_zones < 2:
        raise ValueError(f"num_zones must be an integer >= 2, got {num_zones!r}")
    if not isinstance(size_km, (int, float, np.number)) or not 0.1 <= float(size_km) <= 200.0:
        raise ValueError(f"size_km must be a number in [0.1, 200], got {size_km!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"city seed must be a non-negative integer, got {seed!r}")
    num_zones, size_km = int(num_zones), float(size_km)
    columns = int(np.ceil(np.sqrt(num_zones)))
    rows = int(np.ceil(num_zones / columns))
    index = np.arange(num_zones)
    row, column = index // columns, index % columns
    spacing_y, spacing_x = size_km / rows, size_km / columns
    rng = np.random.default_rng(int(seed))
    jitter = rng.uniform(-0.25, 0.25, size=(num_zones, 2))
    north_km = (row + 0.5 + jitter[:, 0]) * spacing_y - 0.5 * size_km
    east_km = (column + 0.5 + jitter[:, 1]) * spacing_x - 0.5 * size_km
    lat0, lon0 = SYNTHETIC_CENTRE
    km_per_degree = np.pi * EARTH_RADIUS_KM / 180.0
    lat = lat0 + north_km / km_per_degree
    lon = lon0 + east_km / (km_per_degree * np.cos(np.radians(lat0)))
    return ZoneLayout(
        location_ids=index + 1,
        names=tuple(f"zone {i + 1}" for i in index),
        lat=lat,
        lon=lon,
        name=f"synthetic(num_zones={num_zones}, size_km={size_km:g}, seed={int(seed)})",
    )


def _check_file(path: str | os.PathLike[str], what: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{what} must be a path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file '{path}' does not exist")
    return path


def _read_csv(path: Path, what: str, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{what} file '{path}' is not a readable CSV: {message}") from None
    if columns is not None:
        missing = [column for column in columns if column not in frame.columns]
        if missing:
            raise ValueError(
                f"{what} file '{path}' is missing column(s) {', '.join(missing)}; expected "
                f"{', '.join(columns)}"
            )
    return frame


def _numeric(frame: pd.DataFrame, column: str, where: str, integer: bool = False) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    bad = ~np.isfinite(values)
    if integer:
        bad |= values != np.round(values)
    if bad.any():
        first = frame[column].iloc[int(np.flatnonzero(bad)[0])]
        kind = "integer" if integer else "numeric"
        raise ValueError(
            f"{where}: column '{column}' has {int(bad.sum())} missing or non-{kind} value(s) "
            f"(first: {first!r})"
        )
    return values.astype(np.int64) if integer else values


def load_zones(path: str | os.PathLike[str]) -> ZoneLayout:
    """Read a zones CSV with columns ``location_id, zone, centroid_lat, centroid_lon``.

    Other columns are ignored. Raises a ValueError for a missing or unreadable file, missing
    columns, no rows, non-numeric or out-of-range coordinates and duplicate location ids.
    """
    path = _check_file(path, "zones")
    frame = _read_csv(path, "zones", ZONE_COLUMNS)
    where = f"zones file '{path}'"
    if len(frame) < 2:
        raise ValueError(f"{where} needs at least 2 zones, got {len(frame)}")
    ids = _numeric(frame, "location_id", where, integer=True)
    duplicated = sorted(set(ids[pd.Series(ids).duplicated().to_numpy()].tolist()))
    if duplicated:
        raise ValueError(f"{where} lists location_id(s) more than once: {duplicated}")
    lat = _numeric(frame, "centroid_lat", where)
    lon = _numeric(frame, "centroid_lon", where)
    if np.any(np.abs(lat) > 90.0):
        raise ValueError(f"{where}: centroid_lat must lie in [-90, 90]")
    if np.any(np.abs(lon) > 180.0):
        raise ValueError(f"{where}: centroid_lon must lie in [-180, 180]")
    try:
        return ZoneLayout(
            location_ids=ids,
            names=tuple(frame["zone"].astype(str)),
            lat=lat,
            lon=lon,
            name=path.stem,
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TripOrders:
    """Ride requests: the minute each appears and its origin and destination zone indices.

    Sorted by appear minute; arrays are read-only. ``appear_minute`` is counted from the start
    of the hour for :func:`load_tlc_trips` and from the start of the episode for
    :meth:`GravityDemand.sample`.
    """

    appear_minute: np.ndarray  # (N,) int64
    origin_zone: np.ndarray  # (N,) int64
    destination_zone: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        minute = np.asarray(self.appear_minute, dtype=np.int64)
        origin = np.asarray(self.origin_zone, dtype=np.int64)
        destination = np.asarray(self.destination_zone, dtype=np.int64)
        if not (minute.ndim == 1 and origin.shape == minute.shape == destination.shape):
            raise ValueError("trip orders need 1-D arrays of equal length")
        order = np.argsort(minute, kind="stable")
        for name, array in (
            ("appear_minute", minute),
            ("origin_zone", origin),
            ("destination_zone", destination),
        ):
            object.__setattr__(self, name, _read_only(array[order].copy()))

    def __len__(self) -> int:
        return int(self.appear_minute.size)

    def window(self, start_minute: int, minutes: int) -> TripOrders:
        """Orders appearing in ``[start_minute, start_minute + minutes)``, minutes re-based to 0."""
        keep = (self.appear_minute >= start_minute) & (self.appear_minute < start_minute + minutes)
        return TripOrders(
            self.appear_minute[keep] - start_minute,
            self.origin_zone[keep],
            self.destination_zone[keep],
        )

    def subsample(self, rng: np.random.Generator, fraction: float) -> TripOrders:
        """A uniform random subset of ``round(fraction * N)`` orders, drawn without replacement."""
        if fraction >= 1.0:
            return self
        keep = np.sort(rng.choice(len(self), size=round(fraction * len(self)), replace=False))
        return TripOrders(
            self.appear_minute[keep], self.origin_zone[keep], self.destination_zone[keep]
        )


def _check_day_hour(day: Any, hour: Any) -> tuple[int | dt.date, int]:
    if isinstance(hour, bool) or not isinstance(hour, (int, np.integer)) or not 0 <= hour <= 23:
        raise ValueError(f"hour must be an integer in 0..23, got {hour!r}")
    if isinstance(day, dt.datetime):
        return day.date(), int(hour)
    if isinstance(day, dt.date):
        return day, int(hour)
    if isinstance(day, str):
        try:
            return dt.date.fromisoformat(day), int(hour)
        except ValueError:
            raise ValueError(
                f"day must be an ISO date 'YYYY-MM-DD' or 1..31, got {day!r}"
            ) from None
    if isinstance(day, (int, np.integer)) and not isinstance(day, bool) and 1 <= day <= 31:
        return int(day), int(hour)
    raise ValueError(f"day must be a day of the month 1..31 or an ISO date, got {day!r}")


def load_tlc_trips(
    path: str | os.PathLike[str],
    day: int | str | dt.date,
    hour: int,
    zones: ZoneLayout,
    sample_frac: float = 0.95,
    seed: int | None = None,
) -> TripOrders:
    """NYC TLC trip records of one day and hour as orders on ``zones``.

    Args:
        path: a CSV (``.csv``, ``.csv.gz``) or parquet (``.parquet``) file with at least the
            columns ``tpep_pickup_datetime, PULocationID, DOLocationID`` (the TLC yellow taxi
            format; other columns are ignored). Parquet needs pyarrow.
        day: the day of the month (1..31) when the file covers one month, as the TLC monthly
            files do, or an ISO date ``"2024-07-17"``.
        hour: hour of the day, 0..23.
        zones: the layout; trips whose pickup or drop-off zone is not in it are dropped.
        sample_frac: fraction of the trips kept, drawn uniformly without replacement (the OSPO
            experiments keep 95%).
        seed: seed of that draw.

    Returns:
        :class:`TripOrders` with ``appear_minute`` = the pickup minute within the hour (0..59).

    Raises:
        ValueError: missing or unreadable file, missing columns, unparseable datetimes or
            location ids, a day-of-month that the file covers in several months, or no trip of
            that day and hour inside the layout.
        ImportError: a parquet file without pyarrow installed.
    """
    if not isinstance(zones, ZoneLayout):
        raise ValueError(f"zones must be a ZoneLayout, got {type(zones).__name__}")
    day, hour = _check_day_hour(day, hour)
    if isinstance(sample_frac, bool) or not isinstance(sample_frac, (int, float, np.number)):
        raise ValueError(f"sample_frac must be a number in (0, 1], got {sample_frac!r}")
    if not 0.0 < float(sample_frac) <= 1.0:
        raise ValueError(f"sample_frac must lie in (0, 1], got {sample_frac!r}")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"seed must be None or a non-negative integer, got {seed!r}")
    path = _check_file(path, "trip records")
    frame = _read_trip_frame(path)
    where = f"trip records '{path}'"

    pickup = pd.to_datetime(frame["tpep_pickup_datetime"], errors="coerce")
    if pickup.isna().any():
        first = frame["tpep_pickup_datetime"][pickup.isna()].iloc[0]
        raise ValueError(
            f"{where}: column 'tpep_pickup_datetime' has {int(pickup.isna().sum())} missing or "
            f"unparseable value(s) (first: {first!r})"
        )
    origin_ids = _numeric(frame, "PULocationID", where, integer=True)
    destination_ids = _numeric(frame, "DOLocationID", where, integer=True)

    if isinstance(day, int):
        on_day = (pickup.dt.day == day).to_numpy()
        months = pd.unique(pickup[on_day].dt.to_period("M")) if on_day.any() else []
        if len(months) > 1:
            raise ValueError(
                f"{where}: day={day} is ambiguous, the file covers it in {len(months)} months; "
                "give an ISO date such as '2024-07-17'"
            )
        label = f"day {day}"
    else:
        on_day = (pickup.dt.date == day).to_numpy()
        label = day.isoformat()
    selected = on_day & (pickup.dt.hour == hour).to_numpy()
    origin = zones.zone_index(origin_ids)
    destination = zones.zone_index(destination_ids)
    selected &= (origin >= 0) & (destination >= 0)
    if not selected.any():
        raise ValueError(
            f"{where}: no trip on {label} at {hour:02d}:00-{hour:02d}:59 with both zones in the "
            f"layout '{zones.name}'"
        )
    # Sorting by pickup time (then row) makes the subsample independent of the file's row order.
    times = pickup[selected].to_numpy()
    keep = np.lexsort((np.flatnonzero(selected), times))
    orders = TripOrders(
        appear_minute=pickup[selected].dt.minute.to_numpy()[keep],
        origin_zone=origin[selected][keep],
        destination_zone=destination[selected][keep],
    )
    return orders.subsample(np.random.default_rng(seed), float(sample_frac))


def _read_trip_frame(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError(
                f"reading the parquet file '{path}' needs pyarrow (pip install pyarrow), or "
                "give the trips as CSV"
            ) from None
        try:
            import pyarrow.parquet as pq

            available = set(pq.read_schema(path).names)
        except Exception as error:  # pyarrow raises its own error types for a bad file
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(
                f"trip records '{path}' is not a readable parquet file: {first_line}"
            ) from None
        missing = [column for column in TLC_COLUMNS if column not in available]
        if missing:
            raise ValueError(
                f"trip records '{path}' is missing column(s) {', '.join(missing)}; expected "
                f"{', '.join(TLC_COLUMNS)}"
            )
        return pd.read_parquet(path, columns=list(TLC_COLUMNS))
    if name.endswith(".csv") or name.endswith(".csv.gz"):
        return _read_csv(path, "trip records", TLC_COLUMNS)
    raise ValueError(
        f"trip records '{path}' must be a .csv, .csv.gz or .parquet file, got '{path.suffix}'"
    )


# --------------------------------------------------------------------------------------------
# Synthetic demand
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class GravityDemand:
    """Time-varying gravity-style origin-destination demand on any zone layout.

    Orders arrive as a Poisson process: in clock minute m (minute of the hour, 0..59 and
    beyond) the number of new orders is Poisson(``demand_rate * profile(m)``), where the
    profile is a Gaussian peak of height ``peak_factor`` (relative to the base level) at
    ``peak_minute`` with standard deviation ``peak_width`` minutes, scaled so that the profile
    averages 1 over minutes 0..59: ``demand_rate`` is the mean number of orders per minute over
    the hour.

    Each order's (origin, destination) pair is drawn with probability proportional to

        exp(-d_ij / distance_decay_km) * ((1 - s(m)) * c_j + s(m) * c_i + 0.1),   i != j,

    with d_ij the centroid distance, c_z = exp(-(r_z / R)^2) the centrality of zone z (r_z its
    distance from the layout's mean centroid, R half the bounding-box diagonal) and
    s(m) = clip(m / 60, 0, 1): trips head to the centre early in the hour and away from it
    late in the hour. The 0.1 keeps every pair possible.
    """

    layout: ZoneLayout
    demand_rate: float = 3.0
    peak_minute: float = 20.0
    peak_width: float = 8.0
    peak_factor: float = 2.0
    distance_decay_km: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.layout, ZoneLayout):
            raise ValueError(f"layout must be a ZoneLayout, got {type(self.layout).__name__}")
        for name in ("demand_rate", "peak_width", "distance_decay_km", "peak_factor"):
            value = getattr(self, name)
            minimum = 1.0 if name == "peak_factor" else 0.0
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not np.isfinite(value) or value < minimum or (minimum == 0.0 and value == 0.0):
                bound = ">= 1" if name == "peak_factor" else "> 0"
                raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
        if (
            isinstance(self.peak_minute, bool)
            or not isinstance(self.peak_minute, (int, float, np.number))
            or not np.isfinite(self.peak_minute)
        ):
            raise ValueError(f"peak_minute must be a finite number, got {self.peak_minute!r}")
        distance = self.layout.distances_km()
        centre_lat, centre_lon = self.layout.lat.mean(), self.layout.lon.mean()
        radius = haversine_km(self.layout.lat, self.layout.lon, centre_lat, centre_lon)
        centrality = np.exp(-((radius / (0.5 * self.layout.diagonal_km)) ** 2))
        gravity = np.exp(-distance / self.distance_decay_km)
        np.fill_diagonal(gravity, 0.0)
        object.__setattr__(self, "_gravity", _read_only(gravity))
        object.__setattr__(self, "_centrality", _read_only(centrality))
        hour = np.arange(60, dtype=np.float64)
        object.__setattr__(self, "_profile_scale", 1.0 / float(self._raw_profile(hour).mean()))

    def _raw_profile(self, minute: np.ndarray) -> np.ndarray:
        bump = np.exp(-0.5 * ((minute - self.peak_minute) / self.peak_width) ** 2)
        return 1.0 + (self.peak_factor - 1.0) * bump

    def rate(self, minute: np.ndarray | float) -> np.ndarray:
        """Expected orders per minute at clock minute(s) ``minute``."""
        minute = np.asarray(minute, dtype=np.float64)
        return self.demand_rate * self._profile_scale * self._raw_profile(minute)

    def od_probabilities(self, minute: float) -> np.ndarray:
        """Probability of each (origin, destination) pair at clock minute ``minute``, (Z, Z)."""
        share_outbound = float(np.clip(minute / 60.0, 0.0, 1.0))
        attraction = (1.0 - share_outbound) * self._centrality[None, :]
        attraction = attraction + share_outbound * self._centrality[:, None] + 0.1
        weights = self._gravity * attraction
        return weights / weights.sum()

    def sample(
        self, rng: np.random.Generator, start_minute: int, episode_minutes: int
    ) -> TripOrders:
        """Orders of clock minutes ``start_minute .. start_minute + episode_minutes - 1``.

        ``appear_minute`` is re-based to the episode (0 = ``start_minute``).
        """
        zones = self.layout.num_zones
        clock = start_minute + np.arange(episode_minutes)
        counts = rng.poisson(self.rate(clock))
        minutes, pairs = [], []
        for offset, (minute, count) in enumerate(zip(clock.tolist(), counts.tolist(), strict=True)):
            if count == 0:
                continue
            probabilities = self.od_probabilities(minute).ravel()
            pairs.append(rng.choice(probabilities.size, size=count, p=probabilities))
            minutes.append(np.full(count, offset, dtype=np.int64))
        if not pairs:
            empty = np.zeros(0, dtype=np.int64)
            return TripOrders(empty, empty, empty)
        flat = np.concatenate(pairs)
        return TripOrders(np.concatenate(minutes), flat // zones, flat % zones)
