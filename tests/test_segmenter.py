"""The learned word segmenter: frame labels, the decoder, boundary scores, the model part and its training script."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForQuestionAnswering

from speechbert import SpeechBertConfig, SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering
from speechbert.segmentation_speechbert import (
    BEGIN,
    INSIDE,
    SILENCE,
    SpeechBertWordSegmenter,
    boundaries,
    boundary_scores,
    decode_segments,
    frame_labels,
    frame_time,
)

from .conftest import need_binaries, seeded


def test_frame_labels_by_hand():
    labels = frame_labels([1, 4, 9], [4, 9, 10], 12, begin_frames=2)
    S, B, I = SILENCE, BEGIN, INSIDE
    assert labels.tolist() == [S, B, B, I, B, B, I, I, I, B, S, S]


def sure_logits(labels):
    """Logits a perfect segmenter would give for `labels`."""
    return torch.nn.functional.one_hot(torch.as_tensor(labels), 3).float() * 20


def test_decoder_recovers_words_that_touch_and_words_after_pauses():
    # Words [2, 6), [6, 11) touch; [14, 20) follows a pause.
    labels = frame_labels([2, 6, 14], [6, 11, 20], 25)
    segments = decode_segments(sure_logits(labels), hop_s=0.01, window_s=0.025, min_word_frames=2)
    expected = [tuple(np.round(frame_time(np.array(p), 0.01, 0.025), 4)) for p in ([2, 6], [6, 11], [14, 20])]
    np.testing.assert_allclose(np.array(segments), np.array(expected, np.float64))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(3, 30)), min_size=1, max_size=12))
def test_decoded_segments_own_exactly_their_frames(words):
    """For any words (gaps of 0-6 frames, lengths 3-30), a perfect segmenter's segments, sliced by the feature
    extractor's own rule, give back each word's frames."""
    fe = SpeechBertFeatureExtractor()
    first, last, t = [], [], 1
    for gap, length in words:
        t += gap
        first.append(t)
        last.append(t + length)
        t += length
    num_frames = t + 3
    labels = frame_labels(first, last, num_frames)
    segments = decode_segments(sure_logits(labels), fe.hop_ms / 1000, fe.window_ms / 1000, min_word_frames=3)
    num_samples = (num_frames - 1) * fe.hop_samples + fe.win_samples
    got_first, got_last = fe.segment_frames(segments, num_samples)
    # Touching words are told apart by BEGIN; words after a gap start their own run.
    assert got_first.tolist() == first and got_last.tolist() == last


def test_decoder_threshold_short_pieces_and_errors():
    probs = np.full((30, 3), 0.0)
    probs[:, INSIDE] = 1.0
    probs[[0, 10, 12], BEGIN] = [0.9, 0.45, 0.9]  # frame 10 is below a 0.5 threshold, 12 is too close to 10
    probs[[0, 10, 12], INSIDE] = [0.1, 0.55, 0.1]
    logits = torch.log(torch.as_tensor(probs) + 1e-6)
    assert len(decode_segments(logits, threshold=0.5, min_word_frames=3)) == 2  # starts 0 and 12
    assert len(decode_segments(logits, threshold=0.4, min_word_frames=3)) == 2  # 10 and 12: one peak wins
    assert len(decode_segments(logits, threshold=0.4, min_word_frames=2)) == 3  # 2 frames apart is allowed now
    assert len(decode_segments(logits, threshold=0.95, min_word_frames=3)) == 1  # only the run's own start
    # A start 2 frames before the end of the speech leaves a last piece too short to be a word: it joins the one before.
    short = probs.copy()
    short[28, BEGIN], short[28, INSIDE] = 0.9, 0.1
    found = decode_segments(torch.log(torch.as_tensor(short) + 1e-6), threshold=0.5, min_word_frames=3)
    assert len(found) == 2 and found[-1][1] == pytest.approx(frame_time(30, 0.01, 0.025), abs=1e-4)
    with pytest.raises(ValueError, match=r"shape \(frames, 3\)"):
        decode_segments(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="threshold"):
        decode_segments(logits, threshold=1.5)
    assert decode_segments(sure_logits(np.zeros(20, np.int64))) == []  # silence: no words


def band_centre_logits(first, last, num_frames, begin_frames=3):
    """Logits of a segmenter trained with `begin_frames`-wide BEGIN bands whose P(BEGIN) peaks at each band's centre
    (as trained ones do: `run_segmenter.start_offsets`), not at the word's first frame."""
    labels = frame_labels(first, last, num_frames, begin_frames)
    probs = np.eye(3)[labels] * 0.9 + 0.05
    for a in first:
        probs[a : a + begin_frames, BEGIN] = [0.6, 0.9, 0.6][:begin_frames]  # the centre frame a + 1 peaks
        probs[a : a + begin_frames, INSIDE] = 1 - probs[a : a + begin_frames, BEGIN] - 0.05
    return torch.log(torch.as_tensor(probs))


