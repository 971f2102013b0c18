#!/usr/bin/env bash
# The oracle-codes checks (issue 11, section 1): SpeechBERT's QA path fed BERT's word embeddings at the segments,
# with the benchmark's fine-tuning settings. Resumable: rerun after an interruption. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN="--report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42
  --resume_from_checkpoint true --num_train_epochs 2 --learning_rate 1e-4 --disable_tqdm true"
for run in ${RUNS:-asr:first_piece ref:first_piece asr:mean_pieces}; do
  segments=${run%%:*} mode=${run##*:}
  out=outputs/oracle/${segments}_${mode}
  test -f "$out/metrics.json" && continue
  $PY run_sqa.py --output_dir "$out" --dataset data/flite-squad --systems oracle --oracle_codes "$mode" \
    --oracle_segments "$segments" --do_train --do_eval $TRAIN
  mkdir -p "results/flite-squad/oracle/${segments}_${mode}"
  cp "$out/metrics.json" "$out/results.md" "results/flite-squad/oracle/${segments}_${mode}/"
done
