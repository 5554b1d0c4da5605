"""The `behaviorlm` command: one subcommand per job, each taking `--conf FILE` and `--set key=value`.

Run: `behaviorlm <command> --conf conf/local.yaml`, or on a cluster
`spark-submit --py-files behaviorlm.zip jobs/cli.py <command> --conf conf/cluster.yaml`.
"""

from __future__ import annotations

import importlib
import sys

from behaviorlm.errors import BehaviorLMError

# Subcommand -> module with `main(argv)`; modules load lazily so `behaviorlm setup` needs no Spark session.
COMMANDS = {
    "setup": ("jobs.setup", "cache Delta jars, MovieLens-100K and the default model for offline runs"),
    "ingest": ("jobs.ingest", "validate raw behaviours/items into Delta tables (+ rejected rows)"),
    "embed-items": ("jobs.embed_items", "encode item texts into item_embeddings (only new/changed texts)"),
    "embed-users": ("jobs.embed_users", "user vectors (pooled item vectors or encoded history) into user_embeddings"),
    "similar-users": ("jobs.similar_users", "top-K similar users (approximate, distributed) into user_neighbors"),
    "segments": ("jobs.segments", "interest segments with labels, each user's interests, trends and surge alerts"),
    "recommend": ("jobs.recommend", "top-K unseen items per user (neighbours + content + popularity) with reasons"),
    "predict": ("jobs.predict", "each user's next behaviours: transitions + recent interest + segments, with reasons"),
    "search": ("jobs.search", "free-text queries to items (personal when a user is given) and to audiences"),
    "intents": ("jobs.intents", "messages to intents and answers, with an out-of-scope fallback (MLlib on embeddings)"),
    "complete": ("jobs.complete", "fill missing ratings, item attributes and behaviour text (separate tables)"),
    "evaluate": ("jobs.evaluate", "offline backtest: split, rebuild, recommend, metrics vs baselines into run_metrics"),
    "run": ("jobs.run", "the pipeline stages in order under one run id (--stages to pick, resumes a failed run)"),
    "report": ("jobs.report", "write the HTML report of a run (metrics, charts, rejects)"),
    "tables": ("jobs.tables", "list the configured Delta tables with their row counts"),
}


def usage() -> str:
    lines = ["usage: behaviorlm <command> [--conf FILE]... [--set KEY=VALUE]...", "", "commands:"]
    lines += [f"  {name:<14}{help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"behaviorlm: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    try:
        module.main(rest)
    except BehaviorLMError as exc:
        print(f"behaviorlm {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
