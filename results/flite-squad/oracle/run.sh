#!/usr/bin/env bash
# The oracle-codes checks (issue 11, section 1): SpeechBERT's QA path fed BERT's word embeddings at the segments,
# with the benchmark's fine-tuning settings. Resumable: rerun after an interruption. Run from the repository root.
# RUNS: SEGMENTS:MODE[:START] (segments asr or ref, --oracle_codes MODE); START 'cascade' starts from the cascade's
# fine-tuned text QA BERT (../finetune/cascade/, outputs/cascade/cascade) instead of MiniLM, for EPOCHS (default 2).
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN="--report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42
  --resume_from_checkpoint true --num_train_epochs ${EPOCHS:-2} --learning_rate 1e-4 --disable_tqdm true"
for run in ${RUNS:-asr:first_piece ref:first_piece asr:mean_pieces}; do
  IFS=: read -r segments mode from <<< "$run"
  out=outputs/oracle/${segments}_${mode}${from:+_from_$from}
  test -f "$out/metrics.json" && continue
  start=()
  if [ "$from" = cascade ]; then
    # The cascade is trained first if it is not there (or resumed); the same model run_ensemble.sh uses.
    DATASET="${DATASET:-data/flite-squad}" PY="$PY" bash "$(dirname "$0")/../finetune/run_cascade.sh"
    start=(--model_name_or_path outputs/cascade/cascade)
  elif [ -n "$from" ]; then echo "unknown start '$from' in RUNS entry '$run' (expected cascade)" >&2; exit 2; fi
  mkdir -p "results/flite-squad/oracle/$(basename "$out")"
  $PY run_sqa.py --output_dir "$out" --dataset "${DATASET:-data/flite-squad}" --systems oracle --oracle_codes "$mode" \
    --oracle_segments "$segments" "${start[@]}" --do_train --do_eval $TRAIN \
    2>&1 | tee -a "results/flite-squad/oracle/$(basename "$out")/train.log"
  cp "$out/metrics.json" "$out/results.md" "results/flite-squad/oracle/$(basename "$out")/"
done