def test_decoder_start_shift_puts_words_back_on_their_first_frames():
    first, last = [2, 8, 15, 30], [8, 15, 24, 38]  # three touching words, then one after a pause
    logits = band_centre_logits(first, last, 42)
    fe = SpeechBertFeatureExtractor()
    num_samples = 41 * fe.hop_samples + fe.win_samples

    def owned(shift):
        segments = decode_segments(logits, fe.hop_ms / 1000, fe.window_ms / 1000, 0.5, 3, start_shift=shift)
        got_first, got_last = fe.segment_frames(segments, num_samples)
        return got_first.tolist(), got_last.tolist()

    # Without the shift each word inside a speech run starts at its band's peak, one frame late, and the word before
    # takes that frame; a run's first word starts where the speech does either way.
    assert owned(0) == ([2, 9, 16, 30], [9, 16, 24, 38])
    assert owned(1) == (first, last)
    # A start moved onto (or before) its run's start is dropped, not moved out of the run: with 7 frames, the peak at
    # 9 lands on the run's start 2 and goes; the peak at 16 moves to 9.
    assert owned(7) == ([2, 9, 30], [9, 24, 38])
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="start_shift"):
            decode_segments(logits, start_shift=bad)


def test_start_offsets_and_their_median_by_hand(tiny_corpus, processor):
    import run_segmenter as rs
    from sqa_train.data import PassageFrames, load_corpus

    rows = rs.passage_rows(load_corpus(tiny_corpus)["test"])[:1]
    frames = PassageFrames(processor.feature_extractor)
    first, last, num_frames = rs.reference_frames(frames, rows[0])
    touching = [i for i in range(1, len(first)) if first[i] == last[i - 1]]
    assert touching, "the fixture passage needs words read without a pause"
    logits = {rows[0]["paragraph_id"]: band_centre_logits(first, last, num_frames)}
    config = SpeechBertConfig(segmenter_min_word_frames=2)
    counts = rs.start_offsets(rows, logits, config, frames, threshold=0.5)
    assert counts == {-2: 0, -1: 0, 0: 0, 1: len(touching), 2: 0}  # every start inside a run is one frame late
    assert rs.median_offset(counts) == 1
    assert rs.median_offset({-1: 5, 0: 1, 1: 1}) == 0  # never moved later
    assert rs.median_offset({0: 2, 1: 2}) == 1 and rs.median_offset({0: 3, 1: 2}) == 0  # half rounds up
    assert rs.median_offset({0: 0, 1: 0}) == 0  # nothing matched: no shift


def test_boundary_scores_by_hand():
    reference = [(0.10, 0.30), (0.30, 0.60)]  # boundaries 0.10, 0.30, 0.60
    predicted = [(0.11, 0.27), (0.27, 0.45), (0.45, 0.62)]  # 0.11, 0.27, 0.45, 0.62
    assert boundaries(reference).tolist() == [0.10, 0.30, 0.60]
    s = boundary_scores(predicted, reference, tolerance=0.02)
    assert (s["hits"], s["predicted_boundaries"], s["reference_boundaries"]) == (2, 4, 3)  # 0.11 and 0.62
    assert s["precision"] == pytest.approx(50) and s["recall"] == pytest.approx(200 / 3)
    assert s["word_ratio"] == pytest.approx(1.5)
    assert boundary_scores(predicted, reference, tolerance=0.05)["hits"] == 3


def test_segmenter_is_part_of_the_checkpoint_only_when_configured(tmp_path, tester):
    plain = seeded(SpeechBertForQuestionAnswering, tester.config())
    assert plain.bert.word_segmenter is None
    with pytest.raises(ValueError, match="no word segmenter"):
        plain.bert.segment_words(torch.zeros(50, 39))
    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True, segmenter_hidden_size=8))
    assert isinstance(model.bert.word_segmenter, SpeechBertWordSegmenter)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "segmentation_speechbert.py").is_file()  # the Hub code travels with the checkpoint
    loaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path, trust_remote_code=True)
    frames = torch.randn(1, 80, 39)
    torch.testing.assert_close(loaded.bert.word_segmenter(frames), model.bert.word_segmenter(frames))
    segments = loaded.bert.segment_words(frames[0])
    assert isinstance(segments, list) and len(segments) == 1
    assert all(0 <= s < e for s, e in segments[0])


