#!/usr/bin/env bash
# Short CPU stand-ins for the book's GPU runs (chapters 7 and 8), run one after the other:
#   (a) the assignment's Net (--preset s9): 5 epochs on all 50,000 / 10,000 images -> runs/s9-cpu-5ep
#   (b) the six one-change variants of chapter 8, exported at the 200,000 budget: 3 epochs on a
#       fixed 10,000-image training subset, all 10,000 test images -> runs/exp-cpu/<name>
# then collects book/results/cpu-experiments.json from the runs' summary.json / history.json.
# A finished run (summary.json says finished) is skipped and an interrupted one continues from
# its last.pt, so the script can simply be started again. Measured on the book's 2-core CPU
# (AMD EPYC): s9 trains at about 80 images/s here, so (a) takes about 55 minutes and each
# variant of (b) 3 to 8. ONLY=a or ONLY=b runs one part. Environment overrides (dry run):
#   EPOCHS_A=1 EPOCHS_B=1 LIMIT="--limit-train 512 --limit-test 512" RUNS=/tmp/x \
#   RESULT=/tmp/x/cpu-experiments.json bash scripts/cpu_experiments.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-.venv/bin}
DATA=${DATA:-data/cifar10-jpeg}
CACHE=${CACHE:-data/cifar10-jpeg.npz}
RUNS=${RUNS:-runs}
RESULT=${RESULT:-book/results/cpu-experiments.json}
EPOCHS_A=${EPOCHS_A:-5}
EPOCHS_B=${EPOCHS_B:-3}
TRAIN_B=${TRAIN_B:-10000}
SEED=${SEED:-1}
BUDGET=200000
LIMIT=${LIMIT:-}            # extra limits for a dry run, e.g. "--limit-train 512 --limit-test 512"
ONLY=${ONLY:-all}           # a, b or all
# The baseline (first variant) again with these seeds: the run-to-run noise at this scale.
REPEAT_SEEDS=${REPEAT_SEEDS:-2}
# The baseline first, the costliest (most MACs) last, so a cut-short run keeps the most.
VARIANTS=${VARIANTS:-"dws-dilated-skip-x2 dws-dilated-noskip-x2 dws-strided-skip-x2 plain-dilated-skip-x2 dws-dilated-skip-x3 dws-none-skip-x2"}

fail() { echo "cpu_experiments.sh: $*" >&2; exit 2; }
[ -d "$DATA/train" ] || fail "$DATA/train is missing: unpack data/cifar10-jpeg.tar.xz into $DATA"

finished() { [ -f "$1/summary.json" ] && grep -q '"finished": true' "$1/summary.json"; }
# Continue an interrupted run; start over (--force) in a folder without a checkpoint.
again() { if [ -f "$1/last.pt" ]; then echo --resume; else echo --force; fi; }

COMMON=(--data-dir "$DATA" --data-cache "$CACHE" --device cpu --fast --seed "$SEED" --no-progress)

if [ "$ONLY" != b ]; then
    out="$RUNS/s9-cpu-5ep"
    if finished "$out"; then echo "skip $out (finished)"; else
        echo "== $(date -u +%T) $out"
        # shellcheck disable=SC2086
        "$BIN/rftrain" --preset s9 --epochs "$EPOCHS_A" --out "$out" "${COMMON[@]}" "$(again "$out")" $LIMIT
    fi
fi

if [ "$ONLY" != a ]; then
    mkdir -p "$RUNS/exp-cpu"
    for name in $VARIANTS; do
        out="$RUNS/exp-cpu/$name"
        if finished "$out"; then echo "skip $out (finished)"; continue; fi
        echo "== $(date -u +%T) $out"
        "$BIN/netbuilder" export "$name" --budget "$BUDGET" -o "$RUNS/exp-cpu/$name.py" --force
        # shellcheck disable=SC2086
        "$BIN/rftrain" --model "$RUNS/exp-cpu/$name.py" --epochs "$EPOCHS_B" \
            --limit-train "$TRAIN_B" --out "$out" "${COMMON[@]}" "$(again "$out")" $LIMIT
    done
    base=${VARIANTS%% *}
    for seed in $REPEAT_SEEDS; do
        out="$RUNS/exp-cpu/$base-seed$seed"
        if finished "$out"; then echo "skip $out (finished)"; continue; fi
        echo "== $(date -u +%T) $out"
        # shellcheck disable=SC2086
        "$BIN/rftrain" --model "$RUNS/exp-cpu/$base.py" --epochs "$EPOCHS_B" \
            --limit-train "$TRAIN_B" --out "$out" "${COMMON[@]}" --seed "$seed" "$(again "$out")" $LIMIT
    done
fi

"$BIN/python" scripts/collect_cpu_results.py --runs "$RUNS" --out "$RESULT" --variants $VARIANTS \
    --repeats $(for seed in $REPEAT_SEEDS; do echo "${VARIANTS%% *}-seed$seed"; done)
