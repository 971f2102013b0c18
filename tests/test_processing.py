import numpy as np
import pytest
import torch
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from .conftest import VOCAB, make_passage

QUESTION = "who ruled normandy ?"  # 4 word pieces


def encode(processor, num_words=40, answer_times=None, max_length=20, stride=4, **kwargs):
    audio, segments, words = make_passage(num_words)
    inputs = processor(
        question=QUESTION, audio=audio, word_segments=segments, words=words, sampling_rate=16000,
        answer_times=answer_times, max_length=max_length, stride=stride, **kwargs,
    )
    return inputs, (audio, segments, words)


def window_segments(inputs):
    return [row[row >= 0] for row in inputs["segment_index"]]


def test_layout_of_a_window(processor):
    inputs, (_, segments, _) = encode(processor, num_words=5, max_length=64)
    ids = inputs["input_ids"][0]
    cls, sep, audio = VOCAB.index("[CLS]"), VOCAB.index("[SEP]"), VOCAB.index("[unused0]")
    assert ids.tolist() == [cls, *[VOCAB.index(w) for w in QUESTION.split()], sep] + [audio] * 5 + [sep]
    assert inputs["token_type_ids"][0].tolist() == [0] * 6 + [1] * 6
    assert inputs["segment_index"][0].tolist() == [-1] * 6 + [0, 1, 2, 3, 4, -1]
    np.testing.assert_allclose(inputs["segment_times"][0, 6:11], np.array(segments), atol=1e-6)


def test_a_question_longer_than_max_question_length_is_cut_with_a_warning(processor, recwarn):
    cls, sep = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")
    kept = [VOCAB.index(w) for w in QUESTION.split()[:3]]
    with pytest.warns(UserWarning, match=r"question 0 has 4 word pieces: only its first max_question_length=3"):
        inputs, _ = encode(processor, num_words=5, max_length=64, max_question_length=3)
    assert inputs["input_ids"][0].tolist()[:5] == [cls, *kept, sep]
    recwarn.clear()
    encode(processor, num_words=5, max_length=64, max_question_length=4)  # exactly at the limit: nothing cut
    assert not [w for w in recwarn if "max_question_length" in str(w.message)]


def test_windows_cover_every_segment_with_stride_overlap(processor):
    inputs, (audio, segments, _) = encode(processor, num_words=40, max_length=20, stride=4)
    windows = window_segments(inputs)
    capacity = 20 - 4 - 3
    assert [w.tolist() for w in windows] == [list(range(a, min(a + capacity, 40))) for a in (0, 9, 18, 27)]
    covered = np.concatenate(windows)
    assert set(covered.tolist()) == set(range(40))
    for left, right in zip(windows, windows[1:]):
        assert len(np.intersect1d(left, right)) == 4
    assert inputs["overflow_to_sample_mapping"].tolist() == [0, 0, 0, 0]
    # Each window's features are the passage's own segment features.
    full, lengths = processor.feature_extractor.extract(audio, segments, sampling_rate=16000)
    for w, segs in enumerate(windows):
        n = lengths[segs]
        np.testing.assert_array_equal(inputs["audio_feature_lengths"][w, : len(segs)], n)
        np.testing.assert_array_equal(inputs["audio_features"][w, : len(segs), : full.shape[1]], full[segs])


def test_short_passage_is_one_window(processor):
    inputs, _ = encode(processor, num_words=9, max_length=20, stride=4)
    assert len(inputs["input_ids"]) == 1 and window_segments(inputs)[0].tolist() == list(range(9))


def answer_window_positions(inputs):
    return list(zip(inputs["start_positions"].tolist(), inputs["end_positions"].tolist()))


def test_answer_in_overlap_is_placed_in_both_windows(processor):
    _, segments, _ = make_passage(40)
    answer = (segments[10][0], segments[11][1])  # windows [0, 13) and [9, 22) both hold 10-11
    inputs, _ = encode(processor, answer_times=answer)
    assert answer_window_positions(inputs) == [(6 + 10, 6 + 11), (6 + 1, 6 + 2), (0, 0), (0, 0)]


def test_answer_cut_by_a_window_edge_points_at_cls_there(processor):
    _, segments, _ = make_passage(40)
    answer = (segments[12][0], segments[14][1])  # window 0 ends after 12: only window 1 holds it whole
    inputs, _ = encode(processor, answer_times=answer)
    assert answer_window_positions(inputs) == [(0, 0), (6 + 3, 6 + 5), (0, 0), (0, 0)]
    for w, (start, end) in enumerate(answer_window_positions(inputs)):
        if start:
            assert inputs["segment_index"][w, start] == 12 and inputs["segment_index"][w, end] == 14


