"""examples/answer_passages.py: a trained SpeechBERT answering the embedded corpus's test passages, at ASR segments
and at its own, printing questions, answers with times, gold answers and the overall figures (a tiny untrained
model here: the mechanics, not the quality)."""

import importlib.util
from pathlib import Path

import pytest

from speechbert import SpeechBertForQuestionAnswering

from .conftest import need_binaries, seeded

ROOT = Path(__file__).resolve().parents[1]


def answer_passages():
    spec = importlib.util.spec_from_file_location("answer_passages", ROOT / "examples" / "answer_passages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("segments", ["asr", "model"])
def test_answer_passages_prints_answers_gold_and_scores(tmp_path, tester, processor, capsys, segments):
    need_binaries("flite")
    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True, segmenter_hidden_size=8))
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    result = answer_passages().main(["--model", str(tmp_path / "model"), "--max_passages", "1", "--segments",
                                     segments, "--audio_cache_dir", str(tmp_path / "audio")])
    out = capsys.readouterr().out
    questions = out.count("  Q: ")
    assert questions == result["count"] > 0 and out.count("gold: ") == questions
    assert "Civil disobedience" in out or "European Union law" in out  # the passage's title
    assert 0 <= result["f1"] <= 100 and result["aos"] is not None
    assert f"{questions} questions, 1 passages" in out


def test_answer_passages_refuses_bad_arguments_before_loading(tmp_path, capsys):
    module = answer_passages()
    for argv, message in ((["--model", str(tmp_path / "missing")], "no such folder"),
                          (["--max_passages", "0", "--model", str(tmp_path)], "--max_passages 0"),
                          (["--model", str(tmp_path), "--records", str(tmp_path / "none")], "no config.json")):
        with pytest.raises(SystemExit):
            module.main(argv)
        assert message in capsys.readouterr().err
