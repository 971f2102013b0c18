# Model soups (soup.py) of the benchmark's no-ASR models, evaluated at the segmenter's segments only, no training (issue 13).
# Run from the repository root.
set -e
export OMP_NUM_THREADS=1
B=outputs/benchmark
EVAL="--report_to none --per_device_eval_batch_size 32 --dataloader_num_workers 0 --disable_tqdm true --codes_eval_splits none --seed 42"
for spec in "soup_ft_asr05 $B/no_asr_ft/speechbert_segmenter $B/no_asr/model" "soup_ft_ftasr05 $B/no_asr_ft/speechbert_segmenter $B/no_asr_ft/speechbert"; do
  set -- $spec
  O=outputs/segmenter/$1
  [ -f $O/model/model.safetensors ] || .venv/bin/python results/flite-squad/segmenter/soup.py --models $2 $3 --weights 0.5 0.5 --output_dir $O/model
  [ -f $O/metrics.json ] || .venv/bin/python run_sqa.py --output_dir $O --dataset $B/dataset --model_name_or_path $O/model \
    --systems speechbert_segmenter --do_eval $EVAL
done
