set -e
# bench-no-asr's last step for the segmenter's system (one more epoch, encoder frozen, 1e-4) trained at forced-alignment
# segments (run_sqa.py --train_segments ref) and evaluated at the segmenter's. Run from the repository root.
export OMP_NUM_THREADS=1
B=outputs/benchmark
O=outputs/segmenter/ft3_ref
.venv/bin/python run_sqa.py --output_dir $O --model_name_or_path $B/no_asr/model \
  --dataset $B/dataset --systems speechbert_segmenter --freeze_audio_encoder --do_train \
  --do_eval --num_train_epochs 1 --learning_rate 1e-4 --train_segments ref --codes_eval_splits none --report_to none --save_strategy steps --save_steps 200 --save_total_limit 2 --logging_steps 50 --per_device_train_batch_size 8 --per_device_eval_batch_size 32 --dataloader_num_workers 0 --seed 42 --resume_from_checkpoint true
