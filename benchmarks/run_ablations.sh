#!/usr/bin/env bash
# The Table 3 / Table 4 ablations on ActorWorld: five runs of configs/actorworld-tiny.yaml that differ in one
# setting each (same seed, data order, noise and budget), each exported with its EMA weights and judged by
# default_model_eval.py (probe body consistency of generated clips) and reference_use.py (identity gain).
# Resumable: a finished run is not retrained, a stopped one continues from its newest checkpoint.
#
#   bash benchmarks/run_ablations.sh [BUDGET_STEPS]      # default 750; needs data/actorworld (README)
# Writes benchmarks/results/ablation_B_NAME.json, reference_use_ablation_B_NAME.json and the four tables
# ablations_B_table{3,4}_{body,reference_use}.json (their markdown is printed). 750 steps: about 70 min on 2 cores.
#
# The learning rate is constant after warm-up until the decay of the last 2,000 of 7,500 steps, so a budget up to
# 5,500 steps is the same computation as the first steps of the shipped model's run.
set -euo pipefail
B=${1:-750}
CKPT=$(printf 'step-%08d' "$B")
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
declare -A SETS=(
  [main]=""
  [full]="--set model.overrides.attention_mode=full --set data.cache_dir=data/actorworld/latent-cache-full"
  [shared]="--set model.overrides.rope_mode=shared --set data.cache_dir=data/actorworld/latent-cache-shared"
  [random]="--set sampler.kind=random"
  [selfcrop]="--set sampler.kind=self_crop_only"
)
for name in main full shared random selfcrop; do
  run=runs/ablation-$B-$name
  export_dir=runs/exports/ablation-$B-$name
  if [ ! -d "$run/checkpoints/$CKPT" ]; then
    resume=""
    [ -d "$run/checkpoints" ] && [ -n "$(ls -A "$run/checkpoints")" ] && resume="--resume"
    # shellcheck disable=SC2086
    wildactor train --config configs/actorworld-tiny.yaml --max-steps "$B" --output-dir "$run" $resume ${SETS[$name]}
  fi
  # exported like the shipped model: its text length, example actor and sampling settings
  python -c "import json; from wildactor.default_model import DEFAULT_MODEL_DIR as d, export_default_model as e; \
e('$run/checkpoints/$CKPT', '$export_dir', json.loads((d / 'model_index.json').read_text())['max_sequence_length'], \
300123, json.loads((d / 'generate_defaults.json').read_text()))"
  python benchmarks/default_model_eval.py --model "$export_dir" --actors 16 --threads "$THREADS" \
    --out "benchmarks/results/ablation_${B}_${name}.json"
  python benchmarks/reference_use.py --model "$export_dir" --clips 160 --frame-stride 2 --threads "$THREADS" \
    --out "benchmarks/results/reference_use_ablation_${B}_${name}.json"
done

# One table from the generation scores and one from the identity gains, for the same variants (the first is the
# one the others are compared with): tables NAME "LABEL=VARIANT" ...
tables() {
  local table=$1 body=() gain=()
  shift
  for pair in "$@"; do
    body+=("${pair%%=*}=benchmarks/results/ablation_${B}_${pair#*=}.json")
    gain+=("${pair%%=*}=benchmarks/results/reference_use_ablation_${B}_${pair#*=}.json")
  done
  python benchmarks/ablations.py --table "${B}_${table}_body" "${body[@]}" \
    --out "benchmarks/results/ablations_${B}_${table}_body.json"
  python benchmarks/ablations.py --table "${B}_${table}_reference_use" "${gain[@]}" \
    --out "benchmarks/results/ablations_${B}_${table}_reference_use.json"
}
tables table4 "AIPA + I-RoPE=main" "full attention=full" "AIPA, shared RoPE=shared"
tables table3 "viewpoint-adaptive=main" "random=random" "self-crop only=selfcrop"
