"""bench-scale: how the whole pipeline's cost grows with the data, and whether anything grows on the driver.

The synthetic generator (`ingest.source=synthetic`, planted taste clusters, titles from the clusters' vocabulary) at
growing numbers of users with `--per-user` behaviours each and a fixed catalogue, through ingest and every stage of
`behaviorlm run` (report and MLflow off: they read only run metrics), one Spark session in local mode, each size in
its own table folder. Per stage: seconds, and the growth exponent b of seconds ~ users^b fitted by least squares on
log-log over all sizes. Driver memory: the peak resident memory of the Python driver process (where any collect()
lands) and the peak of the JVM's old generation, both reset before each size; in local mode the JVM also runs the
executors' tasks, so its figure is an upper bound of the driver's. A chart of seconds per stage vs users goes to
`bench/results/`.
Run: `make bench-scale` (prints the `bench-scale ...` line last; `--sizes 200,1000,6000` are the default sizes).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from behaviorlm.config import load_config
from behaviorlm.session import get_spark
from jobs import ingest, params
from jobs.run import STAGES, run_pipeline
from jobs.runtime import setup_logging

RESULTS = Path(__file__).resolve().parent / "results"


def reset_peaks(spark: SparkSession) -> None:
    """Start a new high-water mark: the Python driver's peak RSS (Linux clear_refs 5) and the JVM heap pools'."""
    Path("/proc/self/clear_refs").write_text("5")
    for pool in spark._jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans():
        pool.resetPeakUsage()


def peaks(spark: SparkSession) -> tuple[float, float]:
    """(Python driver peak RSS, JVM old-generation peak) in MB since `reset_peaks`. The old generation is what
    survives collections (data held on the driver); young pools churn with every task."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    rss = int(status["VmHWM"].split()[0]) / 1024
    pools = spark._jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
    old = max((p.getPeakUsage().getUsed() for p in pools if "Old" in str(p.getName())), default=0)
    return rss, old / 2**20


def run_size(spark: SparkSession, users: int, per_user: int, items: int, root: str) -> dict[str, float]:
    """Seconds of ingest and of every stage for one size, and the two memory peaks."""
    cfg = load_config(
        ["conf/local.yaml"],
        [f"tables.root={root}/u{users}", f"run_id=scale-{users}", "ingest.source=synthetic",
         f"ingest.synthetic.users={users}", f"ingest.synthetic.items={items}",
         f"ingest.synthetic.events={users * per_user}", "ingest.synthetic.clusters=12",
         "report.enabled=false", "mlflow.enabled=false", "spark.conf.spark.ui.showConsoleProgress=false"],
    )  # fmt: skip
    reset_peaks(spark)
    start = time.perf_counter()
    ingest.run(spark, cfg)
    seconds = {"ingest": time.perf_counter() - start}
    run_pipeline(spark, cfg, list(STAGES), force=True)
    metrics = params.table(spark, cfg, "run_metrics").where("stage = 'run' and metric like '%.seconds'").collect()
    seconds.update({r["metric"].removesuffix(".seconds"): r["value"] for r in metrics})
    seconds["total"] = time.perf_counter() - start
    seconds["driver_mb"], seconds["jvm_old_mb"] = peaks(spark)
    return seconds


def exponent(users: list[int], seconds: list[float]) -> float:
    """b in seconds ~ users^b, least squares on log-log."""
    return float(np.polyfit(np.log(users), np.log(np.maximum(seconds, 1e-3)), 1)[0])


def chart(sizes: list[int], rows: list[dict[str, float]], stages: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    # tab20: one colour per stage (the default cycle repeats after 10), a dashed line for the second ten.
    for i, stage in enumerate(stages):
        ax.plot(sizes, [r.get(stage, math.nan) for r in rows], marker="o", label=stage, color=plt.cm.tab20(i % 20),
                linestyle="-" if i < 10 else "--")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="users", ylabel="seconds", title="bench-scale: seconds per stage")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="200,1000,6000", help="numbers of users, comma-separated")
    parser.add_argument("--per-user", type=int, default=20, help="behaviours per user")
    parser.add_argument("--items", type=int, default=2000, help="catalogue size (fixed across sizes)")
    args = parser.parse_args()
    setup_logging()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = tempfile.mkdtemp(prefix="bench-scale-")
    cfg = load_config(["conf/local.yaml"], [f"spark.master=local[{os.cpu_count() or 2}]"])
    spark = get_spark(cfg.spark)
    spark.sparkContext.setLogLevel("ERROR")
    rows = []
    for users in sizes:
        rows.append(run_size(spark, users, args.per_user, args.items, root))
        print(f"users={users} " + " ".join(f"{k}={v:.0f}" for k, v in rows[-1].items()), flush=True)
    stages = ["ingest", *(s for s in STAGES if s in rows[-1])]
    growth = {s: exponent(sizes, [r[s] for r in rows]) for s in stages}
    # Fixed costs flatten the fit over all sizes; the exponent between the two largest sizes is the marginal growth.
    top = {s: exponent(sizes[-2:], [r[s] for r in rows[-2:]]) for s in [*stages, "total"]}
    for stage in stages:
        print(f"{stage:>14}: " + " ".join(f"{r[stage]:8.1f}" for r in rows) + f"   b={growth[stage]:.2f} "
              f"b(two largest)={top[stage]:.2f}")  # fmt: skip
    worst = max(growth, key=growth.get)
    RESULTS.mkdir(exist_ok=True)
    chart(sizes, rows, stages, RESULTS / "bench_scale.png")
    print(
        f"bench-scale max_users={sizes[-1]} max_behaviors={sizes[-1] * args.per_user} total_s={rows[-1]['total']:.0f} "
        f"exponent={exponent(sizes, [r['total'] for r in rows]):.2f} worst_stage={worst} "
        f"worst_exponent={growth[worst]:.2f} driver_peak_mb={max(r['driver_mb'] for r in rows):.0f} "
        f"driver_growth={rows[-1]['driver_mb'] / rows[0]['driver_mb']:.2f} "
        f"jvm_old_peak_mb={max(r['jvm_old_mb'] for r in rows):.0f} top_exponent={top['total']:.2f}"
    )


if __name__ == "__main__":
    main()