def test_answer_times_map_by_segment_midpoints(processor):
    _, segments, _ = make_passage(12)
    times = np.array(segments)
    # An answer that clips the edges of its words still selects them; a neighbour it only grazes is left out.
    answer = (times[3, 0] + 0.02, times[5, 1] - 0.02)
    assert processor.answer_segments(times, answer, 10.0) == (3, 5)
    grazing = (times[2, 1] - 0.01, times[4, 1])
    assert processor.answer_segments(times, grazing, 10.0) == (3, 4)
    inside_one_word = (times[7, 0] + 0.01, times[7, 0] + 0.03)
    assert processor.answer_segments(times, inside_one_word, 10.0) == (7, 7)


def test_audio_word_ids_are_first_word_pieces(processor):
    inputs, (_, _, words) = encode(processor, num_words=6, max_length=64)
    expected = [VOCAB.index(w) for w in words]
    assert inputs["audio_word_ids"][0].tolist() == expected
    pieces = processor.first_word_pieces(["xyz", "normans"])
    assert pieces.tolist() == [VOCAB.index("x"), VOCAB.index("normans")]


def test_batch_of_examples_and_padding(processor):
    p1, p2 = make_passage(30, seed=1), make_passage(6, seed=2)
    inputs = processor(
        question=[QUESTION, "what is the city"], audio=[p1[0], p2[0]], word_segments=[p1[1], p2[1]],
        sampling_rate=16000, max_length=24, stride=5, return_tensors="pt",
    )
    mapping = inputs["overflow_to_sample_mapping"].tolist()
    assert mapping[-1] == 1 and mapping.count(1) == 1 and mapping.count(0) >= 2
    assert inputs["input_ids"].shape[1] == int(inputs["attention_mask"].sum(1).max())
    padded = processor(question=QUESTION, audio=p2[0], word_segments=p2[1], sampling_rate=16000,
                       max_length=24, stride=5, padding="max_length")
    assert padded["input_ids"].shape == (1, 24) and padded["attention_mask"][0].sum() == 4 + 3 + 6


@pytest.mark.parametrize(
    "change, message",
    [
        ({"question": "   "}, r"question 0 is empty"),
        ({"question": ""}, r"question 0 is empty"),
        ({"words": ["a", "b"]}, r"example 0 has 40 word segments but 2 words"),
        ({"answer_times": (3.0, 99.0)}, r"answer_times \(3.000, 99.000\) s lie outside the audio \(0, \d+\.\d+\) s"),
        ({"answer_times": (-1.0, 0.5)}, r"lie outside the audio"),
        ({"answer_times": (2.0, 1.0)}, r"answer_times \(2.000, 1.000\) s is reversed"),
        ({"answer_times": (1.0,)}, r"one \(start_s, end_s\) pair"),
        ({"max_length": 10}, r"max_length=10 leaves 3 audio positions .* must exceed stride=4"),
        ({"stride": 13}, r"leaves 13 audio positions .* must exceed stride=13"),
        ({"padding": "do_not_pad"}, r"padding must be 'longest' or 'max_length'"),
        ({"sampling_rate": 44100}, r"sampling_rate=44100 Hz but SpeechBERT expects 16000 Hz"),
    ],
)
def test_bad_input_is_named(processor, change, message):
    audio, segments, words = make_passage(40)
    kwargs = dict(question=QUESTION, audio=audio, word_segments=segments, words=words, sampling_rate=16000,
                  max_length=20, stride=4)
    kwargs.update(change)
    with pytest.raises(ValueError, match=message):
        processor(**kwargs)


def test_max_length_is_held_to_the_tokenizers_limit(processor):
    """A window longer than the positions the model knows is refused by the processor itself, not by BERT later;
    a tokenizer without a limit (model_max_length unset) leaves the check to the pipeline and the model."""
    audio, segments, _ = make_passage(5)
    kwargs = dict(question=QUESTION, audio=audio, word_segments=segments, sampling_rate=16000, stride=4)
    limit = processor.tokenizer.model_max_length
    try:
        processor.tokenizer.model_max_length = 32
        processor(max_length=32, **kwargs)
        with pytest.raises(ValueError, match=r"max_length=33 is more than the tokenizer's model_max_length=32"):
            processor(max_length=33, **kwargs)
        processor.tokenizer.model_max_length = VERY_LARGE_INTEGER  # what a tokenizer saved without a limit has
        assert processor(max_length=10**6, **kwargs)["input_ids"].shape[0] == 1
    finally:
        processor.tokenizer.model_max_length = limit


