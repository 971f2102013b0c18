#!/usr/bin/env bash
# SpeechBERT fine-tuned from step-1 checkpoints with word-like codes (issue 11, section 1: what lets BERT read them),
# with the benchmark's fine-tuning settings. Each run's validation/test F1 sits beside its code quality after
# fine-tuning (codes.json). DATASET (default outputs/benchmark/dataset; data/flite-squad reads the records and
# regenerates their audio). Resumable: rerun after an interruption. Run from the repository root.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN="--report_to none --save_strategy steps --save_steps ${SAVE_STEPS:-200} --save_total_limit 2 --logging_steps 50
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42
  --resume_from_checkpoint true --learning_rate 1e-4 --disable_tqdm true --codes_eval_splits validation test"
# Step-1 encoders (../step1/) by short name; a graft graft_<encoder>_<mode> is the oracle's QA BERT (../oracle/)
# with that encoder, reading its codes soft (audio_code_mode=soft_word_embedding) or direct; graftcas_<encoder>_<mode>
# the same under the oracle that started from the cascade's QA BERT (../oracle/, RUNS=asr:first_piece:cascade).
declare -A QA=([graft]=outputs/oracle/asr_first_piece/oracle
  [graftcas]=outputs/oracle/asr_first_piece_from_cascade/oracle
  # bench_<encoder>_<mode>: under the benchmark's own oracle (`make benchmark`, whole train split).
  [bench]=outputs/benchmark/oracle/oracle)
declare -A ENCODER=([cos]=outputs/step1/cos_t005_norm1 [v128]=outputs/step1/cos_neg2048_voices
  [v2x256]=outputs/step1/cos_neg2048_voices_2x256
  # Voice robustness (issue 11, section 4): the 1 x 128 encoder that never heard slt (voices + pitch copies).
  [p128noslt]=outputs/step1/cos_neg2048_voices_pitch_no_slt
  # ... and the 2 x 256 one (voices + pitch copies, slt left out), fine-tuned without slt's train passages too.
  [p2x256noslt]=outputs/step1/cos_neg2048_voices_2x256_pitch_no_slt
  # The 2 x 256 encoder after one more epoch of step 1 with pitch-shifted copies (../step1/, a longer step 1).
  [v2x256pc]=outputs/step1/cos_neg2048_voices_2x256_pitch_cont
  # The benchmark's step 1 (`make benchmark`: + pitch epoch + espeak-ng epoch), the encoder its graft reads.
  [espeak]=outputs/benchmark/step1_espeak)
