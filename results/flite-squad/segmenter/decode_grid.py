"""Does the segmenter's decoder lose boundaries that its frame scores hold? (issue 13, 2026-12-05)

Grid over the decoding settings of a trained segmenter on validation: the P(word start) threshold, the shortest word
(`segmenter_min_word_frames`) and the P(silence) below which a frame is speech (`decode_segments` fixes it at 0.5; here
it is moved by shifting the silence logit, which also raises P(word start) a little where silence is likely). Then
test at the configured and at the validation-best settings. Frame logits are cached in /tmp (segmenter_logits.py).
Run from the repository root:
    .venv/bin/python results/flite-squad/segmenter/decode_grid.py outputs/segmenter/conv64x6_voices_pitch \
        outputs/benchmark/dataset > results/flite-squad/segmenter/conv64x6_voices_pitch/decode_grid.txt
"""
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.getcwd())
import run_segmenter as rs  # noqa: E402
import segmenter_logits  # noqa: E402
from speechbert.segmentation_speechbert import SILENCE, decode_segments  # noqa: E402

model_dir, dataset = sys.argv[1], sys.argv[2]
config, splits, logits = segmenter_logits.load(model_dir, dataset)


def score(split, threshold, min_word_frames, silence):
    shift = float(np.log(silence / (1 - silence)))  # P(SILENCE) < silence  <=>  shifted P(SILENCE) < 0.5

    def predict(row):
        shifted = logits[split][row["paragraph_id"]].clone()
        shifted[:, SILENCE] -= shift
        return decode_segments(shifted, config.hop_ms / 1000, config.window_ms / 1000, threshold, min_word_frames)

    return rs.score_rows(splits[split], predict)["all"]


configured = (config.segmenter_threshold, config.segmenter_min_word_frames, 0.5)
grid = segmenter_logits.grid_search(
    score, itertools.product([0.2, 0.3, 0.4, 0.5, 0.6], [2, 3, 4, 5, 6], [0.3, 0.5, 0.7]),
    "threshold, min_word_frames, silence", top=8)
print(f"  configured {configured}: F1 20 ms {next(g[0] for g in grid if g[1] == configured):.2f}")
segmenter_logits.print_test(score, {"configured": configured, "validation-best": grid[0][1]})

# Which reference word starts have no predicted boundary near them (segmenter_logits.start_counts). Configured
# settings.
from sqa_train.data import segment_times  # noqa: E402

for split, source in itertools.product(("validation", "test"), ("segmenter", "asr")):
    counts = segmenter_logits.start_counts(splits[split], lambda row: (
        segment_times(row, "asr").tolist() if source == "asr" else decode_segments(
            logits[split][row["paragraph_id"]], config.hop_ms / 1000, config.window_ms / 1000, *configured[:2])))
    print(f"{split}, {source}, word starts: " + "; ".join(
        f"{kind} {n} ({100 * n / sum(c[0] for c in counts.values()):.1f}%): {100 * near / n:.1f}% with a boundary "
        f"within 20 ms, {100 * far / n:.1f}% with none within 100 ms" for kind, (n, near, far) in counts.items()))
