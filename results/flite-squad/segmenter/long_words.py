"""Are the words the segmenter runs together recoverable from their length? (issue 13, 2026-12-05, sixth session)

`decode_grid.py` found that the segmenter misses about 13% of the word starts that follow the previous word with no
pause, so two words become one segment. Such a segment is longer than most words. This splits every decoded segment
longer than `max_frames` at its strongest interior local maximum of P(word start) (at least `min_word_frames` from
each end, at least `floor`), again until none is longer or none has such a peak, and scores the result against the
forced alignment as `run_segmenter.py` does. The grid is searched on validation; test is scored at the configured
decoder (no splitting) and at the validation-best setting. Frame logits are cached in /tmp (segmenter_logits.py).
Run from the repository root:
    .venv/bin/python results/flite-squad/segmenter/long_words.py outputs/segmenter/bench_conv64x6 \
        outputs/benchmark/dataset > results/flite-squad/segmenter/bench_conv64x6/long_words.txt
"""
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.getcwd())
import run_segmenter as rs  # noqa: E402
import segmenter_logits  # noqa: E402
from speechbert.segmentation_speechbert import BEGIN, decode_segments, frame_time  # noqa: E402
from sqa_train.data import segment_times  # noqa: E402

model_dir, dataset = sys.argv[1], sys.argv[2]
config, splits, logits = segmenter_logits.load(model_dir, dataset)
hop, window = config.hop_ms / 1000, config.window_ms / 1000
threshold, min_word = config.segmenter_threshold, config.segmenter_min_word_frames


def to_frames(segments):
    """Decoded `(start, end)` seconds back to frame indices (the inverse of `frame_time`; a first start clipped to 0 s
    maps back to frame 0)."""
    t = np.asarray(segments, np.float64)
    return np.maximum(np.rint((t - window / 2 + hop / 2) / hop), 0).astype(np.int64)


def split_long(segments, begin, max_frames, floor):
    """Split segments (frame pairs) longer than `max_frames` at their strongest interior P(BEGIN) local maximum."""
    out, todo = [], [tuple(s) for s in segments][::-1]
    while todo:
        a, b = todo.pop()
        if b - a > max_frames and b - a >= 2 * min_word:
            inner = begin[a + min_word:b - min_word + 1]
            left = np.concatenate([[-np.inf], inner[:-1]])
            right = np.concatenate([inner[1:], [-np.inf]])
            peaks = np.flatnonzero((inner >= left) & (inner >= right) & (inner >= floor))
            if peaks.size:
                cut = a + min_word + int(peaks[np.argmax(inner[peaks])])
                todo += [(cut, b), (a, cut)]
                continue
        out.append((a, b))
    return out


def predict(split, row, max_frames=None, floor=0.0):
    scores = logits[split][row["paragraph_id"]]
    segments = decode_segments(scores, hop, window, threshold, min_word)
    if max_frames is None or not segments:
        return segments
    begin = scores.softmax(-1)[:, BEGIN].numpy()
    split_frames = split_long(to_frames(segments), begin, max_frames, floor)
    times = frame_time(np.asarray(split_frames, np.float64), hop, window)
    times[:, 0] = np.maximum(times[:, 0], 0.0)
    return [(round(float(s), 4), round(float(e), 4)) for s, e in times]


def score(split, *setting):
    return rs.score_rows(splits[split], lambda row: predict(split, row, *setting))["all"]


lengths = np.concatenate([np.diff(to_frames(segment_times(row, "ref")), axis=1)[:, 0] for row in splits["validation"]])
print(f"validation reference words, frames: median {np.median(lengths):.0f}, 90th {np.percentile(lengths, 90):.0f}, "
      f"95th {np.percentile(lengths, 95):.0f}, 99th {np.percentile(lengths, 99):.0f} (configured decoder: threshold "
      f"{threshold}, min_word_frames {min_word})")
base = score("validation")
print(f"validation, configured decoder: F1 20 ms {base['f1_20ms']:.2f}, 50 ms {base['f1_50ms']:.2f}, "
      f"words per word {base['word_ratio']:.3f}")
grid = segmenter_logits.grid_search(
    score, itertools.product([25, 30, 35, 40, 50, 60, 70, 80, 100], [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]),
    "max_frames, floor", top=10)
segmenter_logits.print_test(score, {"configured": (), "validation-best": grid[0][1]})

# Word starts joined to the word before (no pause over 30 ms) with no predicted boundary within 100 ms, before and
# after splitting (decode_grid.py's count, segmenter_logits.start_counts).
for split in ("validation", "test"):
    for name, setting in {"configured": (), "validation-best": grid[0][1]}.items():
        counts = segmenter_logits.start_counts(splits[split], lambda row: predict(split, row, *setting))
        joined, _, missed = counts["joined"]
        print(f"{split}, {name}: {joined} joined word starts, "
              f"{100 * missed / joined:.1f}% with no boundary within 100 ms")
