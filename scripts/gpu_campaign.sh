#!/usr/bin/env bash
# Issue 26's GPU campaign, one command within 8 min 45 s of GPU time (scripts/gpu_campaign.py
# says what it runs): the benchmark breakdown and k runs at once, the assignment's recipe over
# 4 seeds and the previous recipe over 2 seeds (100 epochs, all on the one GPU at once), and
# the best assignment run's weights, into book/results/gpu-campaign-<device>/.
#
#   cp /path/to/cifar10-jpeg.tar.xz data/       # data/ is git-ignored; or DATA=a/cifar/folder
#   bash scripts/gpu_campaign.sh                # extra arguments go to gpu_campaign.py
#   bash scripts/gpu_campaign.sh --smoke        # the same on the CPU, tiny (a test runs it)
#
# The GPU machine's Python has torch but not albumentations, torchinfo or graphviz: wheels
# fetched here with `bash scripts/gpu_wheels.sh` into .whl/ (carry it) are installed first.
# Started again, the campaign resumes unfinished runs (they stop at the deadline).
set -euo pipefail
STARTED=$(date +%s)
cd "$(dirname "$0")/.."

PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
ARCHIVE=${ARCHIVE:-data/cifar10-jpeg.tar.xz}
DATA=${DATA:-data/cifar10-jpeg}
CACHE=${CACHE:-$DATA.npz}

fail() { echo "gpu_campaign.sh: $*" >&2; exit 2; }
if [ -d .whl ] && ! "$PY" -c "import albumentations" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}   # rfsweep's runs import training from here
if [ ! -d "$DATA" ]; then
    [ -f "$ARCHIVE" ] || fail "$ARCHIVE is missing: copy cifar10-jpeg.tar.xz there (data/ is git-ignored) or set DATA"
    mkdir -p "$DATA.part"
    tar xJf "$ARCHIVE" -C "$DATA.part"
    mv "$DATA.part" "$DATA"
fi
CACHE_ARGS=()
[ -d "$DATA/train" ] && CACHE_ARGS=(--data-cache "$CACHE")   # JPEG folders: decode once
exec "$PY" scripts/gpu_campaign.py --data-dir "$DATA" "${CACHE_ARGS[@]}" --started-at "$STARTED" "$@"