def reference_segmenter(segmenter, frames):
    """The segmenter written with PyTorch's own convolutions over (B, C, T) frames: what `_convolve` must equal."""
    x = torch.nn.functional.gelu(segmenter.input(frames.transpose(1, 2)))
    for conv, norm in zip(segmenter.layers, segmenter.norms):
        x = x + torch.nn.functional.gelu(norm(conv(x).transpose(1, 2)).transpose(1, 2))
    return segmenter.output(x.transpose(1, 2))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kernel=st.sampled_from([1, 3, 5, 7]), layers=st.integers(1, 4), frames=st.integers(1, 40),
       batch=st.integers(1, 3))
def test_segmenter_network_equals_pytorch_convolutions(tester, kernel, layers, frames, batch):
    config = tester.config(word_segmenter=True, segmenter_hidden_size=6, segmenter_kernel_size=kernel,
                           segmenter_num_layers=layers)
    torch.manual_seed(kernel * 100 + layers * 10 + frames)
    segmenter = SpeechBertWordSegmenter(config)
    for param in segmenter.parameters():  # LayerNorm starts at (1, 0): move it too
        torch.nn.init.normal_(param, std=0.3)
    x = torch.randn(batch, frames, config.feature_size, requires_grad=True)
    got, expected = segmenter(x), reference_segmenter(segmenter, x)
    assert got.shape == (batch, frames, 3)  # a receptive field wider than the passage still keeps its length
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    grads = torch.autograd.grad(got.square().sum(), [x, *segmenter.parameters()])
    expected_grads = torch.autograd.grad(expected.square().sum(), [x, *segmenter.parameters()])
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_segmenter_config_is_checked(tester):
    for field, value, message in (("segmenter_kernel_size", 4, "odd"), ("segmenter_threshold", 1.0, r"\(0, 1\)"),
                                  ("segmenter_num_layers", 0, "positive"),
                                  ("segmenter_start_shift", -1, r"segmenter_start_shift must be a finite number >= 0, got -1")):
        with pytest.raises(ValueError, match=message):
            tester.config(**{field: value})
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    with pytest.raises(StrictDataclassFieldValidationError, match="word_segmenter.*expected bool"):
        tester.config(word_segmenter="yes")
    with pytest.raises(StrictDataclassFieldValidationError, match="segmenter_start_shift.*expected int"):
        tester.config(segmenter_start_shift=True)  # frames: a bool or a fraction is refused before any decoding


def test_segmenter_weights_are_initialised_when_the_checkpoint_lacks_them(tmp_path, tester):
    seeded(SpeechBertForQuestionAnswering, tester.config()).save_pretrained(tmp_path)
    config = SpeechBertConfig.from_pretrained(tmp_path, word_segmenter=True)
    model = SpeechBertForQuestionAnswering.from_pretrained(tmp_path, config=config)
    for name, param in model.bert.word_segmenter.named_parameters():
        assert torch.isfinite(param).all() and param.abs().max() < 100, name
    assert model.bert.word_segmenter.input.weight.std() > 0


@pytest.mark.slow
def test_run_segmenter_trains_measures_and_saves(tmp_path, tiny_corpus, tiny_text_bert, capsys):
    import run_segmenter

    out = tmp_path / "seg"
    common = ["--model_name_or_path", str(tiny_text_bert), "--dataset", str(tiny_corpus), "--output_dir", str(out),
              "--audio_cache_dir", str(tmp_path / "cache"), "--report_to", "none", "--num_train_epochs", "3",
              "--learning_rate", "3e-3", "--per_device_train_batch_size", "2", "--max_frames_per_item", "200",
              "--save_strategy", "no", "--disable_tqdm", "true", "--config_overrides", "segmenter_hidden_size=16"]
    run_segmenter.main(common)
    results = json.loads((out / "segmenter.json").read_text())
    assert set(results["splits"]) == {"validation", "test"}
    assert set(results["thresholds"]) == {"0.2", "0.3", "0.4", "0.5", "0.6", "0.7"}
    row = results["splits"]["test"]["all"]
    assert row["passages"] == 1 and 0 <= row["f1_20ms"] <= row["f1_50ms"] <= 100
    assert any(k.startswith("voice:") for k in results["splits"]["test"])
    assert set(results["asr_splits"]) == {"validation", "test"}  # pocketsphinx's word times, scored the same way
    asr = results["asr_splits"]["test"]["all"]
    assert asr["passages"] == 1 and 0 < asr["f1_50ms"] <= 100 and asr["word_ratio"] > 0
    model = AutoModelForQuestionAnswering.from_pretrained(out, trust_remote_code=True)
    assert model.config.word_segmenter and model.config.segmenter_hidden_size == 16
    assert model.config.segmenter_threshold == results["threshold"]
    assert model.config.segmenter_start_shift == results["start_shift"] == run_segmenter.median_offset(
        {int(k): v for k, v in results["start_offsets"].items()})
    assert "P / R / F1 at 20 ms" in capsys.readouterr().out
    # A rerun with the same settings reuses the step; other settings are refused, naming what changed.
    run_segmenter.main(common)
    with pytest.raises(ValueError, match="segmenter_hidden_size"):
        run_segmenter.main(common[:-1] + ["segmenter_hidden_size=8"])
    with pytest.raises(ValueError, match="only segmenter_"):
        run_segmenter.main(common[:-1] + ["audio_frame_stack=2"])


