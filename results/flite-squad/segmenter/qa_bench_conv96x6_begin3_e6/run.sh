# The benchmark's fine-tuned SpeechBERT with the 6-epoch segmenter, evaluated at its segments only (no training there).
# Run from the repository root. (The run itself used a copy of run_qa.sh's graft and run_sqa.py commands with these
# settings and --seed 42, run_sqa.py's default.)
OMP_NUM_THREADS=1 QA=outputs/benchmark/sqa/speechbert SEG=outputs/segmenter/bench_conv96x6_begin3_e6 \
  NAME=bench_conv96x6_begin3_e6 SYSTEMS=speechbert_segmenter BENCH=0 bash results/flite-squad/segmenter/run_qa.sh
