#!/usr/bin/env bash
# Set up deblur in ./.venv (idempotent): Python packages, torch from the pinned range, the app.
# Usage: ./setup.sh            the application
#        ./setup.sh --test     the application and the test tools
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

# torch first and pinned: a newer release would pull several GB of CUDA libraries.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install --quiet -e ".${extras}"
echo "deblur is installed in $(pwd)/.venv"