def test_run_segmenter_hears_the_train_passages_again_pitch_shifted(tmp_path, tiny_corpus, tiny_text_bert):
    """--pitch_cents (the voice-robustness recipe of step 1) doubles the segmenter's train passages with sox-shifted
    copies, is part of the step's settings (a finished step with other shifts is refused) and is checked first."""
    need_binaries("sox")
    import run_segmenter

    out, cache = tmp_path / "seg", tmp_path / "cache"
    common = ["--model_name_or_path", str(tiny_text_bert), "--dataset", str(tiny_corpus), "--output_dir", str(out),
              "--audio_cache_dir", str(cache), "--report_to", "none", "--max_steps", "1",
              "--per_device_train_batch_size", "2", "--max_frames_per_item", "200", "--save_strategy", "no",
              "--disable_tqdm", "true", "--eval_splits", "none", "--config_overrides", "segmenter_hidden_size=8"]
    run_segmenter.main(common + ["--pitch_cents", "300", "500"])
    settings = json.loads((out / "segmenter" / "settings.json").read_text())
    assert settings["pitch_cents"] == [300, 500] and settings["train_questions"] == 2  # the passage and its copy
    assert len(list(cache.glob("*.pitch+*.flac"))) == 1
    with pytest.raises(ValueError, match="other settings"):
        run_segmenter.main(common + ["--pitch_cents", "-300"])
    with pytest.raises(ValueError, match=r"--pitch_cents must be non-zero shifts in \[-1200, 1200\] cents, got \[0\]"):
        run_segmenter.main(common + ["--pitch_cents", "0"])
    with pytest.raises(ValueError, match=r"--exclude_train_voices \['nobody'\]: no training passage"):
        run_segmenter.main(common + ["--exclude_train_voices", "nobody"])


