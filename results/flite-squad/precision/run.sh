#!/bin/bash
# Issue 13, 2026-12-05 (fifth session): what CPU precision costs in answer quality. The benchmark's cascade QA BERT
# (`make bench-cascade`: MiniLM fine-tuned 3 epochs on the ASR transcripts) evaluated on validation and test in float32,
# with dynamic int8 weights (`--quantize int8`) and under CPU bf16 autocast (`--bf16`), one thread each, in turn.
# Run from the repository root after `make bench-cascade`; each evaluation runs again on every call (a few minutes;
# nothing stale is reused) and its metrics land in outputs/precision/NAME/ and here.
set -euo pipefail
CASCADE=${CASCADE:-outputs/benchmark/sqa/cascade}
COMMON=(--dataset outputs/benchmark/dataset --text_model_name_or_path "$CASCADE" --systems cascade --do_eval
        --use_cpu --per_device_eval_batch_size 32 --report_to none --dataloader_num_workers 0 --seed 42)
for run in ${RUNS:-float32 int8 bf16}; do
  case $run in
    float32) extra=() ;;
    int8) extra=(--quantize int8) ;;
    bf16) extra=(--bf16) ;;
    *) echo "unknown run $run (float32, int8, bf16)" >&2; exit 2 ;;
  esac
  out=outputs/precision/$run
  start=$(date +%s)
  OMP_NUM_THREADS=1 .venv/bin/python run_sqa.py --output_dir "$out" "${COMMON[@]}" "${extra[@]}"
  echo "$run: $(( $(date +%s) - start )) s"
  mkdir -p "results/flite-squad/precision/$run" && cp "$out/metrics.json" "$out/results.md" "results/flite-squad/precision/$run/"
done
