"""SpeechBERT's word segmenter: word boundaries from the MFCC frames the feature extractor computes, without ASR.

A stack of dilated 1-D convolutions labels every 10 ms frame `SILENCE`, `BEGIN` (the first frames of a word) or
`INSIDE` (the rest of a word); `decode_segments` turns the frame scores into `(start, end)` word segments in seconds,
on the same frame grid as `SpeechBertFeatureExtractor.segment_frames`, so the segments it returns own exactly the
frames the segmenter put in each word. It is trained on forced-alignment word times (`frame_labels`;
`run_segmenter.py`) and lives inside a SpeechBERT checkpoint (`config.word_segmenter`), so the pipeline can find word
boundaries with no recognizer. `boundary_scores` measures it against reference word times.
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SILENCE, BEGIN, INSIDE = 0, 1, 2
NUM_FRAME_CLASSES = 3


class SpeechBertWordSegmenter(nn.Module):
    """(B, T, feature_size) frames -> (B, T, 3) logits of `SILENCE`, `BEGIN`, `INSIDE`.

    An input convolution, then `segmenter_num_layers` residual convolutions of kernel `segmenter_kernel_size` with
    dilations 1, 2, 4, ..., so the receptive field grows exponentially with depth (the default 4 layers of kernel 5 see 65 frames, 0.65 s).
    One batched call per passage, whatever its length.
    """

    def __init__(self, config):
        super().__init__()
        hidden, kernel = config.segmenter_hidden_size, config.segmenter_kernel_size
        self.input = nn.Conv1d(config.feature_size, hidden, kernel, padding=kernel // 2)
        self.layers = nn.ModuleList(
            nn.Conv1d(hidden, hidden, kernel, padding=(kernel // 2) * 2**i, dilation=2**i)
            for i in range(config.segmenter_num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(config.segmenter_num_layers))
        self.output = nn.Linear(hidden, NUM_FRAME_CLASSES)

    @property
    def receptive_field(self) -> int:
        """Frames each output sees."""
        kernel = self.input.kernel_size[0]
        return kernel + sum((kernel - 1) * layer.dilation[0] for layer in self.layers)

    def hidden_states(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, feature_size) frames -> (B, T, segmenter_hidden_size): what the output layer reads."""
        if frames.dim() != 3 or frames.shape[-1] != self.input.in_channels:
            raise ValueError(
                f"frames must have shape (batch, frames, {self.input.in_channels}), got {tuple(frames.shape)}"
            )
        x = F.gelu(_convolve(self.input, frames))  # (B, T, H)
        for conv, norm in zip(self.layers, self.norms):
            x = x + F.gelu(norm(_convolve(conv, x)))
        return x

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.output(self.hidden_states(frames))  # (B, T, 3)


