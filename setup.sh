#!/usr/bin/env bash
# Set up deblur in ./.venv (idempotent): Python packages, torch from the pinned range, the app.
# Usage: ./setup.sh                 the application
#        ./setup.sh --test          and the test tools
#        ./setup.sh --bioimageio    and `deblur export-bioimageio` / `bioimageio test`
#        ./setup.sh --napari        and the napari plugin
# (flags combine: ./setup.sh --test --bioimageio --napari, as CI does)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
extras=()
for arg in "$@"; do
    case "$arg" in
        --test) extras+=(test) ;;
        --bioimageio) extras+=(bioimageio) ;;
        --napari) extras+=(napari) ;;
        *) echo "setup.sh: unknown option $arg (use --test, --bioimageio, --napari)" >&2; exit 2 ;;
    esac
done
spec="."
if [ ${#extras[@]} -gt 0 ]; then
    spec=".[$(IFS=,; echo "${extras[*]}")]"
fi

# torch first and pinned: a newer release would pull several GB of CUDA libraries.
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install --quiet -e "${spec}"
echo "deblur is installed in $(pwd)/.venv"
