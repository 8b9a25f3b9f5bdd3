#!/usr/bin/env bash
# Fetches, here (with PyPI), the wheels that the GPU machine's image lacks, into .whl/ for
# the device tool to carry: its Python 3.12 has torch, torchvision, sympy, matplotlib, numpy
# tqdm, opencv and pyyaml, but not albumentations (and its needs), torchinfo or graphviz.
#
#   bash scripts/gpu_wheels.sh        # here; then, there, first in the command:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#       && export PYTHONPATH=/tmp/site:$PWD
set -euo pipefail
cd "$(dirname "$0")/.."
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]}" -d .whl \
    albumentations==2.0.8 albucore==0.0.24 stringzilla==5.3.2 simsimd==6.5.16 \
    pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.7.0 typing-inspection==0.4.5 \
    torchinfo==1.8.0 graphviz==0.21
ls .whl
