# The ASR-segment system's recipe (`make bench-sqa`: 2 epochs from the benchmark's graft, encoder frozen, 1e-4) at the
# recipe segmenter's own segments instead: the graft of `make bench-graft` with `outputs/benchmark/segmenter` (the
# 4-epoch segmenter) added, then `run_sqa.py --systems speechbert_segmenter`. Run from the repository root; resumable
# (checkpoints every 200 steps). About 2 h of one thread beside other runs, then about 10 minutes of evaluation.
set -e
export OMP_NUM_THREADS=1
B=outputs/benchmark
O=outputs/segmenter/own2_bench_e4
[ -f $O/graft/model.safetensors ] || .venv/bin/python -m sqa_train.graft --qa $B/oracle/oracle --encoder $B/step1_espeak \
  --segmenter $B/segmenter --output_dir $O/graft --config_overrides audio_code_mode=soft_word_embedding
.venv/bin/python run_sqa.py --output_dir $O --model_name_or_path $O/graft --dataset $B/dataset \
  --systems speechbert_segmenter --freeze_audio_encoder --do_train --do_eval --num_train_epochs 2 --learning_rate 1e-4 \
  --codes_eval_splits none --report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50 \
  --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42 \
  --resume_from_checkpoint true
