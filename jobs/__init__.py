"""Driver side of behaviorlm: one thin module per pipeline stage (read inputs, call the library, write outputs)
plus the command line, the main `run` job and the config-to-library wiring they share."""
