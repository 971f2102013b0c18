"""The cascade as a public entry point on any recording (sqa_train.cascade)."""

import json

import numpy as np
import pytest
import torch

from sqa_train.cascade import CascadeSpokenQA
from sqa_train.data import TextQACollator, segment_times, text_qa_items
from sqa_train.postprocess import predict_spans, text_word_scores

from .conftest import make_passage, need_binaries


@pytest.fixture
def cascade(tiny_text_bert):
    return CascadeSpokenQA(str(tiny_text_bert), max_length=32, stride=4)


def test_given_transcript_scores_as_run_sqa_does(cascade):
    audio, segments, words = make_passage(40, seed=1)
    questions = ["who ruled normandy ?", "what river ?"]
    answers = cascade(audio, question=questions, sampling_rate=16000, word_segments=segments, words=words)
    # The benchmark's path for the same rows: text_qa_items -> logits -> text_word_scores -> predict_spans.
    rows = [{"question": q, "asr_words": words, "asr_starts": [s for s, _ in segments],
             "asr_ends": [e for _, e in segments]} for q in questions]
    items, _ = text_qa_items(rows, cascade.tokenizer, "asr", 32, 4)
    with torch.no_grad():
        out = cascade.model(**TextQACollator(cascade.tokenizer.pad_token_id)(items))
    start, end = out.start_logits.numpy(), out.end_logits.numpy()
    scores = text_word_scores(items, start, end, {0: 40, 1: 40})
    expected = predict_spans(scores, {e: words for e in range(2)}, {e: segment_times(rows[e], "asr") for e in range(2)},
                             30)
    assert len(items) > 2  # the passage needs several windows
    for e, answer in enumerate(answers):
        assert (answer["segment_start"], answer["segment_end"]) == (expected[e]["word_start"], expected[e]["word_end"])
        assert answer["answer"] == expected[e]["prediction_text"]
        assert answer["start"] == pytest.approx(expected[e]["start_time"], abs=1e-3)
        assert 0 < answer["score"] <= 1 and answer["score"] == pytest.approx(np.exp(expected[e]["score"]), rel=1e-5)
    top = cascade(audio, question=questions[0], sampling_rate=16000, word_segments=segments, words=words, top_k=3)
    assert len(top) == 3 and top[0]["score"] >= top[1]["score"] >= top[2]["score"]


@pytest.mark.parametrize("kwargs, message", [
    ({"top_k": "2"}, r"top_k must be an integer, got '2'"),
    ({"top_k": 0}, r"top_k must be >= 1, got 0"),
    ({"sampling_rate": "16000"}, r"sampling_rate must be a positive integer"),
    ({"question": 5}, r"question must be a string or a list of strings"),
    ({"question": [" "]}, r"question 0 is empty"),
    ({"question": ["who ?", "\u200b"]}, r"question 1 \('\\u200b'\) has no word pieces"),
    ({"question": "\x00"}, r"question 0 \('\\x00'\) has no word pieces"),
    ({"question": "who " * 40}, r"question 0 has 40 word pieces: .* no room for the passage"),
    ({"word_segments": [(0.5, 0.2)] * 40}, r"word segment 0 \(0.500, 0.200\) s is reversed"),
    ({"word_segments": [(float("nan"), 1.0)] * 40}, r"NaN or infinite"),
    ({"word_segments": np.zeros((40, 3))}, r"got shape \(40, 3\)"),
    ({"word_segments": [], "words": []}, r"words is empty|word_segments is empty"),
    ({"word_segments": [(i, i + 0.5) for i in range(40)]}, r"word segment \d+ .* lies outside the audio"),
    ({"words": None}, r"pass word_segments and words together"),
    ({"words": ["a"]}, r"got 40 word segments but 1 words"),
])
def test_bad_arguments_are_named(cascade, kwargs, message):
    audio, segments, words = make_passage(40, seed=1)
    call = {"question": "who ?", "sampling_rate": 16000, "word_segments": segments, "words": words, **kwargs}
    with pytest.raises(ValueError, match=message):
        cascade(audio, **call)


