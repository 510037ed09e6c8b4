#!/usr/bin/env bash
# Create $VENV and install TrajVLM with every extra, handling this project's install traps:
#  - torch 2.13.0 is installed first and pinned (constraints.txt) so no other package swaps it for a CUDA build;
#  - lmms-eval pulls a torchvision wheel that does not match CPU torch ("operator torchvision::nms does not
#    exist") and breaks every transformers model import; it is removed when it cannot import.
#    TrajVLM does not use torchvision. On a GPU machine with a matching torchvision it stays.
#  - sentencepiece is kept below 0.2.3 (protobuf 6 from lmms-eval's wandb breaks 0.2.3's converter).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
cd "$(dirname "$0")/.."
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install --quiet --upgrade pip
$PIP install --quiet "torch==2.13.0"
$PIP install --quiet -c constraints.txt -e ".[all]"
if ! "$VENV/bin/python" -c "import torchvision" >/dev/null 2>&1; then
    if "$VENV/bin/python" -m pip show torchvision >/dev/null 2>&1; then
        echo "install.sh: removing torchvision that does not match this torch build"
        $PIP uninstall --quiet -y torchvision
    fi
fi
"$VENV/bin/python" - <<'PY'
import torch, transformers
print(f"install.sh: torch {torch.__version__}, transformers {transformers.__version__}")
PY
