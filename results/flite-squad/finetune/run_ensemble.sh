#!/usr/bin/env bash
# The cascade retrained on the same data as the fine-tunes (run_cascade.sh, cascade/), then SpeechBERT (a finished fine-tune of
# run.sh, SPEECHBERT=..., default graft_v2x256_soft_frozen) and that cascade evaluated together, no training, so
# run_sqa.py chooses the ensemble weight on validation (ensemble_$SPEECHBERT/). DATASET as in run.sh. Resumable: the cascade
# resumes from its checkpoints and is reused once finished. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATASET=${DATASET:-outputs/benchmark/dataset}
SPEECHBERT=${SPEECHBERT:-graft_v2x256_soft_frozen}
EVAL="--report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 --disable_tqdm true"
DATASET="$DATASET" PY="$PY" bash "$(dirname "$0")/run_cascade.sh"
name=ensemble_${SPEECHBERT}
out=outputs/finetune/$name
$PY run_sqa.py --output_dir "$out" --dataset "$DATASET" --systems speechbert cascade \
  --model_name_or_path "outputs/finetune/$SPEECHBERT/speechbert" --text_model_name_or_path outputs/cascade/cascade \
  --freeze_audio_encoder --do_eval --codes_eval_splits none $EVAL
mkdir -p "results/flite-squad/finetune/$name"
cp "$out/metrics.json" "$out/results.md" "results/flite-squad/finetune/$name/"