def test_batch_lengths_must_agree(processor):
    audio, segments, _ = make_passage(5)
    with pytest.raises(ValueError, match=r"got 2 questions but 1 entries in audio"):
        processor(question=["a", "b"], audio=[audio], word_segments=[segments, segments], sampling_rate=16000)


def test_answer_between_words_is_an_error(processor):
    times = np.array([(0.1, 0.3), (0.6, 0.9)])
    with pytest.raises(ValueError, match=r"answer_times \(0.400, 0.500\) s overlap no word segment"):
        processor.answer_segments(times, (0.4, 0.5), 1.0)


# ---------------------------------------------------------------- decoding
def planted_logits(inputs, spans, text_bonus=0.0):
    """Logits with a sharp peak at the given (window, start position, end position) spans."""
    shape = np.asarray(inputs["input_ids"]).shape
    start, end = np.zeros(shape), np.zeros(shape)
    start[:, 1:5] += text_bonus  # question positions: must never be chosen
    end[:, 1:5] += text_bonus
    for window, s, e, height in spans:
        start[window, s] += height
        end[window, e] += height
    return {"start_logits": torch.tensor(start), "end_logits": torch.tensor(end)}


def test_decode_maps_back_to_segments_times_and_words(processor):
    inputs, (_, segments, words) = encode(processor, num_words=40, return_tensors="pt")
    # Window 1 holds segments 9..21 at positions 6..18: plant segments 15..17.
    outputs = planted_logits(inputs, [(1, 6 + 6, 6 + 8, 12.0), (2, 6 + 2, 6 + 3, 4.0)], text_bonus=30.0)
    answer = processor.decode_answer(inputs, outputs, words=words)
    assert (answer["segment_start"], answer["segment_end"]) == (15, 17)
    assert answer["text"] == " ".join(words[15:18])
    assert answer["start_time"] == pytest.approx(segments[15][0], abs=1e-6)
    assert answer["end_time"] == pytest.approx(segments[17][1], abs=1e-6)
    assert 0 < answer["score"] <= 1


def test_decode_respects_span_rules_and_top_k(processor):
    inputs, (_, _, words) = encode(processor, num_words=40)
    # The best start comes after the best end: the chosen span must still have end >= start.
    outputs = planted_logits(inputs, [(0, 6 + 8, 6 + 2, 10.0)])
    answers = processor.decode_answer(inputs, outputs, words=words, top_k=3)
    assert len(answers) == 3
    assert all(a["segment_end"] >= a["segment_start"] for a in answers)
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    long_span = planted_logits(inputs, [(0, 6 + 0, 6 + 12, 10.0)])
    capped = processor.decode_answer(inputs, long_span, max_answer_segments=5)
    assert capped["segment_end"] - capped["segment_start"] < 5 and capped["text"] is None


def test_decode_batch_and_word_count_check(processor):
    p1, p2 = make_passage(30, seed=1), make_passage(6, seed=2)
    inputs = processor(question=[QUESTION, "what is the city"], audio=[p1[0], p2[0]],
                       word_segments=[p1[1], p2[1]], sampling_rate=16000, max_length=24, stride=5)
    last = len(inputs["input_ids"]) - 1
    outputs = planted_logits(inputs, [(0, 6, 7, 9.0), (last, 6 + 2, 6 + 4, 9.0)])
    first, second = processor.decode_answer(inputs, outputs, words=[p1[2], p2[2]])
    assert (first["segment_start"], first["segment_end"]) == (0, 1)
    assert (second["segment_start"], second["segment_end"]) == (2, 4)
    with pytest.raises(ValueError, match=r"example 1 has 6 word segments but 5 words"):
        processor.decode_answer(inputs, outputs, words=[p1[2], p2[2][:5]])
    with pytest.raises(ValueError, match=r"got words for 1 examples, the inputs hold 2"):
        processor.decode_answer(inputs, outputs, words=[p1[2]])


def test_save_and_load_processor(tmp_path, processor):
    processor.save_pretrained(tmp_path)
    loaded = type(processor).from_pretrained(tmp_path, trust_remote_code=True)
    assert loaded.audio_token_id == processor.audio_token_id
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    inputs, _ = encode(processor, num_words=8)
    again, _ = encode(loaded, num_words=8)
    for key in inputs:
        np.testing.assert_array_equal(inputs[key], again[key])


def test_unknown_audio_token_is_rejected(processor):
    with pytest.raises(ValueError, match=r"audio_token '\[AUDIO\]' is not in the tokenizer's vocabulary"):
        type(processor)(processor.feature_extractor, processor.tokenizer, audio_token="[AUDIO]")
