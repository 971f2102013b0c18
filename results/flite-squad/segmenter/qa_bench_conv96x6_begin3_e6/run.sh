set -e
# The benchmark's fine-tuned SpeechBERT with the 6-epoch segmenter, evaluated at its segments (no training there).
# Run from the repository root.
export OMP_NUM_THREADS=1
out=outputs/segmenter/qa_bench_conv96x6_begin3_e6
test -f $out/model/config.json || .venv/bin/python -m sqa_train.graft --qa outputs/benchmark/sqa/speechbert \
  --encoder outputs/benchmark/sqa/speechbert --segmenter outputs/segmenter/bench_conv96x6_begin3_e6 --output_dir $out/model
.venv/bin/python run_sqa.py --output_dir $out --dataset outputs/benchmark/dataset --model_name_or_path $out/model \
  --systems speechbert_segmenter --do_eval --report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 \
  --disable_tqdm true --codes_eval_splits none --seed 42