def _convolve(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """`conv` (odd kernel, centred, stride 1) applied to (B, T, C) frames, returning (B, T, out_channels): the same
    numbers as `conv(x.transpose(1, 2)).transpose(1, 2)`, as one matrix product over the kernel's shifted copies of
    the frames. Frames stay (B, T, C) throughout, so the layer norms and residual sums need no transposed copies; on
    one CPU core the 96-channel segmenter runs 1.3-1.4x faster this way under bf16 autocast and within a few percent
    (a little slower) in float32, and its float32 training step takes the same time (`benchmarks/RESULTS.md`)."""
    kernel, dilation, padding = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
    steps = x.shape[1]
    padded = F.pad(x, (0, 0, padding, padding))
    shifted = torch.cat([padded[:, i * dilation : i * dilation + steps] for i in range(kernel)], -1)  # (B, T, k*C)
    # weight (out, C, k) -> (out, k*C), matching `shifted`'s column order (shift-major)
    return F.linear(shifted, conv.weight.transpose(1, 2).reshape(conv.out_channels, -1), conv.bias)


def frame_labels(first: np.ndarray, last: np.ndarray, num_frames: int, begin_frames: int = 2) -> np.ndarray:
    """(num_frames,) class of every frame from the frame ranges `[first, last)` of the reference words (from
    `SpeechBertFeatureExtractor.segment_frames`): the first `begin_frames` frames of each word `BEGIN` (fewer for a
    shorter word, at least one), its other frames `INSIDE`, the rest `SILENCE`."""
    first, last = np.asarray(first, np.int64), np.asarray(last, np.int64)
    if first.shape != last.shape or (last < first).any():
        raise ValueError("first and last must be equal-length frame ranges with last >= first")
    labels = np.zeros(num_frames, np.int64)
    change = np.zeros(num_frames + 1, np.int64)
    np.add.at(change, np.clip(first, 0, num_frames), 1)
    np.add.at(change, np.clip(last, 0, num_frames), -1)
    labels[np.cumsum(change)[:num_frames] > 0] = INSIDE
    begin_end = np.minimum(first + begin_frames, np.maximum(last, first + 1))
    change[:] = 0
    np.add.at(change, np.clip(first, 0, num_frames), 1)
    np.add.at(change, np.clip(begin_end, 0, num_frames), -1)
    labels[np.cumsum(change)[:num_frames] > 0] = BEGIN
    return labels


def frame_time(frame, hop_s: float, window_s: float):
    """Time (s) of the boundary just before frame `frame`: half a hop before its window's centre. A segment
    `[frame_time(a), frame_time(b))` owns exactly frames a .. b-1 under `segment_frames`' rule."""
    return np.asarray(frame) * hop_s + window_s / 2 - hop_s / 2


def decode_segments(logits, hop_s: float = 0.01, window_s: float = 0.025, threshold: float = 0.5,
                    min_word_frames: int = 3, num_frames: int | None = None,
                    start_shift: int = 0) -> list[tuple[float, float]]:
    """`(start, end)` seconds of the words in one passage's `(T, 3)` frame logits.

    A frame is speech when `P(SILENCE) < 0.5`. A word starts at the first frame of every speech run and at the
    speech frames whose `P(BEGIN)` reaches `threshold` (local maxima), each placed `start_shift` frames before its
    peak, the strongest first: a start closer than `min_word_frames` to one already taken is dropped (a run's first
    frame is always taken). A word ends where the next one starts or its speech run ends; a run's last word shorter
    than `min_word_frames` joins the word before it.

    `start_shift`: a segmenter trained with `BEGIN` on a word's first `segmenter_begin_frames` frames peaks inside
    that band, not at its first frame (`run_segmenter.py` measures where on validation and sets
    `config.segmenter_start_shift`); without the shift each word inside a speech run would lose its first frames to
    the word before it.
    """
    import bisect

    logits = torch.as_tensor(logits, dtype=torch.float32)
    if logits.dim() != 2 or logits.shape[1] != NUM_FRAME_CLASSES:
        raise ValueError(f"logits must have shape (frames, {NUM_FRAME_CLASSES}), got {tuple(logits.shape)}")
    if num_frames is not None:
        logits = logits[:num_frames]
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
    if min_word_frames < 1:
        raise ValueError(f"min_word_frames must be >= 1, got {min_word_frames!r}")
    if isinstance(start_shift, bool) or not isinstance(start_shift, (int, np.integer)) or start_shift < 0:
        raise ValueError(f"start_shift must be a whole number of frames >= 0, got {start_shift!r}")
    probs = logits.softmax(-1)
    speech = (probs[:, SILENCE] < 0.5).numpy()
    begin = probs[:, BEGIN]
    # Local maxima only (plateaus keep all their frames), so the suppression below sees few candidates.
    local_max = F.max_pool1d(begin[None, None], 3, stride=1, padding=1)[0, 0]
    candidate = ((begin >= threshold) & (begin >= local_max)).numpy() & speech
    begin = begin.numpy()
    padded = np.concatenate([[False], speech, [False]])
    run_starts = np.flatnonzero(padded[1:] & ~padded[:-1])
    run_ends = np.flatnonzero(~padded[1:] & padded[:-1])  # exclusive
    segments = []
    for run_start, run_end in zip(run_starts, run_ends):
        peaks = np.flatnonzero(candidate[run_start:run_end]) + run_start
        starts = np.maximum(peaks - start_shift, run_start)  # at the run's start: dropped below, as too close
        kept = [int(run_start)]
        for frame in starts[np.lexsort((starts, -begin[peaks]))]:  # strongest first, earliest among equals
            i = bisect.bisect_left(kept, frame)
            if (i == len(kept) or kept[i] - frame >= min_word_frames) and (i == 0 or frame - kept[i - 1] >= min_word_frames):
                kept.insert(i, int(frame))
        bounds = kept + [int(run_end)]
        words = [[a, b] for a, b in zip(bounds[:-1], bounds[1:])]
        if len(words) > 1 and words[-1][1] - words[-1][0] < min_word_frames:
            last = words.pop()
            words[-1][1] = last[1]
        segments += words
    if not segments:
        return []
    frames = np.asarray(segments, np.float64)
    times = frame_time(frames, hop_s, window_s)
    times[:, 0] = np.maximum(times[:, 0], 0.0)
    return [(round(float(s), 4), round(float(e), 4)) for s, e in times]


def _match(predicted: np.ndarray, reference: np.ndarray, tolerance: float) -> int:
    """One-to-one matches between two sorted boundary lists within `tolerance` (greedy in time order)."""
    hits, i, j = 0, 0, 0
    while i < len(predicted) and j < len(reference):
        if abs(predicted[i] - reference[j]) <= tolerance + 1e-9:  # times are rounded to 0.1 ms
            hits, i, j = hits + 1, i + 1, j + 1
        elif predicted[i] < reference[j]:
            i += 1
        else:
            j += 1
    return hits


def boundaries(segments, merge_s: float = 0.005) -> np.ndarray:
    """Sorted boundary times of `(start, end)` segments: every start and end, a word's end and the next word's start
    counted once when they are within `merge_s`."""
    times = np.sort(np.asarray(segments, np.float64).reshape(-1))
    if times.size == 0:
        return times
    keep = np.concatenate([[True], np.diff(times) > merge_s])
    return times[keep]


def boundary_scores(predicted, reference, tolerance: float = 0.02) -> dict:
    """Boundary precision / recall / F1 (percent) of `predicted` segments against `reference` ones at `tolerance`
    seconds, with the counts they come from and the ratio of predicted to reference words."""
    pred, ref = boundaries(predicted), boundaries(reference)
    hits = _match(pred, ref, tolerance)
    precision = 100 * hits / len(pred) if len(pred) else 0.0
    recall = 100 * hits / len(ref) if len(ref) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "hits": hits, "predicted_boundaries": len(pred),
            "reference_boundaries": len(ref),
            "word_ratio": len(predicted) / len(reference) if len(reference) else float("nan")}


__all__ = ["BEGIN", "INSIDE", "SILENCE", "SpeechBertWordSegmenter", "boundary_scores", "boundaries",
           "decode_segments", "frame_labels", "frame_time"]
