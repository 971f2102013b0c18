#!/bin/bash
# Issue 13, 2026-12-05 (fifth session): the benchmark's first step-1 run (2 epochs, the train passages also read by
# the other flite voices; the Makefile's bench-step1 first command, only the encoder size changed) at the two encoder
# sizes between 1 x biGRU-128 and 2 x biGRU-256, one after the other, one thread each. Run from the repository root
# after `make bench-dataset`; resumable (rerun it). Results: outputs/bench-NxH/step1/codes.json, copied here.
#   SIZES="2x128 1x256" bash results/flite-squad/step1/encoder_sizes/run.sh >> outputs/logs/step1_sizes.log 2>&1
set -euo pipefail
for size in ${SIZES:-2x128 1x256}; do
  layers=${size%x*} hidden=${size#*x}
  out=outputs/bench-$size
  mkdir -p "$out" && ln -sfn ../benchmark/dataset "$out/dataset"
  OMP_NUM_THREADS=1 .venv/bin/python run_pretraining.py --output_dir "$out/step1" --dataset "$out/dataset" --stage 1 \
    --stage1_num_train_epochs 2 --stage1_extra_records data/step1-voices --report_to none --save_strategy steps \
    --save_steps 200 --save_total_limit 2 --logging_steps 50 --per_device_train_batch_size 8 \
    --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42 --resume_from_checkpoint true \
    --config_overrides "audio_frame_stack=3,alignment_loss_type=cosine_softmax,alignment_temperature=0.05,norm_loss_weight=1,alignment_num_negatives=2048,audio_encoder_num_layers=$layers,audio_encoder_hidden_size=$hidden" \
    --codes_eval_splits validation test --preprocessing_num_workers 4
done