def test_run_segmenter_learns_from_extra_speech(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    """--extra_records (the step-1 speech folders: other voices reading the train passages) join the segmenter's
    train passages, are part of the step's settings and are checked before the model loads; a left-out voice's
    readings are dropped from them too."""
    need_binaries("flite", "sox")
    import run_segmenter
    from sqa_data import augment
    from sqa_data.dataset import read_records

    train_voice = read_records(tiny_corpus)["train"][0]["voice"]
    other = next(v for v in ("rms", "awb", "slt", "kal16") if v != train_voice)
    voices = tmp_path / "voices"
    augment.main(["voices", "--records", str(tiny_corpus), "--output_dir", str(voices), "--voices", other])
    out, cache = tmp_path / "seg", tmp_path / "cache"
    common = ["--model_name_or_path", str(tiny_text_bert), "--dataset", str(tiny_corpus), "--output_dir", str(out),
              "--audio_cache_dir", str(cache), "--report_to", "none", "--max_steps", "1",
              "--per_device_train_batch_size", "2", "--max_frames_per_item", "200", "--save_strategy", "no",
              "--disable_tqdm", "true", "--eval_splits", "none", "--config_overrides", "segmenter_hidden_size=8"]
    run_segmenter.main(common + ["--extra_records", str(voices), "--pitch_cents", "300"])
    settings = json.loads((out / "segmenter" / "settings.json").read_text())
    # The train passage, the other voice's reading of it, and a pitch-shifted copy of each.
    assert settings["extra_passages"] == 1 and settings["train_questions"] == 4
    with pytest.raises(ValueError, match="other settings"):
        run_segmenter.main(common)  # the same step without the extra speech is another step
    left_out = tmp_path / "seg_left_out"
    run_segmenter.main([a if a != str(out) else str(left_out) for a in common] +
                       ["--extra_records", str(voices), "--exclude_train_voices", other])
    assert "extra_passages" not in json.loads((left_out / "segmenter" / "settings.json").read_text())
    # A folder with no speech is named before any model is loaded.
    monkeypatch.setattr(run_segmenter, "load_model", lambda *a: pytest.fail("the model was loaded"))
    with pytest.raises(ValueError, match=r"--extra_records '.*nowhere' holds no speech shards"):
        run_segmenter.main(common + ["--extra_records", str(tmp_path / "nowhere")])


def test_frame_pieces_by_hand():
    from run_segmenter import frame_pieces

    # Words on frames [1, 3), [3, 6) and [8, 12) (the last runs past the 10 frames).
    assert frame_pieces([1, 3, 8], [3, 6, 12], 10, [7, 9, 4]).tolist() == [-1, 7, 7, 9, 9, 9, -1, -1, 4, 4]


def test_word_loss_reaches_the_segmenter_and_only_known_frames(tester):
    from run_segmenter import SegmenterTrainingModule

    config = tester.config(word_segmenter=True, segmenter_hidden_size=8)
    segmenter = SpeechBertWordSegmenter(config)
    embeddings = torch.randn(50, 12)
    frames = torch.randn(2, 20, config.feature_size)
    labels = torch.randint(0, 3, (2, 20))
    plain = SegmenterTrainingModule(segmenter)(frames, labels)["loss"]
    module = SegmenterTrainingModule(segmenter, embeddings, word_loss_weight=0.5, word_loss_stride=3,
                                     word_loss_negatives=5)
    assert module.word_head.out_features == 12 and "word_embeddings" not in module.state_dict()
    none_known = module(frames, labels, torch.full((2, 20), -1))["loss"]
    assert torch.allclose(none_known, plain)  # no word frames: the frame loss alone
    pieces = torch.full((2, 20), -1)
    pieces[0, 3:9], pieces[1, 0:4] = 7, 11
    loss = module(frames, labels, pieces)["loss"]
    assert loss > plain
    loss.backward()
    assert segmenter.input.weight.grad.abs().sum() > 0 and module.word_head.weight.grad.abs().sum() > 0


def test_run_segmenter_word_loss(tmp_path, tiny_corpus, tiny_text_bert):
    """--word_loss_weight trains the segmenter with the auxiliary word loss; it is part of the step's settings, and
    the checkpoint it saves holds the segmenter only (no word head)."""
    import run_segmenter
    from safetensors import safe_open

    out = tmp_path / "seg"
    common = ["--model_name_or_path", str(tiny_text_bert), "--dataset", str(tiny_corpus), "--output_dir", str(out),
              "--audio_cache_dir", str(tmp_path / "cache"), "--report_to", "none", "--max_steps", "2",
              "--per_device_train_batch_size", "2", "--max_frames_per_item", "200", "--save_strategy", "no",
              "--disable_tqdm", "true", "--eval_splits", "none", "--config_overrides", "segmenter_hidden_size=8"]
    run_segmenter.main(common + ["--word_loss_weight", "0.3", "--word_loss_stride", "2"])
    settings = json.loads((out / "segmenter" / "settings.json").read_text())
    assert settings["word_loss"] == {"weight": 0.3, "stride": 2, "negatives": 1024, "temperature": 0.05}
    with safe_open(out / "segmenter" / "model.safetensors", "pt") as f:
        assert any(k.startswith("word_head.") for k in f.keys())  # the step's weights, for resuming
    with safe_open(out / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any("word_segmenter" in k for k in keys) and not any("word_head" in k for k in keys)
    run_segmenter.main(common + ["--word_loss_weight", "0.3", "--word_loss_stride", "2"])  # reused
    with pytest.raises(ValueError, match="other settings"):
        run_segmenter.main(common)
    for flag, value in (("--word_loss_weight", "-1"), ("--word_loss_stride", "0"), ("--word_loss_negatives", "0")):
        with pytest.raises(ValueError, match=f"{flag} must be"):
            run_segmenter.main(common + [flag, value])


# ------------------------------------------------------------------------------------------- the pipeline
@pytest.fixture
def segmenting_qa(tester, processor):
    """A pipeline whose checkpoint has a segmenter that calls every frame the inside of one word."""
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

    register()
    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True, segmenter_hidden_size=8))
    with torch.no_grad():
        model.bert.word_segmenter.output.weight.zero_()
        model.bert.word_segmenter.output.bias.copy_(torch.tensor([0.0, -10.0, 10.0]))
    return SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")


