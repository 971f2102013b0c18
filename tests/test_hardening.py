"""The public entry points under bad or unusual input (issue 12): every case is a ValueError naming the argument,
raised before recognition or inference, or a correct answer; never a silent wrong answer."""

import base64
import io
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbert import SpeechBertForQuestionAnswering
from speechbert import pipeline_speechbert
from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, load_audio, register

from .conftest import make_passage, seeded


@pytest.fixture
def qa(tester, processor):
    register()
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    return SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")


@pytest.fixture
def no_asr(monkeypatch):
    """Recognition must not run: any call fails the test."""
    def refuse(audio):
        raise AssertionError("speech recognition ran before the bad input was rejected")

    monkeypatch.setattr(pipeline_speechbert, "recognize_words", refuse)


def wav_bytes(audio, rate=16000, subtype="PCM_16"):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------- sampling rates
@pytest.mark.parametrize("rate", [16001, 44101, 8001, 767999])
def test_a_rate_sharing_no_factor_with_16k_is_resampled_at_a_bounded_cost(rate, monkeypatch):
    """torchaudio's kernel for 16000 / 16001 is 16000 x 16013 floats (1 GB, seconds): such rates go through the FFT
    path, the usual ones through torchaudio as before; either way a 440 Hz tone stays 440 Hz."""
    import torchaudio

    calls = []
    original = torchaudio.functional.resample
    monkeypatch.setattr(torchaudio.functional, "resample", lambda *a, **k: calls.append(a[1:]) or original(*a, **k))
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    audio = load_audio(wav_bytes(tone, rate))
    assert calls == [] and abs(len(audio) - 16000) <= 1
    assert np.fft.rfftfreq(len(audio), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(audio)))] == pytest.approx(440, abs=1)
    load_audio(wav_bytes(tone[:44100], 44100) if rate != 44100 else wav_bytes(tone, rate))
    assert calls == [(441, 160)]  # 44.1 kHz: torchaudio's windowed sinc, as before


@pytest.mark.parametrize("rate", [1, 3999, 800000, 10**30])
def test_a_rate_no_recording_has_is_an_error_naming_it(rate):
    if rate < 2**31:  # a WAV header holds 32 bits
        with pytest.raises(ValueError, match=rf"sampling rate {rate} Hz is outside \[4000, 768000\] Hz"):
            load_audio(wav_bytes(np.zeros(400, np.float32), rate))
    with pytest.raises(ValueError, match=rf"sampling rate {rate} Hz is outside"):
        load_audio(np.zeros(400, np.float32), sampling_rate=rate)


