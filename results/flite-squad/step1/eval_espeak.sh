#!/usr/bin/env bash
# Code quality on a synthesiser no step heard: validation passages read by two espeak-ng voices (a female and a male
# variant of en-us, a formant synthesiser quite unlike flite), word times by forced alignment (en-us+m3 and the plain
# en-us voice failed to align on most passages, so en-us+m1 is the male voice). Builds the folder
# (resumable), then measures each step-1 model of RUNS into its codes.json (OUTPUT_NAME: another file, so that the
# codes.json its training wrote stays as it was) and the results copy. Run from the
# repository root after run.sh.
set -euo pipefail
PY=${PY:-.venv/bin/python}
SPEECH=outputs/step1-speech/espeak-validation
$PY -m sqa_data.augment voices --records data/flite-squad --split validation --evaluation \
  --voices espeak:en-us+f3 espeak:en-us+m1 --output_dir "$SPEECH" --max_jobs "${MAX_JOBS:-64}" --num_proc "${WORKERS:-1}"
for name in ${RUNS:-cos_neg2048_voices_no_slt cos_neg2048_voices_pitch_no_slt}; do
  out=outputs/step1/$name
  $PY -m sqa_train.codes --model "$out" --dataset "${DATASET:-outputs/benchmark/dataset}" --split validation \
    --speech "$SPEECH" --num_workers "${WORKERS:-1}" --output "$out/${OUTPUT_NAME:-codes.json}"
  cp "$out/${OUTPUT_NAME:-codes.json}" "results/flite-squad/step1/$name/"
done
