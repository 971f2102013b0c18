#!/usr/bin/env bash
# The word segmenter (issue 13) trained on the benchmark corpus's forced-alignment word times, inside the cosine
# step-1 checkpoint; boundary scores per split and voice in segmenter.json. Resumable. Run from the repository root.
# NAME, MODEL, DATASET, EPOCHS, OVERRIDES; EXTRA adds arguments (the voice-robustness run: --exclude_train_voices slt).
set -euo pipefail
PY=${PY:-.venv/bin/python}
out=outputs/segmenter/${NAME:-conv64x4}
$PY run_segmenter.py --model_name_or_path ${MODEL:-outputs/step1/cos_t005_norm1} --dataset "${DATASET:-outputs/benchmark/dataset}" \
  --output_dir "$out" --num_train_epochs ${EPOCHS:-5} --learning_rate 1e-3 --per_device_train_batch_size 16 \
  --max_frames_per_item 1000 --report_to none --save_strategy steps --save_steps 100 --save_total_limit 2 \
  --logging_steps 25 --dataloader_num_workers 0 --seed 42 --resume_from_checkpoint true --disable_tqdm true \
  ${OVERRIDES:+--config_overrides $OVERRIDES} ${EXTRA:-}
mkdir -p "results/flite-squad/segmenter/${NAME:-conv64x4}"
cp "$out/segmenter.json" "$out/segmenter/settings.json" "results/flite-squad/segmenter/${NAME:-conv64x4}/"
