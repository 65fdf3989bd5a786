#!/usr/bin/env bash
# The Table 3 / Table 4 ablations on ActorWorld, as the paper runs them: reference-LoRA fine-tunes of ONE frozen
# text-to-video base (models/actorworld-base), each configs/actorworld-tiny.yaml with one setting changed (same
# seed, data order, noise and budget). Each is exported (base + EMA LoRA) and judged by default_model_eval.py
# (probe body consistency of generated clips, references only) and reference_use.py (identity gain).
# Resumable: a finished run is not retrained, a stopped one continues from its newest checkpoint.
#
#   bash benchmarks/run_ablations.sh [BUDGET_STEPS] [ACTORS]   # defaults 1500 (the shipped run) and 48
#   VARIANTS="full shared" THREADS=1 bash benchmarks/run_ablations.sh   # a subset (two 1-thread shells side by side)
# Besides the four ablations, the variant "all" is the "training more" comparison: the same run training every
# transformer weight (not only the reference LoRA) at the rate the base was trained with (5e-4); it is not in the tables.
# Needs data/actorworld-described with its person manifests (README: "The default model"). Writes
# benchmarks/results/ablation_v2_B_NAME.json, reference_use_ablation_v2_B_NAME.json and the four tables
# ablations_v2_B_table{3,4}_{body,reference_use}.json (their markdown is printed).
#
# The learning rate is constant after warm-up until the decay of the last 500 of 1,500 steps, so a budget up to
# 1,000 steps is the same computation as the first steps of the shipped run. A budget above 1,500 moves the decay
# to its own last 500 steps (schedule.max_steps = BUDGET, as `--resume --set schedule.max_steps=N` trains the
# main run further). At a budget the main run has a checkpoint of, the "main" variant IS that run
# (runs/actorworld-tiny), which is reused.
set -euo pipefail
B=${1:-1500}
ACTORS=${2:-48}
CKPT=$(printf 'step-%08d' "$B")
THREADS=${THREADS:-2}
# Sampling settings of the judged generations: the exported model's (v1's text 2.0 / reference 3.0) unless set, e.g.
# REF_GUIDANCE=8 (tuned for the LoRA at 6,000 steps; README "v2 with more LoRA steps"). Result files are named by
# budget and variant only: to judge one budget at two settings, move the first JSONs aside.
GUIDANCE_ARGS=()
[ -n "${REF_GUIDANCE:-}" ] && GUIDANCE_ARGS=(--reference-guidance-scale "$REF_GUIDANCE")
export OMP_NUM_THREADS=$THREADS
declare -A SETS=(
  [main]=""
  [full]="--set model.overrides.attention_mode=full"
  [shared]="--set model.overrides.rope_mode=shared"
  [random]="--set sampler.kind=random"
  [selfcrop]="--set sampler.kind=self_crop_only"
  [all]="--set optimizer.trainable=all --set optimizer.lr=5e-4"
)
VARIANTS=${VARIANTS:-main full shared random selfcrop}
# Where a variant's two judgements are written. At the full budget "main" is the shipped v2 run, already judged on
# the same actors, prompts and seeds by the Table 2 analogue (its "wildactor" column: each condition is sampled
# with seed = actor number, whatever the other conditions) and by reference_use.py with the same arguments.
body_json() {
  if [ "$1" = main ] && [ "$B" = 1500 ] && [ -f benchmarks/results/default_model_v2_actorworld.json ]; then
    echo benchmarks/results/default_model_v2_actorworld.json
  else
    echo "benchmarks/results/ablation_v2_${B}_$1.json"
  fi
}
gain_json() {
  if [ "$1" = main ] && [ "$B" = 1500 ] && [ -f benchmarks/results/reference_use_v2.json ]; then
    echo benchmarks/results/reference_use_v2.json
  else
    echo "benchmarks/results/reference_use_ablation_v2_${B}_$1.json"
  fi
}
for name in $VARIANTS; do
  body=$(body_json "$name")
  gain=$(gain_json "$name")
  [ -f "$body" ] && [ -f "$gain" ] && continue  # judged already
  run=runs/ablation-v2-$B-$name
  [ "$name" = main ] && [ -d "runs/actorworld-tiny/checkpoints/$CKPT" ] && run=runs/actorworld-tiny
  export_dir=runs/exports/ablation-v2-$B-$name
  if [ ! -d "$run/checkpoints/$CKPT" ]; then
    resume=""
    [ -d "$run/checkpoints" ] && [ -n "$(ls -A "$run/checkpoints")" ] && resume="--resume"
    # shellcheck disable=SC2086
    budget="--max-steps $B"
    [ "$B" -gt 1500 ] && budget="--set schedule.max_steps=$B"  # past the config's schedule: stretch it, not stop at 0
    wildactor train --config configs/actorworld-tiny.yaml $budget --output-dir "$run" $resume ${SETS[$name]}
  fi
  # exported like the shipped model: its text length, example actor and sampling settings
  python -c "import json; from wildactor.default_model import DEFAULT_MODEL_DIR as d, export_default_model as e; \
e('$run/checkpoints/$CKPT', '$export_dir', json.loads((d / 'model_index.json').read_text())['max_sequence_length'], \
300123, json.loads((d / 'generate_defaults.json').read_text()))"
  [ -f "$body" ] || python benchmarks/default_model_eval.py --model "$export_dir" --actors "$ACTORS" \
    --conditions wildactor --threads "$THREADS" "${GUIDANCE_ARGS[@]}" --out "$body"
  [ -f "$gain" ] || python benchmarks/reference_use.py --model "$export_dir" --data data/actorworld-described \
    --manifest manifest_heldout_person.jsonl --clips 160 --frame-stride 2 --threads "$THREADS" --out "$gain"
done

# One table from the generation scores and one from the identity gains, for the same variants (the first is the
# one the others are compared with): tables NAME "LABEL=VARIANT" ...
tables() {
  local table=$1 body=() gain=()
  shift
  for pair in "$@"; do
    [ -f "$(gain_json "${pair#*=}")" ] || return 0  # a variant not judged yet
    body+=("${pair%%=*}=$(body_json "${pair#*=}")")
    gain+=("${pair%%=*}=$(gain_json "${pair#*=}")")
  done
  python benchmarks/ablations.py --table "v2_${B}_${table}_body" "${body[@]}" \
    --out "benchmarks/results/ablations_v2_${B}_${table}_body.json"
  python benchmarks/ablations.py --table "v2_${B}_${table}_reference_use" "${gain[@]}" \
    --out "benchmarks/results/ablations_v2_${B}_${table}_reference_use.json"
}
tables table4 "AIPA + I-RoPE=main" "full attention=full" "AIPA, shared RoPE=shared"
tables table3 "viewpoint-adaptive=main" "random=random" "self-crop only=selfcrop"
