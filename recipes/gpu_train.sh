#!/usr/bin/env bash
# recipes/gpu_train.sh [--dry-run] MODEL_CONFIG... BUDGET_S
#   e.g. on the H200 machine (the device tool, carrying .whl, .cache/stdlib_code and .cache/meshes):
#   bash recipes/gpu_train.sh dllm_code_small ar_code_small 480
# Installs the carried wheels the device lacks into a temporary folder, then runs recipes/gpu_train.py:
# each model config trains with trainer=gpu for its share of BUDGET_S seconds, exports bf16 weights,
# is evaluated with recipes/eval.py, and gets tokens/s, MFU and the eval's figures in its meta.json.
# Work lands in $WORK (default outputs/gpu): checkpoints/<name>/, runs/, logs/, summary.jsonl. When $OUT
# is set (the device tool sets it), the results are also packed there as gpu_results.tar.NN parts of at
# most 15 MiB (a device call returns at most 8 files of 16 MiB); unpack them here with
#   cat <files_at>/gpu_results.tar.* | tar -x -C outputs/gpu
# Prepared beforehand on a CPU machine (the GPU machine may have no network): the data caches,
#   python -c "from datamodules.stdlib_code import StdlibCodeDataModule as D; D().prepare_data()"  # .cache/stdlib_code
#   python -c "from datamodules.meshes import MeshDataModule as M; M(max_faces=800).setup()"      # .cache/meshes
# and the wheels the machine lacks in .whl/. Pairs sized so their bf16 checkpoints come back together
# (under 64 MiB): dllm_code_small + ar_code_small (480 s), meshcraft_vae_small + meshcraft_small (420 s).
# --dry-run: the same steps on the CPU with each config's tiny dry-run setting and 3 steps (under a
# minute a config; CI runs it), using the Python on PATH instead of the carried wheels.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=()
if [ "${1:-}" = "--dry-run" ]; then DRY=(--dry-run); shift; fi
if [ $# -lt 2 ]; then sed -n 2,18p "$0"; exit 2; fi
case "${@: -1}" in ''|*[!0-9]*) echo "error: BUDGET_S must be a whole number of seconds, got '${@: -1}'" >&2; exit 2;; esac

PY=${PYTHON:-python3}
if [ ${#DRY[@]} = 0 ]; then
  # The device machine has torch and lightning but no package registry: the rest comes as wheels.
  ls .whl/*.whl > /dev/null || { echo "error: no .whl/ wheels (see ../shared/device/README.md)" >&2; exit 2; }
  S=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --target "$S" .whl/*.whl
  export PYTHONPATH="$S:$PWD"
fi
PACK=()
if [ -n "${OUT:-}" ]; then PACK=(--pack-to "$OUT"); fi
exec $PY recipes/gpu_train.py ${DRY[@]+"${DRY[@]}"} --work "${WORK:-outputs/gpu}" ${PACK[@]+"${PACK[@]}"} "$@"