COS=${ENCODER[cos]}
declare -A MODEL=(
  [cos_soft_frozen]=$COS [cos_direct_frozen]=$COS [cos_direct]=$COS
  [graft_soft_frozen]=graft_cos_soft [graft_direct_frozen]=graft_cos_direct
  [zeroshot_graft_cos_soft]=graft_cos_soft [zeroshot_graft_cos_direct]=graft_cos_direct
  [zeroshot_graft_v128_soft]=graft_v128_soft [graft_v128_soft_frozen]=graft_v128_soft
  [zeroshot_graft_v2x256_soft]=graft_v2x256_soft [graft_v2x256_soft_frozen]=graft_v2x256_soft
  [zeroshot_graft_p128noslt_soft]=graft_p128noslt_soft [graft_p2x256noslt_soft_frozen]=graft_p2x256noslt_soft
  [zeroshot_graft_v2x256pc_soft]=graft_v2x256pc_soft [graft_v2x256pc_soft_frozen]=graft_v2x256pc_soft
  # The same encoders under the oracle QA BERT that started from the cascade's (graftcas_).
  [zeroshot_graftcas_v2x256_soft]=graftcas_v2x256_soft [graftcas_v2x256_soft_frozen]=graftcas_v2x256_soft
  [zeroshot_graftcas_v2x256pc_soft]=graftcas_v2x256pc_soft [graftcas_v2x256pc_soft_frozen]=graftcas_v2x256pc_soft
  # The same graft reading its codes directly (audio_code_mode=direct), no QA training: does BERT need the soft word
  # embedding (44 ms of a no-ASR question, benchmarks/RESULTS.md "Latency budget without ASR")? 2026-12-05.
  [zeroshot_graftcas_v2x256pc_direct]=graftcas_v2x256pc_direct
  # The soft word embedding over each code's 16 most similar pieces (soft_word_embedding_top_k): 1.74x faster steps,
  # but those pieces hold only 59.5% of the weight for this encoder (codes.json soft_top_mass): not run yet.
  [zeroshot_graft_v2x256_soft_top16]=graft_v2x256_soft [graft_v2x256_soft_top16_frozen]=graft_v2x256_soft
  # The two-epoch model evaluated with a sharper or softer soft word embedding (alignment_temperature, trained at
  # 0.05): no training, chosen on validation.
  [eval_2ep_t003]=outputs/finetune/graft_v2x256_soft_frozen_2ep/speechbert
  [eval_2ep_t01]=outputs/finetune/graft_v2x256_soft_frozen_2ep/speechbert
  # ... and with its soft word embedding over the first pieces of the train words only (9,795 of 30,522 pieces,
  # which held 78% of the weight on validation): no training.
  [eval_2ep_pieces_train]=outputs/finetune/graft_v2x256_soft_frozen_2ep/speechbert
  # The benchmark's own graft (`make benchmark`, 2026-12-05: step1_espeak under the whole-split oracle), no QA
  # training on audio: what the whole train split gives before the benchmark's fine-tune.
  [zeroshot_bench_graft]=outputs/benchmark/graft
  # The benchmark's graft reading its codes directly (no soft word embedding, 44 ms less per no-ASR question):
  # zero-shot, then fine-tuned exactly as the benchmark's SpeechBERT (2 epochs, encoder frozen), to set beside it.
  [zeroshot_bench_espeak_direct]=bench_espeak_direct [bench_espeak_direct_frozen]=bench_espeak_direct
)
declare -A ARGS=(
  [cos_soft_frozen]="--config_overrides audio_code_mode=soft_word_embedding --freeze_audio_encoder"
  [cos_direct_frozen]="--freeze_audio_encoder"
  [graft_soft_frozen]="--freeze_audio_encoder" [graft_direct_frozen]="--freeze_audio_encoder"
  [graft_v128_soft_frozen]="--freeze_audio_encoder" [graft_v2x256_soft_frozen]="--freeze_audio_encoder"
  [graft_v2x256pc_soft_frozen]="--freeze_audio_encoder" [graftcas_v2x256_soft_frozen]="--freeze_audio_encoder"
  [graftcas_v2x256pc_soft_frozen]="--freeze_audio_encoder" [bench_espeak_direct_frozen]="--freeze_audio_encoder"
  [graft_p2x256noslt_soft_frozen]="--freeze_audio_encoder --exclude_train_voices slt"
  [eval_2ep_t003]="--freeze_audio_encoder --config_overrides alignment_temperature=0.03"
  [eval_2ep_t01]="--freeze_audio_encoder --config_overrides alignment_temperature=0.1"
  [eval_2ep_pieces_train]="--freeze_audio_encoder --soft_word_embedding_pieces train"
  [zeroshot_graft_v2x256_soft_top16]="--freeze_audio_encoder --config_overrides soft_word_embedding_top_k=16"
  [graft_v2x256_soft_top16_frozen]="--freeze_audio_encoder --config_overrides soft_word_embedding_top_k=16"
)
# Epochs per run (EPOCHS, if set, overrides them all); zero-shot runs are evaluated as grafted, eval_ runs as
# given. With --freeze_audio_encoder each passage's codes are computed once and cached (for evaluation too).
declare -A EPOCHS_OF=([cos_soft_frozen]=2 [cos_direct_frozen]=2 [cos_direct]=2 [graft_soft_frozen]=1
  [graft_direct_frozen]=1 [graft_v128_soft_frozen]=1 [graft_v2x256_soft_frozen]=1 [graft_v2x256_soft_top16_frozen]=1
  [graft_p2x256noslt_soft_frozen]=1 [graft_v2x256pc_soft_frozen]=1 [graftcas_v2x256_soft_frozen]=1
  [graftcas_v2x256pc_soft_frozen]=1)
for name in ${RUNS:-cos_soft_frozen}; do
  out=outputs/finetune/$name
  test -f "$out/metrics.json" && continue
  model=${MODEL[$name]}
  if [[ $model == graft_* || $model == graftcas_* || $model == bench_* ]]; then
    IFS=_ read -r qa encoder mode <<< "$model"
    model=outputs/finetune/$model
    if [ ! -f "$model/config.json" ]; then
      overrides=(); [ "$mode" = soft ] && overrides=(--config_overrides audio_code_mode=soft_word_embedding)
      $PY -m sqa_train.graft --qa "${QA[$qa]}" --encoder "${ENCODER[$encoder]}" \
        --output_dir "$model" "${overrides[@]}"
    fi
  fi
  mkdir -p "results/flite-squad/finetune/$name"
  train="--do_train --num_train_epochs ${EPOCHS:-${EPOCHS_OF[$name]:-2}}"
  [[ $name == zeroshot_* || $name == eval_* ]] && train=""
  $PY run_sqa.py --output_dir "$out" --dataset "${DATASET:-outputs/benchmark/dataset}" --systems speechbert \
    --model_name_or_path "$model" ${ARGS[$name]:-} $train --do_eval $TRAIN \
    2>&1 | tee -a "results/flite-squad/finetune/$name/train.log"
  cp "$out/metrics.json" "$out/results.md" "$out/speechbert/codes.json" "results/flite-squad/finetune/$name/"
done
