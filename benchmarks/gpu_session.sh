#!/usr/bin/env bash
# The one prepared run on a lent GPU machine (issue 14): install deblur without dependencies
# into the machine's own Python (it has torch; nothing can be fetched there), then
# benchmarks/gpu_train.py (CUDA checks, the three training runs, exports) with everything under
# $OUT. The real training planes travel as a pack made here beforehand:
#   python -m training.real_splits ~/.cache/deblur-real .gpu/real.trainpack.npz
#   OUT=/some/folder bash benchmarks/gpu_session.sh --budget 450
set -u
: "${OUT:?set OUT to the folder for weights and logs}"
{
  set -o pipefail
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
  nproc
  if ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || ! command -v deblur-train; then
    echo "pip install failed: running from the source tree"
    mkdir -p /tmp/deblur-bin
    printf '#!/bin/sh\nexec python3 -m core.cli "$@"\n' > /tmp/deblur-bin/deblur
    printf '#!/bin/sh\nexec python3 -m training "$@"\n' > /tmp/deblur-bin/deblur-train
    chmod +x /tmp/deblur-bin/*
    export PATH="/tmp/deblur-bin:$PATH" PYTHONPATH="$PWD"
  fi
  export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
  python3 benchmarks/gpu_train.py --out "$OUT" --pool .gpu/real.trainpack.npz "$@"
} 2>&1 | tee "$OUT/driver.log"
