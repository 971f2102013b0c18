#!/usr/bin/env bash
# The cascade (ASR transcript, then text QA from all-MiniLM-L6-v2) retrained on the same data as the fine-tunes
# (cascade/, outputs/cascade/cascade): what run_ensemble.sh and ../oracle/run.sh (START cascade) start from. DATASET as
# in run.sh. CASCADE_EPOCHS (default 2) other than 2 trains another cascade into outputs/cascade_${CASCADE_EPOCHS}ep
# and cascade_${CASCADE_EPOCHS}ep/ (the oracle from the cascade had one epoch of QA more: a third epoch for the cascade
# tells what that epoch is worth). Resumable: it resumes from its checkpoints and is reused once finished. Run from
# the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-outputs/benchmark/dataset}
EPOCHS=${CASCADE_EPOCHS:-2}
name=cascade; [ "$EPOCHS" = 2 ] || name=cascade_${EPOCHS}ep
test -f outputs/$name/metrics.json && exit 0
mkdir -p results/flite-squad/finetune/$name
$PY run_sqa.py --output_dir outputs/$name --dataset "$DATASET" --systems cascade --do_train --do_eval \
  --num_train_epochs "$EPOCHS" --learning_rate 1e-4 --save_strategy steps --save_steps 200 --save_total_limit 2 \
  --logging_steps 50 --per_device_train_batch_size 8 --seed 42 --resume_from_checkpoint true --report_to none \
  --per_device_eval_batch_size 32 --dataloader_num_workers 0 --disable_tqdm true \
  2>&1 | tee -a results/flite-squad/finetune/$name/train.log
cp outputs/$name/metrics.json outputs/$name/results.md results/flite-squad/finetune/$name/
