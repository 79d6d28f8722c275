#!/usr/bin/env bash
# One entry point for a fresh machine: ./dev.sh demo | ./dev.sh test [pytest args...]
# Creates .venv on first use, installs torch explicitly first (a bare `torch`
# requirement would pull several GB of CUDA wheels on a machine without torch),
# then the package with its test, hf and ray extras (the test extra brings the shard and S3 libraries).  `test` runs ruff, mypy, lint-imports, then pytest.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VADFEAT_VENV:-.venv}
TORCH_SPEC=${VADFEAT_TORCH:-torch==2.13.0}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check "$TORCH_SPEC"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test,hf,ray]"
}

cmd=${1:-}
shift || true
case "$cmd" in
  setup) setup ;;
  demo) setup; exec "$VENV/bin/vadfeat" demo "$@" ;;
  test)
    setup
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy"  # [tool.mypy] in pyproject.toml: src/vadfeat
    "$VENV/bin/lint-imports"  # [tool.importlinter] in pyproject.toml: the package layers
    # Without a -m of the caller's, the tests marked slow (the fault-corpus stress run, the
    # Ray chaos kills, the longest end-to-end paths: `-m slow` runs them) and gpu stay out.
    has_m=0
    for a in "$@"; do [ "$a" = "-m" ] && has_m=1; done
    if [ "$has_m" = 0 ]; then set -- -m "not slow and not gpu" "$@"; fi
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./dev.sh demo [vadfeat demo args] | ./dev.sh test [pytest args] | ./dev.sh setup" >&2; exit 2 ;;
esac
