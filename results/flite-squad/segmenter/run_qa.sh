#!/usr/bin/env bash
# QA at the segmenter's segments against ASR segments, same model (issue 13): the segmenter (run.sh) grafted onto a
# fine-tuned SpeechBERT (QA=..., default the graft fine-tune of ../finetune/), both systems evaluated, no training.
# Then the speed benchmark with that checkpoint. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
QA=${QA:-outputs/finetune/graft_soft_frozen/speechbert}
SEG=${SEG:-outputs/segmenter/conv64x4}
name=$(basename "$(dirname "$QA")")
out=outputs/segmenter/qa_$name
test -f "$out/model/config.json" || \
  $PY -m sqa_train.graft --qa "$QA" --encoder "$QA" --segmenter "$SEG" --output_dir "$out/model"
test -f "$out/metrics.json" || \
  $PY run_sqa.py --output_dir "$out" --dataset "${DATASET:-outputs/benchmark/dataset}" --model_name_or_path "$out/model" \
    --systems speechbert speechbert_segmenter --do_eval --report_to none --per_device_eval_batch_size 32 \
    --dataloader_num_workers 0 --disable_tqdm true --codes_eval_splits none
mkdir -p "results/flite-squad/segmenter/qa_$name"
cp "$out/metrics.json" "$out/results.md" "results/flite-squad/segmenter/qa_$name/"
$PY benchmarks/bench_segmenter.py --model "$out/model"
