"""The main job: the pipeline's stages in order under one run id, in one Spark session —
embed-items -> embed-users -> similar-users -> segments -> recommend -> predict -> search -> intents -> complete ->
evaluate (ingest is its own job: it is where data enters, usually on its own schedule; search and intents write
nothing when their input tables, `queries` and `messages`, do not exist).

`--stages a,b` runs a subset (in pipeline order). Every stage writes idempotently (MERGE on keys or replaceWhere on
the run id), and a stage that finishes records `<stage>.done` in `run_metrics`; re-running the same `--run-id`
skips stages already done (`--force` re-runs them), so a run that failed half-way resumes at the stage that failed,
and a second run of a finished run changes nothing.
Run: `behaviorlm run --conf conf/local.yaml --run-id 2026-11-28 [--stages recommend,evaluate]`, or on a cluster
`spark-submit --py-files behaviorlm.zip jobs/cli.py run --conf conf/cluster.yaml --run-id {{ ds }}`.
The run ends by writing its HTML report (`jobs/report.py`; kept when no stage ran, off with `report.enabled=false`)
and logging the path.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

from pyspark.sql import SparkSession

from behaviorlm import delta, runs
from behaviorlm.config import Config
from behaviorlm.errors import BehaviorLMError
from behaviorlm.files import check_writable
from behaviorlm.logs import counts_line, setup_logging, timed
from behaviorlm.session import get_spark
from jobs import (
    complete,
    embed_items,
    embed_users,
    evaluate,
    intents,
    predict,
    recommend,
    report,
    search,
    segments,
    similar_users,
    tracking,
)
from jobs.runtime import one_metrics_commit, parse_args, stage_timing, write_metrics

log = logging.getLogger(__name__)
STAGES: dict[str, Callable[[SparkSession, Config], object]] = {
    "embed-items": embed_items.run,
    "embed-users": embed_users.run,
    "similar-users": similar_users.run,
    "segments": segments.run,
    "recommend": recommend.run,
    "predict": predict.run,
    "search": search.run,
    "intents": intents.run,
    "complete": complete.run,
    "evaluate": evaluate.run,
}


def pick_stages(spec: str) -> list[str]:
    """Stage names from a comma list (empty: all), in pipeline order; an unknown name is an error naming it."""
    wanted = [s.strip() for s in spec.split(",") if s.strip()] if spec else list(STAGES)
    if not wanted:  # "," or " , ": a list with nothing in it ran nothing and succeeded
        raise BehaviorLMError(f"--stages {spec!r} names no stage; stages are {', '.join(STAGES)}")
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise BehaviorLMError(f"--stages: unknown stage {unknown[0]!r}; stages are {', '.join(STAGES)}")
    return [s for s in STAGES if s in wanted]


def run_pipeline(spark: SparkSession, cfg: Config, stages: list[str], force: bool = False) -> dict[str, object]:
    """Run `stages` in order, then write the run report; returns each stage's result (None for a stage skipped as
    already done) and the report's path under "report"."""
    done = set() if force else runs.done_stages(spark, delta.table_ref(cfg.tables, "run_metrics"), cfg.run_id)
    results: dict[str, object] = {}
    for stage in stages:
        if stage in done:
            log.info("stage %s already done for run %s; skipped (--force re-runs it)", stage, cfg.run_id)
            results[stage] = None
            continue
        # The stage's metrics and its done marker in one commit: a stage is done exactly when its metrics are there.
        with one_metrics_commit(spark, cfg):
            with timed(log, f"stage {stage} run_id={cfg.run_id}", spark) as note:
                results[stage] = STAGES[stage](spark, cfg)
                note["rows"] = counts_line(results[stage])
            write_metrics(spark, cfg, "run", {f"{stage}.done": 1.0, **stage_timing(stage, note, results[stage])})
    results["report"] = report.build(spark, cfg) if cfg.report.enabled else None
    # Tracked here rather than through `report.build_and_track`: the MLflow run id is part of the result.
    results["mlflow_run"] = tracking.track(spark, cfg, results["report"])
    return results


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stages", default="", help=f"comma list out of: {', '.join(STAGES)} (default: all)")
    parser.add_argument("--force", action="store_true", help="re-run stages this run id already finished")


def main(argv: list[str] | None = None) -> dict[str, object]:
    setup_logging()
    cfg, args = parse_args(argv, "Run the pipeline stages in order under one run id.", _flags)
    stages = pick_stages(args.stages)
    spark = get_spark(cfg.spark)
    delta.check_schemas(spark, cfg.tables)
    if cfg.report.enabled:  # refused now, not after the stages ran
        check_writable(spark, cfg.report.dir, "report.dir")
    with timed(log, f"run {cfg.run_id}: {' -> '.join(stages)}"):
        return run_pipeline(spark, cfg, stages, args.force)


if __name__ == "__main__":
    main()