# ------------------------------------------------------------------------------------------- audio arrays
def test_a_list_of_passages_is_an_error_not_a_stereo_average(passage):
    audio = passage[0]
    for two in ([audio, audio], (audio, audio[: len(audio) // 2]), [audio.tolist(), audio.tolist()]):
        with pytest.raises(ValueError, match=r"audio is a list of 2 arrays: pass one passage per call"):
            load_audio(two, sampling_rate=16000)
    assert load_audio(np.stack([audio, audio]), sampling_rate=16000).shape == audio.shape  # stereo as one array


def test_pcm_values_in_a_float_array_are_an_error(passage):
    audio = passage[0]
    with pytest.raises(ValueError, match=r"float audio reaches 3276\d: float samples lie in \[-1, 1\]"):
        load_audio((audio / np.abs(audio).max() * 32767).astype(np.float32), sampling_rate=16000)
    clipped = np.clip(audio * 3, -1.5, 1.5)  # a loud, clipped float recording is still accepted
    assert load_audio(clipped, sampling_rate=16000).shape == audio.shape


def test_int16_audio_is_scaled_like_the_feature_extractor(qa, passage):
    audio, segments, words = passage
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm, 16000), pcm / 32767, atol=1e-7)
    np.testing.assert_allclose(load_audio(pcm, 16000), qa.processor.feature_extractor.to_mono(pcm), atol=1e-7)
    as_float = qa(pcm.astype(np.float32) / 32767, question="who ruled ?", sampling_rate=16000,
                  word_segments=segments, words=words)
    as_int = qa(pcm, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
    assert as_int["answer"] == as_float["answer"] and as_int["score"] == pytest.approx(as_float["score"], rel=1e-4)
    uint8 = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(pipeline_speechbert.to_float_samples(uint8), [-1.0, 0.0, 127 / 128])


@pytest.mark.parametrize("dtype, scale, centre", [(np.int16, 32767, 0), (np.int32, 2**31 - 1, 0), (np.uint8, 128, 128)])
def test_every_entry_point_converts_pcm_integers_alike(qa, passage, dtype, scale, centre):
    """The feature extractor divided uint8 by 255 without centring it on 128 while the pipeline centred it: the
    processor encoded an offset waveform. Now one conversion (`to_float_samples`) serves both, for each dtype."""
    audio = passage[0]
    pcm = np.round(np.clip(audio, -1, 0.99) * scale + centre).astype(dtype)
    expected = ((pcm.astype(np.float64) - centre) / scale).astype(np.float32)
    extractor = qa.processor.feature_extractor
    np.testing.assert_allclose(extractor.to_mono(pcm), expected, atol=1e-6)
    np.testing.assert_allclose(load_audio(pcm, 16000), expected, atol=1e-6)
    np.testing.assert_allclose(load_audio(wav_bytes(expected, subtype={np.int16: "PCM_16", np.int32: "PCM_32",
                                                                   np.uint8: "PCM_U8"}[dtype])), expected,
                               atol=1.5 / scale)  # a WAV file of those samples, as libsndfile reads it
    features = extractor(pcm, passage[1], sampling_rate=16000)["audio_features"]
    np.testing.assert_allclose(features, extractor(expected, passage[1], sampling_rate=16000)["audio_features"],
                               atol=1e-3)


def test_stereo_arrays_are_down_mixed_in_either_layout(qa, passage):
    audio, segments, words = passage
    expected = qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
    for stereo in (np.stack([audio, audio], 1), np.stack([audio, audio], 0), torch.from_numpy(np.stack([audio] * 2))):
        found = qa(stereo, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
        assert found["answer"] == expected["answer"]
        assert found["score"] == pytest.approx(expected["score"], rel=1e-5)


@pytest.mark.parametrize("shape", [(3, 16000), (16000, 3), (2, 2), (2, 3, 16000)])
def test_arrays_that_are_not_one_passage_are_errors(qa, no_asr, shape):
    with pytest.raises(ValueError, match=rf"audio has shape \({shape[0]}, {shape[1]}"):
        qa(np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 0.1, question="who?",
           sampling_rate=16000)


@pytest.mark.parametrize("rate", ["16000", 16000.5, 0, -8000, True])
def test_sampling_rate_type_is_named(qa, passage, no_asr, rate):
    with pytest.raises(ValueError, match=rf"sampling_rate must be a positive integer .*got {rate!r} "
                                         rf"\({type(rate).__name__}\)"):
        qa(passage[0], question="who?", sampling_rate=rate)


def test_audio_of_unknown_type_is_named(qa, no_asr):
    with pytest.raises(ValueError, match="audio must be a path, bytes, a dict or an array of samples, got int"):
        qa(12345, question="who?", sampling_rate=16000)
    with pytest.raises(ValueError, match="dtype complex64"):
        qa(np.ones(16000, np.complex64), question="who?", sampling_rate=16000)


def test_a_wav_cut_short_warns_with_the_numbers(tmp_path, passage):
    data = wav_bytes(passage[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(data)) == len(passage[0])  # a whole file: no warning
    cut = data[: len(data) // 2]
    with pytest.warns(UserWarning, match=r"cut short: its WAV header declares \d+ bytes of samples but only \d+ "
                                         r"are present \((4\d|50)\.\d%\)"):
        half = load_audio(cut)
    assert abs(len(half) - len(passage[0]) / 2) < 100
    (tmp_path / "cut.wav").write_bytes(cut)
    with pytest.warns(UserWarning, match="cut.wav is cut short"):
        load_audio(tmp_path / "cut.wav")


# ------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": -300}, r"stride must be >= 0, got -300"),
        ({"max_length": 0}, r"max_length must be in \[8, 128\] \(the model's position embeddings\), got 0"),
        ({"max_length": 4096}, r"max_length must be in \[8, 128\]"),
        ({"max_length": "384"}, r"max_length must be an integer, got '384' \(str\)"),
        ({"top_k": "3"}, r"top_k must be an integer, got '3' \(str\)"),
        ({"top_k": 2.5}, r"top_k must be an integer, got 2.5 \(float\)"),
        ({"top_k": 0}, r"top_k must be >= 1, got 0"),
        ({"max_answer_segments": 0}, r"max_answer_segments must be >= 1, got 0"),
        ({"window_batch_size": 0}, r"window_batch_size must be >= 1, got 0"),
        ({"max_length": 64, "stride": 64}, r"stride \(64\) must be smaller than max_length \(64\)"),
        ({"max_length": 16, "stride": 12}, r"max_length=16 leaves \d+ audio positions"),
        ({"words": ["who", None]}, r"words\[1\] of example 0 is None \(NoneType\): expected a string"),
        ({"words": "who ruled"}, r"words of example 0 must be a list of strings, got str"),
        ({"word_segments": [(0.1, "x")]}, r"word_segments must hold numbers"),
        ({"word_segments": [0.1, 0.2]}, r"word_segments must be a non-empty list of \(start, end\) pairs"),
    ],
)
def test_bad_arguments_are_named_before_recognition(qa, passage, no_asr, kwargs, message):
    with pytest.raises(ValueError, match=message):
        qa(passage[0], question="who ruled ?", sampling_rate=16000, **kwargs)


@pytest.mark.parametrize("question, message", [
    (123, r"question must be a string or a list of strings, got int 123"),
    ({"a": 1}, r"question must be a string or a list of strings, got dict"),
    (b"who", r"question must be a string or a list of strings, got bytes"),
    (["who?", 7], r"question 1 must be a string, got int 7"),
    (["who?", "  "], r"question 1 is empty"),
    # Characters the tokenizer reads nothing in: they passed strip() and got a confident answer to no question.
    ("\u200b", r"question 0 \('\\u200b'\) has no word pieces"),
    ("\ufeff", r"question 0 \('\\ufeff'\) has no word pieces"),
    (["who?", "\x00"], r"question 1 \('\\x00'\) has no word pieces"),
    ("\u0301", r"question 0 \('\u0301'\) has no word pieces"),
])
def test_bad_questions_are_named_before_recognition(qa, passage, no_asr, question, message):
    with pytest.raises(ValueError, match=message):
        qa(passage[0], question=question, sampling_rate=16000)


def test_a_question_cut_to_64_pieces_is_a_warning_not_a_silent_answer(qa, passage):
    audio, segments, words = passage
    long_question = " ".join(["who"] * 70) + " ?"  # 71 word pieces in the test vocabulary
    with pytest.warns(UserWarning, match=r"question 1 has 71 word pieces: only its first max_question_length=64"):
        answers = qa(audio, question=["who ruled ?", long_question], sampling_rate=16000, word_segments=segments,
                     words=words, max_length=128)
    assert len(answers) == 2 and all(a["answer"] and a["answer"] in " ".join(words) for a in answers)


def test_non_finite_logits_are_named(qa, passage):
    audio, segments, words = passage
    with torch.no_grad():
        qa.model.qa_outputs.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"the model produced \d+ non-finite \(NaN or infinite\) start/end logits"):
        qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)


# ------------------------------------------------------------------------------------------- memory
def test_windows_run_in_batches_with_features_gathered_per_batch(qa, monkeypatch):
    audio, segments, words = make_passage(300, seed=3)
    questions = [f"who ruled {i} ?" for i in range(7)]
    reference = qa(audio, question=questions, sampling_rate=16000, word_segments=segments, words=words,
                   max_length=64, stride=8, window_batch_size=1000)
    shapes = []
    forward = qa.model.forward
    monkeypatch.setattr(qa.model, "forward", lambda **kw: shapes.append(kw["audio_features"].shape) or forward(**kw))
    batched = qa(audio, question=questions, sampling_rate=16000, word_segments=segments, words=words, max_length=64,
                 stride=8, window_batch_size=3)
    windows = sum(1 for _ in shapes)
    assert windows > 7 and all(s[0] <= 3 for s in shapes)  # many windows, never more than 3 at once
    for a, b in zip(reference, batched):
        assert (a["segment_start"], a["segment_end"]) == (b["segment_start"], b["segment_end"])
        assert a["score"] == pytest.approx(b["score"], rel=1e-4)
    # The preprocessed passage holds its features once, not one padded copy per window.
    prepared = qa.preprocess({"audio": audio, "question": questions}, sampling_rate=16000, word_segments=segments,
                             max_length=64, stride=8)
    assert "audio_features" not in prepared["data"] and len(prepared["extracted"]) == len(questions)
    assert all(f is prepared["extracted"][0] for f in prepared["extracted"])


# ------------------------------------------------------------------------------------------- config kwargs
@pytest.mark.parametrize("kwargs, message", [({"num_mfcc": 0}, "num_mfcc must be a positive number, got 0"),
                                             ({"audio_encoder_type": "transformer"}, "audio_encoder_type must be")])
def test_from_pretrained_keyword_overrides_are_checked(tmp_path, tester, kwargs, message):
    from transformers import AutoConfig, AutoModelForQuestionAnswering

    SpeechBertForQuestionAnswering(tester.config()).save_pretrained(tmp_path)
    for load in (AutoConfig.from_pretrained, AutoModelForQuestionAnswering.from_pretrained):
        with pytest.raises(ValueError, match=message):
            load(tmp_path, trust_remote_code=True, **kwargs)
    config = tester.config()
    config.max_frames_per_segment = 0  # changed after construction: the model checks again
    with pytest.raises(ValueError, match="max_frames_per_segment must be a positive number"):
        SpeechBertForQuestionAnswering(config)


# ------------------------------------------------------------------------------------------- endpoint handler
@pytest.fixture
def handler_class(tmp_path, tester, processor, monkeypatch):
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    monkeypatch.syspath_prepend(str(tmp_path / "ckpt"))
    import importlib

    import handler

    importlib.reload(handler)
    return handler.EndpointHandler, tmp_path / "ckpt"


def test_handler_names_a_missing_folder(handler_class):
    EndpointHandler, _ = handler_class
    with pytest.raises(ValueError, match=r"the checkpoint folder '/no/such/folder' does not exist"):
        EndpointHandler("/no/such/folder")


def test_handler_caps_answers_and_question_length_and_reads_wrapped_base64(handler_class, passage, monkeypatch):
    EndpointHandler, ckpt = handler_class
    handler = EndpointHandler(str(ckpt), max_top_k=5, max_answer_segments=50, max_question_chars=100)
    calls = []
    handler.pipeline = lambda *a, **k: calls.append(k) or {"answer": "ok"}
    audio = base64.b64encode(wav_bytes(passage[0])).decode()
    request = {"inputs": {"audio": audio, "question": "who?"}}
    with pytest.raises(ValueError, match=r"parameter top_k=1e\+09; the limit is 5 \(max_top_k / SPEECHBERT_MAX_TOP_K\)"):
        handler({**request, "parameters": {"top_k": 1e9}})
    with pytest.raises(ValueError, match=r"parameter max_answer_segments=1e\+09; the limit is 50"):
        handler({**request, "parameters": {"max_answer_segments": 1e9}})
    with pytest.raises(ValueError, match=r"question 1 is 101 characters; the limit is 100"):
        handler({"inputs": {"audio": audio, "question": ["who?", "w" * 101]}})
    with pytest.raises(ValueError, match=r"parameters \['question'\] belong in 'inputs'"):
        handler({**request, "parameters": {"question": "x"}})
    assert calls == []
    wrapped = "\n".join(audio[i : i + 76] for i in range(0, len(audio), 76)) + "\n"  # as GNU base64 writes it
    assert handler({"inputs": {"audio": wrapped, "question": "who?"}, "parameters": {"top_k": 5}}) == {"answer": "ok"}
    assert calls == [{"question": "who?", "top_k": 5}]
    monkeypatch.setenv("SPEECHBERT_MAX_TOP_K", "2")
    with pytest.raises(ValueError, match=r"parameter top_k=5; the limit is 2"):
        EndpointHandler(str(ckpt))({**request, "parameters": {"top_k": 5}})


def test_handler_limits_and_blank_questions_come_before_decoding(handler_class, passage, monkeypatch):
    EndpointHandler, ckpt = handler_class
    handler = EndpointHandler(str(ckpt), max_audio_seconds=1, max_questions=2, max_payload_bytes=10**6)
    calls = []
    handler.pipeline = lambda *a, **k: calls.append(1) or {"answer": "ok"}
    audio = base64.b64encode(wav_bytes(passage[0])).decode()  # about 4 s
    short = base64.b64encode(wav_bytes(passage[0][:8000])).decode()
    with pytest.raises(ValueError, match=r"question 0 is empty"):
        handler({"inputs": {"audio": audio, "question": "   "}})
    with pytest.raises(ValueError, match=r"3 questions in one request; the limit is 2"):
        handler({"inputs": {"audio": audio, "question": ["a?", "b?", "c?"]}})
    with pytest.raises(ValueError, match=r"the audio is \d\.\d s long; the limit is 1 s"):
        handler({"inputs": {"audio": audio, "question": "who?"}})
    small = EndpointHandler(str(ckpt), max_payload_bytes=100)
    small.pipeline = handler.pipeline
    with pytest.raises(ValueError, match=r"'audio' is \d+ bytes of base64; the limit is 100"):
        small({"inputs": {"audio": audio, "question": "who?"}})
    assert not calls
    assert handler({"inputs": {"audio": short, "question": "who?"}}) == {"answer": "ok"} and calls == [1]


def test_handler_limits_from_the_environment(handler_class, monkeypatch):
    EndpointHandler, ckpt = handler_class
    monkeypatch.setenv("SPEECHBERT_MAX_QUESTIONS", "5")
    monkeypatch.setenv("SPEECHBERT_MAX_AUDIO_SECONDS", "0")
    handler = EndpointHandler(str(ckpt))
    assert handler.max_questions == 5 and handler.max_audio_seconds is None
    assert handler.max_payload_bytes == 16 * 2**20
    monkeypatch.setenv("SPEECHBERT_MAX_QUESTIONS", "many")
    with pytest.raises(ValueError, match="SPEECHBERT_MAX_QUESTIONS='many' is not a number"):
        EndpointHandler(str(ckpt))
    with pytest.raises(ValueError, match="max_questions must be a number >= 0"):
        EndpointHandler(str(ckpt), max_questions=-1)
    # "nan" parses as a float, and every comparison with it is false: it used to switch the limit off silently.
    monkeypatch.setenv("SPEECHBERT_MAX_QUESTIONS", "nan")
    with pytest.raises(ValueError, match=r"max_questions must be a number >= 0 \(0: no limit\), got nan"):
        EndpointHandler(str(ckpt))
    with pytest.raises(ValueError, match="max_audio_seconds must be a number >= 0"):
        EndpointHandler(str(ckpt), max_audio_seconds=float("nan"))


# ------------------------------------------------------------------------ model arguments of the scripts
def test_model_references_are_checked_before_any_work(tmp_path, monkeypatch, capsys, tiny_text_bert):
    """A mistyped model path is named at once, before any data is read: it used to reach transformers a minute later
    as a Hub connection error."""
    from huggingface_hub import constants

    import run_pretraining
    import run_segmenter
    import run_sqa
    from sqa_train import cascade, codes
    from sqa_train.models import check_model_reference

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # CI sets HF_HUB_OFFLINE=1; the offline case is below
    (tmp_path / "outputs" / "empty").mkdir(parents=True)
    (tmp_path / "weights.bin").write_bytes(b"")
    assert check_model_reference("--m", str(tiny_text_bert)) == str(tiny_text_bert)
    assert check_model_reference("--m", "bert-base-uncased") == "bert-base-uncased"  # a Hub id, online
    for value, message in [("outputs/sqa", "no such folder \\(the folder outputs/ exists here"),
                            ("outputs/empty", "the folder has no config.json"),
                            ("weights.bin", "is a file"),
                            (str(tmp_path / "missing"), "no such folder, and not a Hub repo id"),
                            ("", "expected a model folder or a Hub repo id")]:
        with pytest.raises(ValueError, match=f"--m {value}.*{message}" if value else message):
            check_model_reference("--m", value)
    # Offline, a Hub id is accepted only when the cache has it.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "hub" / "models--org--cached" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--cached" / "refs" / "main").write_text("0" * 40)
    assert check_model_reference("--m", "org/cached") == "org/cached"
    with pytest.raises(ValueError, match="--m org/other: no such folder, and not in the Hub cache"):
        check_model_reference("--m", "org/other")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    # Every script's model argument goes through it.
    with pytest.raises(ValueError, match="--model_name_or_path outputs/sqa: no such folder"):
        run_sqa.ModelArguments(model_name_or_path="outputs/sqa", text_model_name_or_path=str(tiny_text_bert))
    with pytest.raises(ValueError, match="--text_model_name_or_path outputs/empty: the folder has no config.json"):
        run_sqa.ModelArguments(text_model_name_or_path="outputs/empty")
    with pytest.raises(ValueError, match="--model_name_or_path weights.bin is a file"):
        run_pretraining.ModelArguments(model_name_or_path="weights.bin", text_model_name_or_path=str(tiny_text_bert))
    with pytest.raises(ValueError, match="--model_name_or_path outputs/seg: no such folder"):
        run_segmenter.SegmenterArguments(model_name_or_path="outputs/seg")
    # The CLIs: before the dataset (which does not exist either) and before the model or the audio are loaded.
    with pytest.raises(SystemExit, match="--model outputs/step1: no such folder"):
        codes.main(["--model", "outputs/step1", "--dataset", "no-such-dataset"])
    with pytest.raises(SystemExit) as exit_info:
        cascade.main(["--model", "outputs/cascade", "--audio", "missing.wav", "--question", "Who?", "--top_k", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--model outputs/cascade: no such folder" in err and "--audio missing.wav: no such file" in err
    assert "--top_k must be >= 1, got 0" in err
    with pytest.raises(ValueError, match="model outputs/cascade: no such folder"):
        cascade.CascadeSpokenQA("outputs/cascade")


@pytest.mark.parametrize("script, extra, message", [
    ("run_sqa", ["--do_train", "--num_train_epochs", "0"], r"--num_train_epochs 0.0: training would take no step"),
    ("run_sqa", ["--do_train", "--num_train_epochs", "-1"], r"--num_train_epochs -1.0: training would take no step"),
    ("run_sqa", ["--do_train", "--learning_rate", "0"], r"--learning_rate 0.0: expected a positive finite learning rate"),
    ("run_sqa", ["--do_train", "--learning_rate=-1e-4"], r"--learning_rate -0.0001: .*climb the loss"),
    ("run_pretraining", ["--stage", "1", "--stage1_num_train_epochs", "0"], r"--stage1_num_train_epochs 0.0"),
    ("run_pretraining", ["--stage", "1", "--stage1_learning_rate", "nan"], r"--stage1_learning_rate nan"),
    ("run_pretraining", ["--stage", "both", "--num_train_epochs", "-2"], r"--num_train_epochs -2.0"),
    ("run_segmenter", ["--num_train_epochs", "-1"], r"--num_train_epochs -1.0: training would take no step"),
    ("run_segmenter", ["--learning_rate", "0"], r"--learning_rate 0.0: expected a positive finite learning rate"),
    ("run_sqa", ["--do_train", "--per_device_train_batch_size", "0"], r"--per_device_train_batch_size 0: expected"),
    ("run_sqa", ["--do_eval", "--per_device_eval_batch_size", "0"], r"--per_device_eval_batch_size 0: expected"),
    ("run_sqa", ["--do_train", "--gradient_accumulation_steps", "0"], r"--gradient_accumulation_steps 0: expected"),
    ("run_pretraining", ["--per_device_train_batch_size", "0"], r"--per_device_train_batch_size 0: expected"),
    ("run_segmenter", ["--gradient_accumulation_steps", "0"], r"--gradient_accumulation_steps 0: expected"),
    # Windows: longer than the model's positions failed inside BERT once a passage filled one; a negative stride
    # reached the window planner unchecked.
    ("run_sqa", ["--do_eval", "--max_length", "4096"], r"--max_length 4096 is more than the 128 positions of"),
    ("run_sqa", ["--do_eval", "--stride=-1"], r"--stride -1 must be from 0 to below half of --max_length 128"),
    ("run_pretraining", ["--stage", "2", "--max_length", "4096"], r"--max_length 4096 is more than the 128 positions"),
    ("run_pretraining", ["--stride=-1"], r"--stride -1 must be from 0 to below half of --max_length 128"),
    # Sample limits: 0 used to mean every question, -5 all but the last five.
    ("run_sqa", ["--do_eval", "--max_eval_samples", "0"], r"--max_eval_samples must be a positive number .* got 0"),
    ("run_sqa", ["--do_eval", "--max_eval_samples", "-5"], r"--max_eval_samples must be a positive number .* got -5"),
    ("run_sqa", ["--do_train", "--max_train_samples", "0"], r"--max_train_samples must be a positive number"),
    ("run_pretraining", ["--max_train_samples", "0"], r"--max_train_samples must be a positive number .* got 0"),
    ("run_sqa", ["--do_eval", "--max_answer_length", "0"], r"--max_answer_length must be a positive number of answer"),
    ("run_sqa", ["--do_train", "--max_question_length=-5"], r"--max_question_length must be a positive number of "
                                                             r"question word pieces, got -5"),
    ("run_segmenter", ["--max_train_passages", "0"], r"--max_train_passages must be a positive number .* got 0"),
    ("run_segmenter", ["--max_train_passages", "-5"], r"--max_train_passages must be a positive number .* got -5"),
    # Infinite rates and epochs: NaN weights from the first update; the Trainer's step count failed converting
    # infinity once the data was prepared; an infinite loss weight made every loss NaN.
    ("run_sqa", ["--do_train", "--learning_rate", "inf"],
     r"--learning_rate inf: expected a positive finite learning rate \(an infinite rate makes the weights NaN"),
    ("run_sqa", ["--do_train", "--num_train_epochs", "inf"], r"--num_train_epochs inf: expected a finite number"),
    ("run_sqa", ["--do_train", "--audio_encoder_learning_rate", "inf"],
     r"--audio_encoder_learning_rate must be >= 0 and finite, got inf"),
    ("run_pretraining", ["--stage1_learning_rate", "inf"], r"--stage1_learning_rate inf: expected a positive finite"),
    ("run_pretraining", ["--stage1_num_train_epochs", "inf"], r"--stage1_num_train_epochs inf: expected a finite"),
    ("run_segmenter", ["--learning_rate", "inf"], r"--learning_rate inf: expected a positive finite learning rate"),
    ("run_segmenter", ["--word_loss_weight", "inf"], r"--word_loss_weight must be >= 0 and finite, got inf"),
])
def test_training_that_would_take_no_step_or_no_question_is_refused_before_any_work(tmp_path, monkeypatch,
                                                                                    tiny_text_bert, script, extra,
                                                                                    message):
    """The Trainer runs zero steps for zero or negative epochs and still saves and marks the step done: a model that
    never trained, found later as if it had; a sample limit of 0 meant every question. Refused, naming the option,
    before data or model load."""
    import importlib

    from sqa_train import data

    module = importlib.import_module(script)
    monkeypatch.setattr(data, "load_corpus", lambda *a, **k: pytest.fail("the corpus was read before the check"))
    monkeypatch.setattr(module, "load_corpus", lambda *a, **k: pytest.fail("the corpus was read before the check"))
    model = ["--text_model_name_or_path", str(tiny_text_bert), "--max_length", "128", "--stride", "32"] \
        if script != "run_segmenter" else ["--model_name_or_path", str(tiny_text_bert)]  # tiny BERT: 128 positions
    with pytest.raises(ValueError, match=message):
        module.main(["--output_dir", str(tmp_path / "out"), "--dataset", "embedded", "--report_to", "none",
                     *model, *extra])
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("DONE"))


def test_max_steps_stands_in_for_epochs_but_not_for_the_learning_rate():
    from sqa_train.stages import check_schedule

    check_schedule(5, {"--num_train_epochs": 0}, {"--learning_rate": 1e-4})  # the Trainer stops by steps
    check_schedule(-1, {}, {})
    with pytest.raises(ValueError, match=r"--learning_rate 0: expected a positive finite learning rate"):
        check_schedule(5, {"--num_train_epochs": 0}, {"--learning_rate": 0})
    with pytest.raises(ValueError, match=r"--num_train_epochs True"):
        check_schedule(-1, {"--num_train_epochs": True}, {})


# ------------------------------------------------------------------------------------------- checkpoint code
def test_the_scripts_never_run_a_checkpoints_own_code(tmp_path, tester, processor, tiny_text_bert):
    """A SpeechBERT folder carries Hub code; the scripts, graft and code measurement load it with this package's
    classes (its tokenizer with transformers' BERT class) and never import that copy: here every copy raises."""
    import run_sqa
    from sqa_train.codes import load_model
    from sqa_train.models import load_speechbert_config, load_tokenizer

    checkpoint = tmp_path / "speechbert"
    seeded(SpeechBertForQuestionAnswering, tester.config()).save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    copies = sorted(checkpoint.glob("*.py"))
    assert copies
    for copy in copies:
        copy.write_text("raise RuntimeError('the checkpoint's own code ran')\n")
    tokenizer = load_tokenizer(checkpoint)
    assert type(tokenizer).__module__.startswith("transformers.") and tokenizer.tokenize("who ruled")
    assert type(load_speechbert_config("--model", checkpoint)).__module__ == "speechbert.configuration_speechbert"
    model, _ = load_model(checkpoint)
    assert type(model).__module__ == "speechbert.modeling_speechbert"
    model, _ = run_sqa.build_speechbert(str(checkpoint), tokenizer)
    assert type(model).__module__ == "speechbert.modeling_speechbert"
    with pytest.raises(ValueError, match=r"--model .* is a 'bert' model, expected a SpeechBERT checkpoint"):
        load_speechbert_config("--model", tiny_text_bert)


def test_half_precision_and_meta_tensors_as_audio(passage):
    audio = torch.from_numpy(passage[0])
    for dtype in (torch.bfloat16, torch.float16):
        np.testing.assert_allclose(load_audio(audio.to(dtype), sampling_rate=16000), audio.to(dtype).float().numpy())
    with pytest.raises(ValueError, match=r"audio is a meta tensor: it has a shape but no samples"):
        load_audio(torch.empty(16000, device="meta"), sampling_rate=16000)


def test_a_wav_whose_header_declares_fewer_samples_than_follow_is_a_warning(passage):
    whole = wav_bytes(passage[0])
    data = whole.index(b"data")
    size = int.from_bytes(whole[data + 4 : data + 8], "little")
    short = whole[: data + 4] + (size // 4).to_bytes(4, "little") + whole[data + 8 :]  # header of a quarter
    with pytest.warns(UserWarning, match=rf"declares {size // 4} bytes of samples but {size} follow"):
        audio = load_audio(short)
    assert len(audio) == len(passage[0]) // 4
    tagged = whole + b"LIST" + (4).to_bytes(4, "little") + b"INFO"  # a metadata chunk after the samples: fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_audio(tagged)) == len(passage[0])