def test_pipeline_uses_the_checkpoints_segmenter_without_asr(segmenting_qa, passage, monkeypatch):
    from speechbert import pipeline_speechbert

    audio, segments, words = passage

    def refuse(audio):
        raise AssertionError("speech recognition ran although the checkpoint has a segmenter")

    monkeypatch.setattr(pipeline_speechbert, "recognize_words", refuse)
    answer = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000)
    duration = len(audio) / 16000
    assert answer["segment_start"] == answer["segment_end"] == 0  # one word: the whole passage
    assert answer["start"] < 0.01 and abs(answer["end"] - duration) < 0.03  # the first and last frames
    assert answer["answer"] is None  # no recognition, no words
    named = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, words=["everything"])
    assert named["answer"] == "everything"
    # Given segments win; segmenter="asr" recognises.
    given = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
    assert given["answer"] in " ".join(words)
    monkeypatch.setattr(pipeline_speechbert, "recognize_words", lambda a: (words, segments))
    recognised = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, segmenter="asr")
    assert recognised == given


def test_pipeline_under_bf16_autocast(segmenting_qa, passage):
    """A call wrapped in CPU bf16 autocast (a user's speed-up) answers at given and at segmenter segments, with the
    same answer span as in float32 here (the features stay float32 under autocast)."""
    audio, segments, words = passage
    plain = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000)
    given = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000)
        auto_given = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments,
                                   words=words)
    assert (auto["start"], auto["end"]) == (plain["start"], plain["end"])
    assert auto_given["answer"] in " ".join(words) and 0 <= auto_given["score"] <= 1
    assert given["answer"] in " ".join(words)


def test_segmenter_path_reads_the_answer_back_from_the_audio(segmenting_qa, passage):
    """No recognition, so no "answer"; with answer_from_audio=True, one word piece per answer segment (from the
    checkpoint's `soft_word_embedding_pieces` when it has them), under bf16 autocast too."""
    audio, _, _ = passage
    found = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, answer_from_audio=True)
    assert found["answer"] is None
    assert len(found["answer_from_audio"].split()) == found["segment_end"] - found["segment_start"] + 1
    tokenizer = segmenting_qa.processor.tokenizer
    allowed = tokenizer.convert_tokens_to_ids(["king", "river"])
    segmenting_qa.model.config.soft_word_embedding_pieces = allowed
    segmenting_qa._readable_pieces_cache = None  # a pipeline reads its model's config once
    restricted = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, answer_from_audio=True)
    assert set(restricted["answer_from_audio"].split()) <= {"king", "river"}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, answer_from_audio=True)
    assert len(auto["answer_from_audio"].split()) == auto["segment_end"] - auto["segment_start"] + 1


def test_segmenter_path_extracts_the_passage_features_once(segmenting_qa, passage, monkeypatch):
    audio, _, _ = passage
    extractor = segmenting_qa.processor.feature_extractor
    calls, original = [], extractor.frame_features
    monkeypatch.setattr(extractor, "frame_features", lambda a: calls.append(1) or original(a))
    answers = segmenting_qa(audio, question=["who ruled ?", "where ?"], sampling_rate=16000)
    assert len(calls) == 1 and len(answers) == 2  # the segmenter's frames serve the QA features too
    # The same answer as when those segments are given and the features extracted afresh.
    calls.clear()
    found = segmenting_qa(audio, question="who ruled ?", sampling_rate=16000)
    segments = segmenting_qa.model_segments(extractor.to_mono(audio))
    assert segmenting_qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments) == found
    assert len(calls) == 3  # once with the segmenter, once for model_segments, once for the given segments


def test_given_frames_must_belong_to_the_audio(processor, passage):
    audio, segments, _ = passage
    extractor = processor.feature_extractor
    frames = extractor.frame_features(extractor.to_mono(audio))
    expected = extractor.extract_checked(extractor.to_mono(audio), segments)
    given = extractor.extract_checked(extractor.to_mono(audio), segments, frames)
    np.testing.assert_array_equal(given[0], expected[0])
    np.testing.assert_array_equal(given[1], expected[1])
    with pytest.raises(ValueError, match=r"frames of shape \(\d+, 39\) do not belong to \d+ samples"):
        extractor.extract_checked(extractor.to_mono(audio), segments, frames[:-5])
    with pytest.raises(ValueError, match="1 questions but 2 entries in frame_features"):
        processor.prepare(["who ?"], [audio], [segments], 16000, frame_features=[frames, frames])


