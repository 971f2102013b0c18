import numpy as np
import pytest
import torch

from speechbert import SpeechBertFeatureExtractor, feature_extraction_speechbert

from .conftest import make_passage


@pytest.fixture
def extractor():
    return SpeechBertFeatureExtractor(max_frames_per_segment=40)


def test_shapes_and_lengths(extractor, passage):
    audio, segments, _ = passage
    out = extractor(audio, segments, sampling_rate=16000, return_tensors="pt")
    features, lengths = out["audio_features"], out["audio_feature_lengths"]
    assert features.dtype == torch.float32 and lengths.dtype == torch.int64
    assert features.shape[:2] == (1, len(segments)) and features.shape[-1] == 39
    assert features.shape[2] == int(lengths.max())
    # A 0.15-0.35 s word at a 10 ms hop owns 15-35 frames.
    assert (lengths >= 14).all() and (lengths <= 36).all()


def test_segments_are_slices_of_one_utterance_computation(extractor, passage):
    audio, segments, _ = passage
    frames = extractor.frame_features(extractor.to_mono(audio))
    first, last = extractor.segment_frames(segments, audio.size)
    features, lengths = extractor.extract(audio, segments, sampling_rate=16000)
    for i in range(len(segments)):
        n = lengths[i]
        np.testing.assert_array_equal(features[i, :n], frames[first[i] : first[i] + n])
        assert (features[i, n:] == 0).all()
    # Frame centres: first frame of a segment starting at s is centred at or after s.
    centres = first * 0.01 + 0.0125
    assert np.all(centres >= np.array(segments)[:, 0] - 1e-9)
    assert np.all(centres - 0.01 < np.array(segments)[:, 0])


def test_normalised_per_utterance(extractor, passage):
    frames = extractor.frame_features(passage[0])
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-3)


