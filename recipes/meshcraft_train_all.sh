#!/usr/bin/env bash
# The three meshcraft checkpoints in order: the mesh VAE, the flow DiT on its latents, then the AR
# baseline on the same meshes with the DiT's batch size, step count and time limit.
#
#   bash recipes/meshcraft_train_all.sh [out_dir] [hydra overrides for all three...]
#   VAE_TIME=00:00:05:00 FLOW_TIME=00:00:05:00 bash recipes/meshcraft_train_all.sh /tmp/ck trainer.precision=bf16-mixed  # on a GPU
#
# The YAML budgets are CPU budgets (steps and a max_time, whichever ends first). VAE_STEPS / FLOW_STEPS (DiT and AR) and VAE_TIME / FLOW_TIME ("DD:HH:MM:SS", Lightning's max_time)
# override the YAML budgets; a run stopped by its time limit exports what it has (meta.json records
# the steps it reached).
set -euo pipefail
out=${1:-checkpoints}
shift || true
py=${PYTHON:-python}
vae_args=(); flow_args=()
[[ -n "${VAE_STEPS:-}" ]] && vae_args+=("trainer.max_steps=$VAE_STEPS")
[[ -n "${VAE_TIME:-}" ]] && vae_args+=("trainer.max_time=\"$VAE_TIME\"")
[[ -n "${FLOW_STEPS:-}" ]] && flow_args+=("trainer.max_steps=$FLOW_STEPS")
[[ -n "${FLOW_TIME:-}" ]] && flow_args+=("trainer.max_time=\"$FLOW_TIME\"")
$py recipes/train.py model=meshcraft_vae export_dir="$out/meshcraft_vae-tiny" rich_progress=false ${vae_args[@]+"${vae_args[@]}"} "$@"
$py recipes/train.py model=meshcraft data.vae="$out/meshcraft_vae-tiny" export_dir="$out/meshcraft-tiny" \
    rich_progress=false ${flow_args[@]+"${flow_args[@]}"} "$@"
$py recipes/train.py model=meshgpt_ar export_dir="$out/meshgpt_ar-tiny" rich_progress=false \
    ${flow_args[@]+"${flow_args[@]}"} "$@"