def test_pipeline_segmenter_argument_is_checked_first(segmenting_qa, tester, processor, passage):
    from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline

    audio, segments, _ = passage
    plain = SpokenQuestionAnsweringPipeline(model=seeded(SpeechBertForQuestionAnswering, tester.config()),
                                            processor=processor, task="spoken-question-answering")
    with pytest.raises(ValueError, match="has no word segmenter"):
        plain(b"not even audio", question="who ?", segmenter="model")  # before the audio is decoded
    with pytest.raises(ValueError, match="segmenter must be 'asr'.*'model'.*got 'pocketsphinx'"):
        segmenting_qa(audio, question="who ?", sampling_rate=16000, segmenter="pocketsphinx")
    with pytest.raises(ValueError, match="exclude each other"):
        segmenting_qa(audio, question="who ?", sampling_rate=16000, segmenter="model", word_segments=segments)
    with pytest.raises(ValueError, match="found no speech"):
        with torch.no_grad():
            segmenting_qa.model.bert.word_segmenter.output.bias.copy_(torch.tensor([10.0, -10.0, -10.0]))
        segmenting_qa(audio, question="who ?", sampling_rate=16000)


def test_endpoint_handler_with_a_segmenter_checkpoint(tmp_path, tester, processor, passage, monkeypatch):
    """The handler, loaded from the folder as Inference Endpoints load it, answers with the checkpoint's segmenter;
    `"segmenter": "asr"` in the parameters still reaches the pipeline (and its checks)."""
    import base64
    import io

    import soundfile as sf

    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True, segmenter_hidden_size=8))
    with torch.no_grad():
        model.bert.word_segmenter.output.weight.zero_()
        model.bert.word_segmenter.output.bias.copy_(torch.tensor([0.0, -10.0, 10.0]))
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    monkeypatch.syspath_prepend(str(tmp_path / "ckpt"))
    from handler import EndpointHandler

    buffer = io.BytesIO()
    sf.write(buffer, passage[0], 16000, format="WAV")
    audio = base64.b64encode(buffer.getvalue()).decode()
    handler = EndpointHandler(str(tmp_path / "ckpt"))
    answer = handler({"inputs": {"audio": audio, "question": "Who?"}})
    assert answer["answer"] is None and answer["segment_start"] == answer["segment_end"] == 0
    heard = handler({"inputs": {"audio": audio, "question": "Who?"}, "parameters": {"answer_from_audio": True}})
    assert len(heard["answer_from_audio"].split()) == 1  # JSON's true reaches the pipeline: the one word, read back
    with pytest.raises(ValueError, match="segmenter must be"):
        handler({"inputs": {"audio": audio, "question": "Who?"}, "parameters": {"segmenter": "both"}})


