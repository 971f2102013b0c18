#!/usr/bin/env bash
# Copy what `make benchmark` (BENCH=outputs/benchmark) has finished into this folder: compact results only (metrics,
# tables, plots, codes, settings, trainer logs), never weights or audio. Safe to run at any time; a part not finished
# yet is skipped and named. The comparison's code quality also goes to results/flite-squad/codes.json (issue 11).
# Run from the repository root.
set -euo pipefail
BENCH=${BENCH:-outputs/benchmark}
here=results/flite-squad/benchmark-2026-12-05
copy() {  # copy SOURCE_DIR DEST_DIR FILE...: the files that exist; say which part is not finished
  local source=$1 dest=$2; shift 2
  if [ ! -f "$source/DONE" ] && [ ! -f "$source/stage1/DONE" ] && [ ! -f "$source/metrics.json" ]; then
    echo "not finished yet: $source"; return 0
  fi
  mkdir -p "$dest"
  for file in "$@"; do
    if [ -f "$source/$file" ]; then cp "$source/$file" "$dest/"; fi
  done
  echo "copied: $source -> $dest"
}
copy "$BENCH/step1" "$here/step1" codes.json stage1/settings.json
copy "$BENCH/step1_pitch" "$here/step1_pitch" codes.json stage1/settings.json
copy "$BENCH/step1_espeak" "$here/step1_espeak" codes.json codes_espeak.json stage1/settings.json
copy "$BENCH/sqa/cascade" "$here/cascade" settings.json
copy "$BENCH/sqa/text" "$here/text" settings.json
copy "$BENCH/oracle" "$here/oracle" metrics.json results.md
copy "$BENCH/oracle/oracle" "$here/oracle" settings.json
copy "$BENCH/sqa/speechbert" "$here/speechbert" settings.json codes.json
copy "$BENCH/sqa" "$here" metrics.json results.md wer_buckets_test.png wer_buckets_validation.png
if [ -f "$BENCH/sqa/metrics.json" ] && [ -f "$BENCH/sqa/speechbert/codes.json" ]; then
  cp "$BENCH/sqa/speechbert/codes.json" results/flite-squad/codes.json
  echo "copied: $BENCH/sqa/speechbert/codes.json -> results/flite-squad/codes.json"
fi
# LOG=outputs/logs/benchmark.log: the run's log without progress bars, as train.log. LOG may name several logs
# (space-separated, in the order they ran: parts started by hand beside make), concatenated.
if [ -n "${LOG:-}" ]; then
  : > "$here/train.log.new"
  for log in $LOG; do
    if [ -f "$log" ]; then
      echo "===== $log" >> "$here/train.log.new"
      tr '\r' '\n' < "$log" | grep -v -E '(it/s|s/it)\]' | grep -v '^ *$' >> "$here/train.log.new" || true
      echo "copied: $log -> $here/train.log (progress bars dropped)"
    else
      echo "no such log: $log"
    fi
  done
  mv "$here/train.log.new" "$here/train.log"
fi
