#!/usr/bin/env bash
# QA at the segmenter's segments against ASR segments, same model (issue 13): the segmenter (run.sh) grafted onto a
# fine-tuned SpeechBERT (QA=..., default the graft fine-tune of ../finetune/), both systems evaluated (SYSTEMS=...: a
# subset), no training.
# Then the speed benchmark with that checkpoint. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
QA=${QA:-outputs/finetune/graft_soft_frozen/speechbert}
SEG=${SEG:-outputs/segmenter/conv64x4}
DATASET=${DATASET:-outputs/benchmark/dataset}
EVAL="--report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 --disable_tqdm true --codes_eval_splits none"
name=${NAME:-$(basename "$(dirname "$QA")")}  # NAME: another name (e.g. the same QA model with another segmenter)
out=outputs/segmenter/qa_$name
test -f "$out/model/config.json" || \
  $PY -m sqa_train.graft --qa "$QA" --encoder "$QA" --segmenter "$SEG" --output_dir "$out/model"
test -f "$out/metrics.json" || \
  $PY run_sqa.py --output_dir "$out" --dataset "$DATASET" --model_name_or_path "$out/model" \
    --systems ${SYSTEMS:-speechbert speechbert_segmenter} --do_eval $EVAL  # SYSTEMS: e.g. only speechbert_segmenter
mkdir -p "results/flite-squad/segmenter/qa_$name"
cp "$out/metrics.json" "$out/results.md" "results/flite-squad/segmenter/qa_$name/"
if [ "${BENCH:-1}" = 1 ]; then $PY benchmarks/bench_segmenter.py --model "$out/model"; fi  # BENCH=0 skips it
# FINETUNE=1: the same checkpoint fine-tuned at the segmenter's own segments (one more epoch, encoder frozen, the
# fine-tuning settings of ../finetune/run.sh; the segments are computed once before training, so no loss reaches the
# segmenter), then evaluated there (issue 13: close the gap to ASR segments).
if [ "${FINETUNE:-0}" = 1 ]; then
  ft=outputs/segmenter/ft_$name
  mkdir -p "results/flite-squad/segmenter/ft_$name"
  test -f "$ft/metrics.json" || \
    $PY run_sqa.py --output_dir "$ft" --dataset "$DATASET" \
      --model_name_or_path "$out/model" --systems speechbert_segmenter --freeze_audio_encoder --do_train \
      --num_train_epochs "${EPOCHS:-1}" --do_eval $EVAL --save_strategy steps --save_steps 200 --save_total_limit 2 \
      --logging_steps 50 --per_device_train_batch_size 8 --seed 42 --resume_from_checkpoint true --learning_rate 1e-4 \
      2>&1 | tee -a "results/flite-squad/segmenter/ft_$name/train.log"
  cp "$ft/metrics.json" "$ft/results.md" "results/flite-squad/segmenter/ft_$name/"
fi
# PIECES=1: the same checkpoint evaluated with its soft word embedding over the first pieces of the train words only
# (run_sqa.py --soft_word_embedding_pieces train: 9,795 of 30,522 pieces), at both segmentations, no training.
# TOPK=K with it: each code mixes only its K most similar of those pieces (config soft_word_embedding_top_k; the
# cheaper inference bench_segmenter.py --soft_top_k times), into pieces_topK_NAME.
if [ "${PIECES:-0}" = 1 ]; then
  pieces=outputs/segmenter/pieces${TOPK:+_top$TOPK}_$name
  results="results/flite-squad/segmenter/$(basename "$pieces")"
  mkdir -p "$results"
  test -f "$pieces/metrics.json" || \
    $PY run_sqa.py --output_dir "$pieces" --dataset "$DATASET" \
      --model_name_or_path "$out/model" --systems speechbert speechbert_segmenter --freeze_audio_encoder --do_eval \
      --soft_word_embedding_pieces train ${TOPK:+--config_overrides soft_word_embedding_top_k=$TOPK} $EVAL \
      2>&1 | tee -a "$results/eval.log"
  cp "$pieces/metrics.json" "$pieces/results.md" "$results/"
fi
