"""The spoken-question-answering pipeline and the Inference Endpoints handler, loaded from a checkpoint folder."""

import base64
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbert import SpeechBertForQuestionAnswering
from speechbert.pipeline_speechbert import SpokenQuestionAnsweringPipeline, load_audio, register
from speechbert.processing_speechbert import word_initial_ids

from .conftest import need_binaries, seeded


@pytest.fixture(scope="module")
def speech():
    need_binaries("flite")
    from sqa_data.speech import synthesize

    return synthesize("The Normans gave their name to Normandy, a region in France.")


@pytest.fixture
def checkpoint(tmp_path, tester, processor):
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


@pytest.fixture
def qa(tester, processor):
    register()
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    return SpokenQuestionAnsweringPipeline(model=model, processor=processor, task="spoken-question-answering")


def wav_bytes(audio, rate=16000):
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV")
    return buffer.getvalue()


def test_checkpoint_holds_all_hub_code_and_the_pipeline_entry(checkpoint):
    for name in ("configuration", "feature_extraction", "processing", "modeling", "pipeline", "segmentation"):
        assert (checkpoint / f"{name}_speechbert.py").exists()
    assert (checkpoint / "handler.py").exists() and (checkpoint / "packed_rnn.py").exists()
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["custom_pipelines"]["spoken-question-answering"]["impl"] == \
        "pipeline_speechbert.SpokenQuestionAnsweringPipeline"