def test_features_stay_float32_under_the_callers_autocast(extractor, passage):
    """A user who wraps a pipeline call in CPU bf16 autocast gets the same float32 features (numpy has no bfloat16:
    the MFCC's matrix products under autocast used to come back bf16 and fail in .numpy())."""
    expected = extractor.frame_features(passage[0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        frames = extractor.frame_features(passage[0])
        features, _ = extractor.extract(passage[0], passage[1], sampling_rate=16000)
    assert frames.dtype == np.float32 and features.dtype == np.float32
    np.testing.assert_array_equal(frames, expected)


def test_long_segment_is_capped():
    extractor = SpeechBertFeatureExtractor(max_frames_per_segment=20)
    audio, _, _ = make_passage(3)
    features, lengths = extractor.extract(audio, [(0.0, 0.5)], sampling_rate=16000)
    assert lengths.tolist() == [20] and features.shape[1] == 20


def test_batch_pads_segments_and_frames(extractor):
    a1, s1, _ = make_passage(4, seed=1)
    a2, s2, _ = make_passage(7, seed=2)
    out = extractor([a1, a2], [s1, s2], sampling_rate=16000)
    assert out["audio_features"].shape[:2] == (2, 7)
    assert (out["audio_feature_lengths"][0, 4:] == 0).all() and (out["audio_feature_lengths"][1] > 0).all()
    alone = extractor(a1, s1, sampling_rate=16000)
    n = alone["audio_features"].shape[2]
    np.testing.assert_array_equal(out["audio_features"][0, :4, :n], alone["audio_features"][0])


def test_int16_pcm_is_scaled(extractor, passage):
    audio, segments, _ = passage
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    a = extractor.extract(pcm, segments, sampling_rate=16000)[0]
    b = extractor.extract(pcm.astype(np.float32) / 32767, segments, sampling_rate=16000)[0]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_stereo_is_an_error_unless_downmix_is_asked(extractor, passage):
    audio, segments, _ = passage
    stereo = np.stack([audio, audio * 0.5])
    with pytest.raises(ValueError, match=r"shape \(2, \d+\).*mono.*downmix=True"):
        extractor(stereo, segments, sampling_rate=16000)
    downmixed = SpeechBertFeatureExtractor(max_frames_per_segment=40, downmix=True)
    np.testing.assert_array_equal(
        downmixed.extract(stereo, segments, sampling_rate=16000)[0],
        extractor.extract(stereo.mean(0), segments, sampling_rate=16000)[0],
    )
    with pytest.raises(ValueError, match=r"shape \(3, \d+\): downmix=True averages .* stereo, not 3 rows"):
        downmixed.extract(np.stack([audio] * 3), segments, sampling_rate=16000)  # never 3 passages averaged


@pytest.mark.parametrize(
    "audio, segments, sampling_rate, message",
    [
        (None, None, 8000, r"sampling_rate=8000 Hz but SpeechBERT expects 16000 Hz"),
        (None, None, None, r"sampling_rate is required.*16000"),
        (np.zeros(0, np.float32), None, 16000, r"audio is empty"),
        (np.zeros(16000, np.float32), None, 16000, r"audio is silent: peak amplitude 0"),
        ("nan", None, 16000, r"audio has 3 NaN or infinite samples"),
        (np.full(100, 0.1, np.float32), [(0.0, 0.005)], 16000, r"at least one 25.0 ms window"),
        (None, [], 16000, r"word_segments is empty"),
        (None, [(0.1, 0.2), (0.3, 9.0)], 16000, r"word segment 1 \(0.300, 9.000\) s lies outside the audio"),
        (None, [(-0.5, 0.2)], 16000, r"word segment 0 \(-0.500, 0.200\) s lies outside"),
        (None, [(0.1, 0.2), (0.5, 0.4)], 16000, r"word segment 1 \(0.500, 0.400\) s is reversed"),
        (None, [(0.1, 0.5), (0.3, 0.6)], 16000, r"segment 1 starts at 0.300 s before segment 0 ends at 0.500 s"),
        (None, [(0.5, 0.6), (0.1, 0.2)], 16000, r"segment 1 starts at 0.100 s before segment 0 ends"),
        (None, [(0.103, 0.112)], 16000, r"word segment 0 \(0.103, 0.112\) s covers no feature frame"),
        (None, [(0.1, float("nan"))], 16000, r"NaN or infinite times"),
        (None, [0.1, 0.2], 16000, r"list of \(start, end\) pairs"),
        (None, [("a", "b")], 16000, r"word_segments must hold numbers \(seconds\)"),
    ],
)
def test_bad_input_is_named(extractor, passage, audio, segments, sampling_rate, message):
    if audio is None:
        audio = passage[0]
    elif isinstance(audio, str):
        audio = passage[0].copy()
        audio[[5, 50, 500]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(ValueError, match=message):
        extractor(audio, passage[1] if segments is None else segments, sampling_rate=sampling_rate)


def test_mfcc_equals_torchaudio_mfcc():
    """The front end computes the power spectrum itself (faster); it must stay torchaudio's MFCC."""
    import torch
    import torchaudio

    extractor = SpeechBertFeatureExtractor()
    # 12 s: 1,198 frames, so the spectrum is computed in several blocks (_FRAMES_PER_BLOCK) and joined.
    audio = (0.1 * np.random.default_rng(3).standard_normal(16000 * 12)).astype(np.float32)
    reference = torchaudio.transforms.MFCC(
        sample_rate=16000, n_mfcc=13, log_mels=True,
        melkwargs={"n_fft": 400, "win_length": 400, "hop_length": 160, "n_mels": 40, "center": False},
    )(torch.from_numpy(audio))
    extractor.frame_features(audio)  # builds the transform
    ours = extractor._fast_mfcc(torch.from_numpy(audio))
    assert ours.shape == reference.shape == (13, 1 + (len(audio) - 400) // 160)
    assert ours.shape[1] > 2 * feature_extraction_speechbert._FRAMES_PER_BLOCK
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-4)
