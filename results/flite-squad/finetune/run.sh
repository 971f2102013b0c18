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
  [zeroshot_graft_cos_soft]=outputs/finetune/graft_cos_soft [zeroshot_graft_cos_direct]=outputs/finetune/graft_cos_direct
)
declare -A ARGS=(
  [cos_soft_frozen]="--config_overrides audio_code_mode=soft_word_embedding --freeze_audio_encoder"
  [cos_direct_frozen]="--freeze_audio_encoder"
  [cos_direct]=""
  [graft_soft_frozen]="--freeze_audio_encoder"
  [graft_direct_frozen]="--freeze_audio_encoder"
  [zeroshot_graft_cos_soft]="" [zeroshot_graft_cos_direct]=""
)
# The grafts: the oracle's QA BERT (../oracle/) with the cosine step-1 encoder, read soft or direct.
for mode in soft direct; do
  test -f outputs/finetune/graft_cos_$mode/config.json && continue
  overrides=(); [ $mode = soft ] && overrides=(--config_overrides audio_code_mode=soft_word_embedding)
  $PY -m sqa_train.graft --qa outputs/oracle/asr_first_piece/oracle --encoder $COS \
    --output_dir outputs/finetune/graft_cos_$mode "${overrides[@]}"
done
for name in ${RUNS:-cos_soft_frozen}; do
  out=outputs/finetune/$name
  test -f "$out/metrics.json" && continue
  mkdir -p "results/flite-squad/finetune/$name"
  train=--do_train; [[ $name == zeroshot_* ]] && train=""  # zero-shot: evaluated as grafted
  $PY run_sqa.py --output_dir "$out" --dataset outputs/benchmark/dataset --systems speechbert \
    --model_name_or_path "${MODEL[$name]}" ${ARGS[$name]} $train --do_eval $TRAIN \
    2>&1 | tee "results/flite-squad/finetune/$name/train.log"
  cp "$out/metrics.json" "$out/results.md" "$out/speechbert/codes.json" "results/flite-squad/finetune/$name/"
done
