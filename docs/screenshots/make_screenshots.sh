#!/usr/bin/env bash
# Regenerate the README screenshots from the shipped sample, in a real window under Xvfb.
# Needs: xvfb xauth (plus the Qt xcb libraries listed in docs/screenshots/README.md).
# Usage: docs/screenshots/make_screenshots.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
S=resources/samples
OUT=docs/screenshots
RUN=(xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/deblur-gui --size 1400x860)

"${RUN[@]}" "$S/nuclei_blurred.tif" --roi "$S/nuclei_blurred.roi.json" \
    --screenshot "$OUT/main_window.png" --quit
"${RUN[@]}" "$S/nuclei_blurred.tif" --roi "$S/nuclei_blurred.roi.json" \
    --model comi --run \
    --screenshot "$OUT/compare.png" --quit

# 256-colour palettes keep each picture small enough for the README (< 400 KB)
.venv/bin/python - "$OUT/main_window.png" "$OUT/compare.png" <<'PY'
import sys
from PIL import Image
for path in sys.argv[1:]:
    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                             dither=Image.Dither.NONE).save(path, optimize=True)
    print(path)
PY
ls -l "$OUT"/*.png
