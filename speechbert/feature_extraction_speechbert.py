"""SpeechBERT feature extractor: waveform + word segments -> per-segment MFCC frames.

Each utterance's 13 MFCCs with deltas and delta-deltas (39 values per 10 ms frame) are computed once with torchaudio,
normalised per utterance, then sliced by word segment. A segment owns the frames whose window centre falls inside
[start, end). Segments are word times in seconds, from forced alignment or an ASR's word times.
"""


import numpy as np
import torch
import torchaudio
from transformers import BatchFeature, SequenceFeatureExtractor

# Frames per block of the spectrum computation (`_fast_mfcc`): 5 s of audio, so each temporary stays small.
_FRAMES_PER_BLOCK = 500

# Float samples beyond this are not a clipped recording but PCM values in a float array.
MAX_FLOAT_PEAK = 4.0


def to_float_samples(array) -> np.ndarray:
    """Samples as float32 in [-1, 1], the one conversion every entry point (feature extractor, pipeline, handler,
    cascade) makes: PCM integers scaled (int16 by 32767, int32 by 2**31 - 1, uint8 around 128), floats kept; a list
    of Python integers, int64, other dtypes, several passages or PCM values in a float array are errors."""
    from_list = isinstance(array, (list, tuple))
    if from_list and len(array) and isinstance(array[0], (np.ndarray, torch.Tensor, list, tuple)):
        raise ValueError(f"audio is a list of {len(array)} arrays: pass one passage per call (several questions about "
                         "it may be a list); a stereo recording as one (2, samples) array")
    if isinstance(array, torch.Tensor):
        if array.is_meta:
            raise ValueError("audio is a meta tensor: it has a shape but no samples")
        array = array.detach().cpu()
        if array.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16: read both as float32
            array = array.float()
    array = np.asarray(array)
    if array.dtype.kind == "i" and (from_list or array.dtype == np.int64):
        raise ValueError(f"audio holds {'a list of Python integers' if from_list else 'int64 samples'}: their PCM "
                         "range is unknown. Pass floats in [-1, 1] or an array of PCM samples with their dtype "
                         "(np.int16, np.int32)")
    if array.dtype.kind == "i":
        return (array / float(np.iinfo(array.dtype).max)).astype(np.float32)
    if array.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        return ((array.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    if array.dtype.kind != "f":
        raise ValueError(f"audio must be float or PCM integer samples, got dtype {array.dtype}")
    peak = float(np.nanmax(np.abs(array))) if array.size else 0.0
    # PCM values in a float array read as samples 30,000 times too loud; NaN and infinity get their own error later.
    if peak > MAX_FLOAT_PEAK and np.isfinite(peak):
        raise ValueError(f"float audio reaches {peak:g}: float samples lie in [-1, 1]. These look like PCM integers "
                         "cast to float: divide by 32768 (int16) first, or pass the integer array itself")
    return array.astype(np.float32, copy=False)


def check_word_segments(word_segments, duration: float, tolerance: float = 0.01) -> np.ndarray:
    """(n, 2) float64 (start, end) seconds of word segments of a `duration`-second passage, or a `ValueError` naming
    the first bad one: not numbers, empty, not pairs, NaN or infinite, outside the audio (`tolerance` seconds past
    its end allowed), reversed or empty, out of time order or overlapping. Every entry point that takes word segments
    (the feature extractor, the SpeechBERT and cascade pipelines) checks them here."""
    try:
        segments = np.asarray(word_segments, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"word_segments must hold numbers (seconds): {error}") from error
    if segments.size == 0:
        raise ValueError("word_segments is empty: expected at least one (start, end) pair in seconds")
    if segments.ndim != 2 or segments.shape[1] != 2:
        raise ValueError(f"word_segments must be a list of (start, end) pairs in seconds, got shape {segments.shape}")
    if not np.isfinite(segments).all():
        raise ValueError("word_segments contains NaN or infinite times")
    starts, ends = segments[:, 0], segments[:, 1]
    for name, bad in (
        ("lies outside the audio", (starts < 0) | (ends > duration + tolerance)),
        ("is reversed or empty (end <= start)", ends <= starts),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"word segment {i} ({starts[i]:.3f}, {ends[i]:.3f}) s {name}; the audio spans (0, {duration:.3f}) s"
            )
    overlap = starts[1:] < ends[:-1] - 1e-3
    if overlap.any():
        i = int(np.argmax(overlap)) + 1
        raise ValueError(
            f"word segment {i} starts at {starts[i]:.3f} s before segment {i - 1} ends at {ends[i - 1]:.3f} s: "
            "segments must be in time order and must not overlap"
        )
    return segments

class SpeechBertFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Args:
        feature_size (`int`, defaults to 39): values per frame, `3 * num_mfcc`.
        sampling_rate (`int`, defaults to 16000): the only rate accepted; resample before calling.
        padding_value (`float`, defaults to 0.0): value of padded frames.
        num_mel_bins, num_mfcc, window_ms, hop_ms: the MFCC front end.
        normalize_features (`bool`, defaults to `True`): per-utterance mean/variance normalisation.
        max_frames_per_segment (`int`, defaults to 100): frames kept per segment (its first ones).
        downmix (`bool`, defaults to `False`): average a 2-D `(channels, samples)` array to mono. When `False`, a
            multi-channel array raises `ValueError`, so stereo is never silently read as a batch.
        silence_threshold (`float`, defaults to 1e-4): audio whose peak absolute amplitude is below this is
            rejected as silent.
    """

    model_input_names = ["audio_features", "audio_feature_lengths"]

    def __init__(
        self,
        feature_size=39,
        sampling_rate=16000,
        padding_value=0.0,
        num_mel_bins=40,
        num_mfcc=13,
        window_ms=25.0,
        hop_ms=10.0,
        normalize_features=True,
        max_frames_per_segment=100,
        downmix=False,
        silence_threshold=1e-4,
        **kwargs,
    ):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        if feature_size != 3 * num_mfcc:
            raise ValueError(f"feature_size must be 3 * num_mfcc = {3 * num_mfcc}, got {feature_size}")
        self.num_mel_bins = num_mel_bins
        self.num_mfcc = num_mfcc
        self.window_ms = window_ms
        self.hop_ms = hop_ms
        self.normalize_features = normalize_features
        self.max_frames_per_segment = max_frames_per_segment
        self.downmix = downmix
        self.silence_threshold = silence_threshold
        self.win_samples = int(round(sampling_rate * window_ms / 1000))
        self.hop_samples = int(round(sampling_rate * hop_ms / 1000))
        if self.hop_samples <= 0 or self.win_samples < self.hop_samples:
            raise ValueError(f"window_ms ({window_ms}) must be >= hop_ms ({hop_ms}) > 0")
        self._mfcc = None  # built on first use; a torch module is not JSON-serialisable

    def to_dict(self):
        output = super().to_dict()
        for key in ("_mfcc", "win_samples", "hop_samples"):
            output.pop(key, None)
        return output

    # ------------------------------------------------------------------ validation
    def check_sampling_rate(self, sampling_rate):
        if sampling_rate is None:
            raise ValueError(
                f"sampling_rate is required: pass sampling_rate={self.sampling_rate} (the rate this feature "
                "extractor was built for) so a wrong rate cannot slip through"
            )
        if sampling_rate != self.sampling_rate:
            raise ValueError(
                f"audio has sampling_rate={sampling_rate} Hz but SpeechBERT expects {self.sampling_rate} Hz: "
                f"resample it first, e.g. torchaudio.functional.resample(waveform, {sampling_rate}, {self.sampling_rate})"
            )

    def to_mono(self, audio) -> np.ndarray:
        """One waveform as a float32 1-D array, after the checks every input gets."""
        audio = to_float_samples(audio)  # the pipeline's conversion: PCM integers scaled alike everywhere
        if audio.ndim == 2:
            if not self.downmix:
                raise ValueError(
                    f"audio has shape {tuple(audio.shape)}: expected a mono 1-D waveform. Down-mix it first "
                    "(audio.mean(axis=0) for (channels, samples)) or build the feature extractor with downmix=True; "
                    "a batch is a list of 1-D waveforms"
                )
            if audio.shape[0] > 2:
                raise ValueError(
                    f"audio has shape {tuple(audio.shape)}: downmix=True averages (channels, samples) stereo, not "
                    f"{audio.shape[0]} rows; several passages are a list of 1-D waveforms"
                )
            audio = audio.mean(axis=0)
        if audio.ndim != 1:
            raise ValueError(f"audio has shape {tuple(audio.shape)}: expected a mono 1-D waveform")
        if audio.size == 0:
            raise ValueError("audio is empty (0 samples)")
        # min and max propagate NaN and infinity, so one pass each checks finiteness and gives the peak.
        low, high = float(audio.min()), float(audio.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            bad = int((~np.isfinite(audio)).sum())
            raise ValueError(f"audio has {bad} NaN or infinite samples out of {audio.size}")
        peak = max(abs(low), abs(high))
        if peak < self.silence_threshold:
            raise ValueError(
                f"audio is silent: peak amplitude {peak:.3g} is below silence_threshold={self.silence_threshold:g}"
            )
        if audio.size < self.win_samples:
            raise ValueError(
                f"audio is {audio.size / self.sampling_rate:.4f} s long: at least one {self.window_ms} ms window "
                f"({self.win_samples} samples) is needed"
            )
        return audio

    def num_frames(self, num_samples: int) -> int:
        """Feature frames of a waveform of `num_samples` samples (whole windows only, no centring)."""
        return 1 + (num_samples - self.win_samples) // self.hop_samples

    def segment_frames(self, word_segments, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame range [first, last) of every (start, end) segment in seconds, after checking the segments."""
        # Word times are quantised to frames: a segment may end up to one hop past the audio.
        segments = check_word_segments(word_segments, num_samples / self.sampling_rate, self.hop_ms / 1000)
        starts, ends = segments[:, 0], segments[:, 1]
        num_frames = self.num_frames(num_samples)
        # Frame f is centred at f * hop + win / 2 samples; a segment owns the centres inside [start, end).
        half = self.win_samples / 2
        first = np.ceil((np.round(starts * self.sampling_rate) - half) / self.hop_samples).astype(np.int64)
        last = np.ceil((np.round(ends * self.sampling_rate) - half) / self.hop_samples).astype(np.int64)
        first, last = np.clip(first, 0, num_frames), np.clip(last, 0, num_frames)
        empty = last <= first
        if empty.any():
            i = int(np.argmax(empty))
            raise ValueError(
                f"word segment {i} ({starts[i]:.3f}, {ends[i]:.3f}) s covers no feature frame (frames are centred "
                f"every {self.hop_ms} ms): segments must be at least one hop long"
            )
        return first, last

    # ------------------------------------------------------------------ features
    def frame_features(self, audio: np.ndarray) -> np.ndarray:
        """(num_frames, feature_size) MFCC + deltas of one checked mono waveform."""
        if self._mfcc is None:
            self._mfcc = torchaudio.transforms.MFCC(
                sample_rate=self.sampling_rate,
                n_mfcc=self.num_mfcc,
                log_mels=True,
                melkwargs={
                    "n_fft": self.win_samples,
                    "win_length": self.win_samples,
                    "hop_length": self.hop_samples,
                    "n_mels": self.num_mel_bins,
                    "center": False,
                },
            )
        # float32 whatever the caller's autocast: features are numpy arrays and the model casts them itself.
        with torch.no_grad(), torch.autocast(device_type="cpu", enabled=False):
            mfcc = self._fast_mfcc(torch.from_numpy(audio))  # (C, T)
            delta = torchaudio.functional.compute_deltas(mfcc)
            delta2 = torchaudio.functional.compute_deltas(delta)
            frames = torch.cat([mfcc, delta, delta2], dim=0)  # (3C, T)
            if self.normalize_features:
                # Per-coefficient mean and (population) standard deviation over time, computed on the centred values,
                # which is faster than Tensor.std for the same result.
                frames = frames - frames.mean(1, keepdim=True)
                frames = frames.div_(frames.square().mean(1, keepdim=True).sqrt_().add_(1e-5))
        return frames.T.contiguous().numpy()  # (T, 3C)

    def _fast_mfcc(self, waveform: torch.Tensor) -> torch.Tensor:
        """torchaudio's MFCC (same window, mel filters and DCT), computed faster: the frames are cut with `unfold` and
        transformed with one `rfft` instead of `torch.stft`. The mel energies are the squared real and imaginary parts
        times the filterbank with each row repeated: sum_f (re_f^2 + im_f^2) fb_f in one product, with no complex
        `abs()` and no strided sum (speed in benchmarks/RESULTS.md, feature extraction)."""
        mel = self._mfcc.MelSpectrogram
        spectrogram = mel.spectrogram
        n_fft, hop = spectrogram.n_fft, spectrogram.hop_length  # the window is n_fft long (frame_features)
        filterbank = mel.mel_scale.fb.repeat_interleave(2, dim=0)  # (2 * freq, n_mels): rows for re and im
        # torch.stft's center=False framing: frame t is samples [t * hop, t * hop + n_fft), windowed.
        frames = waveform.unfold(0, n_fft, hop)  # (T, n_fft) view
        mels = []
        # Blocks of frames keep each temporary small: whole-passage spectra made the allocator map fresh pages on
        # every call, and the page faults slowed it.
        for block in frames.split(_FRAMES_PER_BLOCK):
            spec = torch.fft.rfft(block * spectrogram.window, n=n_fft, dim=1)  # (t, freq) complex
            parts = torch.view_as_real(spec).square_()  # (t, freq, 2): re^2, im^2, in place
            mels.append(parts.view(len(block), -1) @ filterbank)  # (t, n_mels)
        mels = torch.cat(mels) if len(mels) > 1 else mels[0]
        return (torch.log(mels.add_(1e-6)) @ self._mfcc.dct_mat).T  # (n_mfcc, T)

    def extract(self, audio, word_segments, sampling_rate=None) -> tuple[np.ndarray, np.ndarray]:
        """One utterance -> (segments, frames, feature_size) features padded with `padding_value`, and frame counts."""
        self.check_sampling_rate(sampling_rate)
        return self.extract_checked(self.to_mono(audio), word_segments)

    def extract_checked(self, audio: np.ndarray, word_segments, frames: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
        """`extract` for a waveform that `to_mono` already returned (the processor checks each passage once).
        `frames`: the waveform's `frame_features`, where the caller has them already (not computed again)."""
        first, last = self.segment_frames(word_segments, audio.size)
        if frames is None:
            frames = self.frame_features(audio)
        else:
            expected = (self.num_frames(audio.size), self.feature_size)
            if tuple(frames.shape) != expected:
                raise ValueError(f"frames of shape {tuple(frames.shape)} do not belong to {audio.size} samples: "
                                 f"expected {expected}")
        lengths = np.minimum(last - first, self.max_frames_per_segment)
        steps = np.arange(lengths.max())
        index = np.minimum(first[:, None] + steps[None, :], frames.shape[0] - 1)  # (S, T)
        features = frames[index]  # (S, T, F): one gather, no loop over segments
        features[steps[None, :] >= lengths[:, None]] = self.padding_value
        return features, lengths

    def __call__(self, audio, word_segments, sampling_rate=None, return_tensors=None, **kwargs) -> BatchFeature:
        """
        Args:
            audio: one mono waveform (1-D array, tensor or list of floats) or a list of them.
            word_segments: the (start, end) times in seconds of each word, or a list of such lists (one per waveform).
            sampling_rate: the rate of `audio`; must equal `self.sampling_rate`.

        Returns:
            `BatchFeature` with `audio_features` (batch, segments, frames, feature_size) and `audio_feature_lengths`
            (batch, segments); a padded segment has length 0.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        batched = isinstance(audio, (list, tuple)) and len(audio) > 0 and not np.isscalar(audio[0])
        audios = list(audio) if batched else [audio]
        segments = list(word_segments) if batched else [word_segments]
        if len(audios) != len(segments):
            raise ValueError(f"got {len(audios)} waveforms but {len(segments)} lists of word segments")
        extracted = [self.extract(a, s, sampling_rate) for a, s in zip(audios, segments)]
        features, lengths = self.pad_segments([f for f, _ in extracted], [n for _, n in extracted])
        return BatchFeature(
            {"audio_features": features, "audio_feature_lengths": lengths}, tensor_type=return_tensors
        )

    def pad_segments(self, features: list, lengths: list) -> tuple[np.ndarray, np.ndarray]:
        """Stack per-example (S_i, T_i, F) features into (B, max S, max T, F) and lengths into (B, max S)."""
        max_segments = max(f.shape[0] for f in features)
        max_frames = max(f.shape[1] for f in features)
        out = np.full((len(features), max_segments, max_frames, self.feature_size), self.padding_value, np.float32)
        out_lengths = np.zeros((len(features), max_segments), np.int64)
        for i, (f, n) in enumerate(zip(features, lengths)):
            out[i, : f.shape[0], : f.shape[1]] = f
            out_lengths[i, : len(n)] = n
        return out, out_lengths


SpeechBertFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = ["SpeechBertFeatureExtractor"]