@pytest.mark.slow
def test_pipeline_from_checkpoint_in_fresh_offline_process(tmp_path, checkpoint, speech):
    sf.write(tmp_path / "passage.wav", speech, 16000)
    code = textwrap.dedent(f"""
        import json, sys
        from transformers import pipeline
        qa = pipeline(model={str(checkpoint)!r}, trust_remote_code=True)
        assert "speechbert" not in sys.modules
        print(json.dumps([type(qa).__module__, qa({str(tmp_path / 'passage.wav')!r}, question="Who ruled?")]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    module, answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert module.startswith("transformers_modules.")
    assert set(answer) == {"answer", "start", "end", "score", "segment_start", "segment_end"}
    assert 0 <= answer["start"] < answer["end"] <= len(speech) / 16000 and answer["answer"]


@pytest.mark.slow
def test_inputs_of_every_kind_give_the_same_answer(qa, speech):
    from_bytes = qa(wav_bytes(speech), question="Who ruled?")
    assert qa({"array": speech, "sampling_rate": 16000}, question="Who ruled?") == from_bytes
    assert qa(speech, question="Who ruled?", sampling_rate=16000) == from_bytes
    eight_k = load_audio(wav_bytes(load_audio(speech, 16000)[::2].copy(), 8000))
    assert abs(len(eight_k) - len(speech)) <= 2


@pytest.mark.slow
def test_questions_share_one_feature_extraction(qa, speech, monkeypatch):
    calls = []
    original = qa.processor.feature_extractor.frame_features
    monkeypatch.setattr(qa.processor.feature_extractor, "frame_features", lambda a: calls.append(1) or original(a))
    answers = qa(speech, question=["Who ruled?", "Where is Normandy?", "What region?"], sampling_rate=16000,
                 top_k=2)
    assert len(calls) == 1
    assert len(answers) == 3 and all(len(a) == 2 and a[0]["score"] >= a[1]["score"] for a in answers)


def test_given_word_segments_skip_recognition(qa, passage):
    audio, segments, words = passage
    answer = qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, words=words)
    assert answer["answer"] == " ".join(words[answer["segment_start"] : answer["segment_end"] + 1])
    with pytest.raises(ValueError, match="got 12 word segments but 3 words"):
        qa(audio, question="who?", sampling_rate=16000, word_segments=segments, words=words[:3])


def test_answer_from_audio_reads_each_answer_segment_back_as_its_nearest_word_piece(qa, passage, monkeypatch):
    """Without words (the word segmenter's path) the answer is only a time span; `answer_from_audio=True` adds the
    words the audio codes point at. Checked against codes set to known words' embeddings, and against the model's
    own codes decoded by hand."""
    audio, segments, words = passage
    base = qa.model.bert
    tokenizer = qa.processor.tokenizer
    plain = qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments)
    assert "answer_from_audio" not in plain and plain["answer"] is None
    found = qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, answer_from_audio=True)
    first, last = found["segment_start"], found["segment_end"]
    assert {k: v for k, v in found.items() if k != "answer_from_audio"} == plain  # the answer itself is unchanged
    pieces = found["answer_from_audio"].split()
    assert len(pieces) == last - first + 1
    readable = set(tokenizer.convert_ids_to_tokens(word_initial_ids(tokenizer).tolist()))
    assert all(piece in readable for piece in pieces)  # word-initial pieces only: no "##" or special tokens
    # By hand: the answer segments' codes, then the nearest word-initial embedding by cosine.
    extracted = qa.processor.feature_extractor(audio, word_segments=segments, sampling_rate=16000,
                                               return_tensors="pt")
    features = extracted["audio_features"][:, first : last + 1]
    lengths = extracted["audio_feature_lengths"][:, first : last + 1]
    with torch.no_grad():
        codes = base.encode_audio(features, lengths)
        table = torch.nn.functional.normalize(base.embeddings.word_embeddings.weight, dim=-1)
        ids = torch.as_tensor(word_initial_ids(tokenizer))
        best = ids[(torch.nn.functional.normalize(codes, dim=-1) @ table[ids].T).argmax(-1)]
    assert pieces == tokenizer.convert_ids_to_tokens(best.tolist())
    # Codes that are exactly some words' embeddings read back as those words (scaled: cosine ignores the norm).
    wanted = ["normans", "king", "river", "france"]
    targets = base.embeddings.word_embeddings.weight[tokenizer.convert_tokens_to_ids(wanted)].detach()

    def encode_audio(features, lengths):
        n = int((lengths > 0).sum())
        return 3.0 * targets[torch.arange(n) % len(wanted)]

    monkeypatch.setattr(base, "encode_audio", encode_audio)
    found = qa(audio, question="who ruled ?", sampling_rate=16000, word_segments=segments, answer_from_audio=True,
               top_k=2)
    for answer in found:
        n = answer["segment_end"] - answer["segment_start"] + 1
        assert answer["answer_from_audio"].split() == [wanted[i % len(wanted)] for i in range(n)]
    with pytest.raises(ValueError, match="answer_from_audio must be True or False, got 'yes'"):
        qa(audio, question="who?", sampling_rate=16000, word_segments=segments, answer_from_audio="yes")


@pytest.mark.parametrize(
    "audio, kwargs, error, message",
    [
        (b"not audio at all", {}, ValueError, r"could not decode audio from bytes input"),
        (b"", {}, ValueError, r"audio is empty \(0 bytes\)"),
        ("/nonexistent/passage.wav", {}, ValueError, r"could not decode audio from /nonexistent/passage.wav"),
        (np.zeros(16000, np.float32), {"sampling_rate": 16000}, ValueError, r"audio is silent"),
        (np.ones(100, np.float32), {}, ValueError, r"needs its sampling_rate"),
        (np.zeros(0, np.float32), {"sampling_rate": 16000}, ValueError, r"audio is empty"),
    ],
)
def test_bad_audio_is_named(qa, audio, kwargs, error, message):
    with pytest.raises(error, match=message):
        qa(audio, question="Who?", **kwargs)


def test_bad_questions_are_named(qa, passage):
    audio, segments, _ = passage
    with pytest.raises(ValueError, match="question 0 is empty"):
        qa(audio, question=" ", sampling_rate=16000, word_segments=segments)
    with pytest.raises(ValueError, match="question is required"):
        qa(audio, sampling_rate=16000, word_segments=segments)
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        qa(audio, question="who?", sampling_rate=16000, word_segments=segments, top_k=0)


@pytest.mark.slow
def test_endpoint_handler(checkpoint, speech, monkeypatch):
    monkeypatch.syspath_prepend(str(checkpoint))
    from handler import EndpointHandler

    handler = EndpointHandler(str(checkpoint))
    answer = handler({"inputs": {"audio": base64.b64encode(wav_bytes(speech)).decode(), "question": "Who?"},
                      "parameters": {"top_k": 2}})
    assert len(answer) == 2 and answer[0]["start"] < answer[0]["end"]
    with pytest.raises(ValueError, match=r"missing or empty inputs \['audio'\]"):
        handler({"inputs": {"question": "Who?"}})
    with pytest.raises(ValueError, match="'audio' is not valid base64"):
        handler({"inputs": {"audio": "%%%", "question": "Who?"}})
    with pytest.raises(ValueError, match="could not decode audio"):
        handler({"inputs": {"audio": base64.b64encode(b"noise").decode(), "question": "Who?"}})


def test_handler_rejects_checkpoint_without_pipeline_entry(checkpoint, monkeypatch):
    config = json.loads((checkpoint / "config.json").read_text())
    del config["custom_pipelines"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    monkeypatch.syspath_prepend(str(checkpoint))
    from handler import EndpointHandler

    with pytest.raises(ValueError, match=r"no 'spoken-question-answering' entry in config.json's custom_pipelines"):
        EndpointHandler(str(checkpoint))


def test_recognition_without_pocketsphinx_says_what_to_do(qa, passage, monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(ImportError, match=r"pass word_segments=.* or install pocketsphinx"):
        qa(passage[0], question="Who?", sampling_rate=16000)
