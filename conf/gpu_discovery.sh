#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this node as Spark's ResourceInformation JSON,
# e.g. {"name": "gpu", "addresses": ["0", "1"]}. Point spark.worker.resource.gpu.discoveryScript (standalone) or
# spark.executor.resource.gpu.discoveryScript (YARN, Kubernetes) at this file on every node.
set -euo pipefail
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo '{"name": "gpu", "addresses": []}'
  exit 0
fi
addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed 's/ //g; s/.*/"&"/' | paste -sd, -)
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
