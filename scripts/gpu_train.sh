#!/usr/bin/env bash
# Train the assignment's Net (examples/s9_net.py) on the real CIFAR-10 copy with the default
# recipe on the fast path (data and augmentation on the GPU, bf16, channels_last), time both
# augmentation paths, and write one result JSON. Run from anywhere on a machine with a GPU:
#
#   cp /path/to/cifar10-jpeg.tar.xz data/      # data/ is git-ignored
#   bash scripts/gpu_train.sh                  # or: EPOCHS=30 RUN_DIR=runs/x bash scripts/gpu_train.sh
#
# On a machine whose Python lacks the project's dependencies (this workplace's GPU image has
# torch but not albumentations, torchinfo or graphviz), fetch wheels first where PyPI is
# reachable (`bash scripts/gpu_wheels.sh`), carry .whl/ and the archive, and start with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   export PYTHONPATH=/tmp/site:$PWD && bash scripts/gpu_train.sh
#
# Re-running continues an interrupted run (--resume from RUN_DIR/last.pt), so a job cut off by a
# time limit can simply be started again. Extra arguments go to `python -m training`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
ARCHIVE=${ARCHIVE:-data/cifar10-jpeg.tar.xz}
DATA=${DATA:-data/cifar10-jpeg}
CACHE=${CACHE:-data/cifar10-jpeg.npz}
RUN_DIR=${RUN_DIR:-runs/gpu-s9}   # not $OUT: batch systems set that for their own use
EPOCHS=${EPOCHS:-100}
MODEL=${MODEL:-examples/s9_net.py}

fail() { echo "gpu_train.sh: $*" >&2; exit 2; }
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "no CUDA GPU visible to $PY (torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo missing))"
if [ ! -d "$DATA/train" ]; then
    [ -f "$ARCHIVE" ] || fail "$ARCHIVE is missing: copy cifar10-jpeg.tar.xz there (data/ is git-ignored)"
    mkdir -p "$DATA"
    tar xJf "$ARCHIVE" -C "$DATA"
fi

# rftrain makes the run folder (it refuses to start a new run in a non-empty one).
RESUME=()
[ -f "$RUN_DIR/last.pt" ] && RESUME=(--resume)
"$PY" -m training --model "$MODEL" --data-dir "$DATA" --data-cache "$CACHE" --device cuda \
    --epochs "$EPOCHS" --out "$RUN_DIR" --no-progress "${RESUME[@]}" "$@"

# Throughput of both paths (under a minute), once per run folder.
BENCH="$RUN_DIR/throughput.json"
[ -f "$BENCH" ] || "$PY" benchmarks/train_throughput.py --device cuda --data-dir "$DATA" \
    --data-cache "$CACHE" --batch-size 128 512 --batches 40 --json "$BENCH"

"$PY" scripts/gpu_result.py "$RUN_DIR"
