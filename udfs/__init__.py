"""Executor side of behaviorlm: the encoder core (no Spark import) and the thin pandas-UDF wrappers."""
