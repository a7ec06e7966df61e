#!/usr/bin/env bash
# GPU check (needs a CUDA GPU; the subject build needs ../shared/data), <= 10 minutes:
# 1. the render engine on the shipped subject: CUDA kernels per 512^2 frame and GPU busy
#    fraction, fps at 256/512/1024 for the eager reference, the fused engine and the
#    compiled one (Triton, CUDA graphs), training steps/s with and without the sort-free
#    gather (``facecast bench engine``, docs/ENGINE.md);
# 2. builds the d6 subject on the GPU for a few minutes, renders 512x512 frames, and prints
#    frames/s, held-out PSNR and how far CPU and CUDA renders of the same frame differ.
#   bash scripts/gpu_check.sh                # 3 minutes of training
#   MINUTES=5 bash scripts/gpu_check.sh
#   SKIP_BUILD=1 bash scripts/gpu_check.sh   # the engine rows only (~4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-.venv/bin/python}"
out="${OUT:-build/gpu_check}"
minutes="${MINUTES:-3}"
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else \
'gpu_check: no CUDA GPU visible to torch - run this on a GPU machine')"
timeout 330 "$py" -m backend.cli bench engine --device cuda --compile --frames 6 \
    --train-steps 20 || echo "gpu_check: the engine bench failed or ran past 5.5 minutes"
if [ -n "${SKIP_BUILD:-}" ]; then exit 0; fi
if [ ! -f ../shared/data/clips/d6.mp4 ]; then
    echo "gpu_check: ../shared/data/clips/d6.mp4 not found - skipping the subject build"
    exit 0
fi
rm -rf "$out"
"$py" -m backend.cli subject build ../shared/data/clips/d6.mp4 --name gpu_check \
    --out "$out" --device cuda --minutes "$minutes" \
    --consent-file docs/consent/default-subject.txt
"$py" scripts/gpu_check.py "$out"
