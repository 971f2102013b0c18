#!/usr/bin/env bash
# Step-1 (joint embedding) variants with the benchmark's step-1 settings, each measured with sqa_train.codes on
# validation and test (issue 11, section 2). Resumable: rerun after an interruption. Run from the repository root.
# RUNS=names; EPOCHS overrides the epochs; DATASET (default outputs/benchmark/dataset; data/flite-squad reads the
# records and regenerates their audio); WORKERS threads prepare the audio and features.
set -euo pipefail
PY=${PY:-.venv/bin/python}
TRAIN="--report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50
  --per_device_train_batch_size 8 --dataloader_num_workers 0 --seed 42 --resume_from_checkpoint true
  --stage 1 --codes_eval_splits validation test --disable_tqdm true --preprocessing_num_workers ${WORKERS:-1}"
COS="audio_frame_stack=3,alignment_loss_type=cosine_softmax,alignment_temperature=0.05,norm_loss_weight=1"
BIG="audio_encoder_num_layers=2,audio_encoder_hidden_size=256"
VOICES="--stage1_extra_records data/step1-voices"
PITCH="-300 -150 150 300 450"
declare -A EXTRA=([cos_t005_norm1_lexicon]="--stage1_extra_records data/step1-lexicon"
  [cos_neg2048_voices]="$VOICES" [cos_neg2048_voices_2x256]="$VOICES"
  # Voice robustness (issue 11, section 4): slt left out of step 1, corpus and voices data alike.
  [cos_neg2048_voices_2x256_no_slt]="$VOICES --exclude_train_voices slt"
  # Does hearing the three male voices pitch-shifted (sox, formants too) let the encoder hear slt, never trained on?
  [cos_neg2048_voices_no_slt]="$VOICES --exclude_train_voices slt"
  [cos_neg2048_voices_pitch_no_slt]="$VOICES --exclude_train_voices slt --stage1_pitch_cents $PITCH"
  [cos_neg2048_voices_2x256_pitch_no_slt]="$VOICES --exclude_train_voices slt --stage1_pitch_cents $PITCH"
  # ... and what the pitch-shifted copies cost or bring when every voice is trained on.
  [cos_neg2048_voices_pitch]="$VOICES --stage1_pitch_cents $PITCH"
  [cos_neg2048_voices_pitch_3ep]="$VOICES --stage1_pitch_cents $PITCH"
  # A longer step 1 for the 2 x 256 encoder (70% after 2 epochs, still rising): continued from that run's model for
  # one epoch of the passages plus their pitch-shifted copies, at half the learning rate (a new schedule).
  [cos_neg2048_voices_2x256_pitch_cont]="$VOICES --stage1_pitch_cents $PITCH
    --model_name_or_path outputs/step1/cos_neg2048_voices_2x256 --stage1_learning_rate 5e-4"
  # Another synthesiser in step 1 (2026-12-05): the pitch-continued model continued one more epoch with every train
  # paragraph also read by one of nine espeak-ng voices (data/step1-espeak; en-us+f3 and en-us+m1, eval_espeak.sh's,
  # are not among them), against the same epoch without them (the control).
  [cos_neg2048_voices_2x256_pitch_cont2]="$VOICES --stage1_pitch_cents $PITCH
    --model_name_or_path outputs/step1/cos_neg2048_voices_2x256_pitch_cont --stage1_learning_rate 2.5e-4"
  [cos_neg2048_voices_2x256_pitch_espeak_cont2]="$VOICES data/step1-espeak --stage1_pitch_cents $PITCH
    --model_name_or_path outputs/step1/cos_neg2048_voices_2x256_pitch_cont --stage1_learning_rate 2.5e-4")
# Epochs of step 1 per run (EPOCHS, if set, overrides them all).
declare -A EPOCHS_OF=([l1_w10]=10 [cos_t005_norm1]=5 [cos_t005_norm1_lexicon]=3 [cos_t005_norm1_2x256]=2
  [cos_neg2048]=5 [cos_neg2048_voices]=3 [cos_neg2048_voices_2x256]=2 [cos_neg2048_voices_2x256_no_slt]=2
  # The pitch-shifted copies double the passages: half the epochs make as many steps.
  [cos_neg2048_voices_no_slt]=3 [cos_neg2048_voices_pitch_no_slt]=1.5 [cos_neg2048_voices_2x256_pitch_no_slt]=1
  [cos_neg2048_voices_pitch]=1.5 [cos_neg2048_voices_pitch_3ep]=3 [cos_neg2048_voices_2x256_pitch_cont]=1
  [cos_neg2048_voices_2x256_pitch_cont2]=1 [cos_neg2048_voices_2x256_pitch_espeak_cont2]=1)
declare -A OVERRIDES=(
  [l1_w10]="audio_frame_stack=3,alignment_loss_weight=10"
  [cos_t005_norm1]="audio_frame_stack=3,alignment_loss_type=cosine_softmax,alignment_temperature=0.05,norm_loss_weight=1"
  [cos_t005_norm1_lexicon]="audio_frame_stack=3,alignment_loss_type=cosine_softmax,alignment_temperature=0.05,norm_loss_weight=1"
  [cos_t005_norm1_2x256]="$COS,$BIG"
  # The same softmax estimated from the batch's words and 2,048 drawn pieces (alignment_num_negatives).
  [cos_neg2048]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices_2x256]="$COS,$BIG,alignment_num_negatives=2048"
  [cos_neg2048_voices_2x256_no_slt]="$COS,$BIG,alignment_num_negatives=2048"
  [cos_neg2048_voices_no_slt]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices_pitch_no_slt]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices_2x256_pitch_no_slt]="$COS,$BIG,alignment_num_negatives=2048"
  [cos_neg2048_voices_pitch]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices_pitch_3ep]="$COS,alignment_num_negatives=2048"
  [cos_neg2048_voices_2x256_pitch_cont]=""  # the continued model's own config
  [cos_neg2048_voices_2x256_pitch_cont2]=""
  [cos_neg2048_voices_2x256_pitch_espeak_cont2]=""
)
# The espeak-ng readings (resumable; nothing to do once built): one of nine voices per train paragraph.
ESPEAK_VOICES="espeak:en-us+f1 espeak:en-us+f2 espeak:en-us+f4 espeak:en-us+f5 espeak:en-us+m2 espeak:en-us+m6
  espeak:en-us+edward espeak:en-us+klatt espeak:en-us+klatt3"
for name in ${RUNS:-l1_w10 cos_t005_norm1}; do
  if [[ ${EXTRA[$name]:-} == *data/step1-espeak* ]]; then
    $PY -m sqa_data.augment voices --records data/flite-squad --output_dir data/step1-espeak --voices $ESPEAK_VOICES \
      --voices_per_paragraph 1 --num_proc "${WORKERS:-1}"
  fi
  out=outputs/step1/$name
  mkdir -p "results/flite-squad/step1/$name"
  $PY run_pretraining.py --output_dir "$out" --dataset "${DATASET:-outputs/benchmark/dataset}" $TRAIN \
    --stage1_num_train_epochs "${EPOCHS:-${EPOCHS_OF[$name]}}" \
    --config_overrides "${OVERRIDES[$name]}" ${EXTRA[$name]:-} 2>&1 | tee -a "results/flite-squad/step1/$name/train.log"
  cp "$out/codes.json" "$out/stage1/settings.json" "results/flite-squad/step1/$name/"
done
