"""Small helpers the job tests share: command-line arguments for a test config, and Delta reads/writes by name."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from behaviorlm import delta
from behaviorlm.config import Config


def job_args(cfg: Config, *overrides: str) -> list[str]:
    """argv that points a job's `main` at `cfg`'s tables and run id, plus `key=value` overrides."""
    pairs = [f"tables.root={cfg.tables.root}", *overrides]
    return [a for o in pairs for a in ("--set", o)] + ["--run-id", cfg.run_id]


def write(spark: SparkSession, cfg: Config, name: str, rows: list[tuple], schema) -> DataFrame:
    df = spark.createDataFrame(rows, schema)
    delta.overwrite(df, delta.table_ref(cfg.tables, name))
    return df


def read(spark: SparkSession, cfg: Config, name: str) -> DataFrame:
    return delta.read_table(spark, delta.table_ref(cfg.tables, name))


def _is_float(dtype: str) -> bool:
    return dtype in ("float", "double") or dtype in ("array<float>", "array<double>")


def assert_same_rows(got: DataFrame, expected: DataFrame, tol: float = 1e-5) -> None:
    """The same rows, floats (and float arrays) equal within `tol`: Spark sums floats in whatever order partitions
    arrive, so re-computed aggregates may differ in the last bits while everything else must match exactly."""
    from pyspark.sql import functions as F

    assert got.count() == expected.count()
    types = dict(got.dtypes)
    keys = [c for c in got.columns if not _is_float(types[c])]
    floats = [c for c in got.columns if _is_float(types[c])]
    left = got.select(*keys, *[F.col(c).alias(f"_g_{c}") for c in floats])
    right = expected.select(*[F.col(k).alias(f"_k_{k}") for k in keys], *[F.col(c).alias(f"_e_{c}") for c in floats])
    condition = [left[k].eqNullSafe(right[f"_k_{k}"]) for k in keys] if keys else F.lit(True)
    joined = left.join(right, condition)
    assert joined.count() == got.count(), f"rows differ beyond float noise (keys {keys})"
    for c in floats:
        g, e = F.col(f"_g_{c}"), F.col(f"_e_{c}")
        if types[c].startswith("array"):
            diff = F.array_max(F.zip_with(g, e, lambda a, b: F.abs(a - b)))
        else:
            diff = F.abs(g - e)
        worst = joined.agg(F.max(diff)).first()[0]
        assert worst is None or worst <= tol, f"column {c}: max difference {worst} > {tol}"


def package_bundle(folder) -> tuple[str, str]:
    """(zip of the behaviorlm, jobs and udfs packages, a driver file) as a cluster user ships them to spark-submit."""
    import shutil
    import zipfile
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    bundle = Path(folder) / "behaviorlm.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        for package in ("behaviorlm", "jobs", "udfs"):
            for path in (repo / package).rglob("*.py"):
                zf.write(path, path.relative_to(repo))
    driver = Path(folder) / "driver"
    driver.mkdir(exist_ok=True)
    # Outside the packages, so the zip (not this checkout) is what the executors import.
    shutil.copy(repo / "jobs" / "cli.py", driver / "behaviorlm_main.py")
    return str(bundle), str(driver / "behaviorlm_main.py")
