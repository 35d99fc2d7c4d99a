#!/usr/bin/env bash
# recipes/gpu_train.sh [--dry-run] MODEL_CONFIG... BUDGET_S
#   e.g. on the H200 machine (the device tool, with .whl and .cache/stdlib_code carried):
#   bash recipes/gpu_train.sh dllm_code_small ar_code_small 480
# Trains each model config (recipes/configs/model/<name>.yaml) with trainer=gpu, its share of BUDGET_S
# seconds as Lightning's max_time, exports a bf16 checkpoint, evaluates it with recipes/eval.py on the
# GPU, and adds throughput / MFU / eval figures to its meta.json (recipes/gpu_report.py). Everything
# lands under $OUT (default outputs/gpu): checkpoints/<name>/, runs/, logs/, summary.jsonl.
# The checkpoint's name is the config's with its last underscore as a hyphen (dllm_code_small ->
# dllm_code-small). --dry-run: the same steps on the CPU with a tiny network and 3 steps (under a
# minute; CI runs it), using the Python on PATH instead of the carried wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
if [ $# -lt 2 ]; then sed -n 2,12p "$0"; exit 2; fi
BUDGET=${@: -1}
MODELS=("${@:1:$#-1}")
case "$BUDGET" in ''|*[!0-9]*) echo "error: BUDGET_S must be a whole number of seconds, got '$BUDGET'" >&2; exit 2;; esac
OUT=${OUT:-outputs/gpu}
mkdir -p "$OUT/logs" "$OUT/checkpoints" "$OUT/runs"

PY=${PYTHON:-python3}
if [ $DRY = 0 ]; then
  # The device machine has torch and lightning but no package registry: the rest comes as wheels.
  ls .whl/*.whl > /dev/null || { echo "error: no .whl/ wheels (see ../shared/device/README.md)" >&2; exit 2; }
  S=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --target "$S" .whl/*.whl
  export PYTHONPATH="$S:$PWD"
  TAG=$(basename "$(ls -d .cache/stdlib_code/py*-v4096-val20 | head -1)")  # the corpus prepared here, on the CPU
  DEVICE=cuda
  EXTRA=(trainer=gpu "data.data_tag=$TAG")
else
  DEVICE=cpu
  EXTRA=(trainer=gpu trainer.accelerator=cpu trainer.precision=32-true debug=fast "++model.net.dim=32"
         "++model.net.depth=1" "++model.net.num_heads=2" data.seq_len=64 data.val_windows=2 eval_kwargs=null)
fi
PER_MODEL=$((BUDGET / ${#MODELS[@]}))
MAX_TIME=$(printf "00:%02d:%02d:%02d" $((PER_MODEL / 3600)) $((PER_MODEL % 3600 / 60)) $((PER_MODEL % 60)))

for CONFIG in "${MODELS[@]}"; do
  NAME=$(echo "$CONFIG" | sed 's/\(.*\)_/\1-/')
  CKPT="$OUT/checkpoints/$NAME"
  RUN="$OUT/runs/$CONFIG"
  echo "== $CONFIG -> $CKPT (max_time $MAX_TIME on $DEVICE)"
  $PY recipes/train.py "model=$CONFIG" "${EXTRA[@]}" "trainer.max_time=$MAX_TIME" "export_dir=$CKPT" \
    export_dtype=bf16 export_eval=false rich_progress=false "hydra.run.dir=$RUN" > "$OUT/logs/$CONFIG.train.log" 2>&1 \
    || { tail -20 "$OUT/logs/$CONFIG.train.log"; exit 1; }
  EVAL_ARGS=(task=bpt "device=$DEVICE")
  if [ $DRY = 1 ]; then EVAL_ARGS+=(+kwargs.seq_len=64 +kwargs.max_windows=2 +kwargs.num_samples=1); fi
  $PY recipes/eval.py "model=$CKPT" "${EVAL_ARGS[@]}" > "$OUT/logs/$CONFIG.eval.log" 2>&1 \
    || { tail -20 "$OUT/logs/$CONFIG.eval.log"; exit 1; }
  $PY recipes/gpu_report.py "$CKPT" "$RUN" "$OUT/logs/$CONFIG.eval.log" | tee -a "$OUT/summary.jsonl"
done
