#!/usr/bin/env bash
# A node with two GPUs, as Spark's discovery sees it (there are none: tasks must fall back to CPU and say so).
echo '{"name": "gpu", "addresses": ["0", "1"]}'
