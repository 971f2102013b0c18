# The ASR-segment system after bench-no-asr's third epoch at ASR segments (outputs/benchmark/no_asr_ft/speechbert),
# evaluated at the segmenter's segments (it carries the segmenter), no training. Run from the repository root.
set -e
export OMP_NUM_THREADS=1
B=outputs/benchmark
O=outputs/segmenter/asr3_at_model
.venv/bin/python run_sqa.py --output_dir $O --dataset $B/dataset --model_name_or_path $B/no_asr_ft/speechbert \
  --systems speechbert_segmenter --do_eval --report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 \
  --disable_tqdm true --codes_eval_splits none --seed 42
