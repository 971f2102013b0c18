#!/usr/bin/env bash
# SpeechBERT fine-tuned from step-1 checkpoints with word-like codes (issue 11, section 1: what lets BERT read them),
# with the benchmark's fine-tuning settings. Each run's validation/test F1 sits beside its code quality after
# fine-tuning (codes.json). Resumable: rerun after an interruption. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN="--report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42
  --resume_from_checkpoint true --num_train_epochs ${EPOCHS:-2} --learning_rate 1e-4 --disable_tqdm true
  --codes_eval_splits validation test"
COS=outputs/step1/cos_t005_norm1
declare -A MODEL=(
  [cos_soft_frozen]=$COS [cos_direct_frozen]=$COS [cos_direct]=$COS
  [graft_soft_frozen]=outputs/finetune/graft_cos_soft [graft_direct_frozen]=outputs/finetune/graft_cos_direct
)
declare -A ARGS=(
  [cos_soft_frozen]="--config_overrides audio_code_mode=soft_word_embedding --freeze_audio_encoder"
  [cos_direct_frozen]="--freeze_audio_encoder"
  [cos_direct]=""
  [graft_soft_frozen]="--freeze_audio_encoder"
  [graft_direct_frozen]="--freeze_audio_encoder"
)
for name in ${RUNS:-cos_soft_frozen}; do
  out=outputs/finetune/$name
  test -f "$out/metrics.json" && continue
  mkdir -p "results/flite-squad/finetune/$name"
  $PY run_sqa.py --output_dir "$out" --dataset outputs/benchmark/dataset --systems speechbert \
    --model_name_or_path "${MODEL[$name]}" ${ARGS[$name]} --do_train --do_eval $TRAIN \
    2>&1 | tee "results/flite-squad/finetune/$name/train.log"
  cp "$out/metrics.json" "$out/results.md" "$out/speechbert/codes.json" "results/flite-squad/finetune/$name/"
done
