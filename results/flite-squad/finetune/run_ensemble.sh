#!/usr/bin/env bash
# The cascade retrained on the same data as the fine-tunes (cascade/), then SpeechBERT (a finished fine-tune of
# run.sh, SPEECHBERT=..., default graft_v2x256_soft_frozen) and that cascade evaluated together, no training, so
# run_sqa.py chooses the ensemble weight on validation (ensemble_$SPEECHBERT/). DATASET as in run.sh. Resumable: the cascade
# resumes from its checkpoints and is reused once finished. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-outputs/benchmark/dataset}
SPEECHBERT=${SPEECHBERT:-graft_v2x256_soft_frozen}
EVAL="--report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 --disable_tqdm true"
if [ ! -f outputs/cascade/metrics.json ]; then
  mkdir -p results/flite-squad/finetune/cascade
  $PY run_sqa.py --output_dir outputs/cascade --dataset "$DATASET" --systems cascade --do_train --do_eval \
    --num_train_epochs 2 --learning_rate 1e-4 --save_strategy steps --save_steps 200 --save_total_limit 2 \
    --logging_steps 50 --per_device_train_batch_size 8 --seed 42 --resume_from_checkpoint true $EVAL \
    2>&1 | tee -a results/flite-squad/finetune/cascade/train.log
  cp outputs/cascade/metrics.json outputs/cascade/results.md results/flite-squad/finetune/cascade/
fi
name=ensemble_${SPEECHBERT}
out=outputs/finetune/$name
$PY run_sqa.py --output_dir "$out" --dataset "$DATASET" --systems speechbert cascade \
  --model_name_or_path "outputs/finetune/$SPEECHBERT/speechbert" --text_model_name_or_path outputs/cascade/cascade \
  --freeze_audio_encoder --do_eval --codes_eval_splits none $EVAL
mkdir -p "results/flite-squad/finetune/$name"
cp "$out/metrics.json" "$out/results.md" "results/flite-squad/finetune/$name/"