@pytest.mark.slow
def test_run_sqa_speechbert_at_the_segmenters_segments(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    """run_segmenter.py's checkpoint fine-tuned and scored at its own segments, beside the ASR-segment system in the
    same tables; a checkpoint without a segmenter is refused before training."""
    import run_segmenter
    import run_sqa
    from sqa_train import data

    from .test_training import common_args

    seg = tmp_path / "seg"
    run_segmenter.main(["--model_name_or_path", str(tiny_text_bert), "--dataset", str(tiny_corpus), "--output_dir",
                        str(seg), "--audio_cache_dir", str(tmp_path / "audio"), "--report_to", "none", "--max_steps",
                        "3", "--learning_rate", "3e-3", "--save_strategy", "no", "--eval_splits", "none",
                        "--config_overrides", "segmenter_hidden_size=8"])
    calls = []
    original = data.add_model_segments
    monkeypatch.setattr(run_sqa, "add_model_segments", lambda *a: calls.append(1) or original(*a))
    sqa = tmp_path / "sqa"
    run_sqa.main(common_args(sqa, tiny_corpus, tmp_path / "audio") + [
        "--model_name_or_path", str(seg), "--text_model_name_or_path", str(tiny_text_bert), "--do_train",
        "--do_eval", "--max_steps", "2", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
        "--systems", "speechbert,speechbert_segmenter"])
    assert calls
    metrics = json.loads((sqa / "metrics.json").read_text())
    for split in ("validation", "test"):
        assert set(metrics[split]) == {"speechbert", "speechbert_segmenter"}
        found = metrics[split]["speechbert_segmenter"]["overall"]
        assert found["count"] == {"validation": 1, "test": 2}[split] and found["aos"] is not None
    assert "| SpeechBERT, own word segmenter (no ASR) |" in (sqa / "results.md").read_text()
    predictions = json.loads((sqa / "predictions_test.json").read_text())["speechbert_segmenter"]
    for found in predictions.values():
        assert 0 <= found["start_time"] < found["end_time"]
    with pytest.raises(SystemExit, match="has no word segmenter"):
        run_sqa.main(common_args(tmp_path / "plain", tiny_corpus, tmp_path / "audio") + [
            "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--max_steps", "1",
            "--save_strategy", "no", "--max_length", "64", "--stride", "8", "--systems", "speechbert_segmenter"])


def test_train_segments_are_checked_before_any_work(tmp_path, tiny_corpus):
    import run_sqa

    from .test_training import common_args

    base = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio")
    with pytest.raises(ValueError, match=r"--train_segments 'asr words'.*\('asr', 'ref', 'model'\)"):
        run_sqa.main(base + ["--do_train", "--train_segments", "asr", "words"])
    with pytest.raises(ValueError, match="expected distinct values"):
        run_sqa.main(base + ["--do_train", "--train_segments", "asr,asr"])
    with pytest.raises(SystemExit, match="does nothing without --do_train"):
        run_sqa.main(base + ["--do_eval", "--train_segments", "ref"])
    with pytest.raises(SystemExit, match="--systems cascade text has neither"):
        run_sqa.main(base + ["--do_train", "--systems", "cascade", "text", "--train_segments", "ref"])
    assert not (tmp_path / "sqa").exists()


@pytest.mark.slow
def test_run_sqa_trains_speechbert_at_other_segments(tmp_path, tiny_corpus, tiny_text_bert, monkeypatch):
    """--train_segments: the ASR-segment system trains at the forced-alignment and ASR segments (every question once
    at each) and is still evaluated at ASR segments; the choice is part of its settings; 'model' needs a segmenter."""
    import run_sqa

    from .test_training import common_args

    calls = []
    original = run_sqa.speechbert_qa_items

    def recording(rows, *args, train=False, segments="asr", **kwargs):
        found, skipped = original(rows, *args, train=train, segments=segments, **kwargs)
        calls.append((train, segments, len(found)))
        return found, skipped

    monkeypatch.setattr(run_sqa, "speechbert_qa_items", recording)
    args = common_args(tmp_path / "sqa", tiny_corpus, tmp_path / "audio") + [
        "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--do_eval", "--systems", "speechbert",
        "--max_steps", "2", "--save_strategy", "no", "--max_length", "64", "--stride", "8"]
    run_sqa.main(args + ["--train_segments", "ref", "asr"])
    assert [(t, k) for t, k, _ in calls if t] == [(True, "ref"), (True, "asr")]
    assert all(n > 0 for t, _, n in calls if t)
    assert {k for t, k, _ in calls if not t} == {"asr"}
    settings = json.loads((tmp_path / "sqa" / "speechbert" / "settings.json").read_text())
    assert settings["train_segments"] == ["ref", "asr"]
    metrics = json.loads((tmp_path / "sqa" / "metrics.json").read_text())
    assert metrics["test"]["speechbert"]["overall"]["count"] == 2
    # The finished system is not taken for one trained at other segments.
    with pytest.raises(ValueError, match=r"other settings \(train_segments"):
        run_sqa.main(args + ["--train_segments", "ref"])
    with pytest.raises(SystemExit, match="--train_segments model: .* has no word segmenter"):
        run_sqa.main(common_args(tmp_path / "plain", tiny_corpus, tmp_path / "audio") + [
            "--text_model_name_or_path", str(tiny_text_bert), "--do_train", "--systems", "speechbert",
            "--max_steps", "1", "--save_strategy", "no", "--max_length", "64", "--stride", "8",
            "--train_segments", "model"])


def test_model_segments_take_the_asr_words_inside_them_for_scoring():
    from types import SimpleNamespace

    from sqa_train.data import add_model_segments

    class Base:
        def segment_words(self, frames):
            return [[(0.0, 0.5), (0.5, 0.9), (1.2, 2.0)]]

    model = SimpleNamespace(base_model_prefix="bert", bert=Base())
    frames = SimpleNamespace(passage=lambda row: np.zeros((10, 39)))
    row = {"paragraph_id": "p", "asr_words": ["a", "b", "c", "d", "e"], "asr_starts": [0.0, 0.3, 0.9, 1.3, 1.6],
           "asr_ends": [0.2, 0.6, 1.1, 1.5, 1.9]}  # middles 0.1, 0.45, 1.0 (in a pause), 1.4, 1.75
    twin = dict(row)
    assert add_model_segments([row, twin], model, frames) == 1  # one passage, segmented once
    assert row["model_starts"] == [0.0, 0.5, 1.2] and row["model_ends"] == [0.5, 0.9, 2.0]
    assert row["model_words"] == ["a b", "", "d e"] and twin["model_words"] == row["model_words"]
