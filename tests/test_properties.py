"""Property-based tests (hypothesis) of the pipeline and processor inputs: random shapes, dtypes, rates, segment lists
and argument types give an answer whose times lie inside the audio, or a ValueError / TypeError whose message names
the argument that was made bad; never another exception type. Bounded in examples so the suite stays fast."""

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speechbert import SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering, SpeechBertProcessor
from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, register

from .conftest import WORDS, SpeechBertTester, seeded

RATES = (8000, 16000, 22050, 44100)
QUESTIONS = ("who ruled ?", "what is the name of the river ?", "who gave their name to normandy ?")
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=1)
def pipe():
    from tests.conftest import VOCAB

    import tempfile
    from pathlib import Path

    from transformers import BertTokenizer

    path = Path(tempfile.mkdtemp()) / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    processor = SpeechBertProcessor(
        SpeechBertFeatureExtractor(**SpeechBertTester.config().feature_extractor_kwargs()), BertTokenizer(str(path)))
    register()
    model = seeded(SpeechBertForQuestionAnswering, SpeechBertTester.config())
    return SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")


@st.composite
def calls(draw):
    """(args, kwargs, duration, bad): a pipeline call, the audio's length in seconds and the argument names that
    were made invalid (empty: the call is valid and must answer)."""
    bad = set()
    rate = draw(st.sampled_from(RATES))
    duration = draw(st.floats(0.6, 3.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    audio = (0.1 * rng.standard_normal(int(duration * rate))).astype(np.float32)
    dtype = draw(st.sampled_from(["float32", "float64", "int16", "int32"]))
    if dtype.startswith("int"):
        audio = np.round(audio * np.iinfo(dtype).max).astype(dtype)
    else:
        audio = audio.astype(dtype)
    layout = draw(st.sampled_from(["mono", "channels_first", "channels_last", "list"]))
    if layout == "channels_first":
        audio = np.stack([audio, audio])
    elif layout == "channels_last":
        audio = np.stack([audio, audio], 1)
    elif layout == "list" and dtype.startswith("float"):
        audio = audio.tolist()
    # Segments: sorted, disjoint, each at least 30 ms, inside the audio.
    count = draw(st.integers(1, 24))
    cuts = sorted(draw(st.lists(st.floats(0.0, duration - 0.1), min_size=2 * count, max_size=2 * count)))
    segments = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        if end - start >= 0.03 and (not segments or start >= segments[-1][1]):
            segments.append((round(start, 3), round(end, 3)))
    if not segments:
        segments = [(0.1, 0.3)]
    words = [WORDS[i % len(WORDS)] for i in range(len(segments))]
    kwargs = {"question": draw(st.sampled_from(QUESTIONS)), "sampling_rate": rate, "word_segments": segments,
              "words": words}
    if draw(st.booleans()):
        kwargs["top_k"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        kwargs["max_length"] = draw(st.integers(32, 128))
        kwargs["stride"] = draw(st.integers(0, 8))

    mutation = draw(st.sampled_from(["none"] * 6 + [
        "rate", "shape", "dtype", "empty", "silent", "nan", "segments_reversed", "segments_outside",
        "int_list", "segments_overlap", "segments_type", "words_length", "words_none", "question_type", "question_blank",
        "top_k", "max_length", "stride", "unknown_argument"]))
    if mutation == "rate":
        kwargs["sampling_rate"] = draw(st.sampled_from(["16000", 0, -8000, 2.5, True, None]))
        bad.add("sampling_rate")
    elif mutation == "shape":
        audio = np.zeros((3, 4, 100), np.float32) + 0.1 if draw(st.booleans()) else np.ones((5, 8000), np.float32)
        bad.add("audio")
    elif mutation == "dtype":
        audio = np.ones(8000, draw(st.sampled_from([np.complex64, np.bool_, object])))
        bad.add("audio")
    elif mutation == "int_list":
        audio = (rng.integers(-3000, 3000, int(duration * rate))).tolist()  # PCM range unknown
        bad.add("audio")
    elif mutation == "empty":
        audio = np.zeros(0, np.float32)
        bad.add("audio")
    elif mutation == "silent":
        audio = np.zeros(int(duration * rate), np.float32)
        bad.add("audio")
    elif mutation == "nan":
        audio = np.asarray(audio, np.float64)
        audio.flat[draw(st.integers(0, audio.size - 1))] = math.nan
        bad.add("audio")
    elif mutation == "segments_reversed":
        kwargs["word_segments"] = [(e, s) for s, e in segments]
        bad.add("word segment")
    elif mutation == "segments_outside":
        kwargs["word_segments"] = segments + [(duration + 1.0, duration + 2.0)]
        kwargs["words"] = words + ["the"]
        bad.add("word segment")
    elif mutation == "segments_overlap":
        kwargs["word_segments"] = segments + [(segments[-1][0], segments[-1][1] + 0.05)]
        kwargs["words"] = words + ["the"]
        bad.add("word segment")
    elif mutation == "segments_type":
        kwargs["word_segments"] = draw(st.sampled_from([[("a", "b")], [], [1.0, 2.0], "0-1", [(0.1,)]]))
        bad.add("word_segments")
    elif mutation == "words_length":
        kwargs["words"] = words + ["extra"]
        bad.add("words")
    elif mutation == "words_none":
        kwargs["words"] = [None] + words[1:]
        bad.add("words")
    elif mutation == "question_type":
        kwargs["question"] = draw(st.sampled_from([123, {"a": 1}, b"who", None, 4.5]))
        bad.add("question")
    elif mutation == "question_blank":
        kwargs["question"] = draw(st.sampled_from(["", "  ", "\n"]))
        bad.add("question")
    elif mutation == "top_k":
        kwargs["top_k"] = draw(st.sampled_from(["3", 2.5, 0, -1, True]))
        bad.add("top_k")
    elif mutation == "max_length":
        kwargs["max_length"] = draw(st.sampled_from([0, -5, "384", 10**6, 1.5]))
        kwargs.pop("stride", None)
        bad.add("max_length")
    elif mutation == "stride":
        kwargs["stride"] = draw(st.sampled_from([-300, "8", 0.5]))
        bad.add("stride")
    elif mutation == "unknown_argument":
        kwargs["temperature"] = 1.0
        bad.add("temperature")
    return audio, kwargs, duration, bad


def _names_the_argument(message, bad):
    message = message.lower()
    aliases = {"audio": ("audio",), "sampling_rate": ("sampling_rate",), "word segment": ("word segment",),
               "word_segments": ("word_segments", "word segment"), "words": ("words", "word segments but"),
               "question": ("question",), "top_k": ("top_k",), "max_length": ("max_length",),
               "stride": ("stride",), "temperature": ("temperature",)}
    return any(alias in message for name in bad for alias in aliases[name])


@PROPERTY_SETTINGS
@given(calls())
def test_pipeline_answers_inside_the_audio_or_names_the_bad_argument(call):
    audio, kwargs, duration, bad = call
    question = kwargs.pop("question")
    try:
        answer = pipe()(audio, question=question, **kwargs)
    except (ValueError, TypeError) as error:
        assert bad, f"a valid call raised {type(error).__name__}: {error}"
        assert _names_the_argument(str(error), bad), f"{error!r} does not name {bad}"
        return
    assert not bad, f"the bad {bad} went through: {answer}"
    answers = answer if isinstance(answer, list) else [answer]
    for found in answers:
        assert 0 <= found["start"] < found["end"] <= duration + 0.02, (found, duration)
        assert found["answer"] and 0 <= found["segment_start"] <= found["segment_end"]


@PROPERTY_SETTINGS
@given(calls())
def test_processor_builds_windows_or_names_the_bad_argument(call):
    audio, kwargs, duration, bad = call
    bad = bad - {"top_k"}  # not a processor argument
    if kwargs.get("max_length") == 10**6:  # too long only for the model; this tokenizer has no model_max_length
        bad = bad - {"max_length"}          # (the processor's own check: tests/test_processing.py)
    kwargs.pop("top_k", None)
    if "temperature" in kwargs:
        bad = {"temperature"}
    processor = pipe().processor
    rate = kwargs.pop("sampling_rate")
    try:
        if isinstance(audio, list) or np.ndim(audio) != 1 or rate != 16000:
            from speechbert.pipeline_speechbert import load_audio

            audio = load_audio(audio, rate)  # the processor takes mono 16 kHz; load_audio makes it
            rate = 16000
        inputs = processor(audio=audio, sampling_rate=rate, **kwargs)
    except (ValueError, TypeError) as error:
        assert bad, f"a valid call raised {type(error).__name__}: {error}"
        assert _names_the_argument(str(error), bad | ({"words"} if "temperature" in bad else set())) or \
            "unexpected arguments" in str(error), f"{error!r} does not name {bad}"
        return
    assert not bad, f"the bad {bad} went through"
    lengths = inputs["audio_feature_lengths"]
    assert (lengths > 0).sum() >= len(kwargs["word_segments"])  # every segment in at least one window
    times = inputs["segment_times"][inputs["segment_index"] >= 0]
    assert (times[:, 0] >= 0).all() and (times[:, 1] <= duration + 0.02).all()


def test_property_strategy_makes_both_kinds_of_call():
    """The strategy is not degenerate: it makes valid calls and calls with each kind of bad argument."""
    from hypothesis import find

    find(calls(), lambda c: not c[3])
    for name in ("audio", "sampling_rate", "word segment", "words", "question", "top_k", "max_length", "stride"):
        find(calls(), lambda c, name=name: name in c[3])


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@PROPERTY_SETTINGS
@given(rate=st.integers(min_value=4000, max_value=768000), seconds=st.floats(min_value=0.05, max_value=0.5))
def test_any_rate_in_range_resamples_to_the_right_length_at_a_bounded_cost(rate, seconds):
    """Every rate from 4 to 768 kHz, whatever its prime factors, gives 16 kHz audio of the same duration (to a
    sample) through one of the two resampling paths, neither of which builds a kernel of more than 4 M entries."""
    from fractions import Fraction

    from speechbert.pipeline_speechbert import MAX_KERNEL_ENTRIES, resample

    samples = max(1, round(rate * seconds))
    audio = np.random.default_rng(rate).standard_normal(samples).astype(np.float32) * 0.1
    out = resample(audio, rate)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert abs(len(out) - samples * 16000 / rate) <= 1
    ratio = Fraction(16000, rate)
    assert ratio.numerator * ratio.denominator <= MAX_KERNEL_ENTRIES or len(out) == max(1, round(samples * 16000 / rate))


@PROPERTY_SETTINGS
@given(segments=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                   st.floats(allow_nan=True, allow_infinity=True, width=32)), max_size=6),
       duration=st.floats(min_value=0.1, max_value=10))
def test_word_segments_are_checked_or_refused_by_name(segments, duration):
    """The one segment check every entry point uses: what it returns is finite, inside the audio, in time order and
    non-overlapping; anything else is a ValueError naming word_segments or a word segment."""
    from speechbert.feature_extraction_speechbert import check_word_segments

    try:
        found = check_word_segments(segments, duration)
    except ValueError as error:
        assert "word_segments" in str(error) or "word segment" in str(error)
        return
    assert np.isfinite(found).all() and (found[:, 0] >= 0).all() and (found[:, 1] <= duration + 0.01).all()
    assert (found[:, 1] > found[:, 0]).all() and (found[1:, 0] >= found[:-1, 1] - 1e-3).all()


@PROPERTY_SETTINGS
@given(dtype=st.sampled_from([np.int16, np.int32, np.uint8]), seed=st.integers(0, 2**16))
def test_pcm_integers_map_into_minus_one_to_one_alike_everywhere(dtype, seed):
    from speechbert.feature_extraction_speechbert import to_float_samples

    info = np.iinfo(dtype)
    pcm = np.random.default_rng(seed).integers(info.min, info.max, size=1600, endpoint=True).astype(dtype)
    out = to_float_samples(pcm)
    assert out.dtype == np.float32 and out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(out, pipe().processor.feature_extractor.to_mono(pcm))
