#!/usr/bin/env bash
# GPU check (needs a CUDA GPU and ../shared/data): builds the d6 subject on the GPU for a
# few minutes, renders 512x512 frames, and prints frames/s, held-out PSNR and how far
# CPU and CUDA renders of the same frame differ.
#   bash scripts/gpu_check.sh                # 5 minutes of training
#   MINUTES=10 bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-.venv/bin/python}"
out="${OUT:-build/gpu_check}"
minutes="${MINUTES:-5}"
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else \
'gpu_check: no CUDA GPU visible to torch - run this on a GPU machine')"
rm -rf "$out"
"$py" -m backend.cli subject build ../shared/data/clips/d6.mp4 --name gpu_check \
    --out "$out" --device cuda --minutes "$minutes" \
    --consent-file docs/consent/default-subject.txt
"$py" scripts/gpu_check.py "$out"
