#!/usr/bin/env bash
# GPU check (issue 15): parity, model-only speed, end-to-end speed on one CUDA GPU.
# Under 8 minutes on one H100/H200 (hard limit 480 s). Usage, from the repository root:
#   bash bench/gpu_check.sh [extra gpu_check.py options]     # e.g. --seconds 20
# PYTHON=... picks the interpreter (default: .venv/bin/python if present, else python3).
# Output: stdout, and a copy in ${VADFEAT_BENCH_DIR:-/tmp/vadfeat-bench}/gpu_check.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then py="$root/.venv/bin/python"; else py="python3"; fi
fi
if ! PYTHONPATH="$root/src" "$py" -c "import torch, av, vadfeat" 2>/dev/null; then
  echo "gpu_check: $py cannot import torch, av and vadfeat; install the project (./dev.sh or" \
       "pip install -e .) or set PYTHON=/path/to/python" >&2
  exit 2
fi
work="${VADFEAT_BENCH_DIR:-/tmp/vadfeat-bench}"
mkdir -p "$work"
cd "$root/bench"
PYTHONPATH="$root/src:$root/bench${PYTHONPATH:+:$PYTHONPATH}" timeout 480 "$py" gpu_check.py --work "$work" "$@" \
  | tee "$work/gpu_check.txt"
echo
PYTHONPATH="$root/src:$root/bench" "$py" gpu_check.py --table | tee -a "$work/gpu_check.txt"
