#!/usr/bin/env bash
# Run every benchmark one after another (never two at once: they time each other)
# and keep each one's printout in DIR (default bench-results/).  BENCHMARKS.md
# quotes these printouts.   Usage: bench/run_all.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
dir=${1:-bench-results}
mkdir -p "$dir"
for b in pipeline_efficiency legacy_route growth variants compression crop_cost gil_scaling resume_long peak_memory; do
    echo "== $b" >&2
    "$py" "bench/$b.py" 2>&1 | tee "$dir/$b.txt"
done
