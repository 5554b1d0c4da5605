"""Driver side of behaviorlm: one module per pipeline stage plus the shared session, config and Delta I/O."""
