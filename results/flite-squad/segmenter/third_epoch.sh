#!/usr/bin/env bash
# `make benchmark`'s bench-no-asr last step (one more epoch from outputs/benchmark/no_asr/model, encoder frozen, the
# benchmark's training settings) with one thing changed per run, into outputs/segmenter/NAME. Knobs: NAME (required),
# SYSTEMS (default speechbert_segmenter), LR (default 1e-4), EPOCHS (default 1), EXTRA (more run_sqa.py arguments,
# e.g. "--train_segments ref"), PY (the Python to run, default .venv/bin/python). Run from the repository root;
# resumable (checkpoints every 200 steps, --resume_from_checkpoint true).
set -euo pipefail
: "${NAME:?set NAME, the output folder under outputs/segmenter}"
PY=${PY:-.venv/bin/python}
B=outputs/benchmark
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# EXTRA is split into arguments on purpose.
# shellcheck disable=SC2086
$PY run_sqa.py --output_dir outputs/segmenter/$NAME --model_name_or_path $B/no_asr/model \
  --dataset $B/dataset --systems ${SYSTEMS:-speechbert_segmenter} --freeze_audio_encoder --do_train \
  --do_eval --num_train_epochs ${EPOCHS:-1} --learning_rate ${LR:-1e-4} ${EXTRA:-} --codes_eval_splits none \
  --report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50 \
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42 \
  --resume_from_checkpoint true