def test_constructor_arguments_are_checked(tiny_text_bert):
    with pytest.raises(ValueError, match=r"stride \(200\) must be below half of max_length \(384\)"):
        CascadeSpokenQA(str(tiny_text_bert), stride=200)
    with pytest.raises(ValueError, match=r"max_length must be an integer >= 8, got '384'"):
        CascadeSpokenQA(str(tiny_text_bert), max_length="384")


@pytest.mark.slow
def test_cascade_on_a_recording_with_speech_recognition(tmp_path, tiny_text_bert, capsys):
    need_binaries("flite")
    import soundfile as sf

    from sqa_data.speech import synthesize
    from sqa_train.cascade import main

    speech = synthesize("The Normans gave their name to Normandy, a region in France.")
    sf.write(tmp_path / "passage.wav", speech, 16000)
    answers = main(["--model", str(tiny_text_bert), "--audio", str(tmp_path / "passage.wav"), "--question",
                    "Who gave their name?", "What region?"])
    assert len(answers) == 2
    for answer in answers:
        assert 0 <= answer["start"] < answer["end"] <= len(speech) / 16000 and answer["answer"]
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(answers))


@pytest.mark.slow
def test_a_saved_cascade_loads_its_pipeline_in_a_fresh_process(tmp_path, tiny_text_bert, cascade):
    """`save_cascade_pipeline` makes a text QA folder a spoken QA checkpoint: `pipeline(model=folder,
    trust_remote_code=True)` in a process without this repository's packages answers as CascadeSpokenQA does."""
    import os
    import shutil
    import subprocess
    import sys

    from speechbert.pipeline_cascade import save_cascade_pipeline

    folder = tmp_path / "cascade"
    shutil.copytree(tiny_text_bert, folder)
    save_cascade_pipeline(folder)
    save_cascade_pipeline(folder)  # twice is the same
    assert json.loads((folder / "config.json").read_text())["custom_pipelines"]["spoken-question-answering"][
        "impl"] == "pipeline_cascade.CascadeQuestionAnsweringPipeline"
    audio, segments, words = make_passage(40, seed=1)
    np.savez(tmp_path / "passage.npz", audio=audio, segments=np.array(segments), words=np.array(words))
    child = (
        "import json, sys; sys.modules.update(speechbert=None, sqa_train=None, sqa_data=None)\n"
        "import numpy as np; from transformers import pipeline\n"
        "qa = pipeline(model=sys.argv[1], trust_remote_code=True)\n"
        "d = np.load(sys.argv[2])\n"
        "a = qa(d['audio'], question=['who ruled normandy ?', 'what river ?'], sampling_rate=16000,\n"
        "       word_segments=d['segments'].tolist(), words=d['words'].tolist(), max_length=32, stride=4)\n"
        "print('RESULT', json.dumps({'answers': a, 'class': type(qa).__name__, 'module': type(qa).__module__}))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    result = subprocess.run([sys.executable, "-c", child, str(folder), str(tmp_path / "passage.npz")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert found["class"] == "CascadeQuestionAnsweringPipeline" and found["module"].startswith("transformers_modules.")
    expected = cascade(audio, question=["who ruled normandy ?", "what river ?"], sampling_rate=16000,
                       word_segments=segments, words=words)
    for got, want in zip(found["answers"], expected):
        assert got["answer"] == want["answer"] and got["start"] == want["start"]
        assert got["score"] == pytest.approx(want["score"], rel=1e-5)


def test_words_as_a_numpy_array_and_an_undecodable_file_before_loading(cascade, tmp_path, capsys, monkeypatch,
                                                                       tiny_text_bert):
    from sqa_train import cascade as cascade_module

    audio, segments, words = make_passage(40, seed=1)
    answer = cascade(audio, question="who ?", sampling_rate=16000, word_segments=segments, words=np.array(words))
    assert answer["answer"] in " ".join(words)
    (tmp_path / "notes.txt").write_text("not audio")
    monkeypatch.setattr(cascade_module, "CascadeSpokenQA", lambda *a, **k: pytest.fail("model loaded first"))
    with pytest.raises(SystemExit):
        cascade_module.main(["--model", str(tiny_text_bert), "--audio", str(tmp_path / "notes.txt"), "--question",
                             "who?"])
    err = capsys.readouterr().err
    assert "--audio" in err and "could not decode audio" in err
